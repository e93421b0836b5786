"""Drawn test objects: an LV ring, its blood pool and an RV crescent with simple dynamics.

Not a physical phantom (that is :mod:`qperf.phantom`): a few geometric shapes with
gamma-variate enhancement, enough to unit-test pre-processing, post-processing, metrics and
the training loop with exactly known labels and insertion points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from qperf.segmentation.augment import AnnotatedSlice
from qperf.types import PerfusionSeries


def ring_labels(
    shape: tuple[int, int],
    centre_yx: tuple[float, float],
    r_endo_px: float,
    r_epi_px: float,
    *,
    rv: bool = True,
    rv_angle_rad: float = np.pi,
) -> tuple[NDArray[np.int16], dict[str, tuple[float, float]]]:
    """Label map (y, x) of a circular LV ring with an RV crescent, and the two junction points.

    The RV is the part of a disc (centred ``1.6 r_epi`` away in direction ``rv_angle_rad``,
    measured as ``atan2(dy, dx)``) outside the LV epicardium. The junction points are where
    the RV's outer circle meets the epicardial circle; "anterior" is the one with the smaller
    row index (up in the image).
    """
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    cy, cx = centre_yx
    r = np.hypot(yy - cy, xx - cx)
    labels = np.zeros(shape, dtype=np.int16)
    points: dict[str, tuple[float, float]] = {}
    if rv:
        d = 1.6 * r_epi_px
        rv_r = 1.25 * r_epi_px
        ry, rx = cy + d * np.sin(rv_angle_rad), cx + d * np.cos(rv_angle_rad)
        rv_mask = (np.hypot(yy - ry, xx - rx) <= rv_r) & (r > r_epi_px + 1.5)
        labels[rv_mask] = 3
        # Intersection of the circles |p - c| = r_epi and |p - rv_c| = rv_r.
        a = (r_epi_px**2 - rv_r**2 + d**2) / (2 * d)
        h = np.sqrt(max(r_epi_px**2 - a**2, 0.0))
        ux, uy = np.cos(rv_angle_rad), np.sin(rv_angle_rad)
        p1 = (cy + a * uy + h * ux, cx + a * ux - h * uy)
        p2 = (cy + a * uy - h * ux, cx + a * ux + h * uy)
        ant, inf = (p1, p2) if p1[0] < p2[0] else (p2, p1)
        points = {"anterior": (float(ant[0]), float(ant[1])), "inferior": (float(inf[0]), float(inf[1]))}
    labels[(r > r_endo_px) & (r <= r_epi_px)] = 2
    labels[r <= r_endo_px] = 1
    return labels, points


def ring_series(
    labels: NDArray[np.integer],
    *,
    n_frames: int = 50,
    frame_interval_s: float = 1.0,
    spacing_mm: tuple[float, float] = (1.8, 1.8),
    noise: float = 0.02,
    scale: float = 1000.0,
    n_pd_frames: int = 0,
    seed: int = 0,
) -> PerfusionSeries:
    """A signal series whose regions enhance like RV, LV, myocardium and background tissue."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * frame_interval_s
    t_arrival = 8.0

    def gv(t0: float, tmax: float, amp: float) -> NDArray[np.float64]:
        tt = np.clip(t - t0, 0, None)
        return amp * (tt / tmax) ** 3 * np.exp(3 * (1 - tt / tmax))

    curves = {
        0: 0.03 * gv(t_arrival + 8, 12, 1.0),
        1: gv(t_arrival + 4, 6, 1.0) + 0.15 * (t > t_arrival + 12),
        2: 0.25 * gv(t_arrival + 6, 10, 1.0) + 0.08 * (t > t_arrival + 14),
        3: gv(t_arrival, 5, 1.0) + 0.12 * (t > t_arrival + 8),
    }
    base = {0: 0.1, 1: 0.12, 2: 0.1, 3: 0.12}
    data = np.zeros((n_frames,) + labels.shape, dtype=np.float64)
    for k, c in curves.items():
        m = labels == k
        data[:, m] = (base[k] + c)[:, None]
    data += rng.normal(0, noise, data.shape)
    data = np.abs(data) * scale
    if n_pd_frames:
        pd = np.full((n_pd_frames,) + labels.shape, 0.5 * scale) + rng.normal(
            0, noise * scale, (n_pd_frames,) + labels.shape
        )
        data = np.concatenate([np.abs(pd), data])
        t = np.concatenate([t[0] - frame_interval_s * np.arange(n_pd_frames, 0, -1), t])
    return PerfusionSeries(data.astype(np.float32), t, spacing_mm=spacing_mm, n_pd_frames=n_pd_frames)


def random_ring_slice(rng: np.random.Generator, shape: tuple[int, int] = (160, 160)) -> AnnotatedSlice:
    """A randomised drawn slice (position, size, RV direction, noise) with its labels."""
    ny, nx = shape
    spacing = float(rng.uniform(1.6, 2.4))
    cy = ny / 2 + rng.uniform(-0.1, 0.1) * ny
    cx = nx / 2 + rng.uniform(-0.1, 0.1) * nx
    r_endo = rng.uniform(12, 22) / spacing
    r_epi = r_endo + rng.uniform(7, 12) / spacing
    labels, pts = ring_labels(shape, (cy, cx), r_endo, r_epi, rv_angle_rad=float(rng.uniform(0.6, 1.4) * np.pi))
    series = ring_series(
        labels,
        n_frames=int(rng.integers(40, 70)),
        frame_interval_s=float(rng.uniform(0.7, 1.2)),
        spacing_mm=(spacing, spacing),
        noise=float(rng.uniform(0.005, 0.03)),
        seed=int(rng.integers(1 << 30)),
    )
    return AnnotatedSlice(series, labels, pts)
