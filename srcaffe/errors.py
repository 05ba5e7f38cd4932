"""The one exception type that command-line tools turn into a one-line error."""


class UserError(Exception):
    """Bad input or missing prerequisite: printed as 'error: <message>', exit code 2, no traceback.

    The message should name the file (or option) and what is wrong with it.
    """
