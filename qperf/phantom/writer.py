"""Writing a phantom study with its truth, and the preview montage.

Layout of ``out_dir``: the study as written by :func:`qperf.io.write_study` (``study.json``,
``slice_<n>.seq.nrrd``, ``aif_echo<n>.seq.nrrd``) and ``truth/``:

- ``truth.json``: condition, hematocrit, kinetic model, the random draws, the per-segment
  table (``segments``) and, per slice, its level, RV insertion points and file names;
- ``aif_blood.csv``: the true arterial input (LV blood, mmol/L);
- ``aif_labels_ref.nrrd``, ``aif_labels_moving.seq.nrrd``: labels of the AIF images;
- per slice ``n``: ``slice_<n>_labels_ref.nrrd``, ``slice_<n>_labels_moving.seq.nrrd``,
  ``slice_<n>_aha.nrrd``, ``slice_<n>_mbf.nrrd`` (whole-blood flow), ``_fp`` (plasma flow), ``_ps``, ``_vp``, ``_visf`` (maps),
  ``slice_<n>_gd_noise_free.seq.nrrd`` and the motion fields
  ``slice_<n>_ref_to_moving_dy.seq.nrrd`` / ``_dx`` and ``slice_<n>_moving_to_ref_dy`` / ``_dx``
  (pixels).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf import io
from qperf.errors import ValidationError
from qperf.io import atomic_dir
from qperf.phantom.truth import PhantomStudy, SliceTruth
from qperf.types import AifCurve

TRUTH_DIR = "truth"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_truth_into(ps: PhantomStudy, folder: str | os.PathLike[str]) -> Path:
    """Write the truth files of ``ps`` into the existing folder ``folder`` (see the module docstring)."""
    base = Path(folder)
    truth = ps.truth
    slices_doc = [_write_slice_truth(base, i, t) for i, t in enumerate(truth.slices, start=1)]
    aif_files = _write_aif_labels(ps, base)
    io.write_aif_curve(
        AifCurve(truth.aif_blood_gd_mmol_l, truth.aif_time_s, units="gd_mmol_l", kind="blood"), base / "aif_blood.csv"
    )
    doc = {
        "format": "qperf-phantom-truth",
        "version": 1,
        "condition": truth.condition,
        "hematocrit": truth.hematocrit,
        "kinetic_model": truth.kinetic_model,
        "aif_file": "aif_blood.csv",
        "aif_frames_gd_mmol_l": truth.aif_frames_gd_mmol_l,
        "aif_image_files": aif_files,
        "segments": truth.segments,
        "slices": slices_doc,
        "parameters": truth.parameters,
    }
    path = base / "truth.json"
    path.write_text(json.dumps(_jsonable(doc), indent=1) + "\n", encoding="utf-8")
    return path


def _write_slice_truth(base: Path, i: int, t: SliceTruth) -> dict[str, Any]:
    """Write the label, map and motion files of slice ``i``; return its entry of ``truth.json``."""
    files: dict[str, str] = {}

    def put(key: str, name: str, array: NDArray[Any], time_s: NDArray[np.float64] | None = None) -> None:
        io.write_image(array, base / name, time_s=time_s, spacing_mm=t.spacing_mm, geometry=t.geometry)
        files[key] = name

    put("labels_ref", f"slice_{i}_labels_ref.nrrd", t.labels_ref)
    put("labels_moving", f"slice_{i}_labels_moving.seq.nrrd", t.labels_moving, t.time_s)
    put("aha_segments", f"slice_{i}_aha.nrrd", t.aha_segments)
    put("mbf_ml_min_g", f"slice_{i}_mbf.nrrd", t.mbf_ml_min_g)
    put("fp_ml_min_g", f"slice_{i}_fp.nrrd", t.fp_ml_min_g)
    put("ps_ml_min_g", f"slice_{i}_ps.nrrd", t.ps_ml_min_g)
    put("vp_ml_g", f"slice_{i}_vp.nrrd", t.vp_ml_g)
    put("visf_ml_g", f"slice_{i}_visf.nrrd", t.visf_ml_g)
    put("gd_noise_free", f"slice_{i}_gd_noise_free.seq.nrrd", t.gd_noise_free, t.time_s)
    for field in ("ref_to_moving", "moving_to_ref"):
        arr = getattr(t, f"{field}_px")
        for c, comp in enumerate(("dy", "dx")):
            put(f"{field}_{comp}_px", f"slice_{i}_{field}_{comp}.seq.nrrd", arr[:, c], t.time_s)
    return {
        "index": i,
        "level": t.level,
        "slice_position_mm": t.slice_position_mm,
        "insertion_points_yx": {k: list(v) for k, v in t.insertion_points_yx.items()},
        "time_s": t.time_s,
        "breathing": t.breathing,
        "files": files,
    }


def _write_aif_labels(ps: PhantomStudy, base: Path) -> dict[str, str]:
    """Write the labels of the AIF images (when the study has them); return their file names."""
    truth = ps.truth
    if truth.aif_labels_ref is None or truth.aif_labels_moving is None or not ps.study.aif_series:
        return {}
    a = ps.study.aif_series[0]
    io.write_image(truth.aif_labels_ref, base / "aif_labels_ref.nrrd", spacing_mm=a.spacing_mm, geometry=a.geometry)
    io.write_image(
        truth.aif_labels_moving,
        base / "aif_labels_moving.seq.nrrd",
        spacing_mm=a.spacing_mm,
        geometry=a.geometry,
        time_s=a.time_s,
    )
    return {"labels_ref": "aif_labels_ref.nrrd", "labels_moving": "aif_labels_moving.seq.nrrd"}


def write_study(
    ps: PhantomStudy, out_dir: str | os.PathLike[str], overwrite: bool = False, preview: bool = False
) -> Path:
    """Write the study (readable by :func:`qperf.io.read_study`) and ``out_dir/truth/`` atomically.

    Parameters
    ----------
    ps : PhantomStudy
    out_dir : path
        New folder (replaced as a whole with ``overwrite``).
    overwrite : bool
    preview : bool
        Also write ``out_dir/preview.png`` (see :func:`qperf.phantom.preview.montage`).

    Returns
    -------
    Path of the study manifest ``study.json``.
    """
    if not isinstance(ps, PhantomStudy):
        raise ValidationError(f"ps: expected a PhantomStudy, found {type(ps).__name__}")
    with atomic_dir(out_dir, overwrite) as tmp:
        io.write_study_into(ps.study, tmp)
        (tmp / TRUTH_DIR).mkdir()
        write_truth_into(ps, tmp / TRUTH_DIR)
        if preview:
            from qperf.phantom.preview import phantom_montage

            phantom_montage(ps, tmp / "preview.png")
    return Path(out_dir) / "study.json"
