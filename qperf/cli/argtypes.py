"""Option value types of the command line: every number is checked when the command line is read.

Each function takes the option's text and returns its value, or raises
:class:`argparse.ArgumentTypeError` saying what was expected and what was found; argparse then
prints the usage and ``qperf <command>: error: argument --option: expected ..., found '...'``.
So an out-of-range value is refused before anything is read or written, even where the run
would not use it (``--frame-interval`` for a file that records its times). Imports nothing
beyond the standard library (``qperf --help`` stays light).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "fraction",
    "nonnegative_int",
    "open_fraction",
    "point_yx",
    "positive_float",
    "positive_int",
    "seconds",
    "seed",
    "slice_number",
]


def _bad(expected: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"expected {expected}, found {text!r}")


def _float(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(expected, text) from None
    if not math.isfinite(value):
        raise _bad(expected, text)
    return value


def _int(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(expected, text) from None


def positive_int(text: str) -> int:
    """An integer >= 1 (threads, workers, steps, rounds)."""
    value = _int(text, "a positive integer")
    if value < 1:
        raise _bad("a positive integer", text)
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (PD frames, label values)."""
    value = _int(text, "an integer >= 0")
    if value < 0:
        raise _bad("an integer >= 0", text)
    return value


def seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1."""
    value = _int(text, "a seed from 0 to 4294967295")
    if not 0 <= value < 2**32:
        raise _bad("a seed from 0 to 4294967295", text)
    return value


def slice_number(text: str) -> int:
    """A 1-based slice number."""
    value = _int(text, "a slice number from 1 (slices are numbered from 1)")
    if value < 1:
        raise _bad("a slice number from 1 (slices are numbered from 1)", text)
    return value


def positive_float(high: float | None = None, what: str = "a positive number") -> Callable[[str], float]:
    """A finite number > 0 (and <= ``high``)."""
    expected = what + ("" if high is None else f" up to {high:g}")

    def parse(text: str) -> float:
        value = _float(text, expected)
        if value <= 0 or (high is not None and value > high):
            raise _bad(expected, text)
        return value

    parse.__name__ = "positive number"
    return parse


def seconds(high: float | None = None) -> Callable[[str], float]:
    """A positive number of seconds (and <= ``high``)."""
    return positive_float(high, "a positive number of seconds")


def nonnegative_seconds(text: str) -> float:
    value = _float(text, "a number of seconds >= 0")
    if value < 0:
        raise _bad("a number of seconds >= 0", text)
    return value


def fraction(text: str) -> float:
    """A fraction from 0 to 1."""
    value = _float(text, "a fraction from 0 to 1")
    if not 0.0 <= value <= 1.0:
        raise _bad("a fraction from 0 to 1", text)
    return value


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (hematocrit)."""
    value = _float(text, "a fraction between 0 and 1 (exclusive)")
    if not 0.0 < value < 1.0:
        raise _bad("a fraction between 0 and 1 (exclusive)", text)
    return value


def point_yx(text: str) -> tuple[float, float]:
    """``Y,X`` in pixels (finite numbers; negative ones included, as ``-3,4``)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise _bad("Y,X in pixels", text)
    y, x = (_float(p, "Y,X in pixels (finite numbers)") for p in parts)
    return (y, x)


#: Option values that look like negative numbers or points: argparse takes them as values, not options.
_NUMBER = r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
NEGATIVE_VALUE = rf"^-{_NUMBER}$|^-(inf|nan)$|^-?{_NUMBER},-?{_NUMBER}$"


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer from ``low`` to ``high``."""
    expected = f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        value = _int(text, expected)
        if not low <= value <= high:
            raise _bad(expected, text)
        return value

    return parse


def open_unit(text: str) -> float:
    """A fraction above 0, up to 1."""
    value = _float(text, "a fraction above 0, up to 1")
    if not 0.0 < value <= 1.0:
        raise _bad("a fraction above 0, up to 1", text)
    return value
