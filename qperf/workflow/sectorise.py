"""Step 3 of the study workflow: AHA segments and the pixels their statistics use."""

from __future__ import annotations

import numpy as np

from qperf.errors import ValidationError
from qperf.types import PerfusionStudy
from qperf.workflow.options import AnalysisOptions
from qperf.workflow.regions import high_outliers, statistics_mask
from qperf.workflow.results import FlowMaps, SectorTable, Segmentation


def sectorise_study(
    study: PerfusionStudy,
    segmentation: Segmentation,
    flow_maps: FlowMaps | None = None,
    options: AnalysisOptions | None = None,
) -> SectorTable:
    """AHA segment maps of every slice (:func:`qperf.aha.sectorise`), and with ``flow_maps`` and
    ``options.trim_borders`` the myocardial pixels that enter the statistics: away from the
    blood pools and the outside of the heart (:func:`~qperf.workflow.regions.statistics_mask`),
    not at the flow bound, not high outliers (:func:`~qperf.workflow.regions.high_outliers`).

    The septal side comes from the slice geometry, else from the side of the RV label.
    """
    from qperf import aha, flow

    options = options or AnalysisOptions()
    if len(segmentation.slices) != study.n_slices:
        raise ValidationError(
            f"segmentation: expected one slice per study slice ({study.n_slices}), found {len(segmentation.slices)}"
        )
    series = [s.corrected for s in segmentation.slices]
    table = aha.sectorise(
        series,
        [s.labels_ref for s in segmentation.slices],
        [s.anterior_yx for s in segmentation.slices],
        levels=options.levels,
        septum_clockwise="auto",
    )
    masks: list[np.ndarray | None] = []
    for i, sectors in enumerate(table.slices):
        if flow_maps is None or not options.trim_borders:
            masks.append(None)
            continue
        fit = flow_maps.slices[i].flow
        kept = statistics_mask(segmentation.slices[i].labels_ref, sectors.segments) & ~flow.flow_at_upper_bound(fit)
        masks.append(kept & ~high_outliers(fit.maps.get("mbf_ml_min_g"), kept, sectors.segments))
    return SectorTable(table.slices, tuple(masks), table.level_source, table.warnings)
