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
from qperf.types import PerfusionSeries, SliceGeometry

AXES = ("tyx", "yxt")


def _orient(arr: np.ndarray, axes: str, name: str) -> np.ndarray:
    if axes not in AXES:
        raise ValidationError(f"axes: expected one of {', '.join(AXES)}, found {axes!r}")
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
            if "data" not in loaded.files:
                raise FormatError(
                    f"{p.name}: .npz needs an array named 'data', found {', '.join(loaded.files) or 'none'}"
                )
            kwargs["data"] = _orient(np.asarray(loaded["data"]), axes, p.name)
            if "time_s" in loaded.files:
                kwargs["time_s"] = np.asarray(loaded["time_s"], dtype=float)
            if "spacing_mm" in loaded.files and spacing_mm is None:
                kwargs["spacing_mm"] = tuple(np.asarray(loaded["spacing_mm"], dtype=float).tolist())
            if "n_pd_frames" in loaded.files:
                kwargs["n_pd_frames"] = int(loaded["n_pd_frames"])
            if "units" in loaded.files:
                kwargs["units"] = str(loaded["units"])
            else:
                kwargs["metadata"]["units_recorded"] = False
            if "metadata" in loaded.files:
                kwargs["metadata"].update(json.loads(str(loaded["metadata"])))
            if "ijk_to_lps" in loaded.files:
                geometry, sp = SliceGeometry.from_ijk_to_lps(loaded["ijk_to_lps"])
                kwargs["geometry"] = geometry
                kwargs.setdefault("spacing_mm", sp)
            if "slice_position_mm" in loaded.files:
                kwargs["slice_position_mm"] = float(loaded["slice_position_mm"])
            if "name" in loaded.files:
                kwargs["name"] = str(loaded["name"])
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
