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

from qperf.aha.study import per_slice, sectorise
from qperf.errors import ValidationError, describe
from qperf.report.build import SliceResult, build_report, source_uids
from qperf.types import PerfusionSeries

__all__ = ["report_study"]


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
    septum_clockwise : bool, "rv", "auto", None, or one of these per slice
        Septal sense (:func:`qperf.aha.sectorise`); ``"rv"`` takes it from the side of the RV
        label; None from the geometry (an error without geometry); "auto" from the geometry,
        else the RV label.
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
    maps_l = per_slice("maps", maps, n)
    table = sectorise(
        series, labels, insertion_yx, levels=levels, base_first=base_first, septum_clockwise=septum_clockwise
    )
    results = [
        SliceResult(
            sectors,
            dict(maps_l[i]),
            np.asarray(labels[i]).astype(np.int16),
            s.name or f"slice {i + 1}",
            s.geometry,
            source=source_uids(s.metadata),
        )
        for i, (s, sectors) in enumerate(zip(series, table.slices, strict=True))
    ]
    warnings = list(table.warnings)
    merged = dict(qc or {})
    merged["warnings"] = [*[str(w) for w in merged.get("warnings", [])], *warnings]
    report = build_report(
        results,
        study_name=study_name,
        condition=condition,
        level_source=table.level_source,
        qc=merged,
        timings_s=timings_s,
        extra_versions=extra_versions,
    )
    return report, results
