"""The AHA 16-segment table, coronary territories and orientation constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ANTERIOR_LPS",
    "APEX_DIRECTION_LPS",
    "LAYER_ENDO",
    "LAYER_EPI",
    "LEVELS",
    "LEVEL_SEGMENTS",
    "MIN_ANTERIOR_PROJECTION",
    "MIN_AXIS_COSINE",
    "SEGMENTS",
    "TERRITORIES",
    "Segment",
]

LEVELS: tuple[str, ...] = ("basal", "mid", "apical")


@dataclass(frozen=True)
class Segment:
    """One AHA segment: its number (1-16), name, slice level and coronary territory."""

    number: int
    name: str
    level: str
    territory: str


#: The AHA 16-segment table (the apex, segment 17, is excluded from the maps).
SEGMENTS: dict[int, Segment] = {
    s.number: s
    for s in (
        Segment(1, "basal anterior", "basal", "LAD"),
        Segment(2, "basal anteroseptal", "basal", "LAD"),
        Segment(3, "basal inferoseptal", "basal", "RCA"),
        Segment(4, "basal inferior", "basal", "RCA"),
        Segment(5, "basal inferolateral", "basal", "LCx"),
        Segment(6, "basal anterolateral", "basal", "LCx"),
        Segment(7, "mid anterior", "mid", "LAD"),
        Segment(8, "mid anteroseptal", "mid", "LAD"),
        Segment(9, "mid inferoseptal", "mid", "RCA"),
        Segment(10, "mid inferior", "mid", "RCA"),
        Segment(11, "mid inferolateral", "mid", "LCx"),
        Segment(12, "mid anterolateral", "mid", "LCx"),
        Segment(13, "apical anterior", "apical", "LAD"),
        Segment(14, "apical septal", "apical", "LAD"),
        Segment(15, "apical inferior", "apical", "RCA"),
        Segment(16, "apical lateral", "apical", "LCx"),
    )
}

#: Segments of each level, in number order.
LEVEL_SEGMENTS: dict[str, tuple[int, ...]] = {
    level: tuple(n for n, s in SEGMENTS.items() if s.level == level) for level in LEVELS
}

#: Segments of each coronary territory (16-segment model; the apex, 17, belongs to the LAD).
TERRITORIES: dict[str, tuple[int, ...]] = {
    t: tuple(n for n, s in SEGMENTS.items() if s.territory == t) for t in ("LAD", "RCA", "LCx")
}

#: Patient anterior in LPS.
ANTERIOR_LPS: tuple[float, float, float] = (0.0, -1.0, 0.0)
#: Approximate LV base-to-apex direction in LPS (left, anterior, inferior).
APEX_DIRECTION_LPS: tuple[float, float, float] = (1 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3))

#: Layer codes of :func:`myocardial_layers`.
LAYER_ENDO, LAYER_EPI = 1, 2

#: Minimum |normal . apex direction| for the geometry to tell the septal sense or the base.
MIN_AXIS_COSINE = 0.25
#: Minimum length of the anterior direction projected on a slice (1 = in plane).
MIN_ANTERIOR_PROJECTION = 0.2
