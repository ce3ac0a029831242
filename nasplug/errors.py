"""Exceptions users can catch; the CLI turns them into one line on stderr and exit status 2."""


class NasplugError(Exception):
    """Base class of every error caused by user input (bad architecture, missing file, ...)."""


class ArchError(NasplugError, ValueError):
    """A malformed, cyclic or otherwise invalid architecture, or an unknown op."""


class DataError(NasplugError, OSError):
    """A missing, truncated or mismatched data or benchmark file."""
