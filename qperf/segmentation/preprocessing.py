"""Pre-processing of a 2D+T perfusion series for the segmentation network.

The network sees a fixed representation whatever the scanner, units or timing:

1. Proton-density frames are dropped; the dynamic frames are resampled onto a fixed temporal
   grid (``N_CHANNELS`` samples ``DT_S`` apart) aligned on the arrival of the bolus, so the
   contrast phases fall on the same channels for every scan (any frame count, any timing).
2. Each pixel's pre-contrast baseline is subtracted and the result divided by a robust maximum
   of the enhancement, so raw signal, coil-corrected signal and Gd concentration in any
   scaling give similar inputs.
3. The heart is located at full field of view from the enhancement of the blood pools, and a
   ``CROP_PX`` x ``CROP_PX`` window at ``GRID_SPACING_MM`` is sampled around it.

All spatial sampling goes through one affine map from the network grid to the original pixel
grid (:class:`CropTransform`), so training augmentation (rotation, scaling, flips, shifts) and
inference share the same code, and network outputs map back exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf.errors import ValidationError
from qperf.types import PerfusionSeries

#: Isotropic in-plane spacing of the network grid, mm.
GRID_SPACING_MM = 1.5
#: Side of the network's crop in pixels (CROP_PX * GRID_SPACING_MM = 168 mm).
CROP_PX = 112
#: Number of temporal channels and their spacing, s.
N_CHANNELS = 40
DT_S = 1.5
#: Channel at which the bolus arrives (the foot of the first pass in the right heart).
FOOT_CHANNEL = 6
#: Channels up to this one hold the first pass through both ventricles (21 s after the foot).
FIRST_PASS_END = FOOT_CHANNEL + 14
#: Heart localisation: channels averaged (12 s after the arrival) and smoothing scale, mm.
HEART_CHANNELS_END = FOOT_CHANNEL + 8
#: Channels of the late level (30-45 s after the arrival) that the localisation discounts.
LATE_CHANNELS = (FOOT_CHANNEL + 20, FOOT_CHANNEL + 30)
HEART_SCALE_MM = 20.0
#: Heart candidates: local maxima of the localisation score this far apart (mm) and scoring at
#: least this fraction of the best.
CANDIDATE_SEPARATION_MM = 40.0
CANDIDATE_MIN_SCORE = 0.1
#: RV-to-LV arrival delay (s) the time axis is rescaled to (:func:`normalise_timing`): the
#: median measured on 16 held-out phantom AIF series of the kind the network was trained on
#: (10th-90th percentile 2.7-3.9 s; 3.2 s on 30 phantom slices; training stretched time
#: axes by 0.6-1.7).
REFERENCE_DELAY_S = 3.4
#: Delays within this factor of the reference are left as they are (the network was trained
#: on time axes stretched by 0.6-1.7): rescaling them changed the phantom results by noise only.
TIMING_BAND = 1.5
#: The time axis is stretched or compressed by at most this factor.
MAX_TIME_SCALE = 4.0
#: The foot is where the bolus curve first reaches this fraction of its peak rise.
FOOT_FRACTION = 0.15


@dataclass(frozen=True)
class TemporalInput:
    """A series on the network's temporal grid, still on its own pixel grid.

    Attributes
    ----------
    enhancement : ndarray, float32, shape (N_CHANNELS, y, x)
        Baseline-subtracted, normalised intensity (about 1 at the blood-pool peak).
    foot_time_s : float
        Time of the bolus arrival used to align the grid (at channel ``FOOT_CHANNEL``).
    scale : float
        The robust maximum enhancement the data were divided by (input units).
    """

    enhancement: NDArray[np.float32]
    foot_time_s: float
    scale: float


def _check_series(series: PerfusionSeries) -> None:
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {type(series).__name__}")
    if series.n_frames - series.n_pd_frames < 4:
        raise ValidationError(
            f"series: expected at least 4 dynamic frames for segmentation, found {series.n_frames - series.n_pd_frames}"
        )
    ny, nx = series.shape
    if min(ny, nx) < 8:
        raise ValidationError(f"series: expected an image of at least 8 x 8 pixels, found {ny} x {nx}")


def bolus_curve(dynamic: NDArray[np.float32]) -> NDArray[np.float64]:
    """Enhancement of the brightest-enhancing pixels over time.

    Parameters
    ----------
    dynamic : ndarray, shape (t, y, x)
        Dynamic frames (no PD frames).

    Returns
    -------
    ndarray, float64, shape (t,)
        99.5th percentile over pixels of ``frame - baseline`` (baseline: median of the
        first frames); dominated by the blood pools during the first pass.
    """
    # Large images: every other pixel each way (the statistic is the same, four times faster).
    step = 2 if dynamic.shape[1] * dynamic.shape[2] > 20_000 else 1
    dynamic = dynamic[:, ::step, ::step]
    n_base = max(1, min(3, dynamic.shape[0] // 8))
    base = np.median(dynamic[:n_base], axis=0)
    diff = dynamic - base[None]
    flat = diff.reshape(diff.shape[0], -1)
    return np.asarray(np.percentile(flat, 99.5, axis=1), dtype=np.float64)


def bolus_foot(curve: NDArray[np.float64], time_s: NDArray[np.float64]) -> tuple[float, int]:
    """Arrival time of the bolus and the index of its peak, from :func:`bolus_curve`.

    The foot is the last crossing, before the peak, of ``FOOT_FRACTION`` of the rise from the
    pre-contrast level to the peak (linear interpolation between frames). Aligning on the
    arrival rather than on the peak does not depend on which ventricle enhances most.
    """
    dt = float(np.median(np.diff(time_s))) if time_s.size > 1 else 1.0
    # Smoothing of 1 s whatever the frame interval, so the foot does not depend on the sampling.
    smooth = ndimage.gaussian_filter1d(curve, sigma=1.0 / max(dt, 1e-3), mode="nearest") if curve.size > 4 else curve
    peak_idx = int(np.argmax(smooth))
    floor = float(np.median(smooth[: max(1, min(3, peak_idx))]))
    level = floor + FOOT_FRACTION * (float(smooth[peak_idx]) - floor)
    below = np.nonzero(smooth[: peak_idx + 1] <= level)[0]
    if below.size == 0:
        return float(time_s[0]), peak_idx
    i = int(below[-1])
    if i >= peak_idx:
        return float(time_s[peak_idx]), peak_idx
    f = (level - smooth[i]) / max(float(smooth[i + 1] - smooth[i]), 1e-12)
    return float(time_s[i] + np.clip(f, 0.0, 1.0) * (time_s[i + 1] - time_s[i])), peak_idx


def rescale_time(series: PerfusionSeries, factor: float) -> PerfusionSeries:
    """The same series with its time axis stretched by ``factor`` about its first frame."""
    t = np.asarray(series.time_s, dtype=np.float64)
    return dataclasses.replace(series, time_s=t[0] + (t - t[0]) * float(factor))


def timing_factor(delay_s: float | None) -> float:
    """Smallest stretch of the time axis that brings a measured RV-to-LV delay into the range
    the network knows, :data:`REFERENCE_DELAY_S` divided or multiplied by :data:`TIMING_BAND`
    (1 when the delay is in that range or unknown)."""
    if delay_s is None or not np.isfinite(delay_s) or delay_s <= 0:
        return 1.0
    target = float(np.clip(delay_s, REFERENCE_DELAY_S / TIMING_BAND, REFERENCE_DELAY_S * TIMING_BAND))
    return float(np.clip(target / delay_s, 1.0 / MAX_TIME_SCALE, MAX_TIME_SCALE))


def transit_delay_s(series: PerfusionSeries) -> float | None:
    """RV-to-LV arrival delay of the bolus measured in the images, s on the series' clock.

    The median arrival (half of the first-pass peak) of the late group of strongly enhancing
    pixels minus that of the early group (:meth:`qperf.aif.ClassicalLvDetector.groups`);
    None when the two groups cannot be told apart.
    """
    from qperf.aif.detect import ClassicalLvDetector

    ny, nx = series.shape
    if ny * nx > 20_000:
        # Large images: every other pixel each way (the blood pools stay several pixels wide).
        series = dataclasses.replace(
            series,
            data=np.ascontiguousarray(series.data[:, ::2, ::2]),
            spacing_mm=(2.0 * series.spacing_mm[0], 2.0 * series.spacing_mm[1]),
        )
    try:
        return ClassicalLvDetector().groups(series).delay_s
    except ValidationError:
        return None


def normalise_timing(series: PerfusionSeries, delay_s: float | None = None) -> tuple[PerfusionSeries, float]:
    """The series on a clock where its measured RV-to-LV delay is one the network knows.

    The network reads the contrast dynamics in seconds, but files often record no frame
    interval and circulation speeds differ: rescaling to the delay measured in the data makes
    the input independent of the clock. Returns the (possibly) rescaled series and the factor.
    """
    factor = timing_factor(transit_delay_s(series) if delay_s is None else delay_s)
    return (rescale_time(series, factor) if factor != 1.0 else series), factor


def temporal_input(
    series: PerfusionSeries, *, align_jitter_s: float = 0.0, rng: np.random.Generator | None = None
) -> TemporalInput:
    """Resample a series onto the fixed, bolus-aligned temporal grid and normalise it.

    Parameters
    ----------
    series : PerfusionSeries
        Any units, with or without PD frames, any frame count and timing (at least 4 dynamic frames).
    align_jitter_s : float
        Training augmentation: the alignment point is moved by a uniform random offset up to
        this many seconds (0 at inference).
    rng : numpy Generator, optional
        Needed when ``align_jitter_s`` > 0.

    Returns
    -------
    TemporalInput
        Channel ``c`` samples time ``foot + (c - FOOT_CHANNEL) * DT_S`` (clamped to the
        acquired range); per-pixel baseline from the frames before the foot.
    """
    _check_series(series)
    dyn = np.asarray(series.dynamic, dtype=np.float32)
    t = np.asarray(series.dynamic_time_s, dtype=np.float64)
    curve = bolus_curve(dyn)
    foot_s, peak_idx = bolus_foot(curve, t)
    n_base = int(np.clip(np.count_nonzero(t < foot_s - 1.0), 1, 8))
    baseline = np.mean(dyn[:n_base], axis=0)
    if align_jitter_s > 0 and rng is not None:
        foot_s += float(rng.uniform(-align_jitter_s, align_jitter_s))
    grid_s = foot_s + (np.arange(N_CHANNELS) - FOOT_CHANNEL) * DT_S
    # Linear interpolation in time, clamped at the ends.
    pos = np.interp(grid_s, t, np.arange(t.size, dtype=np.float64))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t.size - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]
    resampled = dyn[lo] * (1.0 - w) + dyn[hi] * w
    enh = resampled - baseline[None]
    peak_frame = dyn[peak_idx] - baseline
    scale = float(np.percentile(np.abs(peak_frame), 99.7))
    if not scale > 0:
        scale = float(np.max(np.abs(enh))) or 1.0
    return TemporalInput((enh / scale).astype(np.float32), foot_s, scale)


def locate_heart(enhancement: NDArray[np.float32], spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Centre of the heart, in pixels ``(y, x)``, from the blood pools' enhancement.

    The ventricles fill first and together form the largest early-enhancing structure near the
    centre of the field of view (the aorta fills later and is smaller): the maximum of
    :func:`localisation_score`. This is the first of :func:`heart_candidates`.

    Parameters
    ----------
    enhancement : ndarray, shape (c, y, x)
        Output of :func:`temporal_input`.
    spacing_mm : (dy, dx)
    """
    return heart_candidates(enhancement, spacing_mm, max_candidates=1)[0]


def heart_candidates(
    enhancement: NDArray[np.float32], spacing_mm: tuple[float, float], *, max_candidates: int = 3
) -> list[tuple[float, float]]:
    """Possible heart centres ``(y, x)`` in pixels, best first (see :func:`scored_heart_candidates`)."""
    return [c for c, _ in scored_heart_candidates(enhancement, spacing_mm, max_candidates=max_candidates)]


def localisation_score(enhancement: NDArray[np.float32], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """Map (y, x) of how much each place looks like the centre of the heart, from the dynamics.

    The blood pools enhance first and most, then wash out: the mean enhancement of the first
    12 s after the bolus arrival, less half of the late level (30-45 s after it), so tissue that
    enhances late and keeps rising (liver, spleen, chest-wall muscle) scores low, smoothed at the
    heart's scale (20 mm) and weighted by a broad prior centred on the image.
    """
    dy, dx = spacing_mm
    ny, nx = enhancement.shape[1:]
    early = np.mean(enhancement[:HEART_CHANNELS_END], axis=0).astype(np.float64)
    late = np.mean(enhancement[LATE_CHANNELS[0] : LATE_CHANNELS[1]], axis=0).astype(np.float64)
    early = np.clip(early - 0.5 * np.clip(late, 0.0, None), 0.0, None)
    early = np.clip(early, 0.0, np.percentile(early, 99.9))
    sm = ndimage.gaussian_filter(early, sigma=(HEART_SCALE_MM / dy, HEART_SCALE_MM / dx))
    yy = (np.arange(ny) - (ny - 1) / 2.0)[:, None] * dy
    xx = (np.arange(nx) - (nx - 1) / 2.0)[None, :] * dx
    sigma_mm = 0.3 * max(ny * dy, nx * dx)
    prior = np.exp(-0.5 * (yy**2 + xx**2) / sigma_mm**2)
    return np.asarray(sm * prior)


def scored_heart_candidates(
    enhancement: NDArray[np.float32], spacing_mm: tuple[float, float], *, max_candidates: int = 3
) -> list[tuple[tuple[float, float], float]]:
    """Possible heart centres ``(y, x)`` in pixels with their scores (the best 1), best first.

    The local maxima of :func:`localisation_score`, at least :data:`CANDIDATE_SEPARATION_MM`
    apart and scoring at least :data:`CANDIDATE_MIN_SCORE` of the best. A small heart (an
    apical slice) can score below a large enhancing vessel; the segmenter then tries the next
    candidate.

    Parameters
    ----------
    enhancement : ndarray, shape (c, y, x)
        Output of :func:`temporal_input`.
    spacing_mm : (dy, dx)
    max_candidates : int
        Most centres returned (at least one).
    """
    dy, dx = spacing_mm
    score = localisation_score(enhancement, spacing_mm)
    best = int(np.argmax(score))
    top = float(score.flat[best]) or 1.0
    centres = [(_refine(score, best), 1.0)]
    if max_candidates <= 1:
        return centres
    size = (
        max(3, int(round(2 * CANDIDATE_SEPARATION_MM / dy)) | 1),
        max(3, int(round(2 * CANDIDATE_SEPARATION_MM / dx)) | 1),
    )
    peaks = (score == ndimage.maximum_filter(score, size=size, mode="nearest")) & (score >= CANDIDATE_MIN_SCORE * top)
    order = np.argsort(score[peaks])[::-1]
    flat = np.flatnonzero(peaks)[order]
    for index in flat:
        if len(centres) >= max_candidates:
            break
        cy, cx = _refine(score, int(index))
        if all(np.hypot((cy - py) * dy, (cx - px) * dx) >= CANDIDATE_SEPARATION_MM for (py, px), _ in centres):
            centres.append(((cy, cx), float(score.flat[int(index)]) / top))
    return centres


def _refine(score: NDArray[np.float64], flat_index: int) -> tuple[float, float]:
    """Centroid of the strongly enhancing region around a maximum of the localisation score."""
    iy, ix = np.unravel_index(flat_index, score.shape)
    win = score >= 0.6 * score[iy, ix]
    lab, _ = ndimage.label(win)
    region = lab == lab[iy, ix]
    cy, cx = ndimage.center_of_mass(score * region)
    return float(cy), float(cx)


@dataclass(frozen=True)
class CropTransform:
    """Affine map from network-grid pixels ``(v, u)`` to original pixels ``(y, x)``.

    ``[y, x] = matrix @ [v - c, u - c] + centre_yx`` with ``c = (CROP_PX - 1) / 2``.
    """

    matrix: NDArray[np.float64]
    centre_yx: tuple[float, float]
    size: int = CROP_PX

    @classmethod
    def make(
        cls,
        centre_yx: tuple[float, float],
        spacing_mm: tuple[float, float],
        *,
        angle_rad: float = 0.0,
        scale: float = 1.0,
        flip: bool = False,
        size: int = CROP_PX,
    ) -> CropTransform:
        """Crop of ``size`` pixels at GRID_SPACING_MM * scale, rotated and optionally flipped."""
        dy, dx = spacing_mm
        c, s = np.cos(angle_rad), np.sin(angle_rad)
        rot = np.array([[c, -s], [s, c]])
        if flip:
            rot = rot @ np.diag([1.0, -1.0])
        m = np.diag([1.0 / dy, 1.0 / dx]) @ rot * (GRID_SPACING_MM * scale)
        return cls(m, (float(centre_yx[0]), float(centre_yx[1])), size)

    def grid_to_original(self, v: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Original pixel coordinates ``(2, ...)`` of network pixels ``v`` (rows), ``u`` (columns)."""
        c = (self.size - 1) / 2.0
        vu = np.stack([np.asarray(v, float) - c, np.asarray(u, float) - c])
        yx = np.tensordot(self.matrix, vu, axes=1)
        return yx + np.asarray(self.centre_yx).reshape((2,) + (1,) * (yx.ndim - 1))

    def original_to_grid(self, y: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Network coordinates ``(2, ...)`` of original pixels."""
        c = (self.size - 1) / 2.0
        yx = np.stack([np.asarray(y, float) - self.centre_yx[0], np.asarray(x, float) - self.centre_yx[1]])
        vu = np.tensordot(np.linalg.inv(self.matrix), yx, axes=1)
        return vu + c

    def coordinates(self) -> NDArray[np.float64]:
        """Original coordinates of every network pixel, shape (2, size, size)."""
        v, u = np.mgrid[0 : self.size, 0 : self.size].astype(np.float64)
        return self.grid_to_original(v, u)


def grid_sample(
    stack: NDArray[np.floating], coords: NDArray[np.float64], *, outside: float = 0.0
) -> NDArray[np.float32]:
    """Bilinear sampling of all channels of ``stack`` (c, y, x) at ``coords`` (2, v, u) in one pass.

    Points outside the image (beyond the outer pixel centres) take the value ``outside``
    (``0.0`` or NaN); inside, the result equals ``scipy.ndimage.map_coordinates`` with
    ``order=1``.
    """
    import torch
    from torch.nn import functional as F

    c, ny, nx = stack.shape
    gy = 2.0 * coords[0] / max(ny - 1, 1) - 1.0
    gx = 2.0 * coords[1] / max(nx - 1, 1) - 1.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)[None].astype(np.float32))
    src = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)[None])
    with torch.inference_mode():
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].numpy()
    inside = (coords[0] >= 0) & (coords[0] <= ny - 1) & (coords[1] >= 0) & (coords[1] <= nx - 1)
    if outside == 0.0:
        return np.where(inside[None], out, np.float32(0.0)).astype(np.float32)
    return np.where(inside[None], out, np.float32(outside)).astype(np.float32)


def sample_channels(
    stack: NDArray[np.float32],
    coords: NDArray[np.float64],
    *,
    order: int = 1,
    shifts_px: NDArray[np.float64] | None = None,
) -> NDArray[np.float32]:
    """Sample every channel of ``stack`` (c, y, x) at ``coords`` (2, v, u); zero outside.

    ``shifts_px`` (c, 2), if given, adds a per-channel displacement (motion residue).
    """
    if shifts_px is None and order == 1:
        return grid_sample(stack, coords, outside=0.0)
    out = np.empty((stack.shape[0],) + coords.shape[1:], dtype=np.float32)
    for i in range(stack.shape[0]):
        cc = coords if shifts_px is None else coords + shifts_px[i].reshape(2, 1, 1)
        out[i] = ndimage.map_coordinates(stack[i], cc, order=order, mode="constant", cval=0.0, prefilter=False)
    return out


def sample_labels(labels: NDArray[np.integer], coords: NDArray[np.float64]) -> NDArray[np.int64]:
    """Nearest-neighbour sampling of a label map (y, x) at ``coords`` (2, v, u); 0 outside."""
    return ndimage.map_coordinates(labels.astype(np.int32), coords, order=0, mode="constant", cval=0).astype(np.int64)


def normalise_crop(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Divide network-grid channels (c, v, u) by the robust peak enhancement inside the crop.

    The 99.5th percentile of the per-pixel maximum over the first-pass channels: about 1 in
    the blood pools whatever the field of view around the heart.
    """
    peak = np.max(x[:FIRST_PASS_END], axis=0)
    scale = float(np.percentile(peak, 99.5))
    if not scale > 1e-6:
        return x
    return (x / scale).astype(np.float32)


def prepare_input(
    series: PerfusionSeries, centre_yx: tuple[float, float] | None = None
) -> tuple[NDArray[np.float32], CropTransform, TemporalInput]:
    """Network input of one series at inference.

    Returns
    -------
    x : ndarray, float32, shape (N_CHANNELS, CROP_PX, CROP_PX)
    transform : CropTransform
        Maps network pixels back to the series' pixels.
    temporal : TemporalInput
    """
    temporal = temporal_input(series)
    if centre_yx is None:
        centre_yx = locate_heart(temporal.enhancement, series.spacing_mm)
    transform = CropTransform.make(centre_yx, series.spacing_mm)
    x = normalise_crop(sample_channels(temporal.enhancement, transform.coordinates()))
    return x, transform, temporal
