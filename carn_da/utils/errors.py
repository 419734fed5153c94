"""The two kinds of failure the commands report without a traceback."""


class UserError(Exception):
    """A mistake in a command line or its files: reported as one line ``PROG: error: MESSAGE``, exit code 2."""


class BadInput(ValueError):
    """One input file that cannot be read or decoded: the run reports it and goes on with the others."""
