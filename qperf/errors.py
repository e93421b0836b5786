"""The QPerf error family.

Every error that the library raises on purpose derives from :class:`QPerfError`, so the
command line can turn it into one line (``qperf: error: ...``) and exit 2, and a script can
catch the whole family at once. Input errors also derive from :class:`ValueError`, so code
that expects the standard exception for bad arguments keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


class QPerfWarning(UserWarning):
    """A number that can be read but is probably wrong; the work goes on.

    The command line prints each as ``qperf <command>: warning: ...`` on stderr, and the
    outputs' QC (``report.json`` ``qc.warnings``, ``insertion.json``) records the same text.
    """


def warn(message: str) -> None:
    """Issue a :class:`QPerfWarning` (from the caller's caller, as the warnings module counts)."""
    import warnings

    warnings.warn(QPerfWarning(message), stacklevel=3)


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Gather the texts of the :class:`QPerfWarning` issued inside the block, then issue them again.

    >>> with collect_warnings() as notes:
    ...     analyse(...)
    >>> report["qc"]["warnings"] += notes

    The list is filled when the block ends; the warnings still reach the caller's own handler
    (the command line prints them), and other warnings pass through untouched.
    """
    import warnings

    messages: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            yield messages
    finally:
        for record in records:
            if issubclass(record.category, QPerfWarning):
                text = str(record.message)
                if text not in messages:
                    messages.append(text)
                warnings.warn(QPerfWarning(text), stacklevel=3)
            else:
                warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
