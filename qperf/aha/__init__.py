"""AHA 16-segment model: slice levels, sector maps, endo/epi layers and per-segment statistics.

Convention (Cerqueira et al., Circulation 2002, as used throughout QPerf)
--------------------------------------------------------------------------
- Angles are measured about the LV centre (the blood-pool centroid) in physical in-plane
  millimetres, ``u = (x - cx) * dx`` along the image columns and ``v = (y - cy) * dy`` along
  the rows. The *image angle* is ``atan2(v, u)`` in degrees: 0 along +x, 90 along +y, so it
  increases **clockwise** on an image displayed with row 0 at the top.
- The anterior direction of a slice is the in-plane projection of LPS ``(0, -1, 0)``.
- The septum lies on the RV side. Its *sense* (whether the septum is reached from the anterior
  insertion point by increasing or decreasing image angle) comes from the slice geometry: in a
  short-axis slice viewed from the apex, the rotation from anterior to septum is
  counter-clockwise, that is positive about the apex direction. The apex direction is taken as
  the anatomical left-anterior-inferior diagonal, LPS ``(1, -1, -1) / sqrt(3)``, so the sense
  is the sign of ``normal . apex``; flipping or swapping the image axes flips the normal and
  therefore the sense. Without geometry the caller must state the sense
  (``septum_clockwise``), for example from the RV position (:func:`septum_clockwise_from_rv`).
- Basal and mid slices: six 60-degree sectors starting at the anterior RV insertion point
  ``ins`` and going towards the septum: ``[ins, ins+60)`` anteroseptal (2 / 8),
  ``[ins+60, ins+120)`` inferoseptal (3 / 9), then inferior, inferolateral, anterolateral,
  and ``[ins-60, ins)`` anterior (1 / 7).
- Apical slices: four 90-degree sectors; septal (14) is centred on the mid-septum
  ``ins+60``: ``[ins+15, ins+105)``; then inferior (15), lateral (16) and anterior (13)
  ``[ins-75, ins+15)``. The apex (17) is not mapped.
- Coronary territories: LAD 1, 2, 7, 8, 13, 14 (and 17); RCA 3, 4, 9, 10, 15;
  LCx 5, 6, 11, 12, 16.

Arrays are ``(y, x)`` (row, column) as everywhere in QPerf; spacing is ``(dy, dx)`` in mm.
Segment maps are ``int16`` with 0 outside the myocardium.
"""

from qperf.aha.levels import LevelAssignment, slice_levels
from qperf.aha.sectors import (
    SectorFrame,
    SliceSectors,
    analyse_slice,
    anterior_angle_deg,
    image_angle_deg,
    insertion_angle_deg,
    lv_center_yx,
    myocardial_layers,
    sector_frame,
    segment_map,
    septal_sense,
    septum_clockwise_from_rv,
    transmural_depth,
    wrap_deg,
)
from qperf.aha.stats import MIN_SEGMENT_PIXELS, RegionStats, SegmentStats, perfusion_reserve, segment_stats
from qperf.aha.study import StudySectors, sectorise
from qperf.aha.table import (
    ANTERIOR_LPS,
    APEX_DIRECTION_LPS,
    LAYER_ENDO,
    LAYER_EPI,
    LEVEL_SEGMENTS,
    LEVELS,
    SEGMENTS,
    TERRITORIES,
    Segment,
)

__all__ = [
    "StudySectors",
    "sectorise",
    "ANTERIOR_LPS",
    "APEX_DIRECTION_LPS",
    "LAYER_ENDO",
    "LAYER_EPI",
    "LEVELS",
    "LEVEL_SEGMENTS",
    "MIN_SEGMENT_PIXELS",
    "SEGMENTS",
    "TERRITORIES",
    "LevelAssignment",
    "RegionStats",
    "SectorFrame",
    "Segment",
    "SegmentStats",
    "SliceSectors",
    "analyse_slice",
    "anterior_angle_deg",
    "image_angle_deg",
    "insertion_angle_deg",
    "lv_center_yx",
    "myocardial_layers",
    "perfusion_reserve",
    "sector_frame",
    "segment_map",
    "segment_stats",
    "septal_sense",
    "septum_clockwise_from_rv",
    "slice_levels",
    "transmural_depth",
    "wrap_deg",
]
