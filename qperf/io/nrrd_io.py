"""NRRD: 2D+T series as Slicer volume sequences (``.seq.nrrd``), maps and label maps as images.

Layout of a series (the one Slicer's volume sequence storage node reads and writes):
``dimension 4``, sizes ``nx ny 1 nt``, ``kinds domain domain domain list``, space
``left-posterior-superior``, ``space directions`` from the slice geometry and ``none`` for the
list axis, ``labels "" "" "" "time"``, ``units "" "" "" "s"``, and the custom fields
``axis 3 index type:=numeric``, ``axis 3 index values:=<t0> <t1> ...`` (seconds),
``DataNodeClassName:=vtkMRMLScalarVolumeNode``. QPerf's own fields are prefixed ``qperf_``
(units, PD-frame count, slice position, name, JSON metadata).

Maps ``(y, x)`` are written as 3D images with one slice (``sizes nx ny 1``) so they overlay the
series in Slicer; label maps keep an integer type. A 2D+T label series uses the sequence layout.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import FormatError, ValidationError
from qperf.io.atomic import atomic_file
from qperf.io.paths import inside
from qperf.io.schema import NRRD_FIELDS, check_metadata, validate
from qperf.types import PerfusionSeries, SliceGeometry

_LIST_AXIS = 3


@dataclass(frozen=True, eq=False)
class ImageData:
    """An image read from disk: a map ``(y, x)`` or a label/field series ``(t, y, x)``."""

    array: NDArray[Any]
    spacing_mm: tuple[float, float]
    geometry: SliceGeometry | None
    time_s: NDArray[np.float64] | None = None
    fields: dict[str, str] = field(default_factory=dict)


def _space_directions(
    geometry: SliceGeometry | None, spacing_mm: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    m = (geometry or SliceGeometry()).ijk_to_lps(spacing_mm)
    return m[:3, :3].T.copy(), m[:3, 3].copy()


def _header(
    array_shape_cyx: tuple[int, ...],
    geometry: SliceGeometry | None,
    spacing_mm: tuple[float, float],
    time_s: NDArray[np.float64] | None,
    extra: dict[str, str],
) -> dict[str, Any]:
    directions, origin = _space_directions(geometry, spacing_mm)
    header: dict[str, Any] = {
        "space": "left-posterior-superior",
        "space origin": origin,
        "encoding": "gzip",
    }
    if time_s is None:
        header["space directions"] = directions
        header["kinds"] = ["domain", "domain", "domain"]
    else:
        header["space directions"] = np.vstack([directions, np.full((1, 3), np.nan)])
        header["kinds"] = ["domain", "domain", "domain", "list"]
        header["labels"] = ["", "", "", "time"]
        header["units"] = ["", "", "", "s"]
        header[f"axis {_LIST_AXIS} index type"] = "numeric"
        header[f"axis {_LIST_AXIS} index values"] = " ".join(repr(float(t)) for t in time_s)
        header["DataNodeClassName"] = "vtkMRMLScalarVolumeNode"
    header.update(extra)
    return header


def _custom_fields(header: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in header if k.startswith("qperf_") or k.startswith("axis ") or k == "DataNodeClassName"]
    return dict.fromkeys(keys, "string")


def write_nrrd_image(
    array: ArrayLike,
    path: str | os.PathLike[str],
    *,
    spacing_mm: tuple[float, float],
    geometry: SliceGeometry | None = None,
    time_s: ArrayLike | None = None,
    fields: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a map ``(y, x)`` or a time series ``(t, y, x)`` (with ``time_s``) as NRRD.

    Parameters
    ----------
    array : array_like, shape (y, x) or (t, y, x)
        Float maps are stored as float32, integer and boolean label maps keep an integer type.
    path : path
        ``.nrrd`` or ``.seq.nrrd``.
    spacing_mm, geometry : the grid of the series the image belongs to.
    time_s : array_like, shape (t,), optional
        Frame times: the image is written as a Slicer volume sequence.
    fields : dict, optional
        Extra ``qperf_*`` key/value fields.
    overwrite : bool
        Replace an existing file.
    """
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"array: expected numbers, found dtype {arr.dtype}")
    times = None
    if time_s is not None:
        times = np.asarray(time_s, dtype=float).reshape(-1)
        if arr.ndim != 3 or arr.shape[0] != times.shape[0]:
            raise ValidationError(
                f"array: expected (t, y, x) with t = {times.shape[0]} frames, found shape {arr.shape}"
            )
        data_c = arr[:, None, :, :]  # (t, k=1, y, x): C order of (x, y, k, t)
    else:
        if arr.ndim != 2:
            raise ValidationError(f"array: expected a (y, x) map, or (t, y, x) with time_s, found shape {arr.shape}")
        data_c = arr[None, :, :]  # (k=1, y, x)
    extra = {k: str(v) for k, v in (fields or {}).items()}
    header = _header(arr.shape, geometry, spacing_mm, times, extra)
    with atomic_file(path, overwrite) as tmp:
        nrrd.write(
            str(tmp), np.ascontiguousarray(data_c), header, index_order="C", custom_field_map=_custom_fields(header)
        )
    return Path(path)


def _spacings(header: dict[str, Any], path: Path) -> tuple[float, float]:
    """``(dy, dx)`` from the ``spacings`` field (no geometry), or 1 mm without one."""
    spacings = header.get("spacings")
    if spacings is None:
        return (1.0, 1.0)
    sp = np.asarray(spacings, dtype=float).reshape(-1)
    if sp.size < 2 or not np.all(np.isfinite(sp[:2])) or not np.all(sp[:2] > 0):
        raise FormatError(f"{path.name}: 'spacings': expected positive pixel spacings in mm, found {sp.tolist()}")
    return (float(sp[1]), float(sp[0]))


def _spatial_rows(header: dict[str, Any], path: Path) -> list[NDArray[np.float64]]:
    """The rows of ``space directions`` of the image axes (not the list or time axis), each checked."""
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    rows = []
    for i, d in enumerate(header["space directions"]):
        r = np.asarray(d, dtype=float).reshape(-1)
        if (i < len(kinds) and kinds[i] in ("list", "time")) or (r.size and np.all(np.isnan(r))):
            continue
        if r.shape != (3,) or not np.all(np.isfinite(r)) or not np.linalg.norm(r) > 0:
            raise FormatError(
                f"{path.name}: 'space directions': expected a finite, non-zero vector for axis {i}, found {r.tolist()}"
            )
        rows.append(r)
    if len(rows) < 2:
        raise FormatError(f"{path.name}: 'space directions' has fewer than two spatial axes")
    return rows


def _geometry_from_header(header: dict[str, Any], path: Path) -> tuple[SliceGeometry | None, tuple[float, float]]:
    directions = header.get("space directions")
    space = str(header.get("space", "")).lower()
    if directions is None:
        return None, _spacings(header, path)
    rows = _spatial_rows(header, path)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float).reshape(-1)
    if origin.shape != (3,) or not np.all(np.isfinite(origin)):
        raise FormatError(f"{path.name}: 'space origin': expected three finite numbers (mm), found {origin.tolist()}")
    if space in ("right-anterior-superior", "ras"):
        flip = np.array([-1.0, -1.0, 1.0])
        rows = [r * flip for r in rows]
        origin = origin * flip
    elif space not in ("left-posterior-superior", "lps"):
        raise FormatError(f"{path.name}: unsupported NRRD space {space!r} (expected left-posterior-superior or RAS)")
    m = np.eye(4)
    m[:3, 0], m[:3, 1] = rows[0], rows[1]
    m[:3, 2] = (
        rows[2] if len(rows) > 2 else np.cross(rows[0], rows[1]) / np.linalg.norm(np.cross(rows[0], rows[1])) * 8.0
    )
    m[:3, 3] = origin
    try:
        return SliceGeometry.from_ijk_to_lps(m)
    except ValidationError as exc:
        raise FormatError(f"{path.name}: 'space directions': invalid geometry ({exc})") from exc


def _read_raw(path: Path) -> tuple[NDArray[Any], dict[str, Any]]:
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: empty file")
    _check_data_file(path)
    try:
        data, header = nrrd.read(str(path), index_order="C")
    except Exception as exc:  # pynrrd raises many kinds of errors for malformed files
        raise FormatError(f"{path.name}: not a readable NRRD file ({_field_problem(path, exc)})") from exc
    return np.asarray(data), header


def _field_problem(path: Path, exc: Exception) -> str:
    """What pynrrd could not parse: the header field holding the value it names, else its message."""
    text = " ".join(str(exc).split())[:120]
    quoted = re.search(r"'([^']+)'", text)
    if quoted and isinstance(exc, ValueError):
        try:
            with open(path, "rb") as fh:
                head = fh.read(65536).split(b"\n\n", 1)[0].decode("latin-1")
        except OSError:
            return text
        for line in head.split("\n")[1:]:
            if line.startswith("#"):  # a comment
                continue
            key, sep, value = line.partition(":")
            if sep and re.search(rf"(?<![\w.+-]){re.escape(quoted.group(1))}(?![\w.])", value):
                return f"field '{key.strip()}': expected numbers, found {value.lstrip('=').strip()!r}"
    return text


def _check_data_file(path: Path) -> None:
    """A detached header's data file must lie in the header's folder (symlinks resolved)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"NRRD":
                return  # not a NRRD file; reported by the reader
            fh.seek(0)
            lines = [line.decode("latin-1") for line in fh.read(65536).split(b"\n\n", 1)[0].split(b"\n")]
    except OSError:
        return
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("data file", "datafile"):
            name = value.strip()
            if name.upper().startswith("LIST") or len(name.split()) > 1:
                raise FormatError(f"{path.name}: 'data file' {name!r}: expected one data file beside the header")
            data = inside(path.parent, name, f"{path.name}: 'data file'")
            if not data.is_file():
                raise FormatError(f"{path.name}: 'data file' {name!r}: expected a file beside the header, found none")


def _time_from_header(header: dict[str, Any], n: int, path: Path) -> NDArray[np.float64] | None:
    for key in (f"axis {_LIST_AXIS} index values", "axis 0 index values"):
        if key in header:
            try:
                values = np.array([float(v) for v in str(header[key]).split()], dtype=float)
            except ValueError as exc:
                raise FormatError(f"{path.name}: '{key}': expected frame times in seconds, found text") from exc
            if values.shape[0] != n:
                raise FormatError(
                    f"{path.name}: '{key}': expected {n} frame times (one per frame), found {values.shape[0]}"
                )
            if not np.all(np.isfinite(values)):
                raise FormatError(f"{path.name}: '{key}': expected finite frame times, found NaN or infinity")
            steps = np.diff(values)
            if np.any(steps <= 0):
                k = int(np.argmax(steps <= 0))
                raise FormatError(
                    f"{path.name}: '{key}': expected strictly increasing frame times, found {values[k]:.4g} s "
                    f"followed by {values[k + 1]:.4g} s (frames {k} and {k + 1})"
                )
            return values
    return None


def read_nrrd_image(path: str | os.PathLike[str]) -> ImageData:
    """Read a map, label map or 2D+T image written by :func:`write_nrrd_image` or by Slicer.

    Accepts 2D images, 3D images with one slice, Slicer volume sequences (list axis last, or
    first as in older files) and 3D ``(x, y, t)`` images whose last axis has kind ``time``.
    Returns ``(y, x)`` or ``(t, y, x)`` arrays.
    """
    p = Path(path)
    data, header = _read_raw(p)
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    geometry, spacing = _geometry_from_header(header, p)
    time_s = None
    if data.ndim == 4:
        if kinds and kinds[-1] == "list" or f"axis {_LIST_AXIS} index values" in header:
            # C order (t, k, y, x)
            if data.shape[1] != 1:
                raise FormatError(f"{p.name}: expected a single slice per frame, found {data.shape[1]} slices")
            arr = data[:, 0]
        elif kinds and kinds[0] == "list":
            # C order (k, y, x, t)
            if data.shape[0] != 1:
                raise FormatError(f"{p.name}: expected a single slice per frame, found {data.shape[0]} slices")
            arr = np.moveaxis(data[0], -1, 0)
        else:
            raise FormatError(f"{p.name}: 4D NRRD without a list axis is not a 2D+T series")
        time_s = _time_from_header(header, arr.shape[0], p)
    elif data.ndim == 3:
        if kinds and kinds[0] in ("time", "list"):  # C order (t, y, x)
            arr = data
            time_s = _time_from_header(header, arr.shape[0], p)
        elif data.shape[0] == 1:  # (k=1, y, x)
            arr = data[0]
        else:
            raise FormatError(
                f"{p.name}: 3D image with {data.shape[0]} slices; expected one slice, or a time axis marked kind 'time'"
            )
    elif data.ndim == 2:
        arr = data
    else:
        raise FormatError(f"{p.name}: expected a 2D map or a 2D+T series, found {data.ndim} dimensions")
    fields = {k: str(v) for k, v in header.items() if isinstance(k, str) and k.startswith("qperf_")}
    return ImageData(np.ascontiguousarray(arr), spacing, geometry, time_s, fields)


def write_nrrd_series(series: PerfusionSeries, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a series as a Slicer volume sequence (works for ``.nrrd`` and ``.seq.nrrd``)."""
    fields = {
        "qperf_units": series.units,
        "qperf_n_pd_frames": str(series.n_pd_frames),
        "qperf_name": series.name,
        "qperf_metadata": json.dumps(_jsonable(series.metadata), separators=(",", ":")),
    }
    if series.slice_position_mm is not None:
        fields["qperf_slice_position_mm"] = repr(series.slice_position_mm)
    if series.geometry is None:
        fields["qperf_geometry_unknown"] = "1"
    return write_nrrd_image(
        series.data,
        path,
        spacing_mm=series.spacing_mm,
        geometry=series.geometry,
        time_s=series.time_s,
        fields=fields,
        overwrite=overwrite,
    )


def read_nrrd_series(
    path: str | os.PathLike[str],
    *,
    time_s: ArrayLike | None = None,
    frame_interval_s: float | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Read a 2D+T NRRD into the keyword arguments of :class:`PerfusionSeries`.

    Returns the arguments and the list of required fields the file does not record
    (``"time_s"``) so the caller can report them or fill them from options.
    """
    p = Path(path)
    img = read_nrrd_image(p)
    if img.array.ndim != 3:
        raise FormatError(f"{p.name}: expected a 2D+T series, found a single 2D image of shape {img.array.shape}")
    missing: list[str] = []
    times: NDArray[Any] | None = img.time_s
    if time_s is not None:
        times = np.asarray(time_s, dtype=float)
    elif times is None and frame_interval_s is not None:
        times = np.arange(img.array.shape[0]) * float(frame_interval_s)
    if times is None:
        missing.append("time_s")
    f = validate(img.fields, NRRD_FIELDS, p.name)
    kwargs: dict[str, Any] = {
        "data": img.array,
        "time_s": times,
        "spacing_mm": img.spacing_mm,
        "geometry": None if f.get("qperf_geometry_unknown") else img.geometry,
        "units": f.get("qperf_units", "signal"),
        "n_pd_frames": f.get("qperf_n_pd_frames", 0),
        "name": f.get("qperf_name", ""),
        "metadata": check_metadata(f.get("qperf_metadata", {}), f"{p.name}: qperf_metadata"),
    }
    if "qperf_slice_position_mm" in f:
        kwargs["slice_position_mm"] = f["qperf_slice_position_mm"]
    if "qperf_units" not in f:
        kwargs["metadata"]["units_recorded"] = False
    return kwargs, missing


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
