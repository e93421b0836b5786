"""Respiratory motion of the phantom: breathing traces, displacement fields, their inverses, warping.

Conventions (pixel units, ``(dy, dx)`` components):

- ``ref_to_moving[t]`` (2, y, x): the anatomy at reference pixel ``p`` appears at ``p + d(p)``
  in moving frame ``t``;
- ``moving_to_ref[t]`` (2, y, x): moving pixel ``q`` shows the reference anatomy at
  ``q + m(q)``; ``m`` is the inverse of ``d`` (``m(q) = -d(q + m(q))``).

A moving frame is rendered by sampling the reference frame at ``q + m(q)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Breathing:
    """A free-breathing trace ``r(t)`` (about 0 at end-expiration, 1 at a normal inspiration)."""

    time_s: NDArray[np.float64]
    depth: NDArray[np.float64]

    def at(self, time_s: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.interp(time_s, self.time_s, self.depth))

    @classmethod
    def draw(cls, rng: np.random.Generator, t_start_s: float, t_stop_s: float, dt_s: float = 0.02) -> Breathing:
        """Irregular period (about 3-6 s) and depth, occasional deep breaths and breath-holds."""
        t = np.arange(t_start_s - 1.0, t_stop_s + 1.0, dt_s)
        period = rng.uniform(3.0, 6.0)
        # slowly varying frequency: smooth random modulation
        n_knots = max(int((t[-1] - t[0]) / 4.0) + 2, 3)
        knots = np.linspace(t[0], t[-1], n_knots)
        freq = (1.0 / period) * (1.0 + np.interp(t, knots, rng.normal(0.0, 0.15, n_knots)))
        phase = 2 * np.pi * np.cumsum(np.clip(freq, 0.08, None)) * dt_s + rng.uniform(0, 2 * np.pi)
        cycle = np.floor(phase / (2 * np.pi)).astype(int)
        cycle -= cycle.min()
        amp = rng.uniform(0.6, 1.25, cycle.max() + 1)
        for _ in range(int(rng.poisson(1.0))):  # deep breaths
            amp[rng.integers(0, amp.size)] *= rng.uniform(1.8, 2.8)
        depth = amp[cycle] * ((1.0 - np.cos(phase)) / 2.0) ** 1.5
        if rng.random() < 0.3:  # breath-hold at the start, released with a gasp
            hold_end = t_start_s + rng.uniform(8.0, 25.0)
            level = rng.uniform(0.2, 0.6)
            ramp = np.clip((t - hold_end) / 1.5, 0.0, 1.0)
            depth = np.where(
                t < hold_end, level, (1 - ramp) * level + ramp * depth * (1.0 + 0.8 * np.exp(-(t - hold_end) / 6.0))
            )
        return cls(time_s=t, depth=depth)


@dataclass(frozen=True)
class MotionModel:
    """Static in-plane displacement patterns of one slice; ``d_t = r(t) F + e_t W``.

    ``F`` (2, y, x) is the displacement (pixels) at depth 1 of breathing: heart and liver follow
    the diaphragm, the chest wall moves less, plus a small affine deformation of the heart and
    smooth random non-rigid bumps, and an expansion or contraction of the heart standing in for
    through-plane motion. ``W`` (y, x) is the heart weight carrying the per-beat
    trigger jitter ``e_t`` (2,) in pixels. The patterns are held on a grid padded by ``pad``
    pixels so that the inversion can look outside the image.
    """

    padded: NDArray[np.float32]  # (y + 2 pad, x + 2 pad, 3): F_y, F_x, W
    pad: int

    @property
    def field(self) -> NDArray[np.float32]:
        p = self.pad
        return np.ascontiguousarray(np.moveaxis(self.padded[p:-p, p:-p, :2], -1, 0))

    @property
    def heart_weight(self) -> NDArray[np.float32]:
        p = self.pad
        return np.ascontiguousarray(self.padded[p:-p, p:-p, 2])

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float],
        heart_yx: tuple[float, float],
        motion_yx_mm: tuple[float, float],
        scale: float = 1.0,
        radial_scale: float = 0.0,
    ) -> MotionModel:
        """Random patterns; ``radial_scale`` is the in-plane expansion of the heart per unit breathing
        depth that mimics through-plane motion (the slice cutting a more basal or apical level)."""
        ny, nx = shape
        dy, dx = spacing_mm
        pad = int(np.ceil(40.0 / min(dy, dx))) + 2
        yy, xx = np.meshgrid(
            np.arange(-pad, ny + pad, dtype=np.float64), np.arange(-pad, nx + pad, dtype=np.float64), indexing="ij"
        )
        ym = (yy - heart_yx[0]) * dy
        xm = (xx - heart_yx[1]) * dx
        sigma = rng.uniform(60.0, 90.0)
        w = np.exp(-(ym * ym + xm * xm) / (2 * sigma * sigma))
        wall = rng.uniform(0.1, 0.35)
        my, mx = motion_yx_mm
        fy = (w + wall * (1 - w)) * my
        fx = (w + wall * (1 - w)) * mx
        # affine deformation of the heart region (rotation and anisotropic scaling)
        rot = rng.normal(0.0, 0.03)
        sy, sx = rng.normal(0.0, 0.03, 2)
        fy += w * ((sy + radial_scale) * ym + rot * xm)
        fx += w * (-rot * ym + (sx + radial_scale) * xm)
        for _ in range(3):  # smooth non-rigid bumps
            cy, cx = rng.uniform(-60, 60, 2)
            width = rng.uniform(25.0, 50.0)
            g = np.exp(-((ym - cy) ** 2 + (xm - cx) ** 2) / (2 * width * width))
            amp = rng.normal(0.0, 1.5, 2)
            fy += amp[0] * g
            fx += amp[1] * g
        padded = np.stack([fy / dy * scale, fx / dx * scale, w], axis=-1).astype(np.float32)
        return cls(padded=padded, pad=pad)

    def displacement(self, depth: NDArray[np.float64], jitter_px: NDArray[np.float64]) -> NDArray[np.float32]:
        """``ref_to_moving`` fields (t, 2, y, x) for breathing depths (t,) and jitters (t, 2)."""
        d = depth.astype(np.float32)[:, None, None, None] * self.field[None]
        d += jitter_px.astype(np.float32)[:, :, None, None] * self.heart_weight[None, None]
        return np.asarray(d, dtype=np.float32)

    def _iterate(
        self,
        qy: NDArray[np.float32],
        qx: NDArray[np.float32],
        my: NDArray[np.float32],
        mx: NDArray[np.float32],
        depth: NDArray[np.float32],
        jy: NDArray[np.float32],
        jx: NDArray[np.float32],
        iterations: int,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Fixed-point steps ``m <- -d(q + m)`` at padded-grid points ``q`` (t, n)."""
        nyp, nxp = self.padded.shape[:2]
        chans = [np.ascontiguousarray(self.padded[..., k]).reshape(-1) for k in range(3)]
        for _ in range(iterations):
            index, y, x = _clamped_cells(qy + my, qx + mx, nyp, nxp)
            fy, fx, w = (_gather_bilinear(c, index, y, x, nxp) for c in chans)
            my = -(depth * fy + jy * w)
            mx = -(depth * fx + jx * w)
        return my, mx

    def inverse(
        self, depth: NDArray[np.float64], jitter_px: NDArray[np.float64], coarse: int = 4, iterations: int = 7
    ) -> NDArray[np.float32]:
        """``moving_to_ref`` fields (t, 2, y, x): fixed-point inversion on a coarse grid, cubic upsampling."""
        p = self.pad
        nyp, nxp = self.padded.shape[:2]
        ny, nx = nyp - 2 * p, nxp - 2 * p
        nt = depth.shape[0]
        r = depth.astype(np.float32)[:, None]
        jy = jitter_px[:, 0:1].astype(np.float32)
        jx = jitter_px[:, 1:2].astype(np.float32)
        cy = np.arange(0, ny + coarse - 1, coarse, dtype=np.float32)
        cx = np.arange(0, nx + coarse - 1, coarse, dtype=np.float32)
        qy, qx = np.meshgrid(cy + p, cx + p, indexing="ij")
        qy = np.broadcast_to(qy.ravel(), (nt, qy.size))
        qx = np.broadcast_to(qx.ravel(), (nt, qx.size))
        zero = np.zeros(qy.shape, dtype=np.float32)
        my, mx = self._iterate(qy, qx, zero, zero, r, jy, jx, iterations)
        coarse_m = np.stack([my, mx], axis=1).reshape(nt, 2, cy.size, cx.size)
        # separable cubic (Keys) upsampling to the full grid: two small matrix products
        up_y = _cubic_upsampling(ny, cy.size, coarse)
        up_x = _cubic_upsampling(nx, cx.size, coarse)
        full = np.matmul(np.matmul(up_y, coarse_m), up_x.T)
        return np.ascontiguousarray(full, dtype=np.float32)


def _cubic_upsampling(n_out: int, n_in: int, step: int) -> NDArray[np.float32]:
    """Matrix (n_out, n_in) of Keys cubic interpolation from a grid of spacing ``step`` (edge-clamped)."""
    pos = np.arange(n_out) / step
    base = np.floor(pos).astype(int)
    frac = pos - base
    out = np.zeros((n_out, n_in), dtype=np.float64)
    a = -0.5
    for k in (-1, 0, 1, 2):
        x = np.abs(frac - k)
        w = np.where(
            x <= 1,
            (a + 2) * x**3 - (a + 3) * x**2 + 1,
            np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
        )
        idx = np.clip(base + k, 0, n_in - 1)
        np.add.at(out, (np.arange(n_out), idx), w)
    return out.astype(np.float32)


def bilinear(
    values: NDArray[np.floating], shape: tuple[int, int], y: NDArray[np.float64], x: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Bilinear samples of ``values`` (c, ny*nx) at points ``y, x`` (any equal shapes), edge-clamped.

    Returns (c, *y.shape).
    """
    ny, nx = shape
    y = np.clip(y, 0.0, ny - 1.0)
    x = np.clip(x, 0.0, nx - 1.0)
    y0 = np.minimum(y.astype(np.int64), ny - 2) if ny > 1 else np.zeros(y.shape, np.int64)
    x0 = np.minimum(x.astype(np.int64), nx - 2) if nx > 1 else np.zeros(x.shape, np.int64)
    wy = y - y0
    wx = x - x0
    i00 = y0 * nx + x0
    out = []
    for v in values:
        a = v[i00]
        b = v[i00 + 1]
        c = v[i00 + nx]
        d = v[i00 + nx + 1]
        out.append((a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy)
    return np.stack(out)


def _bilinear_setup(
    moving_to_ref: NDArray[np.float32], ny: int, nx: int
) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.float32]]:
    """Flat indices (t, y, x) of the top-left neighbours and the fractional offsets ``wy, wx``."""
    y = moving_to_ref[:, 0] + np.arange(ny, dtype=np.float32)[:, None]
    x = moving_to_ref[:, 1] + np.arange(nx, dtype=np.float32)[None, :]
    return _clamped_cells(y, x, ny, nx)


def _clamped_cells(
    y: NDArray[np.float32], x: NDArray[np.float32], ny: int, nx: int
) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.float32]]:
    """Positions clamped to the grid: flat indices of their top-left neighbours and the offsets.

    ``y`` and ``x`` (fresh arrays) are overwritten with the fractional offsets ``wy, wx``.
    """
    np.clip(y, 0.0, ny - 1.001, out=y)
    np.clip(x, 0.0, nx - 1.001, out=x)
    y0 = y.astype(np.int32)
    x0 = x.astype(np.int32)
    y -= y0
    x -= x0
    index = y0 * np.int32(nx)
    index += x0
    return index, y, x


def _gather_bilinear(
    flat: NDArray[np.float32], index: NDArray[np.int32], wy: NDArray[np.float32], wx: NDArray[np.float32], nx: int
) -> NDArray[np.float32]:
    a = flat.take(index)
    b = flat.take(index + 1)
    b -= a
    b *= wx
    a += b
    lower = index + nx
    c = flat.take(lower)
    d = flat.take(lower + 1)
    d -= c
    d *= wx
    c += d
    c -= a
    c *= wy
    a += c
    return np.asarray(a, dtype=np.float32)


def warp_frames(frames: NDArray[np.float32], moving_to_ref: NDArray[np.float32]) -> NDArray[np.float32]:
    """Moving frames (t, y, x): each frame ``t`` sampled at ``q + m_t(q)`` (bicubic, edge-clamped).

    Bicubic, not bilinear: an acquisition is a snapshot of the moved anatomy, and bilinear
    resampling at sub-pixel displacements blurs every moving frame. With it, the thin
    myocardium of a 2.9 mm phantom took in the bright epicardial fat: its pre-contrast signal
    rose 16-17 % over the static phantom's (bicubic: 1.5-5 %), which lowered its baseline-
    corrected curves and the fitted flow.
    """
    from qperf.motion.fields import warp_images

    return warp_images(np.ascontiguousarray(frames, dtype=np.float32), moving_to_ref, mode="bicubic")


def warp_static(images: NDArray[np.float32], moving_to_ref: NDArray[np.float32]) -> NDArray[np.float32]:
    """Static images (c, y, x) seen through every moving frame: (c, t, y, x), bilinear, edge-clamped."""
    c, ny, nx = images.shape
    index, wy, wx = _bilinear_setup(moving_to_ref, ny, nx)
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(c, -1)
    return np.stack([_gather_bilinear(flat[k], index, wy, wx, nx) for k in range(c)])
