"""A small moving first-pass series with known displacements, for tests and benchmarks.

The anatomy (body ellipse with texture, chest wall, LV blood pool, myocardial ring, RV) lives
in a reference frame; each frame shows it with its own contrast (gamma-variate first pass: RV,
then LV, then myocardium) and moved by a known smooth pull field
``d_t``: ``frame_t(q) = anatomy_t(q + d_t(q))``. The field is a respiratory translation that is
largest over the heart and smaller at the body wall (so the motion is non-rigid), plus a
smooth deformation. Leading proton-density frames have a flat, contrast-free appearance.

This is a registration test bed, not a physiological model (see :mod:`qperf.phantom`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qperf.motion.fields import warp_images
from qperf.types import LABEL_LV, LABEL_MYO, LABEL_RV, PerfusionSeries


@dataclass(frozen=True)
class MovingSeriesTruth:
    """Ground truth of :func:`simulate_moving_series`.

    Attributes
    ----------
    ref_to_frame_px : ndarray, float32, (t, 2, y, x)
        Pull fields ``d_t``: ``frame_t(q) = anatomy_t(q + d_t(q))`` (pixels, dy dx).
    labels_ref : ndarray, int16, (y, x)
        Labels of the anatomy in the reference frame (0 bg, 1 LV, 2 myocardium, 3 RV).
    labels_moving : ndarray, int16, (t, y, x)
        Labels of every frame as acquired.
    heart_mask : ndarray, bool, (y, x)
        LV, myocardium and RV in the reference frame.
    """

    ref_to_frame_px: NDArray[np.float32]
    labels_ref: NDArray[np.int16]
    labels_moving: NDArray[np.int16]
    heart_mask: NDArray[np.bool_]


def _gamma_variate(t: NDArray[np.float64], t0: float, peak_s: float, alpha: float = 3.0) -> NDArray[np.float64]:
    x = np.clip(t - t0, 0, None) / max(peak_s - t0, 1e-6)
    return np.asarray(x**alpha * np.exp(alpha * (1 - x)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> NDArray[np.float64]:
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma_px)
    return np.asarray(field / (field.std() + 1e-12))


def simulate_moving_series(
    seed: int = 0,
    *,
    n_frames: int = 40,
    shape: tuple[int, int] = (96, 96),
    n_pd_frames: int = 2,
    shift_px: float = 5.0,
    deform_px: float = 1.5,
    noise: float = 0.01,
    moving: bool = True,
) -> tuple[PerfusionSeries, MovingSeriesTruth]:
    """Simulate a moving first-pass series with known motion.

    Parameters
    ----------
    seed : int
        Random seed (texture, breathing phase and deformation).
    n_frames : int
        Total frames including ``n_pd_frames`` proton-density frames.
    shape : (int, int)
        Image rows and columns.
    shift_px : float
        Amplitude of the respiratory translation over the heart, pixels.
    deform_px : float
        Amplitude of the extra smooth deformation, pixels.
    noise : float
        Standard deviation of additive Gaussian noise (peak blood signal is about 1).
    moving : bool
        False gives the same series without motion.

    Returns
    -------
    series : PerfusionSeries
        Units "signal", spacing 1.5 mm, one frame per second.
    truth : MovingSeriesTruth
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    cy, cx = ny * 0.48, nx * 0.52
    scale = min(ny, nx) / 96.0
    r = np.hypot(yy - cy, xx - cx)
    body = ((yy - ny / 2) / (0.46 * ny)) ** 2 + ((xx - nx / 2) / (0.48 * nx)) ** 2 < 1
    labels = np.zeros(shape, np.int16)
    rv = (np.hypot(yy - cy + 2 * scale, xx - cx + 15 * scale) < 12 * scale) & (r >= 13.5 * scale)
    labels[rv] = LABEL_RV
    labels[(r >= 8 * scale) & (r < 13.5 * scale)] = LABEL_MYO
    labels[r < 8 * scale] = LABEL_LV
    texture = 0.08 * _smooth_noise(rng, shape, 2.0 * scale)
    wall = np.abs(((yy - ny / 2) / (0.46 * ny)) ** 2 + ((xx - nx / 2) / (0.48 * nx)) ** 2 - 0.85) < 0.08
    liver = np.hypot(yy - ny * 0.8, xx - nx * 0.3) < 14 * scale
    tissue = body * (0.25 + texture) + 0.25 * wall + 0.15 * liver

    n_pd = n_pd_frames
    t_s = np.arange(n_frames, dtype=np.float64)
    td = t_s[n_pd:] - t_s[n_pd]
    rv_c = 1.0 * _gamma_variate(td, 4.0, 8.0)
    lv_c = 0.9 * _gamma_variate(td, 7.0, 12.0) + 0.15 * _gamma_variate(td, 14.0, 22.0)
    myo_c = 0.25 * _gamma_variate(td, 9.0, 17.0, 2.0)
    frames_ref = np.empty((n_frames, ny, nx), np.float64)
    pd = body * (0.8 + 0.05 * texture) + 0.1 * (labels > 0)
    frames_ref[:n_pd] = pd
    for i in range(n_frames - n_pd):
        img = tissue.copy()
        img[labels == LABEL_RV] = 0.1 + rv_c[i]
        img[labels == LABEL_LV] = 0.1 + lv_c[i]
        img[labels == LABEL_MYO] = 0.15 + myo_c[i] + 0.5 * texture[labels == LABEL_MYO] * 0.3
        frames_ref[n_pd + i] = img

    disp = np.zeros((n_frames, 2, ny, nx), np.float32)
    if moving:
        period = rng.uniform(4.0, 6.0)
        phase = rng.uniform(0, 2 * np.pi)
        resp = np.sin(2 * np.pi * t_s / period + phase)
        drift = np.linspace(-0.3, 0.3, n_frames)
        envelope = 0.45 + 0.55 * np.exp(-(r**2) / (2 * (28 * scale) ** 2))
        bump_y = _smooth_noise(rng, shape, 10 * scale)
        bump_x = _smooth_noise(rng, shape, 10 * scale)
        deform_t = rng.uniform(-1, 1, n_frames)
        for i in range(n_frames):
            ty = shift_px * (resp[i] + drift[i])
            tx = 0.4 * shift_px * resp[i]
            disp[i, 0] = ty * envelope + deform_px * deform_t[i] * bump_y
            disp[i, 1] = tx * envelope + deform_px * deform_t[i] * bump_x
    data = warp_images(frames_ref.astype(np.float32), disp, mode="bicubic")
    data = data + noise * rng.standard_normal(data.shape).astype(np.float32)
    labels_moving = np.rint(warp_images(np.broadcast_to(labels, (n_frames, ny, nx)), disp, mode="nearest"))
    series = PerfusionSeries(
        data=np.clip(data, 0, None),
        time_s=t_s,
        spacing_mm=(1.5, 1.5),
        n_pd_frames=n_pd,
        name="simulated moving series",
    )
    truth = MovingSeriesTruth(
        ref_to_frame_px=disp,
        labels_ref=labels,
        labels_moving=labels_moving.astype(np.int16),
        heart_mask=labels > 0,
    )
    return series, truth
