"""Exit codes, in one place."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the run could not complete (or no input could be read)
    USAGE = 2  # bad command line or configuration
    ATTENTION = 3  # complete, but with gaps or skipped steps worth a look
    INTERRUPTED = 130  # Ctrl-C; the case folder is left resumable
