"""NumPy ``.npy`` (an array) and ``.npz`` (an array with its timing and grid) series.

``.npy`` holds the data alone, ``(t, y, x)`` by default or ``(y, x, t)`` with ``axes="yxt"``
(MATLAB's rows x columns x time); spacing and frame interval come from the caller (the command
line's ``--spacing`` and ``--frame-interval``). ``.npz`` written by QPerf carries ``data``,
``time_s``, ``spacing_mm``, ``n_pd_frames``, ``units`` and JSON ``metadata``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import FormatError, ValidationError
from qperf.io.atomic import atomic_file
from qperf.io.nrrd_io import _jsonable
from qperf.io.schema import NPZ_ARRAYS, check_metadata, validate
from qperf.types import PerfusionSeries, SliceGeometry

AXES = ("tyx", "yxt")


def _orient(arr: np.ndarray, axes: str, name: str) -> np.ndarray:
    if axes not in AXES:
        raise ValidationError(f"axes: expected one of {', '.join(AXES)}, found {axes!r}")
    if arr.dtype.kind not in "biuf":
        raise FormatError(f"{name}: data: expected real numbers, found an array of dtype {arr.dtype}")
    if arr.ndim != 3:
        hint = " (a single 2D image has no time axis)" if arr.ndim == 2 else ""
        raise FormatError(f"{name}: expected a 3D array ({axes}), found shape {arr.shape}{hint}")
    return np.ascontiguousarray(np.moveaxis(arr, -1, 0) if axes == "yxt" else arr)


def read_numpy_series(
    path: str | os.PathLike[str],
    *,
    frame_interval_s: float | None = None,
    spacing_mm: tuple[float, float] | None = None,
    axes: str = "tyx",
) -> tuple[dict[str, Any], list[str]]:
    """Read ``.npy``/``.npz`` into :class:`PerfusionSeries` keyword arguments and missing fields."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise FormatError(f"{p}: empty file")
    missing: list[str] = []
    try:
        loaded = np.load(str(p), allow_pickle=False)
    except Exception as exc:
        raise FormatError(f"{p.name}: not a readable NumPy file ({' '.join(str(exc).split())[:120]})") from exc
    kwargs: dict[str, Any] = {"metadata": {}}
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            kwargs.update(_npz_fields(loaded, p.name, axes, spacing_mm is None))
    else:
        kwargs["data"] = _orient(np.asarray(loaded), axes, p.name)
        kwargs["metadata"]["units_recorded"] = False
    if "time_s" not in kwargs:
        if frame_interval_s is not None:
            kwargs["time_s"] = np.arange(kwargs["data"].shape[0]) * float(frame_interval_s)
        else:
            missing.append("time_s")
            kwargs["time_s"] = None
    if spacing_mm is not None:
        kwargs["spacing_mm"] = spacing_mm
    elif "spacing_mm" not in kwargs:
        missing.append("spacing_mm")
        kwargs["spacing_mm"] = (1.0, 1.0)
    return kwargs, missing


def _npz_fields(loaded: Any, name: str, axes: str, want_spacing: bool) -> dict[str, Any]:
    """The series fields of a QPerf ``.npz``, each array checked (:data:`qperf.io.schema.NPZ_ARRAYS`)."""
    if "data" not in loaded.files:
        raise FormatError(f"{name}: .npz needs an array named 'data', found {', '.join(loaded.files) or 'none'}")
    try:
        arrays = {k: np.asarray(loaded[k]) for k in loaded.files}
    except Exception as exc:  # object arrays (pickles are refused), damaged members
        raise FormatError(f"{name}: not a readable NumPy file ({' '.join(str(exc).split())[:120]})") from exc
    f = validate({k: v for k, v in arrays.items() if k != "data"}, NPZ_ARRAYS, name)
    out: dict[str, Any] = {"data": _orient(arrays["data"], axes, name), "metadata": {}}
    for key in ("time_s", "n_pd_frames", "units", "slice_position_mm", "name"):
        if key in f:
            out[key] = f[key]
    if "spacing_mm" in f and want_spacing:
        out["spacing_mm"] = tuple(f["spacing_mm"].tolist())
    if "units" not in f:
        out["metadata"]["units_recorded"] = False
    out["metadata"].update(check_metadata(f.get("metadata", {}), f"{name}: metadata"))
    if "ijk_to_lps" in f:
        try:
            geometry, sp = SliceGeometry.from_ijk_to_lps(f["ijk_to_lps"])
        except ValidationError as exc:
            raise FormatError(f"{name}: ijk_to_lps: invalid geometry ({exc})") from exc
        out["geometry"] = geometry
        out.setdefault("spacing_mm", sp)
    return out


def write_numpy_series(series: PerfusionSeries, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``.npz`` with everything needed to read the series back, or ``.npy`` with the data alone."""
    p = Path(path)
    with atomic_file(p, overwrite) as tmp:
        with open(tmp, "wb") as fh:
            if p.suffix.lower() == ".npy":
                np.save(fh, series.data)
            else:
                extra: dict[str, Any] = {"name": np.asarray(series.name)}
                if series.geometry is not None:
                    extra["ijk_to_lps"] = series.geometry.ijk_to_lps(series.spacing_mm)
                if series.slice_position_mm is not None:
                    extra["slice_position_mm"] = np.asarray(series.slice_position_mm)
                np.savez_compressed(
                    fh,
                    **extra,
                    data=series.data,
                    time_s=series.time_s,
                    spacing_mm=np.asarray(series.spacing_mm),
                    n_pd_frames=np.asarray(series.n_pd_frames),
                    units=np.asarray(series.units),
                    metadata=np.asarray(json.dumps(_jsonable(series.metadata))),
                )
    return p
