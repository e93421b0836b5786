"""A motion correction on disk: the folder ``qperf moco`` writes, written and read back.

Layout (one folder per corrected slice)::

    corrected.<ext>     the corrected series (any series format of qperf.io; .seq.nrrd here)
    forward_px.nrrd     pull fields, float32 (t, 2, y, x) in C order (NRRD axes x, y,
                        component, frame): component 0 = dy (rows), 1 = dx (columns), pixels;
                        corrected_t(p) = original_t(p + forward[t, :, p])
    inverse_px.nrrd     original_t(q) = corrected_t(q + inverse[t, :, q]), same layout
    moco.json           key frame, quality score and its parts, region, engine, settings, timings

``qperf segment --reference`` writes it for every slice it corrected, so a caller in another
process (the Slicer modules run the CNN in one) gets the whole :class:`MotionResult` back with
:func:`read_motion_folder`, fields bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import FormatError, ValidationError
from qperf.motion.driver import MotionResult
from qperf.types import PerfusionSeries

FIELD_LAYOUT = (
    "float32 (t, 2, y, x) C order = NRRD axes (x, y, component, frame); component 0 = dy (rows), "
    "1 = dx (columns), pixels; pull field"
)
RECORD_NAME = "moco.json"
FORWARD_NAME = "forward_px.nrrd"
INVERSE_NAME = "inverse_px.nrrd"


def write_field(field: NDArray[np.float32], path: Path, spacing_mm: tuple[float, float], description: str) -> None:
    """Write a ``(t, 2, y, x)`` displacement field as NRRD (see :data:`FIELD_LAYOUT`)."""
    import nrrd

    header: dict[str, Any] = {
        "kinds": ["domain", "domain", "vector", "list"],
        "encoding": "gzip",
        "qperf_layout": FIELD_LAYOUT,
        "qperf_description": description,
        "qperf_spacing_mm": f"{spacing_mm[0]} {spacing_mm[1]}",
    }
    nrrd.write(str(path), np.ascontiguousarray(field, dtype=np.float32), header, index_order="C")


def write_motion_folder(
    result: MotionResult,
    folder: str | os.PathLike[str],
    *,
    corrected_name: str = "corrected.seq.nrrd",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a motion correction into ``folder`` (created when missing).

    Parameters
    ----------
    result : MotionResult
    folder : path
        Usually inside an :func:`qperf.io.atomic_dir` being assembled.
    corrected_name : str
        File name of the corrected series; its suffix chooses the format.
    extra : dict, optional
        More entries for ``moco.json`` (``qperf moco`` records its input).

    Returns
    -------
    Path
        ``folder``.
    """
    from qperf import io

    if not isinstance(result, MotionResult):
        raise ValidationError(f"result: expected a MotionResult, found {type(result).__name__}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spacing = result.corrected.spacing_mm
    io.write_series(result.corrected, out / corrected_name)
    write_field(result.forward_px, out / FORWARD_NAME, spacing, "corrected_t(p) = original_t(p + u)")
    write_field(result.inverse_px, out / INVERSE_NAME, spacing, "original_t(q) = corrected_t(q + w)")
    record = {
        **(extra or {}),
        "corrected": corrected_name,
        "forward_field": FORWARD_NAME,
        "inverse_field": INVERSE_NAME,
        "field_layout": FIELD_LAYOUT,
        "key_frame": int(result.key_frame),
        "n_frames": int(result.corrected.n_frames),
        "n_pd_frames": int(result.corrected.n_pd_frames),
        "region_yyxx": [int(v) for v in result.region],
        "engine": result.engine,
        "settings": result.settings,
        "quality": result.quality,
        "timings_s": result.timings_s,
    }
    (out / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


def _read_field(path: Path, shape: tuple[int, ...]) -> NDArray[np.float32]:
    import nrrd

    if not path.is_file():
        raise FormatError(f"{path}: no such motion field file")
    data, _ = nrrd.read(str(path), index_order="C")
    field = np.ascontiguousarray(data, dtype=np.float32)
    if field.shape != shape:
        raise FormatError(f"{path.name}: expected a field of shape {shape} (t, 2, y, x), found {field.shape}")
    return field


def read_motion_folder(folder: str | os.PathLike[str], series: PerfusionSeries | None = None) -> MotionResult:
    """The :class:`MotionResult` a motion folder holds (``qperf moco`` or ``qperf segment --reference``).

    Parameters
    ----------
    folder : path
    series : PerfusionSeries, optional
        The acquired series the correction was computed from. The corrected series is then
        made from it as :func:`qperf.motion.correct_series` makes it (its grid, geometry, times,
        units, name and metadata, marked ``motion_corrected``) with the voxels from the file, so
        a correction made in another process equals one made in this one, free of what a file
        round trip adds (the path it was read from) or rounds (spacing in the last bit).

    Raises
    ------
    FormatError
        A missing or malformed file, or fields that do not fit the corrected series.
    ValidationError
        ``series`` is not on the folder's grid.
    """
    from qperf import io

    root = Path(folder)
    record_path = root / RECORD_NAME
    if not record_path.is_file():
        raise FormatError(f"{root}: not a motion folder (no {RECORD_NAME})")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        corrected_name = str(record.get("corrected", "corrected.seq.nrrd"))
        key_frame = int(record["key_frame"])
        y0, y1, x0, x1 = (int(v) for v in record.get("region_yyxx", (0, 0, 0, 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{record_path}: {exc}") from exc
    corrected = io.read_series(root / corrected_name)
    if series is not None:
        if series.data.shape != corrected.data.shape:
            raise ValidationError(
                f"series: expected the shape {corrected.data.shape} of the corrected series, found {series.data.shape}"
            )
        corrected = series.replace(data=corrected.data, metadata={**dict(series.metadata), "motion_corrected": True})
    shape = (corrected.n_frames, 2, *corrected.shape)
    return MotionResult(
        corrected=corrected,
        key_frame=key_frame,
        forward_px=_read_field(root / str(record.get("forward_field", FORWARD_NAME)), shape),
        inverse_px=_read_field(root / str(record.get("inverse_field", INVERSE_NAME)), shape),
        quality=dict(record.get("quality") or {}),
        timings_s=dict(record.get("timings_s") or {}),
        region=(y0, y1, x0, x1),
        engine=str(record.get("engine", "torch")),
        settings=dict(record.get("settings") or {}),
    )
