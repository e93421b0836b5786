"""Domain randomisation: turn one annotated slice into many plausible network inputs.

Every training sample goes through :func:`make_sample`, which perturbs an annotated 2D+T slice
the way real scans differ from each other and from the phantom, then applies the same
pre-processing as inference:

- intensities (on the network grid, after the temporal grid and baseline removal): a convex
  power (Gd-like), a smooth multiplicative bias field, a gamma curve; noise at a random level,
  blur, lower acquired resolution, a random dark band or bright streak artefact;
- timing: random subsets of frames (frame count, irregular intervals), time stretched by
  0.6-1.7 (transit times), random alignment jitter;
- geometry: rotation by any angle, flips, scaling of +-15 %, a shift of the heart within the
  crop (the localisation's error), and a small per-frame displacement (motion-correction residue);
  optionally (``p_away``) a crop centred away from the heart, where the answer is "no heart".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf.segmentation import preprocessing as pre
from qperf.types import PerfusionSeries


@dataclass(frozen=True)
class AnnotatedSlice:
    """One slice with its reference labels, in the series' own pixel grid.

    Attributes
    ----------
    series : PerfusionSeries
    labels : ndarray, int, shape (y, x)
        0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.
    points_yx : mapping
        ``{"anterior": (y, x), "inferior": (y, x)}`` in pixels; empty when unknown (no RV).
    drawn : frozenset of int
        Labelled classes (1-3) that were drawn; the pixels of a class that was not drawn are
        labelled 0 and the training loss does not tell it from the background there.
    """

    series: PerfusionSeries
    labels: NDArray[np.integer]
    points_yx: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    drawn: frozenset[int] = frozenset((1, 2, 3))


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each randomisation (probabilities and ranges)."""

    p_gd_like: float = 0.4
    p_bias: float = 0.7
    bias_strength: float = 0.6
    gamma_range: tuple[float, float] = (0.7, 1.4)
    noise_max: float = 0.06
    p_blur: float = 0.4
    blur_max_mm: float = 1.5
    p_lowres: float = 0.15
    lowres_max_mm: float = 6.0
    p_artefact: float = 0.25
    p_tight_fov: float = 0.15
    tight_half_mm: tuple[float, float] = (45.0, 80.0)
    p_drop_frames: float = 0.5
    align_jitter_s: float = 2.0
    p_time_stretch: float = 0.6
    time_stretch: tuple[float, float] = (0.6, 1.7)
    rotation: bool = True
    p_flip: float = 0.5
    scale_range: tuple[float, float] = (0.85, 1.15)
    shift_mm: float = 15.0
    motion_residue_px: float = 0.8
    p_away: float = 0.0
    away_mm: tuple[float, float] = (70.0, 130.0)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], strength: float) -> NDArray[np.float32]:
    ny, nx = shape
    coarse = rng.normal(0.0, 1.0, size=(4, 4))
    f = ndimage.zoom(coarse, (ny / 4.0, nx / 4.0), order=3)[:ny, :nx]
    f = (f - f.mean()) / (f.std() + 1e-6)
    return np.exp(strength * 0.5 * f).astype(np.float32)


def perturb_timing(series: PerfusionSeries, cfg: AugmentConfig, rng: np.random.Generator) -> PerfusionSeries:
    """Timing randomisation: a random subset and window of the dynamic frames, time stretching."""
    data = series.dynamic
    t = np.array(series.dynamic_time_s, dtype=np.float64)
    if rng.random() < cfg.p_drop_frames and data.shape[0] > 20:
        keep = np.sort(rng.choice(data.shape[0], size=int(rng.uniform(0.6, 1.0) * data.shape[0]), replace=False))
        start = int(rng.integers(0, max(1, keep.size // 6)))
        keep = keep[start:]
        if keep.size >= 8:
            data, t = data[keep], t[keep]
    if rng.random() < cfg.p_time_stretch:
        # Slower or faster circulation (cardiac output, heart rate, frame-interval mistakes).
        lo, hi = cfg.time_stretch
        t = t[0] + (t - t[0]) * float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return PerfusionSeries(data, t, spacing_mm=series.spacing_mm, units=series.units)


def perturb_channels(x_in: NDArray[np.float32], cfg: AugmentConfig, rng: np.random.Generator) -> NDArray[np.float32]:
    """Intensity, noise, blur, resolution and artefact randomisation of network-grid channels (c, v, u).

    Acts on the baseline-subtracted enhancement: a convex power (signal-to-Gd conversion is
    convex), a smooth multiplicative bias field (coil shading), a gamma curve, Gaussian noise
    at a random level, blur, a lower acquired resolution (down to AIF-image pixel sizes), and a
    dark band or bright streak artefact.
    """
    x: NDArray[Any] = np.array(x_in, dtype=np.float32)
    if rng.random() < cfg.p_gd_like:
        x = np.sign(x) * np.abs(x) ** rng.uniform(1.0, 1.6)
    if rng.random() < cfg.p_bias:
        x = x * _smooth_field(rng, x.shape[1:], cfg.bias_strength)[None]
    g = rng.uniform(*cfg.gamma_range)
    x = np.sign(x) * np.abs(x) ** g
    if rng.random() < cfg.p_blur:
        s = rng.uniform(0.3, cfg.blur_max_mm) / pre.GRID_SPACING_MM
        x = ndimage.gaussian_filter(x, sigma=(0.0, s, s))
    if rng.random() < cfg.p_lowres:
        f = float(rng.uniform(1.3, cfg.lowres_max_mm / pre.GRID_SPACING_MM))
        n = x.shape[1]
        small = ndimage.zoom(x, (1.0, 1.0 / f, 1.0 / f), order=1, grid_mode=True, mode="nearest")
        x = ndimage.zoom(
            small, (1.0, n / small.shape[1], x.shape[2] / small.shape[2]), order=1, grid_mode=True, mode="nearest"
        )
    sigma = rng.uniform(0.0, cfg.noise_max)
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    if rng.random() < cfg.p_artefact:
        nv, nu = x.shape[1:]
        if rng.random() < 0.5:  # dark band in some frames
            v0 = int(rng.integers(0, nv))
            frames = rng.random(x.shape[0]) < 0.3
            x[frames, v0 : v0 + int(rng.integers(1, 5)), :] *= rng.uniform(0.2, 0.7)
        else:  # bright streak (ghost)
            u0 = int(rng.integers(0, nu))
            x[:, :, u0 : u0 + int(rng.integers(1, 3))] += rng.uniform(0.05, 0.3)
    return np.nan_to_num(x).astype(np.float32)


def gaussian_heatmap(points_vu: NDArray[np.float64], size: int, sigma_px: float) -> NDArray[np.float32]:
    """Normalised Gaussian maps (n, size, size) centred on network-grid points (n, 2)."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    maps = np.zeros((points_vu.shape[0], size, size), dtype=np.float32)
    for i, (pv, pu) in enumerate(points_vu):
        g = np.exp(-0.5 * ((v - pv) ** 2 + (u - pu) ** 2) / sigma_px**2)
        s = g.sum()
        maps[i] = g / s if s > 0 else g
    return maps


POINT_SIGMA_PX = 1.5


def _around_heart(item: AnnotatedSlice, half_mm: float, *, force: bool = False) -> AnnotatedSlice:
    """The part of a slice within ``half_mm`` of the heart's centre (a smaller field of view)."""
    heart = np.isin(item.labels, (1, 2, 3))
    if not heart.any():
        return item
    cy, cx = ndimage.center_of_mass(heart)
    dy, dx = item.series.spacing_mm
    ny, nx = item.labels.shape
    y0, y1 = max(0, int(cy - half_mm / dy)), min(ny, int(cy + half_mm / dy) + 1)
    x0, x1 = max(0, int(cx - half_mm / dx)), min(nx, int(cx + half_mm / dx) + 1)
    if not force and (y1 - y0) * (x1 - x0) >= 0.8 * ny * nx:
        return item
    s = item.series
    series = s.replace(data=s.data[:, y0:y1, x0:x1], geometry=None)
    points = {k: (p[0] - y0, p[1] - x0) for k, p in item.points_yx.items()}
    return AnnotatedSlice(series, item.labels[y0:y1, x0:x1], points)


def junction_order(points_vu: NDArray[np.float64], labels: NDArray[np.integer]) -> tuple[int, int]:
    """Order two LV-RV junction points by their image handedness.

    The network cannot tell anterior from inferior (that needs the slice geometry, and images
    may be flipped), so its two heat maps are defined in the image: map 0 is the junction point
    lying counter-clockwise (increasing ``atan2(row, column)``) from the RV direction, seen from
    the LV centre; map 1 the other one.

    Returns the indices of ``points_vu`` for map 0 and map 1.
    """
    lv = np.argwhere(labels == 1).mean(axis=0)
    rv = np.argwhere(labels == 3).mean(axis=0)
    ref = np.arctan2(rv[0] - lv[0], rv[1] - lv[1])
    rel = [float((np.arctan2(p[0] - lv[0], p[1] - lv[1]) - ref + np.pi) % (2 * np.pi) - np.pi) for p in points_vu]
    return (0, 1) if rel[0] >= rel[1] else (1, 0)


def _away_from_heart(
    centre: tuple[float, float],
    shape: tuple[int, ...],
    spacing: tuple[float, float],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """A crop centre ``away_mm`` from the heart (inside the image): a sample where the network
    must find no heart, or only its edge, so that a vessel or the liver elsewhere in a full field
    of view is not taken for one."""
    angle = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(*cfg.away_mm)
    y = centre[0] + distance * np.sin(angle) / spacing[0]
    x = centre[1] + distance * np.cos(angle) / spacing[1]
    return float(np.clip(y, 0, shape[0] - 1)), float(np.clip(x, 0, shape[1] - 1))


def make_sample(
    item: AnnotatedSlice,
    rng: np.random.Generator,
    cfg: AugmentConfig | None = None,
    *,
    size: int = pre.CROP_PX,
    augment: bool = True,
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
    """One network training sample.

    Returns
    -------
    x : float32 (N_CHANNELS, size, size)
    y : int64 (size, size) labels
    heat : float32 (2, size, size) normalised target heat maps (zeros when points are unknown)
    has_points : float32 (2,) 1 where the point is known and inside the crop
    """
    from qperf.segmentation.network import POINT_NAMES

    cfg = cfg or AugmentConfig()
    if augment:
        tight = rng.random() < cfg.p_tight_fov
        half_mm = float(rng.uniform(*cfg.tight_half_mm)) if tight else size * pre.GRID_SPACING_MM * 0.9 + cfg.shift_mm
        item = _around_heart(item, half_mm, force=tight)
    series = perturb_timing(item.series, cfg, rng) if augment else item.series
    temporal = pre.temporal_input(series, align_jitter_s=cfg.align_jitter_s if augment else 0.0, rng=rng)
    spacing = item.series.spacing_mm
    heart = np.isin(item.labels, (1, 2, 3))
    if heart.any():
        cy, cx = ndimage.center_of_mass(heart)
    else:
        cy, cx = pre.locate_heart(temporal.enhancement, spacing)
    if augment:
        ang = float(rng.uniform(0, 2 * np.pi)) if cfg.rotation else 0.0
        shift = rng.normal(0.0, cfg.shift_mm / 2.0, size=2).clip(-cfg.shift_mm, cfg.shift_mm)
        if cfg.p_away > 0 and rng.random() < cfg.p_away:
            cy, cx = _away_from_heart((cy, cx), item.labels.shape, spacing, cfg, rng)
        cy += shift[0] / spacing[0]
        cx += shift[1] / spacing[1]
        tf = pre.CropTransform.make(
            (cy, cx),
            spacing,
            angle_rad=ang,
            scale=float(rng.uniform(*cfg.scale_range)),
            flip=bool(rng.random() < cfg.p_flip),
            size=size,
        )
        shifts = rng.normal(0.0, cfg.motion_residue_px, size=(pre.N_CHANNELS, 2)) * rng.uniform(0, 1)
    else:
        tf = pre.CropTransform.make((cy, cx), spacing, size=size)
        shifts = None
    coords = tf.coordinates()
    x = pre.sample_channels(temporal.enhancement, coords, shifts_px=shifts)
    if augment:
        x = perturb_channels(x, cfg, rng)
    x = pre.normalise_crop(x)
    y = pre.sample_labels(np.asarray(item.labels), coords)
    pts = np.zeros((len(POINT_NAMES), 2))
    has = np.zeros(len(POINT_NAMES), dtype=np.float32)
    known = [item.points_yx.get(name) for name in POINT_NAMES]
    if all(p is not None for p in known) and (y == 1).any() and (y == 3).any():
        vu = np.stack([tf.original_to_grid(np.array([p[0]]), np.array([p[1]]))[:, 0] for p in known])  # type: ignore[index]
        order = junction_order(vu, y)
        for i, j in enumerate(order):
            if 2 <= vu[j, 0] < size - 2 and 2 <= vu[j, 1] < size - 2:
                pts[i] = vu[j]
                has[i] = 1.0
    heat = gaussian_heatmap(pts, size, POINT_SIGMA_PX) * has[:, None, None]
    return x, y, heat, has
