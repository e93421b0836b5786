"""Per-segment, per-territory and global statistics of parameter maps, and perfusion reserve."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.aha.table import LAYER_ENDO, LAYER_EPI, SEGMENTS, TERRITORIES
from qperf.errors import ValidationError, describe

__all__ = [
    "LAYER_NAMES",
    "MIN_SEGMENT_PIXELS",
    "REGIONS",
    "RegionStats",
    "SegmentStats",
    "perfusion_reserve",
    "segment_stats",
]

#: Region keys, in report order: the 16 segments, the three territories, the whole myocardium.
REGIONS: tuple[str, ...] = (*(str(n) for n in SEGMENTS), *TERRITORIES, "global")
#: Layer keys: all pixels, endocardial half, epicardial half.
LAYER_NAMES: tuple[str, ...] = ("all", "endo", "epi")
#: Fewest valid pixels a segment's MBF needs to be reported without a low-pixel-count flag.
#: On phantom studies (``benchmarks/bench_segment_pixels.py``, 8 hearts at stress and rest,
#: true labels) the error of the mean of ``n`` neighbouring myocardial pixels against their
#: truth has a standard deviation of 10 % at one pixel, 5.9 % at 5, 4.4 % at 10 and 2.9 % at
#: 30: below 10 it grows past 1.5 times that of 30 pixels, and steeply.
MIN_SEGMENT_PIXELS = 10


@dataclass(frozen=True)
class RegionStats:
    """Statistics of one map over one region.

    Attributes
    ----------
    n_pixels : int
        Pixels in the region.
    n_valid : int
        Pixels with a finite value (failed fits are NaN and are left out).
    mean, median, sd : float
        Over the valid pixels; ``sd`` is the sample standard deviation (ddof 1). NaN when there
        are no valid pixels (``sd``: fewer than two).
    """

    n_pixels: int
    n_valid: int
    mean: float
    median: float
    sd: float

    @classmethod
    def of(cls, values: NDArray[np.float64], n_pixels: int) -> RegionStats:
        v = values[np.isfinite(values)]
        n = int(v.size)
        if n == 0:
            return cls(n_pixels, 0, math.nan, math.nan, math.nan)
        return cls(n_pixels, n, float(v.mean()), float(np.median(v)), float(v.std(ddof=1)) if n > 1 else math.nan)


@dataclass(frozen=True, eq=False)
class SegmentStats:
    """Statistics of several maps over the AHA regions and layers.

    Attributes
    ----------
    map_names : tuple of str
    table : dict
        ``table[layer][region][map_name]`` -> :class:`RegionStats`, with ``layer`` in
        :data:`LAYER_NAMES` (``"endo"``/``"epi"`` only when layers were given) and ``region`` in
        :data:`REGIONS` (``"1"`` ... ``"16"``, ``"LAD"``, ``"RCA"``, ``"LCx"``, ``"global"``).
    slices : dict of int to tuple of int
        For each segment number, the indices of the slices that contain it.
    """

    map_names: tuple[str, ...]
    table: dict[str, dict[str, dict[str, RegionStats]]]
    slices: dict[int, tuple[int, ...]]

    def get(self, region: int | str, map_name: str, layer: str = "all") -> RegionStats:
        """Statistics of ``map_name`` over ``region`` (segment number, territory or "global")."""
        if layer not in self.table:
            raise ValidationError(f"layer: expected one of {', '.join(self.table)}, found {layer!r}")
        key = str(region)
        if key not in self.table[layer]:
            raise ValidationError(f"region: expected one of {', '.join(REGIONS)}, found {region!r}")
        if map_name not in self.map_names:
            raise ValidationError(f"map_name: expected one of {', '.join(self.map_names)}, found {map_name!r}")
        return self.table[layer][key][map_name]

    def means(self, map_name: str, layer: str = "all") -> dict[str, float]:
        """Mean of ``map_name`` per region key."""
        return {r: self.get(r, map_name, layer).mean for r in REGIONS}


def _as_slices(name: str, value: Any) -> list[NDArray[Any]]:
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence):
        arr = np.asarray(value)
        if arr.ndim == 2:
            return [arr]
        if arr.ndim == 3:
            return list(arr)
        raise ValidationError(
            f"{name}: expected a (y, x) array, a (slices, y, x) array or a list, found {describe(arr)}"
        )
    out = [np.asarray(v) for v in value]
    for i, arr in enumerate(out):
        if arr.ndim != 2:
            raise ValidationError(f"{name}[{i}]: expected a (y, x) array, found {describe(arr)}")
    return out


def segment_stats(
    maps: Mapping[str, ArrayLike | Sequence[ArrayLike]],
    segments: ArrayLike | Sequence[ArrayLike],
    *,
    layers: ArrayLike | Sequence[ArrayLike] | None = None,
) -> SegmentStats:
    """Mean, median, SD and pixel counts of maps per AHA segment, territory and globally.

    Parameters
    ----------
    maps : mapping of str to array_like
        Parameter maps by name (for example ``"mbf_ml_min_g"``), each ``(y, x)`` for one
        slice, ``(slices, y, x)`` or a list of ``(y, x)`` arrays matching ``segments``.
        NaN values (failed fits) are left out of the statistics and counted in ``n_valid``.
    segments : array_like of int
        Segment maps (:func:`qperf.aha.segment_map`), same layout as the maps; 0 outside.
    layers : array_like of int, optional
        Layer maps (:func:`qperf.aha.myocardial_layers`: 1 endocardial, 2 epicardial half),
        same layout; adds the ``"endo"`` and ``"epi"`` layers.

    Returns
    -------
    SegmentStats
        Global and territory values pool the pixels of their segments (pixel-weighted).
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValidationError(f"maps: expected a non-empty mapping of name to map, found {describe(maps)}")
    seg_slices = _as_slices("segments", segments)
    for i, s in enumerate(seg_slices):
        if not np.issubdtype(s.dtype, np.integer):
            raise ValidationError(f"segments[{i}]: expected integer segment numbers, found {describe(s)}")
        bad = np.setdiff1d(np.unique(s), np.arange(0, 17))
        if bad.size:
            raise ValidationError(f"segments[{i}]: expected values 0-16, found {bad[:5].tolist()}")
    shapes = [s.shape for s in seg_slices]
    seg = np.concatenate([s.ravel() for s in seg_slices]).astype(np.int16)
    slice_index = np.concatenate([np.full(s.size, i, dtype=np.int32) for i, s in enumerate(seg_slices)])
    values: dict[str, NDArray[np.float64]] = {}
    for name, m in maps.items():
        ms = _as_slices(f"maps[{name!r}]", m)
        if [a.shape for a in ms] != shapes:
            raise ValidationError(
                f"maps[{name!r}]: expected slice shapes {shapes} (as segments), found {[a.shape for a in ms]}"
            )
        values[str(name)] = np.concatenate([a.ravel() for a in ms]).astype(np.float64)
    layer_masks: dict[str, NDArray[np.bool_]] = {"all": seg > 0}
    if layers is not None:
        ls = _as_slices("layers", layers)
        if [a.shape for a in ls] != shapes:
            raise ValidationError(
                f"layers: expected slice shapes {shapes} (as segments), found {[a.shape for a in ls]}"
            )
        lay = np.concatenate([a.ravel() for a in ls])
        layer_masks["endo"] = (seg > 0) & (lay == LAYER_ENDO)
        layer_masks["epi"] = (seg > 0) & (lay == LAYER_EPI)
    region_masks: dict[str, NDArray[np.bool_]] = {str(n): seg == n for n in SEGMENTS}
    for t, members in TERRITORIES.items():
        region_masks[t] = np.isin(seg, members)
    region_masks["global"] = seg > 0
    table: dict[str, dict[str, dict[str, RegionStats]]] = {}
    for layer, lmask in layer_masks.items():
        table[layer] = {}
        for region in REGIONS:
            mask = region_masks[region] & lmask
            n_pix = int(mask.sum())
            table[layer][region] = {name: RegionStats.of(v[mask], n_pix) for name, v in values.items()}
    slices = {n: tuple(int(i) for i in np.unique(slice_index[seg == n])) for n in SEGMENTS}
    return SegmentStats(tuple(values), table, slices)


def perfusion_reserve(
    stress: Mapping[str, float] | SegmentStats,
    rest: Mapping[str, float] | SegmentStats,
    *,
    map_name: str = "mbf_ml_min_g",
) -> dict[str, float]:
    """Myocardial perfusion reserve, stress MBF / rest MBF, per region.

    Parameters
    ----------
    stress, rest : mapping of region key to MBF (ml/min/g), or SegmentStats
        Mean MBF per region (``"1"`` ... ``"16"``, territories, ``"global"``); with
        :class:`SegmentStats` the means of ``map_name``.

    Returns
    -------
    dict of str to float
        For every region in both: the ratio, NaN where either value is missing, not finite or
        rest is not positive.
    """
    s = stress.means(map_name) if isinstance(stress, SegmentStats) else stress
    r = rest.means(map_name) if isinstance(rest, SegmentStats) else rest
    for name, m in (("stress", s), ("rest", r)):
        if not isinstance(m, Mapping):
            raise ValidationError(f"{name}: expected a mapping of region to MBF or SegmentStats, found {describe(m)}")
    out: dict[str, float] = {}
    for key in [k for k in s if k in r]:
        sv = float(s[key]) if s[key] is not None else math.nan
        rv = float(r[key]) if r[key] is not None else math.nan
        out[str(key)] = sv / rv if math.isfinite(sv) and math.isfinite(rv) and rv > 0 else math.nan
    return out
