"""NIfTI-1/2 and Analyze 7.5 series.

A 2D+T slice is stored as ``(x, y, 1, t)`` or ``(x, y, t)`` (NIfTI's index order, so QPerf's
``(t, y, x)`` is the transpose); in-plane spacing from ``pixdim[1:3]`` (mm), the frame interval
from ``pixdim[4]`` with the time unit of ``xyzt_units``. NIfTI geometry comes from the sform or
qform (RAS+, converted to LPS); Analyze records none. QPerf writes its exact frame times, units,
PD-frame count and metadata in a NIfTI header extension (a JSON comment), so irregular times
survive a round trip; other readers see the median interval in ``pixdim[4]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import FormatError, ValidationError
from qperf.io.atomic import atomic_file
from qperf.io.nrrd_io import _jsonable
from qperf.io.schema import NIFTI_EXTENSION, check_metadata, parse_json, validate
from qperf.types import PerfusionSeries, SliceGeometry

_EXT_CODE = 6  # NIFTI_ECODE_COMMENT
_EXT_PREFIX = "qperf:"
_TIME_UNIT_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def _load(path: Path) -> Any:
    import nibabel as nib  # here, not at import: nibabel (with pydicom) takes a quarter of a second

    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: empty file")
    if path.suffix.lower() in (".hdr", ".img"):
        other = path.with_suffix(".img" if path.suffix.lower() == ".hdr" else ".hdr")
        if not other.exists():
            raise FormatError(f"{path.name}: Analyze image needs both .hdr and .img; {other.name} is missing")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)  # type: ignore[attr-defined]
    except Exception as exc:
        raise FormatError(
            f"{path.name}: not a readable NIfTI/Analyze image ({' '.join(str(exc).split())[:120]})"
        ) from exc
    return img, data


def read_nifti_series(
    path: str | os.PathLike[str],
    *,
    frame_interval_s: float | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Read a 2D+T NIfTI or Analyze file into :class:`PerfusionSeries` keyword arguments.

    Returns the arguments and the list of required fields not recorded in the file. A pixel
    spacing that the file records as zero, negative or NaN (``pixdim[1:3]``, no sform or qform)
    is refused unless the caller gives ``spacing_mm``.
    """
    p = Path(path)
    img, data = _load(p)
    if data.ndim == 4 and data.shape[2] == 1:
        data = data[:, :, 0, :]
    if data.ndim != 3:
        hint = " (a single 2D image has no time axis)" if data.ndim == 2 else ""
        raise FormatError(f"{p.name}: expected (x, y, t) or (x, y, 1, t), found shape {data.shape}{hint}")
    arr = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    header = img.header
    zooms = [float(z) for z in header.get_zooms()]
    extra = validate(_qperf_extension(header, p.name), NIFTI_EXTENSION, f"{p.name}: QPerf header extension")
    missing: list[str] = []
    times = None
    if "time_s" in extra:
        times = extra["time_s"]
    elif frame_interval_s is not None:
        times = np.arange(arr.shape[0]) * float(frame_interval_s)
    else:
        times = _header_times(img, zooms, arr.shape[0], p.name)
        if times is None:
            missing.append("time_s")
    geometry, spacing = _geometry(img, _pixdim_spacing(p, header, zooms), p.name)
    if geometry is None and not (np.all(np.isfinite(spacing)) and min(spacing) > 0):
        if spacing_mm is None:
            raise FormatError(
                f"{p.name}: pixdim[1:3] (the pixel spacing): expected positive numbers of mm, found "
                f"{spacing[1]:g}, {spacing[0]:g}; give the spacing (--spacing DY DX, or spacing_mm=)"
            )
        missing.append("spacing_mm")
        spacing = (1.0, 1.0)
    if extra.get("geometry_unknown"):
        geometry = None
    kwargs: dict[str, Any] = {
        "data": arr,
        "time_s": times,
        "spacing_mm": spacing,
        "geometry": geometry,
        "units": extra.get("units", "signal"),
        "n_pd_frames": extra.get("n_pd_frames", 0),
        "name": extra.get("name", ""),
        "metadata": check_metadata(extra.get("metadata", {}), f"{p.name}: QPerf header extension"),
    }
    if extra.get("slice_position_mm") is not None:
        kwargs["slice_position_mm"] = extra["slice_position_mm"]
    if "units" not in extra:
        kwargs["metadata"]["units_recorded"] = False
    return kwargs, missing


def _qperf_extension(header: Any, name: str) -> dict[str, Any]:
    """What QPerf wrote in the header extension (exact times, units, ...), empty for other files."""
    extra: dict[str, Any] = {}
    for ext in getattr(header, "extensions", []) or []:
        content = ext.get_content()
        if isinstance(content, bytes):
            content = content.decode("utf-8", errors="replace")
        content = str(content).rstrip("\x00")
        if ext.get_code() == _EXT_CODE and content.startswith(_EXT_PREFIX):
            doc = parse_json(content[len(_EXT_PREFIX) :], f"{name}: QPerf header extension")
            if not isinstance(doc, dict):
                raise FormatError(
                    f"{name}: QPerf header extension: expected an object of named fields, found {type(doc).__name__}"
                )
            extra = doc
    return extra


def _header_times(img: Any, zooms: list[float], n_frames: int, name: str) -> NDArray[Any] | None:
    """Regular frame times from the NIfTI time step and its unit; None for Analyze or no step recorded (0).

    ``img`` holds the 3D ``(x, y, t)`` or 4D ``(x, y, 1, t)`` series.

    Raises
    ------
    FormatError
        A time step that is not a positive number (NaN, negative).
    """
    import nibabel as nib

    dt = zooms[-1] if len(zooms) >= 4 else (zooms[2] if len(zooms) == 3 else 0.0)
    pixdim = np.asarray(img.header["pixdim"], dtype=float) if "pixdim" in img.header else None
    raw = float(pixdim[len(zooms)]) if pixdim is not None and len(zooms) in (3, 4) else dt
    if not np.isfinite(raw) or raw < 0:
        raise FormatError(
            f"{name}: pixdim[{len(zooms)}] (the frame interval): expected a positive number of seconds, found {raw:g}; "
            "give the frame interval (--frame-interval SECONDS) to read the file"
        )
    header = img.header
    unit = "sec"
    if hasattr(header, "get_xyzt_units"):
        unit = header.get_xyzt_units()[1] or "sec"
    if dt > 0 and isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) and unit in _TIME_UNIT_S:
        return np.arange(n_frames) * dt * _TIME_UNIT_S[unit]
    return None


def _pixdim_spacing(path: Path, header: Any, zooms: list[float]) -> tuple[float, float]:
    """``(dy, dx)`` as the file's ``pixdim[2], pixdim[1]`` record them.

    nibabel repairs a zero or negative pixdim when it loads a header (zero becomes 1 mm); the
    header is read again without the repair so that such a spacing counts as not recorded.
    """
    import nibabel as nib

    if "pixdim" not in header:
        return (zooms[1], zooms[0])
    name = str(path.with_suffix(".hdr") if path.suffix.lower() == ".img" else path)
    try:
        with nib.openers.ImageOpener(name) as fobj:
            raw = type(header).from_fileobj(fobj, check=False)
        pixdim = np.asarray(raw["pixdim"], dtype=float)
    except Exception:  # the file was read once already; keep what nibabel made of it
        pixdim = np.asarray(header["pixdim"], dtype=float)
    return (float(pixdim[2]), float(pixdim[1]))


def _geometry(img: Any, spacing: tuple[float, float], name: str) -> tuple[SliceGeometry | None, tuple[float, float]]:
    """Geometry and spacing from the sform (else the qform), converted from RAS+ to LPS; none for Analyze."""
    import nibabel as nib

    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        return None, spacing
    header = img.header
    sform_code = int(header["sform_code"])
    qform_code = int(header["qform_code"])
    if sform_code > 0 or qform_code > 0:
        affine = header.get_sform() if sform_code > 0 else header.get_qform()
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        try:
            return SliceGeometry.from_ijk_to_lps(lps)
        except ValidationError as exc:
            which = "sform" if sform_code > 0 else "qform"
            raise FormatError(f"{name}: {which}: invalid geometry ({exc})") from exc
    return None, spacing


def write_nifti_series(series: PerfusionSeries, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a series as NIfTI-1 (``.nii``, ``.nii.gz``) or Analyze 7.5 (``.hdr``/``.img`` pair)."""
    import nibabel as nib

    p = Path(path)
    data = np.transpose(series.data, (2, 1, 0))[:, :, None, :]
    ras = series.ijk_to_ras()
    dt = series.frame_interval_s or 1.0
    if p.suffix.lower() == ".hdr":
        img = nib.AnalyzeImage(data, None)
        img.header.set_zooms((series.spacing_mm[1], series.spacing_mm[0], 1.0, dt))
        img_path = p.with_suffix(".img")
        with atomic_file(p, overwrite) as tmp_hdr, atomic_file(img_path, overwrite) as tmp_img:
            # nibabel writes the pair next to each other; move the image part into place
            nib.save(img, str(tmp_hdr))
            written_img = tmp_hdr.with_suffix(".img")
            os.replace(written_img, tmp_img)
        return p
    img = nib.Nifti1Image(data, ras)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((series.spacing_mm[1], series.spacing_mm[0], float(np.linalg.norm(ras[:3, 2])), dt))
    code = 0 if series.geometry is None else 1
    img.set_sform(ras, code=code)
    img.set_qform(ras, code=code)
    extra = {
        "time_s": series.time_s.tolist(),
        "units": series.units,
        "n_pd_frames": series.n_pd_frames,
        "name": series.name,
        "slice_position_mm": series.slice_position_mm,
        "geometry_unknown": series.geometry is None,
        "metadata": _jsonable(series.metadata),
    }
    img.header.extensions.append(nib.nifti1.Nifti1Extension(_EXT_CODE, (_EXT_PREFIX + json.dumps(extra)).encode()))
    with atomic_file(p, overwrite) as tmp:
        nib.save(img, str(tmp))
    return p
