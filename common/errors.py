"""The lab's error types and exit codes: bad input as one line, a run another process holds."""


class ConfigError(ValueError):
    """A user-facing configuration or input error.

    Raised before any compute. The entry points catch it, print ``error: <field>: <reason>``
    on one line and exit with status 2.
    """

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class RunLocked(RuntimeError):
    """Another live process holds the run's lock (it is training the run): nothing to do here."""


EXIT_BAD_INPUT = 2
EXIT_RUN_LOCKED = 3  # the entry points' and the grid worker's code for RunLocked
