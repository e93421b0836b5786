"""Slice levels (basal, mid, apical) of a study from positions, geometry or order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qperf.aha.table import APEX_DIRECTION_LPS, LEVELS, MIN_AXIS_COSINE
from qperf.errors import ValidationError
from qperf.types import PerfusionSeries, SliceGeometry

__all__ = ["LevelAssignment", "slice_levels"]


@dataclass(frozen=True)
class LevelAssignment:
    """Levels of the slices of a study, in the order given.

    Attributes
    ----------
    levels : tuple of str
        ``"basal"``, ``"mid"`` or ``"apical"`` per slice.
    source : str
        ``"override"``, ``"slice_position"``, ``"geometry"`` or ``"order"``.
    basal_rank : tuple of int
        0 for the most basal slice, increasing towards the apex.
    """

    levels: tuple[str, ...]
    source: str
    basal_rank: tuple[int, ...]


def _levels_from_rank(rank: Sequence[int]) -> tuple[str, ...]:
    n = len(rank)
    if n == 1:
        return ("mid",)
    return tuple(LEVELS[int(round(2 * r / (n - 1)))] for r in rank)


def slice_levels(
    slices: Sequence[PerfusionSeries | SliceGeometry | None],
    *,
    levels: Sequence[str] | None = None,
    base_first: bool = True,
) -> LevelAssignment:
    """Level (basal, mid, apical) of each slice of a study.

    In order of preference:

    1. ``levels``, when given (an override; one level per slice).
    2. ``slice_position_mm`` of every series (larger towards the base).
    3. The slice origins projected on the mean slice normal, when every slice has geometry and
       the normal is close enough to the LV long axis (``|normal . apex| >= 0.25``) to tell
       the apical end: the most basal slice is the one furthest from the apex.
    4. The order given (``base_first``: the first slice is the most basal).

    Slices are ranked from base to apex and the ranks spread over the three levels:
    one slice is mid, two are basal and apical, three are basal, mid, apical, four are basal,
    mid, mid, apical, and so on.

    Parameters
    ----------
    slices : sequence of PerfusionSeries, SliceGeometry or None
    levels : sequence of str, optional
    base_first : bool
        For the fallback on order: whether the first slice is the most basal.
    """
    n = len(slices)
    if n == 0:
        raise ValidationError("slices: expected at least one slice, found none")
    if levels is not None:
        given = tuple(levels)
        if len(given) != n or any(lv not in LEVELS for lv in given):
            raise ValidationError(f"levels: expected {n} values from {', '.join(LEVELS)}, found {given!r}")
        rank = tuple(int(i) for i in np.argsort(np.argsort([LEVELS.index(lv) for lv in given], kind="stable")))
        return LevelAssignment(given, "override", rank)
    positions = [s.slice_position_mm if isinstance(s, PerfusionSeries) else None for s in slices]
    geoms = [s.geometry if isinstance(s, PerfusionSeries) else s for s in slices]
    basalness: NDArray[np.float64] | None = None
    source = "order"
    if all(p is not None for p in positions) and n > 1 and np.ptp(np.asarray(positions, float)) > 0:
        basalness, source = np.asarray(positions, dtype=float), "slice_position"
    elif n > 1 and all(isinstance(g, SliceGeometry) for g in geoms):
        normals = np.array([g.normal for g in geoms if g is not None])
        normals *= np.sign(normals @ normals[0])[:, None]
        axis = normals.mean(axis=0)
        axis /= np.linalg.norm(axis)
        c = float(axis @ np.asarray(APEX_DIRECTION_LPS))
        t = np.array([np.dot(g.origin_mm, axis) for g in geoms if g is not None])
        if abs(c) >= MIN_AXIS_COSINE and np.ptp(t) > 1e-3:
            basalness, source = -t * np.sign(c), "geometry"
    if basalness is None:
        order = np.arange(n, dtype=float)
        basalness = -order if base_first else order
    rank_arr = np.argsort(np.argsort(-basalness, kind="stable"), kind="stable")
    rank = tuple(int(r) for r in rank_arr)
    return LevelAssignment(_levels_from_rank(rank), source, rank)
