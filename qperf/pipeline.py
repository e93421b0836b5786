"""One-click analysis of a perfusion study: the inline pipeline as one function.

load -> motion correction -> Gd conversion -> AIF -> CNN labels and insertion points ->
flow maps -> AHA segments -> report, with a timing per step. Every step can be replaced by
what the caller supplies (labels, insertion points, an AIF, a model file), which is the
manual-correction path: an annotator's corrected labels give a new report in seconds.

Labels come before the flow fit here (the published pipeline fits the whole image first): the
fit then covers the heart region (blood pools and myocardium plus a margin) instead of the
whole field of view, which keeps a three-slice study within seconds on a laptop CPU while the
maps still cover everything the figures and the report use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf import __version__
from qperf.errors import NotAvailableError, ValidationError
from qperf.progress import ProgressCallback, null_progress, scaled
from qperf.types import LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV, AifCurve, PerfusionSeries, PerfusionStudy

#: Steps in order, with the share of the progress bar each takes.
STEPS: tuple[tuple[str, float], ...] = (
    ("motion", 0.35),
    ("gd", 0.05),
    ("aif", 0.05),
    ("segmentation", 0.2),
    ("flow", 0.25),
    ("segments", 0.02),
    ("report", 0.08),
)

FIT_MARGIN_MM = 8.0
#: Margin around the heart (blood pools and myocardium) that motion correction registers.
MOTION_MARGIN_MM = 40.0


@dataclass(frozen=True)
class AnalysisOptions:
    """What to compute and what is supplied instead of computed.

    Parameters
    ----------
    model : str
        Kinetic model for the flow maps ("btex", "fermi", "2cxm", "tofts").
    dt_s : float
        Fitting grid interval in seconds.
    motion_correction : bool
        Register every slice (off for series that are already corrected).
    labels : sequence of ndarray, optional
        Per-slice label maps that replace the CNN: ``(y, x)`` in the motion-corrected frame, or
        ``(t, y, x)`` over the original frames (then the key frame's map is used, mapped into
        the corrected frame).
    insertion_points_yx : sequence, optional
        Per-slice anterior RV insertion points (pixels), with ``labels``: ``(y, x)`` in the
        corrected frame, or ``(t, 2)`` over the original frames.
    aif : AifCurve, optional
        Replaces the study's AIF curve or AIF images.
    segmenter : path or str, optional
        A model file for the CNN instead of the shipped one.
    levels : sequence of str, optional
        Slice levels ("basal", "mid", "apical") instead of the ones from geometry or order.
    hematocrit : float, optional
        Replaces the study's hematocrit.
    trim_borders : bool
        Leave the myocardial pixels that touch a blood pool (LV or RV) or the outside of the
        heart out of the segment statistics (:func:`statistics_mask`). The first share their
        area with blood, whose concentration is many times the tissue's, so their fitted flow is
        biased high (on the phantom at 2.6 mm pixels the median per-segment error falls from
        28 % to 3 % with them left out); the second with fat or lung, which dilutes their curves
        (on six static stress phantoms the median global error fell from 3.5 % to 2.3 % with
        them left out as well). The maps and the segment map keep every myocardial pixel. Pixels
        whose fitted flow sits at the upper bound of the model's range are left out as well
        (:func:`qperf.flow.flow_at_upper_bound`), and so are high outliers (:func:`high_outliers`).
    myocardial_smoothing_px : float
        Gaussian smoothing (sigma, pixels) of the myocardial curves within the myocardium
        that does not touch a blood pool, before the fit (:func:`qperf.flow.smooth_within`); 0 fits every pixel as measured.
    delay : {"study", "slice", "pixel"}
        The AIF-to-tissue delay: one for the whole study, the earliest of the slices' own
        delays (each from the mean curve of its myocardium away from blood,
        :func:`delay_region`, :func:`qperf.flow.delay_chi2_profile`); one per slice from its own mean curve
        (``delay_mask`` of :func:`qperf.flow.compute_flow_maps`); or searched for every pixel.
        Single pixels cannot tell a later delay from a higher flow at stress, and a thin
        apical slice alone can be misled by blood at its border; the study's slices share
        one heart and one AIF.
    """

    model: str = "btex"
    dt_s: float = 0.5
    motion_correction: bool = True
    labels: Sequence[NDArray[Any]] | None = None
    insertion_points_yx: Sequence[Any] | None = None
    aif: AifCurve | None = None
    segmenter: str | os.PathLike[str] | None = None
    levels: Sequence[str] | None = None
    hematocrit: float | None = None
    trim_borders: bool = True
    myocardial_smoothing_px: float = 0.7
    delay: str = "study"


@dataclass
class SliceAnalysis:
    """Everything computed for one slice.

    ``frames_left_out`` lists the dynamic frames (0 the first after the PD frames) that the fit
    went without: frames the registration could not align (:func:`qperf.flow.outlying_frames`).
    """

    series: PerfusionSeries
    corrected: PerfusionSeries
    gd: PerfusionSeries
    motion: Any | None
    labels_ref: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    insertion_yx: tuple[float, float]
    insertion_points_per_frame: dict[str, NDArray[np.float64]]
    labels_source: str
    flow: Any
    sectors: Any
    segmentation_qc: dict[str, Any] = field(default_factory=dict)
    statistics_mask: NDArray[np.bool_] | None = None
    frames_left_out: list[int] = field(default_factory=list)


@dataclass
class AnalysisResult:
    """The analysed study: per-slice results, the AIF used, the report and the timings."""

    study: PerfusionStudy
    slices: list[SliceAnalysis]
    aif_blood: AifCurve
    report: dict[str, Any]
    figures: Any
    timings_s: dict[str, float]


class _Timer:
    def __init__(self, progress: ProgressCallback) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress
        self._done = 0.0

    @contextmanager
    def step(self, name: str) -> Iterator[ProgressCallback]:
        share = dict(STEPS)[name]
        start = time.perf_counter()
        self.progress(self._done, name)
        yield scaled(self.progress, self._done, self._done + share)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        self._done += share
        self.progress(self._done, name)


def _check_supplied(study: PerfusionStudy, options: AnalysisOptions) -> None:
    n = study.n_slices
    if options.labels is not None:
        if len(options.labels) != n:
            raise ValidationError(f"labels: expected one label map per slice ({n}), found {len(options.labels)}")
        for i, (lab, s) in enumerate(zip(options.labels, study.slices, strict=True)):
            if np.shape(lab) not in (s.shape, (s.n_frames, *s.shape)):
                raise ValidationError(
                    f"labels[{i}]: expected shape {s.shape} or {(s.n_frames, *s.shape)} (the slice grid), "
                    f"found {np.shape(lab)}"
                )
    if options.insertion_points_yx is not None:
        if options.labels is None:
            raise ValidationError("insertion_points_yx: supply labels with them (both replace the CNN)")
        if len(options.insertion_points_yx) != n:
            raise ValidationError(
                f"insertion_points_yx: expected one point per slice ({n}), found {len(options.insertion_points_yx)}"
            )


#: How far (pixels) the LV pool of the motion-corrected AIF images may lie from the pool found
#: on the uncorrected ones.
AIF_POOL_TOLERANCE_PX = 3


def _study_aif(study: PerfusionStudy, options: AnalysisOptions) -> tuple[AifCurve, dict[str, Any]]:
    from qperf import aif as aif_mod

    if options.aif is not None:
        return options.aif, {"source": "supplied"}
    if study.aif is not None:
        return study.aif, {"source": "study curve"}
    if study.aif_series:
        echoes = list(study.aif_series)
        info: dict[str, Any] = {"source": "AIF images"}
        extraction = aif_mod.aif_from_images(echoes)
        if options.motion_correction:
            corrected, score = motion_corrected_echoes(echoes)
            info["motion_score"] = score
            moved = aif_mod.aif_from_images(corrected)
            # breathing blurs the uncorrected pool but leaves it where it is: a pool found
            # elsewhere after correction is something else (a vessel, an edge artefact)
            near = ndimage.binary_dilation(extraction.mask, iterations=AIF_POOL_TOLERANCE_PX)
            if np.any(moved.mask & near):
                extraction = moved
            else:
                info["motion_correction_discarded"] = (
                    "the LV pool found after correction lies away from the one found before"
                )
        info["lv_pixels"] = int(extraction.mask.sum())
        return extraction.aif, info
    raise NotAvailableError("the study has no AIF (neither a curve nor AIF images); supply one (--aif CURVE.csv)")


def motion_corrected_echoes(echoes: Sequence[PerfusionSeries]) -> tuple[list[PerfusionSeries], float]:
    """AIF image series (one per echo) with the breathing motion corrected, and the quality score.

    The first echo is registered (:func:`qperf.motion.correct_series`); the other echoes,
    acquired at the same moments, are resampled with its fields. Without this the LV mask,
    fixed over the frames, takes in myocardium as the pool moves: on breathing phantoms with
    small pools (6-8 mm pixels) the AIF peak came out 8-26 % low (flow as much high); with
    it, within 5 %. The images are resampled by cubic convolution, not B-splines: over twelve
    phantom series the peak was then 2.5 % off on average against 3.0 % (the small pool's core
    rings less).
    """
    from qperf import motion

    result = motion.correct_series(echoes[0], resample="bicubic")
    corrected = [result.corrected] + [
        e.replace(data=motion.warp_images(e.data, result.forward_px, mode="bicubic")) for e in echoes[1:]
    ]
    return corrected, float(result.quality.get("score", float("nan")))


def heart_region(
    labels: NDArray[Any], spacing_mm: tuple[float, float], margin_mm: float = FIT_MARGIN_MM
) -> NDArray[np.bool_]:
    """Blood pools and myocardium, dilated by ``margin_mm``: the pixels the flow fit covers."""
    heart = np.isin(labels, (LABEL_LV, LABEL_MYO, LABEL_RV))
    if not heart.any():
        return heart
    radius = (margin_mm / spacing_mm[0], margin_mm / spacing_mm[1])
    yy, xx = np.ogrid[-int(radius[0]) : int(radius[0]) + 1, -int(radius[1]) : int(radius[1]) + 1]
    disk = (yy / max(radius[0], 1e-6)) ** 2 + (xx / max(radius[1], 1e-6)) ** 2 <= 1.0
    return ndimage.binary_dilation(heart, structure=disk)


def motion_region(
    series: PerfusionSeries, labels: NDArray[Any] | None, segmenter: Callable[..., Any] | None
) -> NDArray[np.bool_] | None:
    """The heart (blood pools and myocardium) of a slice before motion correction, or None.

    From supplied labels (their union over frames when they are given per frame), else from
    the network run on the uncorrected series (its labels are blurred by the motion but mark
    where the heart is). Motion correction then registers this region plus a margin
    (:data:`MOTION_MARGIN_MM`) instead of the whole field of view. None (the whole image)
    when no heart is found.
    """
    if labels is not None:
        heart = np.isin(np.asarray(labels), (LABEL_LV, LABEL_MYO, LABEL_RV))
        if heart.ndim == 3:
            heart = np.any(heart, axis=0, keepdims=False).astype(bool)
    elif segmenter is not None:
        heart = np.isin(np.asarray(segmenter(series).labels_ref), (LABEL_LV, LABEL_MYO, LABEL_RV))
    else:
        return None
    if heart.shape != series.shape or not heart.any():
        return None
    return np.asarray(heart, dtype=bool)


def _supplied_in_corrected_frame(
    labels: Any, point: Any, motion_result: Any | None, series: PerfusionSeries
) -> tuple[NDArray[np.uint8], tuple[float, float]]:
    """Supplied labels and insertion point in the motion-corrected frame.

    ``(t, y, x)`` labels and ``(t, 2)`` points over the original frames are taken at the key
    frame (the first dynamic frame without motion correction) and mapped into the corrected
    frame.
    """
    lab = np.asarray(labels)
    pt = np.asarray(point, dtype=float)
    key = motion_result.key_frame if motion_result is not None else series.n_pd_frames
    if pt.ndim == 2:
        if pt.shape != (series.n_frames, 2):
            raise ValidationError(
                f"insertion_points_yx: expected (y, x) or one point per frame ({series.n_frames}, 2), found {pt.shape}"
            )
        pt = pt[key]
    if pt.shape != (2,) or not np.all(np.isfinite(pt)):
        raise ValidationError(f"insertion_points_yx: expected a finite (y, x) point, found {pt.tolist()}")
    if lab.ndim == 3:
        lab = lab[key]
        if motion_result is not None:
            from qperf import motion

            lab = motion.labels_to_corrected(lab, key, motion_result)
    return np.asarray(lab, dtype=np.uint8), (float(pt[0]), float(pt[1]))


def away_from_blood(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """Myocardial pixels that do not touch a blood pool (LV or RV, 4-connected)."""
    blood = np.isin(labels, (LABEL_LV, LABEL_RV))
    return (labels == LABEL_MYO) & ~ndimage.binary_dilation(blood)


def statistics_mask(labels: NDArray[Any], segments: NDArray[Any] | None = None) -> NDArray[np.bool_]:
    """Myocardial pixels that touch neither a blood pool nor the outside of the heart (4-connected).

    Both borders share their area with something else. At the blood border it is blood, whose
    concentration is many times the tissue's: the fitted flow is high. At the epicardial border
    it is fat, lung or liver, which hardly enhance during the first pass: the curve, and so the
    flow, is diluted (the outer quarter of the wall reads 5-25 % low on the phantom, more at
    coarser pixels). With ``segments`` (AHA numbers, 0 elsewhere), a segment that would keep
    fewer than a quarter of its pixels away from blood keeps all of those instead (a wall two or
    three pixels thick).
    """
    inner = away_from_blood(labels)
    mask = inner & ~ndimage.binary_dilation(labels == LABEL_BACKGROUND)
    if segments is not None:
        for segment in np.unique(segments[inner]):
            here = segments == segment
            if 4 * np.count_nonzero(mask & here) < np.count_nonzero(inner & here):
                mask |= inner & here
    return mask


class _SliceInputs(NamedTuple):
    """A slice's labels and the series its flow is fitted on, gathered before any fit."""

    labels_ref: NDArray[np.uint8]
    insertion: tuple[float, float]
    per_frame: dict[str, NDArray[np.float64]]
    labels: NDArray[np.uint8]
    source: str
    seg_qc: dict[str, Any]
    fit_series: PerfusionSeries
    delay_region: NDArray[np.bool_]
    frames_left_out: list[int]


def _study_delay(
    prepared: Sequence[_SliceInputs], aif_blood: AifCurve, options: AnalysisOptions, hematocrit: float
) -> float | None:
    """One delay (s) for all slices: the earliest of the slices' own delays.

    Each slice's delay is the earliest that fits the mean curve of its :func:`delay_region` as
    well as any (:func:`qperf.flow.mean_curve_delay`: whole samples, then quarter steps towards
    earlier delays). A later delay mimics a higher flow, and blood at
    the border of a thin slice can make a later delay fit one slice a little better; the
    slices share one heart and one AIF, so the earliest of them is used for all.
    """
    from qperf import flow

    delays = []
    for item in prepared:
        delay_s = flow.mean_curve_delay(
            item.fit_series,
            aif_blood,
            item.delay_region,
            model=options.model,
            dt_s=options.dt_s,
            hematocrit=hematocrit,
        )
        if delay_s is not None:
            delays.append(delay_s)
    return min(delays) if delays else None


#: Robust standard deviations above the slice median beyond which a pixel's MBF is an outlier.
OUTLIER_ROBUST_SD = 5.0
#: Floor of the robust SD, as a fraction of the median: the spread real tissue has (transmural
#: gradient, heterogeneity) even where noise is low.
OUTLIER_SD_FLOOR = 0.15


def _above_robust_range(values: NDArray[np.floating]) -> float:
    """The value above which a sample of MBF values counts as a high outlier (inf when too few)."""
    values = values[np.isfinite(values)]
    if values.size < 10:
        return float("inf")
    median = float(np.median(values))
    robust_sd = 1.4826 * float(np.median(np.abs(values - median)))
    return median + OUTLIER_ROBUST_SD * max(robust_sd, OUTLIER_SD_FLOOR * abs(median), 1e-6)


def high_outliers(
    mbf: NDArray[np.floating] | None, mask: NDArray[np.bool_], segments: NDArray[Any] | None = None
) -> NDArray[np.bool_]:
    """Pixels of ``mask`` whose MBF lies far above both the slice's and their own segment's.

    "Far above" is more than :data:`OUTLIER_ROBUST_SD` robust SDs above the median, the robust
    SD being 1.4826 times the median absolute deviation, at least :data:`OUTLIER_SD_FLOOR`
    times the median. Flow far above the rest of the myocardium comes from blood in the pixel
    (a label border a little inside a pool, the acquisition's point-spread function spreading
    the pool's bolus beyond the first pixel), read by the fit as a short transit at a high flow;
    on the real rest case such pixels (10 % of them, 3-10 ml/min/g against a median of 1.0)
    raised the slice mean by 30-60 %. Only the high side is cut: low flow is what an
    ischaemic segment shows. With ``segments`` (AHA numbers, 0 elsewhere) a pixel must also be
    far above the median of its own segment (segments of fewer than 10 pixels: the slice's test
    alone): a whole territory with a high flow, next to an ischaemic one that lowers the
    slice's median, is physiology, not blood.
    """
    out = np.zeros(mask.shape, dtype=bool)
    if mbf is None:
        return out
    mbf = np.asarray(mbf)
    with np.errstate(invalid="ignore"):
        out = mask & (mbf > _above_robust_range(mbf[mask]))
        if segments is not None:
            for segment in np.unique(segments[out]):
                inside = mask & (segments == segment)
                if np.count_nonzero(np.isfinite(mbf[inside])) >= 10:
                    out[inside] &= mbf[inside] > _above_robust_range(mbf[inside])
    return out


#: Pixels (Euclidean) from the nearest blood pool beyond which the myocardium fits the delay.
DELAY_BLOOD_DISTANCE_PX = 2.0
#: Fewest pixels that region needs; a thinner wall fits the delay on its inner myocardium.
DELAY_MIN_PIXELS = 20


def delay_region(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """The myocardium whose mean curve gives a slice's delay: beyond the reach of the pools' ringing.

    A blood pool's bolus, many times brighter than the tissue, rings through the acquisition's
    point-spread function into the first two pixels around it (the dark-rim artefact): an
    early negative copy of the blood curve, which a later delay and a higher flow imitate. On
    phantoms with realistic resolution the inner myocardium (all pixels not touching a pool)
    chose 0.125-0.375 s for a tissue without delay and read flow 7-13 % high; the pixels more
    than :data:`DELAY_BLOOD_DISTANCE_PX` pixels from blood chose 0. Walls too thin to have
    :data:`DELAY_MIN_PIXELS` such pixels use the inner myocardium.
    """
    blood = np.isin(labels, (LABEL_LV, LABEL_RV))
    far = (np.asarray(labels) == LABEL_MYO) & (ndimage.distance_transform_edt(~blood) > DELAY_BLOOD_DISTANCE_PX)
    return far if np.count_nonzero(far) >= DELAY_MIN_PIXELS else _inner_myocardium(labels)


def _inner_myocardium(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """Myocardium away from the blood pools (all of it when that leaves nothing).

    The region the curves are smoothed within (and the delay is fitted on when the wall is
    thin): the pixels that touch a pool carry some of its blood curve, which smoothing would
    spread inwards.
    """
    inner = away_from_blood(labels)
    return inner if inner.any() else np.asarray(labels == LABEL_MYO)


def _restricted(sectors: Any, mask: NDArray[np.bool_] | None) -> Any:
    """The slice's sectors with segments and layers outside ``mask`` set to 0 (for statistics)."""
    if mask is None:
        return sectors
    return dataclasses.replace(
        sectors,
        segments=np.where(mask, sectors.segments, 0).astype(sectors.segments.dtype),
        layers=np.where(mask, sectors.layers, 0).astype(sectors.layers.dtype),
    )


def _labels_over_frames(labels_ref: NDArray[np.uint8], motion_result: Any | None, n_frames: int) -> NDArray[np.uint8]:
    if motion_result is None:
        return np.repeat(labels_ref[None], n_frames, axis=0)
    from qperf import motion

    return np.asarray(motion.labels_to_original(labels_ref, motion_result), dtype=np.uint8)


def analyze_study(
    study: PerfusionStudy,
    options: AnalysisOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> AnalysisResult:
    """Analyse a study from its series to the AHA report.

    Parameters
    ----------
    study : PerfusionStudy
        Slices in signal (with PD frames and acquisition metadata) or Gd units, and an AIF
        (curve or dual-sequence images).
    options : AnalysisOptions, optional
    progress : callable(fraction, message), optional

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ValidationError
        Supplied labels or points that do not fit the study.
    NotAvailableError
        A step cannot run: no AIF, or no trained segmentation model and no labels supplied.
    """
    from qperf import aha, flow, gd, motion
    from qperf.report import SliceResult, build_report, render_figures

    options = options or AnalysisOptions()
    progress = progress or null_progress
    _check_supplied(study, options)
    if options.delay not in ("study", "slice", "pixel"):
        raise ValidationError(f"delay: expected 'study', 'slice' or 'pixel', found {options.delay!r}")
    hematocrit = options.hematocrit if options.hematocrit is not None else study.hematocrit
    timer = _Timer(progress)
    n = study.n_slices

    segmenter = None if options.labels is not None else _load_segmenter(options.segmenter)
    motion_results: list[Any | None] = []
    with timer.step("motion") as p:
        for i, s in enumerate(study.slices):
            if options.motion_correction:
                region = motion_region(s, None if options.labels is None else options.labels[i], segmenter)
                margin = int(np.ceil(MOTION_MARGIN_MM / min(s.spacing_mm)))
                motion_results.append(
                    motion.correct_series(
                        s, heart_mask=region, margin_px=margin, progress=scaled(p, i / n, (i + 1) / n)
                    )
                )
            else:
                motion_results.append(None)
    corrected = [m.corrected if m is not None else s for m, s in zip(motion_results, study.slices, strict=True)]

    with timer.step("gd"):
        gd_series = [gd.series_to_gd(s) for s in corrected]

    with timer.step("aif"):
        aif_blood, aif_info = _study_aif(study, options)

    seg_results: list[Any | None] = [None] * n
    with timer.step("segmentation") as p:
        if segmenter is not None:
            # the network reads the corrected series as acquired (all frames, the motion fields'
            # frames): it segments raw signal at least as well as Gd
            for i, s in enumerate(corrected):
                seg_results[i] = segmenter(s, motion=motion_results[i])
                p((i + 1) / n, f"slice {i + 1}")

    slices: list[SliceAnalysis] = []
    prepared: list[_SliceInputs] = []
    with timer.step("flow") as p:
        for i, s in enumerate(gd_series):
            seg = seg_results[i]
            if seg is not None:
                labels_ref = np.asarray(seg.labels_ref, dtype=np.uint8)
                if "anterior" not in seg.insertion_points:
                    raise NotAvailableError(
                        f"slice {i + 1}: the CNN found no RV insertion point; supply labels and insertion points"
                    )
                ay, ax = seg.insertion_points["anterior"]
                insertion = (float(ay), float(ax))
                per_frame = {k: np.asarray(v) for k, v in seg.insertion_points_per_frame.items()}
                labels = np.asarray(seg.labels, dtype=np.uint8)
                source, seg_qc = "cnn", _qc_dict(seg.qc)
            else:
                assert options.labels is not None
                if options.insertion_points_yx is None:
                    raise ValidationError("insertion_points_yx: supply the anterior RV insertion point of every slice")
                labels_ref, insertion = _supplied_in_corrected_frame(
                    options.labels[i], options.insertion_points_yx[i], motion_results[i], study.slices[i]
                )
                labels = _labels_over_frames(labels_ref, motion_results[i], study.slices[i].n_frames)
                per_frame = {"anterior": _points_over_frames(insertion, motion_results[i], study.slices[i].n_frames)}
                source, seg_qc = "supplied", {}
            if not (labels_ref == LABEL_MYO).any():
                raise ValidationError(f"slice {i + 1}: the label map has no myocardium")
            inner = _inner_myocardium(labels_ref)
            fit_series = flow.smooth_within(s, inner, options.myocardial_smoothing_px)
            outlying = flow.outlying_frames(s.data[:, inner])
            if outlying.any():  # frames the registration could not align: the fit goes without them
                fit_series = fit_series.replace(data=fit_series.data[~outlying], time_s=fit_series.time_s[~outlying])
            prepared.append(
                _SliceInputs(
                    labels_ref,
                    insertion,
                    per_frame,
                    labels,
                    source,
                    seg_qc,
                    fit_series,
                    delay_region(labels_ref),
                    [int(k) for k in np.nonzero(outlying)[0]],
                )
            )
        fixed_delay_s = None
        if options.delay == "study":
            fixed_delay_s = _study_delay(prepared, aif_blood, options, hematocrit)
        for i, item in enumerate(prepared):
            result = flow.compute_flow_maps(
                item.fit_series,
                aif_blood,
                model=options.model,
                dt_s=options.dt_s,
                hematocrit=hematocrit,
                mask=heart_region(item.labels_ref, item.fit_series.spacing_mm),
                delay_mask=item.delay_region if options.delay == "slice" else None,
                fixed_delay_s=fixed_delay_s,
                progress=scaled(p, i / n, (i + 1) / n),
            )
            slices.append(
                SliceAnalysis(
                    series=study.slices[i],
                    corrected=corrected[i],
                    gd=gd_series[i],
                    motion=motion_results[i],
                    labels_ref=item.labels_ref,
                    labels=item.labels,
                    insertion_yx=(item.insertion[0], item.insertion[1]),
                    insertion_points_per_frame=item.per_frame,
                    labels_source=item.source,
                    flow=result,
                    sectors=None,
                    segmentation_qc=item.seg_qc,
                    frames_left_out=item.frames_left_out,
                )
            )

    with timer.step("segments"):
        assignment = aha.slice_levels(list(study.slices), levels=options.levels)
        for sl, level in zip(slices, assignment.levels, strict=True):
            septum_clockwise = None
            if sl.gd.geometry is None:
                # without geometry the septal side comes from where the RV lies (recorded in the QC)
                septum_clockwise = aha.septum_clockwise_from_rv(
                    sl.labels_ref, sl.insertion_yx, spacing_mm=sl.gd.spacing_mm
                )
            sl.sectors = aha.analyse_slice(
                sl.labels_ref,
                sl.insertion_yx,
                level,
                spacing_mm=sl.gd.spacing_mm,
                geometry=sl.gd.geometry,
                septum_clockwise=septum_clockwise,
            )
            if options.trim_borders:
                kept = statistics_mask(sl.labels_ref, sl.sectors.segments) & ~flow.flow_at_upper_bound(sl.flow)
                sl.statistics_mask = kept & ~high_outliers(sl.flow.maps.get("mbf_ml_min_g"), kept, sl.sectors.segments)

    with timer.step("report"):
        report_slices = [
            SliceResult(
                sectors=_restricted(sl.sectors, sl.statistics_mask),
                maps=sl.flow.maps,
                labels=sl.labels_ref,
                name=sl.series.name or f"slice {i + 1}",
                geometry=sl.gd.geometry,
                qc=_slice_qc(sl),
            )
            for i, sl in enumerate(slices)
        ]
        report = build_report(
            report_slices,
            study_name=study.name,
            condition=study.condition,
            level_source=assignment.source,
            qc={
                "aif": aif_info,
                "hematocrit": hematocrit,
                "model": options.model,
                "delay": {"mode": options.delay, "study_delay_s": fixed_delay_s},
            },
            timings_s=dict(timer.timings),
            extra_versions={"qperf_pipeline": __version__},
        )
        figures = render_figures(report, report_slices)
    report["timings_s"] = {**timer.timings, "total": float(sum(timer.timings.values()))}
    progress(1.0, "done")
    return AnalysisResult(study, slices, aif_blood, report, figures, dict(report["timings_s"]))


def _load_segmenter(path: str | os.PathLike[str] | None) -> Callable[..., Any]:
    try:
        from qperf.segmentation import load_segmenter
    except ImportError as exc:  # pragma: no cover - the package ships with qperf
        raise NotAvailableError(f"the segmentation package cannot be imported ({exc})") from exc
    return load_segmenter(None if path is None else Path(path))


def _points_over_frames(point_yx: tuple[float, float], motion_result: Any | None, n_frames: int) -> NDArray[np.float64]:
    if motion_result is None:
        return np.repeat(np.asarray(point_yx, dtype=float)[None], n_frames, axis=0)
    from qperf import motion

    return np.asarray(motion.points_to_original(np.asarray([point_yx], dtype=float), motion_result), dtype=np.float64)[
        :, 0, :
    ]


def _qc_dict(qc: Any) -> dict[str, Any]:
    if qc is None:
        return {}
    if isinstance(qc, Mapping):
        return dict(qc)
    if hasattr(qc, "as_dict"):
        return dict(qc.as_dict())
    if hasattr(qc, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(qc)
    return {"value": str(qc)}


def _slice_qc(sl: SliceAnalysis) -> dict[str, Any]:
    qc: dict[str, Any] = {
        "labels_source": sl.labels_source,
        "fitted_pixels": int(sl.flow.n_fitted),
        "orientation_source": "geometry" if sl.gd.geometry is not None else "rv_label",
    }
    if sl.motion is not None:
        qc["motion_score"] = float(sl.motion.quality.get("score", float("nan")))
    # dynamic frames (0 the first after the PD frames) the fit went without (flow.outlying_frames)
    qc["frames_left_out_of_fit"] = list(sl.frames_left_out)
    if sl.segmentation_qc:
        qc["segmentation"] = sl.segmentation_qc
    if sl.statistics_mask is not None:
        myo = int(np.count_nonzero(sl.labels_ref == LABEL_MYO))
        from qperf.flow import flow_at_upper_bound

        inner = away_from_blood(sl.labels_ref)
        border_trimmed = statistics_mask(sl.labels_ref, sl.sectors.segments)
        qc["blood_border_pixels_excluded"] = myo - int(np.count_nonzero(inner))
        qc["epicardial_border_pixels_excluded"] = int(np.count_nonzero(inner & ~border_trimmed))
        at_bound = flow_at_upper_bound(sl.flow)
        qc["flow_at_bound_pixels_excluded"] = int(np.count_nonzero(border_trimmed & at_bound))
        qc["high_outlier_pixels_excluded"] = int(np.count_nonzero(border_trimmed & ~at_bound & ~sl.statistics_mask))
    return qc


def write_analysis(result: AnalysisResult, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the analysis as a new folder (atomically).

    Layout: the report files (``report.json``, ``report.csv``, ``report.html``, bull's-eye and
    flow-map figures) at the top, ``aif.csv`` (the blood AIF used), and per slice
    ``slice_<n>/``: ``corrected.seq.nrrd``, ``labels.seq.nrrd`` (over the original frames),
    ``labels_ref.nrrd``, ``segments.nrrd``, one ``<parameter>.nrrd`` per map, and
    ``insertion.json``.
    """
    from qperf import io
    from qperf.flow import map_file_stem
    from qperf.io._atomic import atomic_dir
    from qperf.io.insertion import slice_record
    from qperf.report import write_report

    with atomic_dir(out_dir, overwrite) as tmp:
        write_report(result.report, result.figures, tmp)
        io.write_aif_curve(result.aif_blood, tmp / "aif.csv")
        for i, sl in enumerate(result.slices, start=1):
            d = tmp / f"slice_{i}"
            d.mkdir()
            s = sl.gd
            sp, geo = s.spacing_mm, s.geometry
            io.write_series(sl.corrected, d / "corrected.seq.nrrd")
            # labels cover every original frame (PD frames included), like the corrected series
            io.write_image(sl.labels, d / "labels.seq.nrrd", spacing_mm=sp, geometry=geo, time_s=sl.series.time_s)
            io.write_image(sl.labels_ref, d / "labels_ref.nrrd", spacing_mm=sp, geometry=geo)
            io.write_image(sl.sectors.segments.astype(np.int16), d / "segments.nrrd", spacing_mm=sp, geometry=geo)
            for name, arr in sl.flow.maps.items():
                io.write_image(arr, d / f"{map_file_stem(name)}.nrrd", spacing_mm=sp, geometry=geo)
            record = slice_record({"anterior": sl.insertion_yx}, sl.insertion_points_per_frame, sl.series, i - 1)
            (d / "insertion.json").write_text(json.dumps({"slices": [record]}, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir)
