"""Declarative checks of the metadata QPerf reads: one table of fields per document.

Every reader passes what a file records through :func:`validate` with the table of its format
(:data:`MANIFEST`, :data:`MANIFEST_SERIES`, :data:`NIFTI_EXTENSION`, :data:`NRRD_FIELDS`,
:data:`NPZ_ARRAYS`, :data:`METADATA`), so a field of the wrong type or out of range is refused
with the file and the field named, what was expected and what was found, before any number is
used. A table maps a field name to a :class:`Field`, whose ``parse`` returns the value in the
form the reader passes on (a float, an int, a tuple) or raises :class:`Bad` with the expected
form; :func:`validate` adds where.

The tables are the specification: ``NRRD_FIELDS`` holds text (header fields are strings),
``NPZ_ARRAYS`` NumPy arrays, the others JSON values. Known keys of series ``metadata``
(:mod:`qperf.types`) are checked wherever metadata is read; other metadata keys are free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qperf.errors import FormatError, describe

__all__ = [
    "MANIFEST",
    "MANIFEST_AIF",
    "MANIFEST_SERIES",
    "METADATA",
    "NIFTI_EXTENSION",
    "NPZ_ARRAYS",
    "NRRD_FIELDS",
    "Bad",
    "Field",
    "check_metadata",
    "parse_json",
    "validate",
]


class Bad(Exception):
    """A value that does not fit its field; the message is what was expected."""


@dataclass(frozen=True)
class Field:
    """One field: how to parse its value and whether it must be present."""

    parse: Callable[[Any], Any]
    required: bool = False


def _scalar(value: Any) -> Any:
    """A NumPy scalar or 0-d array as a Python value (JSON values pass through)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _finite(value: Any, text: bool, expected: str) -> int | float:
    """A finite int or float (a numeric string too, with ``text``); ``True`` and NaN are not numbers."""
    value = _scalar(value)
    if text and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Bad(expected) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Bad(expected)
    return value


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False, text: bool = False):  # type: ignore[no-untyped-def]
    """A finite real number within ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    lo = "" if low is None else (f" > {low:g}" if open_low else f" >= {low:g}")
    hi = "" if high is None else f" <= {high:g}"
    expected = "a finite number" + (lo + (" and" if lo and hi else "") + hi if lo or hi else "")

    def parse(value: Any) -> float:
        value = _finite(value, text, expected)
        if low is not None and (value <= low if open_low else value < low):
            raise Bad(expected)
        if high is not None and value > high:
            raise Bad(expected)
        return float(value)

    return parse


def integer(low: int = 0, high: int | None = None, *, text: bool = False):  # type: ignore[no-untyped-def]
    """A whole number within ``[low, high]`` (``3.0`` counts; ``2.5``, ``True`` and ``"3"`` do not)."""
    expected = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")

    def parse(value: Any) -> int:
        value = _finite(value, text, expected)
        if not float(value).is_integer() or value < low or (high is not None and value > high):
            raise Bad(expected)
        return int(value)

    return parse


def text(*, empty: bool = True):  # type: ignore[no-untyped-def]
    expected = "a text" if empty else "a non-empty text"

    def parse(value: Any) -> str:
        value = _scalar(value)
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise Bad(expected)
        return value

    return parse


def choice(*options: str):  # type: ignore[no-untyped-def]
    expected = "one of " + ", ".join(repr(o) for o in options)

    def parse(value: Any) -> str:
        value = _scalar(value)
        if not isinstance(value, str) or value not in options:
            raise Bad(expected)
        return value

    return parse


def flag(*, text: bool = False):  # type: ignore[no-untyped-def]
    expected = "'0' or '1'" if text else "true or false"

    def parse(value: Any) -> bool:
        value = _scalar(value)
        if text and value in ("0", "1"):
            return value == "1"
        if text or not isinstance(value, bool):
            raise Bad(expected)
        return value

    return parse


def numbers(length: int | None = None, *, low: float | None = None, open_low: bool = False, shape: Any = None):  # type: ignore[no-untyped-def]
    """A list (or array) of finite numbers: ``length`` of them, or of ``shape``, each above ``low``."""
    count = f"{length} " if length else ""
    form = f"a {shape[0]} x {shape[1]} matrix of finite numbers" if shape else f"a list of {count}finite numbers"
    bound = "" if low is None else (f", each > {low:g}" if open_low else f", each >= {low:g}")
    expected = form + bound

    def parse(value: Any) -> np.ndarray:
        if isinstance(value, (str, bytes, bool)) or value is None or isinstance(value, Mapping):
            raise Bad(expected)
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise Bad(expected) from None
        if arr.dtype.kind not in "iuf" or (shape is None and arr.ndim != 1) or arr.size == 0:
            raise Bad(expected)
        arr = arr.astype(np.float64)
        if shape is not None and arr.shape != tuple(shape):
            raise Bad(expected)
        if (length is not None and arr.shape[0] != length) or not np.all(np.isfinite(arr)):
            raise Bad(expected)
        if low is not None and not np.all(arr > low if open_low else arr >= low):
            raise Bad(expected)
        return arr

    return parse


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Bad("an object of named fields")
    return dict(value)


def json_object(value: Any) -> dict[str, Any]:
    """An object given as JSON text (NRRD fields, ``.npz`` entries)."""
    value = _scalar(value)
    if not isinstance(value, str):
        raise Bad("an object as JSON text")
    try:
        doc = json.loads(value)
    except json.JSONDecodeError as exc:
        raise Bad(f"an object as JSON text, not JSON ({json_problem(exc)})") from None
    if not isinstance(doc, dict):
        raise Bad("an object as JSON text")
    return doc


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse``, or None for a JSON null."""

    def inner(value: Any) -> Any:
        return None if value is None else parse(value)

    return inner


def json_problem(exc: json.JSONDecodeError) -> str:
    """Where a JSON text breaks, in words: ``line 3, column 5: a property name in double quotes expected``."""
    what = exc.msg
    if what.startswith("Expecting "):
        what = what[len("Expecting ") :] + " expected"
    return f"line {exc.lineno}, column {exc.colno}: {what}"


def parse_json(text: str, where: str) -> Any:
    """A JSON document, or :class:`~qperf.errors.FormatError` saying where it breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where}: not valid JSON (a syntax error at {json_problem(exc)})") from None
    except RecursionError:
        raise FormatError(f"{where}: expected JSON, found nesting too deep to read") from None


def validate(
    doc: Mapping[str, Any],
    table: Mapping[str, Field],
    where: str,
    *,
    unknown: str = "ignore",
    prefix: str = "",
) -> dict[str, Any]:
    """The parsed values of the fields of ``table`` that ``doc`` holds.

    Parameters
    ----------
    doc : mapping
        What the file records.
    table : mapping of str to Field
    where : str
        The file (and entry) for messages, e.g. ``"study.json: slices[0]"``.
    unknown : {"ignore", "error"}
        What to do with a key that ``table`` does not know.
    prefix : str
        Put before field names in messages (``"metadata."``).

    Raises
    ------
    FormatError
        ``"<where>: <prefix><field>: expected <form>, found <value>"``, or an unknown or
        missing field named.
    """
    if unknown == "error":
        extra = [k for k in doc if k not in table]
        if extra:
            raise FormatError(
                f"{where}: unknown key {prefix}{extra[0]!r} (expected keys: {', '.join(table)}); "
                "check its spelling or leave it out"
            )
    out: dict[str, Any] = {}
    for key, spec in table.items():
        if key not in doc:
            if spec.required:
                raise FormatError(f"{where}: {prefix}{key}: required, not found")
            continue
        try:
            out[key] = spec.parse(doc[key])
        except Bad as exc:
            raise FormatError(f"{where}: {prefix}{key}: expected {exc}, found {describe(doc[key])}") from None
    return out


def check_metadata(metadata: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Series metadata with its known keys (:data:`METADATA`) checked; other keys kept as they are."""
    if not isinstance(metadata, Mapping):
        raise FormatError(f"{where}: metadata: expected an object of named fields, found {describe(metadata)}")
    checked = validate(metadata, METADATA, where, prefix="metadata.")
    return {**metadata, **{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in checked.items()}}


_POSITIVE = number(0.0, open_low=True)
_ANGLE = number(0.0, 180.0, open_low=True)

#: Known keys of series metadata (see :mod:`qperf.types`) and their ranges.
METADATA: dict[str, Field] = {
    "field_strength_t": Field(number(0.0, 15.0, open_low=True)),
    "readout": Field(choice("flash", "ssfp")),
    "saturation_time_ms": Field(number(0.0, 10000.0, open_low=True)),
    "flip_angle_deg": Field(_ANGLE),
    "pd_flip_angle_deg": Field(_ANGLE),
    "echo_spacing_ms": Field(number(0.0, 100.0, open_low=True)),
    "n_pe_to_center": Field(integer(0, 4096)),
    "echo_times_ms": Field(numbers(low=0.0, open_low=True)),
    "echo_time_ms": Field(_POSITIVE),
    "heart_rate_bpm": Field(number(0.0, 400.0, open_low=True)),
    "series_description": Field(text()),
    "series_uid": Field(text()),
    "patient_id": Field(text()),
    "time_recorded": Field(flag()),
    "units_recorded": Field(flag()),
    "spacing_recorded": Field(flag()),
    "motion_corrected": Field(flag()),
}

#: The fields of a ``study.json`` manifest (:func:`qperf.io.read_study`); other keys are refused.
MANIFEST: dict[str, Field] = {
    "format": Field(text(), required=True),
    "version": Field(lambda v: v, required=True),
    "name": Field(text()),
    "condition": Field(choice("stress", "rest", "unknown")),
    "hematocrit": Field(number(0.0, 1.0, open_low=True)),
    "slices": Field(lambda v: v, required=True),
    "aif": Field(lambda v: v),
    "aif_series": Field(lambda v: v),
    "metadata": Field(mapping),
}

#: The fields of a series entry of a manifest (``slices[i]``, ``aif_series[i]``).
MANIFEST_SERIES: dict[str, Field] = {
    "path": Field(text(empty=False), required=True),
    "name": Field(text()),
    "frame_interval_s": Field(number(0.0, 3600.0, open_low=True)),
    "units": Field(choice("signal", "gd_mmol_l")),
    "n_pd_frames": Field(integer(0)),
    "axes": Field(choice("tyx", "yxt")),
    "spacing_mm": Field(numbers(2, low=0.0, open_low=True)),
    "slice_position_mm": Field(number()),
}

#: The AIF curve entry of a manifest (``aif``).
MANIFEST_AIF: dict[str, Field] = {
    "path": Field(text(empty=False), required=True),
    "kind": Field(optional(choice("blood", "plasma"))),
    "frame_interval_s": Field(optional(number(0.0, 3600.0, open_low=True))),
}

#: What QPerf writes in a NIfTI header extension (:mod:`qperf.io.nifti_io`).
NIFTI_EXTENSION: dict[str, Field] = {
    "time_s": Field(numbers()),
    "units": Field(choice("signal", "gd_mmol_l")),
    "n_pd_frames": Field(integer(0)),
    "name": Field(text()),
    "slice_position_mm": Field(optional(number())),
    "geometry_unknown": Field(flag()),
    "metadata": Field(mapping),
}

#: QPerf's own NRRD header fields (text; :mod:`qperf.io.nrrd_io`).
NRRD_FIELDS: dict[str, Field] = {
    "qperf_units": Field(choice("signal", "gd_mmol_l")),
    "qperf_n_pd_frames": Field(integer(0, text=True)),
    "qperf_name": Field(text()),
    "qperf_metadata": Field(json_object),
    "qperf_slice_position_mm": Field(number(text=True)),
    "qperf_geometry_unknown": Field(flag(text=True)),
}

#: The arrays of a QPerf ``.npz`` besides ``data`` (:mod:`qperf.io.numpy_io`).
NPZ_ARRAYS: dict[str, Field] = {
    "time_s": Field(numbers()),
    "spacing_mm": Field(numbers(2, low=0.0, open_low=True)),
    "n_pd_frames": Field(integer(0)),
    "units": Field(choice("signal", "gd_mmol_l")),
    "metadata": Field(json_object),
    "ijk_to_lps": Field(numbers(shape=(4, 4))),
    "slice_position_mm": Field(number()),
    "name": Field(text()),
}
