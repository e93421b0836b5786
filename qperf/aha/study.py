"""AHA segments of every slice of a study: levels, septal sense and segment maps in one call.

The single place that decides, for a study, each slice's level (:func:`slice_levels`) and the
side of its septum: from the slice geometry when it has one, else from the side of the RV
label (``septum_clockwise="auto"``); with both, a disagreement becomes a warning, since it
points at wrong labels, a wrong insertion point or a wrong image orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.aha.levels import slice_levels
from qperf.aha.sectors import SliceSectors, analyse_slice, septum_clockwise_from_rv
from qperf.errors import ValidationError, describe
from qperf.types import LABEL_RV, PerfusionSeries


@dataclass(frozen=True)
class StudySectors:
    """The AHA analysis of every slice of a study.

    Attributes
    ----------
    slices : tuple of SliceSectors
    level_source : str
        Where the levels came from (:class:`qperf.aha.LevelAssignment`).
    septum_sources : tuple of str
        ``"geometry"``, ``"rv_label"`` or ``"given"`` per slice.
    warnings : tuple of str
    """

    slices: tuple[SliceSectors, ...]
    level_source: str
    septum_sources: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def per_slice(name: str, value: Any, n: int) -> list[Any]:
    """``value`` once per slice: a scalar (str, bool, None) repeated, else a sequence of ``n`` items."""
    if isinstance(value, (str, bool)) or value is None:
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise ValidationError(f"{name}: expected one value per slice ({n}), found {len(items)}")
    return items


def sectorise(
    series: Sequence[PerfusionSeries],
    labels: Sequence[ArrayLike],
    insertion_yx: Sequence[ArrayLike],
    *,
    levels: Sequence[str] | None = None,
    base_first: bool = True,
    septum_clockwise: bool | str | Sequence[bool | str | None] | None = "auto",
) -> StudySectors:
    """Segment and layer maps of every slice of a study.

    Parameters
    ----------
    series : sequence of PerfusionSeries
        The slices (names, spacing, geometry, positions), in the study's order.
    labels : sequence of array_like of int, each (y, x)
        Label maps on each slice's grid.
    insertion_yx : sequence of array_like, each (2,)
        Anterior RV insertion point of each slice, pixels.
    levels : sequence of str, optional
        Override of the levels (:func:`qperf.aha.slice_levels`).
    base_first : bool
        When neither positions nor geometry order the slices: whether the first is basal.
    septum_clockwise : "auto", "rv", bool or None, or one of these per slice
        ``"auto"``: from the geometry, else from the side of the RV label; ``"rv"``: from the
        RV label; a bool: given; None: from the geometry (an error without it).

    Raises
    ------
    ValidationError
        Inputs that do not fit the slices.
    """
    if isinstance(series, PerfusionSeries):
        series = [series]
    n = len(series)
    if n == 0 or not all(isinstance(s, PerfusionSeries) for s in series):
        raise ValidationError(f"series: expected a non-empty list of PerfusionSeries, found {describe(series)}")
    labels_l = per_slice("labels", labels, n)
    ins_l = per_slice("insertion_yx", insertion_yx, n)
    sense_l = per_slice("septum_clockwise", septum_clockwise, n)
    assignment = slice_levels(series, levels=levels, base_first=base_first)
    out, sources, warnings = [], [], []
    for i, s in enumerate(series):
        lab = np.asarray(labels_l[i])
        if lab.shape != s.shape:
            raise ValidationError(f"labels[{i}]: expected shape {s.shape} (as slice {i}), found {lab.shape}")
        lab = lab.astype(np.int16)
        sense, source = _septal_sense(sense_l[i], lab, ins_l[i], s, i)
        sectors = analyse_slice(
            lab, ins_l[i], assignment.levels[i], spacing_mm=s.spacing_mm, geometry=s.geometry, septum_clockwise=sense
        )
        if sectors.frame.sense_source == "geometry" and np.any(lab == LABEL_RV):
            by_rv = septum_clockwise_from_rv(lab, ins_l[i], spacing_mm=s.spacing_mm, center_yx=sectors.frame.center_yx)
            if by_rv != sectors.frame.septum_clockwise:
                warnings.append(
                    f"{s.name or f'slice {i + 1}'}: the RV label lies on the side opposite to the septum given by the "
                    "geometry; check the labels, the insertion point and the image orientation"
                )
        out.append(sectors)
        sources.append(source)
    return StudySectors(tuple(out), assignment.source, tuple(sources), tuple(warnings))


def _septal_sense(
    value: bool | str | None, labels: Any, insertion: ArrayLike, series: PerfusionSeries, index: int
) -> tuple[bool | None, str]:
    if isinstance(value, bool):
        return value, "given"
    if value is None:
        return None, "geometry"
    if value not in ("auto", "rv"):
        raise ValidationError(f"septum_clockwise[{index}]: expected True, False, 'auto', 'rv' or None, found {value!r}")
    if value == "auto" and series.geometry is not None:
        return None, "geometry"
    return septum_clockwise_from_rv(labels, insertion, spacing_mm=series.spacing_mm), "rv_label"
