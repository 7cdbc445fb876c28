"""The one error type for bad input: a field name and a reason, printed as one line."""


class ConfigError(ValueError):
    """A user-facing configuration or input error.

    Raised before any compute. The entry points catch it, print ``error: <field>: <reason>``
    on one line and exit with status 2.
    """

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


EXIT_BAD_INPUT = 2
