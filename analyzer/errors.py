"""The package's error base class and the errors users see."""


class AnalyzerError(Exception):
    """Base class: every error the package raises on purpose derives from it.

    The CLI turns it into a one-line message and exit code 2, never a traceback.
    """


class CatalogueError(AnalyzerError):
    """A signatures file is malformed; the message names the file and the entry."""


class CaptureError(AnalyzerError):
    """A capture cannot be opened or is not a capture at all."""
