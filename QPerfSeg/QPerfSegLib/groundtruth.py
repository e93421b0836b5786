"""Ground truth for training and evaluation: one case folder per annotated slice.

Each slice of a session is written in the case folder format of
:mod:`qperf.segmentation.cases`, which ``qperf train --real`` and ``qperf evaluate`` read:
the series as acquired (``series.seq.nrrd``), the labels of every frame on it
(``labels.nrrd``, 2D+T, after the annotator's corrections), the RV insertion points of the
first frame (``insertion.json``) and ``case.json`` (the classes drawn, the patient: the
study's name). Each case folder is written atomically; an existing one is replaced only with
``overwrite=True``. This file imports neither ``slicer`` nor ``qt``.
"""

from __future__ import annotations

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
    overwrite: bool = False,
) -> list:
    """Write one training case per slice into ``folder`` (created when missing).

    Parameters
    ----------
    slices : list of qperf.workflow.SliceSegmentation
        Acquired series, labels of every frame and insertion points per slice.
    folder : path
        The folder of cases (``qperf train --real FOLDER``, ``qperf evaluate``); other cases
        in it are kept.
    studyName : str
        Case folders are named ``<studyName>_slice<n>``; ``case.json`` names it the patient.
    overwrite : bool
        Replace case folders that exist.

    Returns
    -------
    list of Path
        The case folders written.

    Raises
    ------
    ValidationError
        A slice without myocardium, or labels that do not cover every frame of the series.
    OutputExistsError
        A case folder exists and ``overwrite`` is False (nothing is written then).
    """
    from qperf.io import check_output
    from qperf.segmentation.cases import write_case
    from qperf.types import LABEL_MYO

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    targets = [root / caseFolderName(studyName, i) for i in range(len(slices))]
    for target in targets:
        check_output(target, overwrite)
    for i, s in enumerate(slices):
        labels = np.asarray(s.labels, dtype=np.uint8)
        if labels.shape != (s.series.n_frames, *s.series.shape):
            raise ValidationError(
                f"slice {i + 1}: expected labels of every frame {(s.series.n_frames, *s.series.shape)}, "
                f"found {labels.shape}"
            )
        if not (labels == LABEL_MYO).any():
            raise ValidationError(f"slice {i + 1}: expected labels with myocardium, found none")
    written = []
    for s, target in zip(slices, targets):
        points = {k: v[0] for k, v in s.insertion_points_per_frame_yx.items() if len(v) and np.all(np.isfinite(v[0]))}
        written.append(
            write_case(target, s.series, s.labels, points_yx=points, patient=studyName or "case", overwrite=overwrite)
        )
    return written
