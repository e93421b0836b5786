"""The QPerf error family.

Every error that the library raises on purpose derives from :class:`QPerfError`, so the
command line can turn it into one line (``qperf: error: ...``) and exit 2, and a script can
catch the whole family at once. Input errors also derive from :class:`ValueError`, so code
that expects the standard exception for bad arguments keeps working.
"""

from __future__ import annotations


class QPerfError(Exception):
    """Base class of every error QPerf raises deliberately."""


class ValidationError(QPerfError, ValueError):
    """An argument or a data field has the wrong shape, type, value or units."""


class FormatError(ValidationError):
    """A file cannot be read: missing, empty, of an unknown format or malformed."""


class OutputExistsError(QPerfError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class NotAvailableError(QPerfError, RuntimeError):
    """A step or resource the request needs is not available (for example no trained model)."""


def describe(value: object) -> str:
    """Short human description of a value for error messages (shape and dtype for arrays)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"array of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class MissingMetadataError(FormatError):
    """A file lacks information QPerf needs (frame times, spacing); ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field
