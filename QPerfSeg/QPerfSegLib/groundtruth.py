"""Ground truth for training: one folder per annotated slice, as ``qperf train --real`` reads it.

``qperf.segmentation.sources.annotated_folder`` reads a folder of cases, each a sub-folder
with ``series.*`` (any series format ``qperf.io`` reads), ``labels.nrrd`` ((y, x), values 0-3)
and ``insertion.json`` (``{"anterior": [y, x], "inferior": [y, x]}`` in pixels). Every slice of
a session becomes such a case: the motion-corrected series (``series.seq.nrrd``), the
reference-frame labels and insertion points on that series' grid, plus ``case.json`` (where
the case came from). Each case folder is written atomically; an existing one is replaced only
with ``overwrite=True``. This file imports neither ``slicer`` nor ``qt``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from qperf.errors import ValidationError

CASE_FILES = ("series.seq.nrrd", "labels.nrrd", "insertion.json", "case.json")


def caseFolderName(studyName: str, sliceIndex: int) -> str:
    """``<study>_slice<n>`` with characters other than letters, digits, ``-`` and ``_`` replaced."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", studyName or "case").strip("_") or "case"
    return f"{stem}_slice{int(sliceIndex) + 1}"


def exportGroundTruth(
    slices: list,
    folder: str | os.PathLike,
    studyName: str = "case",
    names: list | None = None,
    overwrite: bool = False,
) -> list:
    """Write one training case per slice into ``folder`` (created when missing).

    Parameters
    ----------
    slices : list of qperf.workflow.SliceSegmentation
        Corrected series, reference-frame labels and insertion points per slice.
    folder : path
        The folder of cases (``qperf train --real FOLDER``); other cases in it are kept.
    studyName : str
        Case folders are named ``<studyName>_slice<n>``.
    names : list of str, optional
        Slice names recorded in ``case.json``.
    overwrite : bool
        Replace case folders that exist.

    Returns
    -------
    list of Path
        The case folders written.

    Raises
    ------
    ValidationError
        A slice without myocardium, or labels off the series grid.
    OutputExistsError
        A case folder exists and ``overwrite`` is False (nothing is written then).
    """
    from qperf import io
    from qperf.io import atomic_dir, check_output
    from qperf.types import LABEL_MYO

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    targets = [root / caseFolderName(studyName, i) for i in range(len(slices))]
    for target in targets:
        check_output(target, overwrite)
    written = []
    for i, (s, target) in enumerate(zip(slices, targets)):
        labels = np.asarray(s.labels_ref, dtype=np.uint8)
        if labels.shape != s.corrected.shape:
            raise ValidationError(
                f"slice {i + 1}: labels {labels.shape} are not on the series grid {s.corrected.shape}"
            )
        if not (labels == LABEL_MYO).any():
            raise ValidationError(f"slice {i + 1}: expected labels with myocardium, found none")
        with atomic_dir(target, overwrite) as tmp:
            io.write_series(s.corrected, tmp / "series.seq.nrrd")
            io.write_image(
                labels, tmp / "labels.nrrd", spacing_mm=s.corrected.spacing_mm, geometry=s.corrected.geometry
            )
            points = {k: [float(v[0]), float(v[1])] for k, v in s.insertion_points_yx.items()}
            (tmp / "insertion.json").write_text(json.dumps(points, indent=2) + "\n", encoding="utf-8")
            case = {
                "study": studyName,
                "slice": i + 1,
                "name": (names[i] if names else s.series.name) or f"slice {i + 1}",
                "labels_source": s.source,
                "motion_corrected": s.motion is not None,
                "key_frame": int(s.motion.key_frame) if s.motion is not None else None,
            }
            (tmp / "case.json").write_text(json.dumps(case, indent=2) + "\n", encoding="utf-8")
        written.append(target)
    return written
