"""The one exception for "this table cannot support that fit"; its message says what is missing."""


class InsufficientData(Exception):
    """Raised by a fit whose data are too few or of the wrong shape; callers skip it with the reason."""
