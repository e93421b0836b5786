"""What the study workflow computes and what the caller supplies instead."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from qperf.errors import ValidationError
from qperf.types import AifCurve

MOTION_MODES = ("auto", "on", "off")
DELAY_MODES = ("study", "slice", "pixel")
KINETIC_MODELS = ("btex", "fermi", "2cxm", "tofts")


@dataclass(frozen=True)
class AnalysisOptions:
    """Options of :func:`qperf.workflow.analyze_study` and its steps.

    Parameters
    ----------
    model : str
        Kinetic model of the flow maps ("btex", "fermi", "2cxm", "tofts").
    dt_s : float
        Fitting grid interval, s.
    motion : {"auto", "on", "off"}
        Respiratory motion correction of the slices: when the heart moves (``"auto"``, see
        :meth:`qperf.segmentation.Segmenter.segment`), always, or never (series already corrected).
    aif_motion_correction : bool
        Correct the breathing of the dual-sequence AIF images before the LV pool is averaged
        (independent of ``motion``: a slice series corrected elsewhere still has raw AIF images).
    labels : sequence of ndarray, optional
        Per-slice label maps that replace the CNN: ``(y, x)`` on the corrected grid, or
        ``(t, y, x)`` over the acquired frames (the key frame's map is used).
    insertion_points_yx : sequence, optional
        Per slice, with ``labels``: the anterior RV insertion point ``(y, x)`` on the corrected
        grid, ``(t, 2)`` over the acquired frames, or a mapping ``{"anterior": (y, x), ...}``.
    label_frames : sequence of int, optional
        The acquired frame each supplied ``(y, x)`` label map and point was drawn on (an
        annotator's edit); they are carried to the corrected grid through the motion fields.
    aif : AifCurve, optional
        Replaces the study's AIF curve or AIF images.
    segmenter : path or str, optional
        A model file for the CNN instead of the shipped one.
    levels : sequence of str, optional
        Slice levels ("basal", "mid", "apical") instead of the ones from geometry or order.
    hematocrit : float, optional
        Replaces the study's hematocrit.
    trim_borders : bool
        Leave out of the segment statistics the myocardial pixels that touch a blood pool or
        (where a segment keeps :data:`qperf.aha.MIN_SEGMENT_PIXELS` without them) the outside
        of the heart, fits at the flow bound and high outliers
        (:func:`qperf.workflow.regions.statistics_mask`, :func:`~qperf.workflow.regions.high_outliers`):
        on the phantom at 2.6 mm pixels the median per-segment error fell from 28 % to 3 %;
        the maps keep every pixel.
    myocardial_smoothing_px : float
        Gaussian smoothing (sigma, pixels) of the myocardial curves within the myocardium away
        from blood before the fit; 0 fits every pixel as measured.
    delay : {"study", "slice", "pixel"}
        One AIF-to-tissue delay for the study (one that fits all slices), one per slice, or
        one searched for every pixel (single pixels cannot tell a later delay from a higher flow).
    threads : int, optional
        Threads of every step (:func:`qperf.runtime.set_threads`; default ``QPERF_THREADS``).
    device : {"auto", "cpu", "cuda", "mps"}
        Where the segmentation network, the AIF detector's network and the motion correction
        compute (:func:`qperf.runtime.resolve_device`; ``"auto"``: a GPU when there is one).
    """

    model: str = "btex"
    dt_s: float = 0.5
    motion: str = "auto"
    aif_motion_correction: bool = True
    labels: Sequence[NDArray[Any]] | None = None
    insertion_points_yx: Sequence[Any] | None = None
    label_frames: Sequence[int] | None = None
    aif: AifCurve | None = None
    segmenter: str | os.PathLike[str] | None = None
    levels: Sequence[str] | None = None
    hematocrit: float | None = None
    trim_borders: bool = True
    myocardial_smoothing_px: float = 0.7
    delay: str = "study"
    threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        from qperf.runtime import check_device_name

        check_device_name(self.device)
        if self.model not in KINETIC_MODELS:
            raise ValidationError(f"model: expected one of {', '.join(KINETIC_MODELS)}, found {self.model!r}")
        if self.motion not in MOTION_MODES:
            raise ValidationError(f"motion: expected one of {', '.join(MOTION_MODES)}, found {self.motion!r}")
        if self.delay not in DELAY_MODES:
            raise ValidationError(f"delay: expected one of {', '.join(DELAY_MODES)}, found {self.delay!r}")
        if not (isinstance(self.dt_s, (int, float)) and math.isfinite(self.dt_s) and 0 < self.dt_s <= 5):
            raise ValidationError(f"dt_s: expected a number of seconds in (0, 5], found {self.dt_s!r}")
        if self.insertion_points_yx is not None and self.labels is None:
            raise ValidationError("insertion_points_yx: supply labels with them (both replace the CNN)")
        if self.label_frames is not None and self.labels is None:
            raise ValidationError("label_frames: supply labels with them")
        if self.myocardial_smoothing_px < 0:
            raise ValidationError(f"myocardial_smoothing_px: expected >= 0, found {self.myocardial_smoothing_px!r}")
