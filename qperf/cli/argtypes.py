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


def _integer(expected: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` (to ``high``), refused in the words of ``expected``."""

    def parse(text: str) -> int:
        value = _int(text, expected)
        if value < low or (high is not None and value > high):
            raise _bad(expected, text)
        return value

    return parse


def _real(expected: str, inside: Callable[[float], bool]) -> Callable[[str], float]:
    """A finite number for which ``inside`` holds, refused in the words of ``expected``."""

    def parse(text: str) -> float:
        value = _float(text, expected)
        if not inside(value):
            raise _bad(expected, text)
        return value

    return parse


#: An integer >= 1 (threads, workers, steps, rounds).
positive_int = _integer("a positive integer", 1)
#: An integer >= 0 (PD frames, label values).
nonnegative_int = _integer("an integer >= 0", 0)
#: A random seed: an integer from 0 to 2**32 - 1.
seed = _integer("a seed from 0 to 4294967295", 0, 2**32 - 1)
#: A 1-based slice number.
slice_number = _integer("a slice number from 1 (slices are numbered from 1)", 1)


def positive_float(high: float | None = None, what: str = "a positive number") -> Callable[[str], float]:
    """A finite number > 0 (and <= ``high``)."""
    expected = what + ("" if high is None else f" up to {high:g}")
    parse = _real(expected, lambda v: v > 0.0 and (high is None or v <= high))
    parse.__name__ = "positive number"
    return parse


def seconds(high: float | None = None) -> Callable[[str], float]:
    """A positive number of seconds (and <= ``high``)."""
    return positive_float(high, "a positive number of seconds")


#: A number of seconds >= 0.
nonnegative_seconds = _real("a number of seconds >= 0", lambda v: v >= 0.0)
#: A fraction from 0 to 1.
fraction = _real("a fraction from 0 to 1", lambda v: 0.0 <= v <= 1.0)
#: A fraction strictly between 0 and 1 (hematocrit).
open_fraction = _real("a fraction between 0 and 1 (exclusive)", lambda v: 0.0 < v < 1.0)


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
    return _integer(f"an integer from {low} to {high}", low, high)


#: A fraction above 0, up to 1.
open_unit = _real("a fraction above 0, up to 1", lambda v: 0.0 < v <= 1.0)
