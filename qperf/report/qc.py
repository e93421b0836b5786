"""The report's quality-control flags: each with what it means and which step raised it.

A flag is ``{"flag": code, "where": ..., "meaning": ..., "source": ..., "detail": ...}`` in
``report["qc"]["flags"]``. The codes of the segmentation's QC, the motion correction and the
report's own checks are explained by :data:`FLAG_MEANINGS`; a warning of the inputs or of an
analysis step is flagged ``"warning"`` with its own text as detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FIT_STATUS_NAMES", "FLAG_MEANINGS", "flag", "slice_flags"]

#: Flag code -> (what it means, where it came from).
FLAG_MEANINGS: dict[str, tuple[str, str]] = {
    "low_pixel_count": (
        "fewer valid myocardial pixels than the documented minimum (qperf.aha.MIN_SEGMENT_PIXELS): the "
        "segment's mean MBF is uncertain; hatched on the bull's-eye",
        "report: segment statistics",
    ),
    "segment_without_pixels": (
        "an AHA segment of an imaged level has no myocardial pixels and is not reported",
        "report: AHA segments",
    ),
    "level_not_imaged": ("no slice at this level: its segments are not reported", "report: slice levels"),
    "insertion_point_unlikely": (
        "the anterior RV insertion point lies outside the usual angle from anterior: the segment "
        "numbering may be rotated",
        "report: AHA orientation",
    ),
    "invalid_mbf_pixels": (
        "more than 10 % of the slice's myocardial pixels have no valid MBF (failed or flat fits)",
        "report: flow fit",
    ),
    "no_lv_blood_pool": ("the segmentation found no LV blood pool", "segmentation QC"),
    "no_myocardium": ("the segmentation found no myocardium", "segmentation QC"),
    "no_rv": ("the segmentation found no RV: the septal side comes from the geometry only", "segmentation QC"),
    "myocardium_not_closed_ring": (
        "the myocardium label is not a closed ring: part of the wall is missing",
        "segmentation QC",
    ),
    "implausible_wall_thickness": ("the mean wall thickness lies outside 3-20 mm", "segmentation QC"),
    "low_confidence": ("the network's mean confidence on the myocardium is below 0.75", "segmentation QC"),
    "orientation_assumed": (
        "no slice geometry: the septal side was assumed from the RV label",
        "segmentation QC",
    ),
    "motion_correction": ("the motion correction's own check found a problem", "motion correction QC"),
    "warning": ("noted by a reader, an input check or an analysis step", "inputs and analysis steps"),
}

#: Fit status codes (:class:`qperf.kinetics.FitStatus`) by name, as the QC counts them.
FIT_STATUS_NAMES: dict[int, str] = {0: "ok", 2: "invalid_input", 3: "no_signal", 4: "failed"}


def flag(code: str, where: str, detail: str = "") -> dict[str, str]:
    """One QC flag with its meaning and source (:data:`FLAG_MEANINGS`)."""
    meaning, source = FLAG_MEANINGS.get(code, FLAG_MEANINGS["warning"])
    return {"flag": code, "where": where, "meaning": meaning, "source": source, "detail": detail}


def slice_flags(name: str, qc: Mapping[str, Any]) -> list[dict[str, str]]:
    """Flags carried by a slice's QC values: the segmentation's flags and the motion warnings."""
    out = []
    segmentation = qc.get("segmentation")
    if isinstance(segmentation, Mapping):
        codes: Sequence[Any] = segmentation.get("flags") or ()
        out += [flag(str(code), name) for code in codes]
    for text in qc.get("motion_warnings") or ():
        out.append(flag("motion_correction", name, str(text)))
    return out
