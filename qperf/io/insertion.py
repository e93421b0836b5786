"""RV insertion points as JSON: one format for ``qperf segment``, ``qperf analyze`` and Slicer.

A document is ``{"slices": [record, ...]}``, each record::

    {"slice": 1, "name": "slice 1", "coordinates": "...",
     "reference": {"anterior": {"pixel_yx": [y, x], "lps_mm": [x, y, z] or null}, ...},
     "per_frame": {"anterior": [{"pixel_yx": ..., "lps_mm": ..., "frame": 0, "time_s": 0.0}, ...]},
     "qc": {...}}

``reference`` is the motion-corrected (reference) frame; ``per_frame`` follows every acquired
frame. Ground-truth training cases may also hold the plain form ``{"anterior": [y, x]}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.errors import FormatError, describe
from qperf.io.schema import Bad, numbers, parse_json
from qperf.types import PerfusionSeries

_POINT = numbers(2)

COORDINATES = "pixel_yx: (row, column) of the input grid; lps_mm: DICOM patient space (null without geometry)"


def point_record(yx: ArrayLike, series: PerfusionSeries) -> dict[str, Any]:
    """A point in pixels and, where the geometry is known, in LPS millimetres."""
    p = np.asarray(yx, dtype=float)
    rec: dict[str, Any] = {"pixel_yx": [float(p[0]), float(p[1])], "lps_mm": None}
    if series.geometry is not None:
        rec["lps_mm"] = [float(v) for v in series.geometry.pixel_to_lps(p[0], p[1], series.spacing_mm)]
    return rec


def slice_record(
    reference: Mapping[str, ArrayLike],
    per_frame: Mapping[str, ArrayLike],
    series: PerfusionSeries,
    index: int,
    qc: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one slice: named points in the reference frame and ``(t, 2)`` per frame."""
    return {
        "slice": index + 1,
        "name": series.name,
        "coordinates": COORDINATES,
        "reference": {k: point_record(p, series) for k, p in reference.items()},
        "per_frame": {
            k: [
                dict(point_record(v[i], series), frame=i, time_s=float(series.time_s[i]))
                for i in range(np.asarray(v).shape[0])
            ]
            for k, v in ((k, np.asarray(v, dtype=float)) for k, v in per_frame.items())
        },
        "qc": dict(qc or {}),
    }


def read_anterior_point(path: str | os.PathLike[str], slice_number: int | None = None) -> tuple[float, float]:
    """The anterior insertion point (reference frame, pixels) of one slice from an insertion JSON.

    Parameters
    ----------
    path : path
        A document written by ``qperf segment`` or ``qperf analyze``, or ``{"anterior": [y, x]}``.
    slice_number : int, optional
        1-based slice to take from a document with several slices.
    """
    p = Path(path)
    doc = read_json(p)
    if isinstance(doc, dict) and "anterior" in doc and "slices" not in doc:
        return point_yx(doc["anterior"], f"{p.name}: anterior")
    records = doc.get("slices") if isinstance(doc, dict) else None
    if not isinstance(records, list) or not records:
        raise FormatError(f'{p.name}: expected "slices" records or an "anterior" point [y, x], found {describe(doc)}')
    if slice_number is not None and len(records) > 1:
        records = [r for r in records if isinstance(r, dict) and r.get("slice") == slice_number]
        if not records:
            raise FormatError(f"{p.name}: no record for slice {slice_number}")
    elif len(records) > 1:
        raise FormatError(f"{p.name}: holds {len(records)} slices; say which one")
    record = records[0]
    try:
        value = record["reference"]["anterior"]["pixel_yx"]
    except (KeyError, TypeError, IndexError):
        raise FormatError(
            f"{p.name}: slices[0]: expected an anterior insertion point at reference.anterior.pixel_yx, found none"
        ) from None
    return point_yx(value, f"{p.name}: reference.anterior.pixel_yx")


def read_json(path: Path) -> Any:
    """A JSON document, or :class:`~qperf.errors.FormatError` naming the file and what is wrong."""
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{path.name}: expected UTF-8 JSON text, found a byte that is not text (at {exc.start})"
        ) from None
    return parse_json(text, path.name)


def point_yx(value: Any, where: str) -> tuple[float, float]:
    """A point ``[y, x]`` of two finite numbers, or :class:`~qperf.errors.FormatError` naming where."""
    try:
        y, x = _POINT(value)
    except Bad as exc:
        raise FormatError(f"{where}: expected {exc} [y, x] in pixels, found {describe(value)}") from None
    return (float(y), float(x))
