"""From a study's slices, labels, insertion points and maps to its report in one call.

The step the one-click analysis and the manual-correction path share: given label maps and
anterior RV insertion points (from the CNN or corrected by an annotator) and the parameter
maps, decide the slice levels, split every slice into AHA segments and build the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.aha.levels import slice_levels
from qperf.aha.sectors import analyse_slice, septum_clockwise_from_rv
from qperf.errors import ValidationError, describe
from qperf.report.build import SliceResult, build_report
from qperf.types import LABEL_RV, PerfusionSeries

__all__ = ["report_study"]


def _per_slice(name: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, (str, bool)) or value is None:
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise ValidationError(f"{name}: expected one value per slice ({n}), found {len(items)}")
    return items


def report_study(
    series: Sequence[PerfusionSeries],
    labels: Sequence[ArrayLike],
    insertion_yx: Sequence[ArrayLike],
    maps: Sequence[Mapping[str, ArrayLike]],
    *,
    levels: Sequence[str] | None = None,
    base_first: bool = True,
    septum_clockwise: bool | str | Sequence[bool | str | None] | None = None,
    study_name: str = "",
    condition: str = "unknown",
    qc: Mapping[str, Any] | None = None,
    timings_s: Mapping[str, float] | None = None,
    extra_versions: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[SliceResult]]:
    """Segment every slice of a study and build its report.

    Parameters
    ----------
    series : sequence of PerfusionSeries
        The study's slices (for names, spacing, geometry and positions); their order is the
        report's.
    labels : sequence of array_like of int, each (y, x)
        Label maps (0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool) on each
        slice's grid.
    insertion_yx : sequence of array_like, each (2,)
        Anterior RV insertion point of each slice, pixels.
    maps : sequence of mapping of str to array_like (y, x)
        Parameter maps of each slice, named with units; ``"mbf_ml_min_g"`` required.
    levels : sequence of str, optional
        Override of the slice levels (see :func:`qperf.aha.slice_levels`).
    base_first : bool
        When neither positions nor geometry order the slices: whether the first is basal.
    septum_clockwise : bool, "rv", None, or one of these per slice
        Septal sense override (:func:`qperf.aha.sector_frame`); ``"rv"`` takes it from the
        side of the RV label; None takes it from the geometry (an error without geometry).
    study_name, condition, qc, timings_s, extra_versions
        As :func:`qperf.report.build_report`.

    Returns
    -------
    report : dict
        Schema ``qperf.report``; with geometry, a QC warning where the RV label lies on the
        side opposite to the geometry's septum.
    slices : list of SliceResult
        For :func:`qperf.report.render_figures`.
    """
    if isinstance(series, PerfusionSeries):
        series = [series]
    n = len(series)
    if n == 0 or not all(isinstance(s, PerfusionSeries) for s in series):
        raise ValidationError(f"series: expected a non-empty list of PerfusionSeries, found {describe(series)}")
    labels_l = _per_slice("labels", labels, n)
    ins_l = _per_slice("insertion_yx", insertion_yx, n)
    maps_l = _per_slice("maps", maps, n)
    sense_l = _per_slice("septum_clockwise", septum_clockwise, n)
    assignment = slice_levels(series, levels=levels, base_first=base_first)
    results: list[SliceResult] = []
    warnings: list[str] = []
    for i, s in enumerate(series):
        lab = np.asarray(labels_l[i])
        if lab.shape != s.shape:
            raise ValidationError(f"labels[{i}]: expected shape {s.shape} (as slice {i}), found {lab.shape}")
        lab = lab.astype(np.int16)
        sense = sense_l[i]
        has_rv = bool(np.any(lab == LABEL_RV))
        if isinstance(sense, str):
            if sense != "rv":
                raise ValidationError(f"septum_clockwise[{i}]: expected True, False, 'rv' or None, found {sense!r}")
            sense = septum_clockwise_from_rv(lab, ins_l[i], spacing_mm=s.spacing_mm)
        sectors = analyse_slice(
            lab, ins_l[i], assignment.levels[i], spacing_mm=s.spacing_mm, geometry=s.geometry, septum_clockwise=sense
        )
        name = s.name or f"slice {i + 1}"
        if sectors.frame.sense_source == "geometry" and has_rv:
            by_rv = septum_clockwise_from_rv(lab, ins_l[i], spacing_mm=s.spacing_mm, center_yx=sectors.frame.center_yx)
            if by_rv != sectors.frame.septum_clockwise:
                warnings.append(
                    f"{name}: the RV label lies on the side opposite to the septum given by the geometry; "
                    "check the labels, the insertion point and the image orientation"
                )
        results.append(SliceResult(sectors, dict(maps_l[i]), lab, name, s.geometry))
    merged = dict(qc or {})
    merged["warnings"] = [*[str(w) for w in merged.get("warnings", [])], *warnings]
    report = build_report(
        results,
        study_name=study_name,
        condition=condition,
        level_source=assignment.source,
        qc=merged,
        timings_s=timings_s,
        extra_versions=extra_versions,
    )
    return report, results
