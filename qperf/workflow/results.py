"""Typed results of the study workflow's steps (frozen; arrays are not copied).

``segment_study -> Segmentation``, ``quantify_study -> FlowMaps``, ``sectorise_study ->
SectorTable``; ``analyze_study`` gathers them, with the :class:`QualityReport` and the report,
into a :class:`StudyAnalysis`. Pixel positions are ``(y, x)``; label maps 0 background, 1 LV
blood pool, 2 myocardium, 3 RV blood pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import ValidationError
from qperf.types import AifCurve, PerfusionSeries, PerfusionStudy


@dataclass(frozen=True, eq=False)
class SliceSegmentation:
    """Motion correction and labels of one slice.

    Attributes
    ----------
    series : PerfusionSeries
        As acquired.
    corrected : PerfusionSeries
        Motion-corrected (the acquired series itself when it was not corrected).
    motion : qperf.motion.MotionResult or None
        The correction's fields (None: not corrected).
    labels_ref : ndarray, uint8, shape (y, x)
        Labels on the corrected (reference) grid.
    labels : ndarray, uint8, shape (t, y, x)
        Labels on every acquired frame.
    insertion_points_yx : mapping
        ``{"anterior": (y, x), "inferior": (y, x)}`` on the reference grid (either may be absent).
    insertion_points_per_frame_yx : mapping
        The same names, ``(t, 2)`` positions on the acquired frames.
    source : str
        ``"cnn"``, ``"supplied"`` or ``"edited"``.
    qc : mapping
        The segmentation's quality-control report (``ok``, ``flags``, heart centre, motion
        decision; empty for supplied labels).
    """

    series: PerfusionSeries
    corrected: PerfusionSeries
    motion: Any | None
    labels_ref: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    insertion_points_yx: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    insertion_points_per_frame_yx: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    source: str = "supplied"
    qc: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.series.n_frames)

    @property
    def anterior_yx(self) -> tuple[float, float]:
        """The anterior RV insertion point (the AHA segments start there)."""
        if "anterior" not in self.insertion_points_yx:
            raise ValidationError(
                f"{self.series.name or 'slice'}: no anterior RV insertion point; supply labels and insertion points"
            )
        y, x = self.insertion_points_yx["anterior"]
        return (float(y), float(x))

    def with_labels(self, labels_ref: NDArray[Any], labels: NDArray[Any] | None = None) -> SliceSegmentation:
        """A copy with edited reference labels, carried to every frame unless ``labels`` is given."""
        from qperf.motion.propagate import labels_over_frames

        lab = np.asarray(labels_ref, dtype=np.uint8)
        if lab.shape != self.series.shape:
            raise ValidationError(f"labels: expected shape {self.series.shape}, found {lab.shape}")
        frames = labels_over_frames(lab, self.motion, self.n_frames) if labels is None else labels
        return _replace(self, labels_ref=lab, labels=np.asarray(frames, dtype=np.uint8), source="edited")

    def with_insertion_point(self, name: str, point_yx: tuple[float, float]) -> SliceSegmentation:
        """A copy with the reference-grid insertion point ``name`` moved to ``point_yx``."""
        from qperf.motion.propagate import point_over_frames

        points = {**self.insertion_points_yx, name: (float(point_yx[0]), float(point_yx[1]))}
        per_frame = {
            **self.insertion_points_per_frame_yx,
            name: point_over_frames(points[name], self.motion, self.n_frames),
        }
        return _replace(self, insertion_points_yx=points, insertion_points_per_frame_yx=per_frame, source="edited")


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The labels of every slice of a study (:func:`qperf.workflow.segment_study`)."""

    slices: tuple[SliceSegmentation, ...]
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def corrected_study(self) -> tuple[PerfusionSeries, ...]:
        return tuple(s.corrected for s in self.slices)


@dataclass(frozen=True, eq=False)
class SliceFlowMaps:
    """The flow fit of one slice.

    Attributes
    ----------
    gd : PerfusionSeries
        The corrected series in Gd units (mmol/L).
    flow : qperf.flow.FlowResult
        Parameter maps named with their units (``mbf_ml_min_g``, ``ps_ml_min_g``, ...), fit
        status, tissue curves and the AIF used.
    frames_left_out : tuple of int
        Dynamic frames (0 the first after the PD frames) the fit went without (frames the
        registration could not align).
    """

    gd: PerfusionSeries
    flow: Any
    frames_left_out: tuple[int, ...] = ()

    @property
    def maps(self) -> Mapping[str, NDArray[Any]]:
        return dict(self.flow.maps)


@dataclass(frozen=True, eq=False)
class FlowMaps:
    """Pixel-wise flow of every slice of a study (:func:`qperf.workflow.quantify_study`)."""

    slices: tuple[SliceFlowMaps, ...]
    aif_blood: AifCurve
    hematocrit: float
    model: str
    delay_mode: str
    study_delay_s: float | None
    aif_qc: Mapping[str, Any] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class SectorTable:
    """AHA segments of every slice and the pixels their statistics use (:func:`qperf.workflow.sectorise_study`).

    Attributes
    ----------
    slices : tuple of qperf.aha.SliceSectors
        Level, sector frame, segment map (1-16, 0 outside the myocardium) and layers per slice.
    statistics_masks : tuple of ndarray (bool, (y, x)) or None
        Myocardial pixels that enter the segment statistics (None: all of them).
    level_source : str
        Where the levels came from ("given", "geometry", "position", "order").
    warnings : tuple of str
        Disagreements found (for example the RV label on the side opposite to the geometry's septum).
    """

    slices: tuple[Any, ...]
    statistics_masks: tuple[NDArray[np.bool_] | None, ...]
    level_source: str
    warnings: tuple[str, ...] = ()

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(str(s.level) for s in self.slices)


@dataclass(frozen=True, eq=False)
class QualityReport:
    """Quality control of a whole analysis: per-slice QC, study-level QC and warnings.

    ``ok`` is false when any slice's segmentation QC has flags or there are warnings.
    """

    slices: tuple[Mapping[str, Any], ...]
    study: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        flagged = any(s.get("segmentation", {}).get("flags") for s in self.slices)
        return not flagged and not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {
            **dict(self.study),
            "ok": self.ok,
            "warnings": list(self.warnings),
            "slices": [dict(s) for s in self.slices],
        }


@dataclass(frozen=True, eq=False)
class SliceAnalysis:
    """One slice's view of a :class:`StudyAnalysis`: its segmentation, flow and sectors together."""

    segmentation: SliceSegmentation
    flow_maps: SliceFlowMaps
    sectors: Any
    statistics_mask: NDArray[np.bool_] | None

    series = property(lambda self: self.segmentation.series)
    corrected = property(lambda self: self.segmentation.corrected)
    motion = property(lambda self: self.segmentation.motion)
    labels_ref = property(lambda self: self.segmentation.labels_ref)
    labels = property(lambda self: self.segmentation.labels)
    insertion_yx = property(lambda self: self.segmentation.anterior_yx)
    insertion_points_per_frame = property(lambda self: self.segmentation.insertion_points_per_frame_yx)
    labels_source = property(lambda self: self.segmentation.source)
    segmentation_qc = property(lambda self: self.segmentation.qc)
    gd = property(lambda self: self.flow_maps.gd)
    flow = property(lambda self: self.flow_maps.flow)
    frames_left_out = property(lambda self: list(self.flow_maps.frames_left_out))


@dataclass(frozen=True, eq=False)
class StudyAnalysis:
    """A whole analysed study (:func:`qperf.workflow.analyze_study`)."""

    study: PerfusionStudy
    segmentation: Segmentation
    flow_maps: FlowMaps
    sectors: SectorTable
    quality: QualityReport
    report: dict[str, Any]
    figures: Any
    timings_s: Mapping[str, float]

    @property
    def aif_blood(self) -> AifCurve:
        return self.flow_maps.aif_blood

    @property
    def slices(self) -> list[SliceAnalysis]:
        return [
            SliceAnalysis(seg, fm, sec, mask)
            for seg, fm, sec, mask in zip(
                self.segmentation.slices,
                self.flow_maps.slices,
                self.sectors.slices,
                self.sectors.statistics_masks,
                strict=True,
            )
        ]
