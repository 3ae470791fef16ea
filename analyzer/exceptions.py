"""The project's own error types.

Anything a user can cause by handing us a bad file or argument raises one of these;
the command line turns them into a one-line message and a non-zero exit.
"""


class AnalyzerError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""


class CaptureError(AnalyzerError):
    """A capture file that cannot be read at all (bad magic, broken header...)."""


class LogError(AnalyzerError):
    """A log file that cannot be read at all (missing, unreadable)."""


class RecordError(AnalyzerError):
    """Recording or running a test session failed (no capture rights, no tool...)."""


class KernelError(AnalyzerError):
    """The compiled kernels cannot be used as asked (ANALYZER_KERNELS set to something
    unknown, or to `compiled` without a current build) or were called with wrong arguments."""
