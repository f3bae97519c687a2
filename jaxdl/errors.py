"""The one exception type for mistakes a user can fix."""


class JaxdlError(Exception):
    """Bad input: the message is one line that names the problem and the fix.

    The command line prints it without a traceback and exits with status 2.
    """
