"""Model-based respiratory motion correction of one 2D+T slice: :func:`correct_series`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf.errors import ValidationError, describe
from qperf.motion import engine_sitk, engine_torch
from qperf.motion.fields import compose, invert, warp_images
from qperf.motion.quality import quality_score
from qperf.motion.synthetic import choose_key_frame, low_rank_frames
from qperf.progress import ProgressCallback, scaled
from qperf.runtime import resolve_device
from qperf.types import PerfusionSeries

_log = logging.getLogger(__name__)

Engine = Literal["torch", "sitk"]
Resample = Literal["spline", "bicubic"]

#: Principal components kept (besides the temporal mean) in the synthetic frames, per round;
#: later rounds use the last value. The first round registers to the temporal mean (with large,
#: nearly two-state breathing even one component reproduces the motion); later rounds need enough
#: components for the RV, LV and myocardial phases (3 then 8: 0.48 px heart residual on the
#: phantom, and about 10 % less flow error than 2 then 6).
DEFAULT_RANKS: tuple[int, ...] = (0, 3, 8)
#: Dynamic frames per synthetic-frame component at most: with few frames, each further
#: component takes up more of the motion itself.
FRAMES_PER_COMPONENT = 7


@dataclass(frozen=True, eq=False)
class MotionResult:
    """Output of :func:`correct_series`.

    Attributes
    ----------
    corrected : PerfusionSeries
        The motion-corrected series: same grid, geometry, times, units and PD frames as the
        input, every frame aligned with the key frame.
    key_frame : int
        Index (into all frames, PD included) of the reference frame; its field is zero.
    forward_px : ndarray, float32, shape (t, 2, y, x)
        Pull fields in pixels (dy, dx): ``corrected[t](p) = original[t](p + forward_px[t, :, p])``.
    inverse_px : ndarray, float32, shape (t, 2, y, x)
        ``original[t](q) = corrected[t](q + inverse_px[t, :, q])``.
    quality : dict
        ``score`` (0 to 1, higher is better) and its parts; see :func:`qperf.motion.quality.quality_score`.
    timings_s : dict
        Wall-clock seconds per step and ``total``.
    region : tuple of 4 int
        ``(y0, y1, x0, x1)``: the part of the image that was registered (heart region plus a
        margin, or the whole image); outside it the fields continue the values at its border.
    engine : str
        The registration engine used ("torch" or "sitk").
    settings : dict
        Rounds, ranks of the synthetic frames and region margin used.
    """

    corrected: PerfusionSeries
    key_frame: int
    forward_px: NDArray[np.float32]
    inverse_px: NDArray[np.float32]
    quality: dict[str, Any]
    timings_s: dict[str, float]
    region: tuple[int, int, int, int] = (0, 0, 0, 0)
    engine: str = "torch"
    settings: dict[str, Any] = field(default_factory=dict)


def _check_series(series: object) -> PerfusionSeries:
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {describe(series)}")
    data = series.data
    if not np.all(np.isfinite(data)):
        raise ValidationError("series.data: expected finite values, found NaN or infinity")
    n_dyn = data.shape[0] - series.n_pd_frames
    if n_dyn < 3:
        raise ValidationError(
            f"series: expected at least 3 dynamic (non-PD) frames for motion correction, found {n_dyn}"
        )
    ny, nx = data.shape[1:]
    if ny < 16 or nx < 16:
        raise ValidationError(f"series: expected images of at least 16 x 16 pixels, found {ny} x {nx}")
    flat = [i for i in range(data.shape[0]) if float(np.ptp(data[i])) <= 1e-6 * max(float(np.abs(data).max()), 1e-30)]
    if flat:
        raise ValidationError(
            f"series.data: expected frames with image content, found {len(flat)} constant frame(s) "
            f"(first at index {flat[0]}); motion correction needs structure to align"
        )
    return series


def _region(
    heart_mask: ArrayLike | None, shape: tuple[int, int], margin_px: int
) -> tuple[tuple[int, int, int, int], NDArray[np.float32] | None]:
    ny, nx = shape
    if heart_mask is None:
        return (0, ny, 0, nx), None
    mask = np.asarray(heart_mask)
    if mask.shape != shape:
        raise ValidationError(f"heart_mask: expected shape {shape} (the series grid), found {describe(heart_mask)}")
    mask = mask.astype(bool)
    if not mask.any():
        raise ValidationError("heart_mask: expected at least one pixel in the heart region, found none")
    ys, xs = np.nonzero(mask)
    y0, y1 = max(int(ys.min()) - margin_px, 0), min(int(ys.max()) + margin_px + 1, ny)
    x0, x1 = max(int(xs.min()) - margin_px, 0), min(int(xs.max()) + margin_px + 1, nx)
    # focus weight of the key-frame choice and the quality score: the heart and a band around it
    # count fully, the rest of the region a little. (The registration itself weighs the region
    # uniformly: concentrating the similarity on the heart was measured to be less accurate.)
    dist = ndimage.distance_transform_edt(~mask)
    band = max(margin_px / 2.0, 4.0)
    weight = 0.1 + 0.9 * np.exp(-0.5 * (dist / band) ** 2)
    return (y0, y1, x0, x1), weight[y0:y1, x0:x1].astype(np.float32)


def _register(
    engine: Engine,
    moving: NDArray[np.float32],
    fixed: NDArray[np.float32],
    init: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    stage: str,
    device: Any = "cpu",
) -> NDArray[np.float32]:
    if engine == "torch":
        settings = {
            "first": engine_torch.FIRST_ROUND,
            "middle": engine_torch.MIDDLE_ROUND,
            "last": engine_torch.LAST_ROUND,
            "only": engine_torch.TorchSettings(),
            "pd": engine_torch.PD_FRAMES,
        }[stage]
        return engine_torch.register_batch(moving, fixed, init_px=init, weight=weight, settings=settings, device=device)
    return engine_sitk.register_batch(moving, fixed, init_px=init, weight=weight, stage=stage)


def correct_series(
    series: PerfusionSeries,
    *,
    heart_mask: ArrayLike | None = None,
    n_rounds: int = 3,
    progress: ProgressCallback | None = None,
    engine: Engine = "torch",
    key_frame: int | None = None,
    margin_px: int = 30,
    ranks: tuple[int, ...] = DEFAULT_RANKS,
    temporal_sigma_frames: float = 0.0,
    resample: Resample = "spline",
    device: Any = "auto",
) -> MotionResult:
    """Correct the respiratory motion of a 2D+T perfusion slice.

    Each round builds synthetic frames from the KL transform (PCA) of the current corrected
    dynamic series (temporal mean plus a few principal components: contrast change without
    the motion), registers every acquired frame non-rigidly to its synthetic counterpart
    (cubic B-spline field, multi-resolution, squared local cross-correlation), then re-anchors
    all fields on the key frame (so the key frame is unchanged and every frame is aligned
    with it). Proton-density frames are registered to the temporal mean of the corrected
    dynamic series with the same contrast-insensitive similarity. Inverse fields are computed
    explicitly (fixed-point inversion).

    Parameters
    ----------
    series : PerfusionSeries
        The acquired slice, ``(t, y, x)``, signal or Gd units, PD frames first.
    heart_mask : array_like of bool, shape (y, x), optional
        A rough heart region (any frame). When given, only its bounding box plus
        ``margin_px`` is registered (uniform similarity weight inside), the key-frame choice
        and the quality score focus on it, and the fields outside the box continue their
        border values. Without it the whole image is registered.
    n_rounds : int
        Rounds of synthetic-frame estimation and registration (>= 1).
    progress : callable(fraction, message), optional
    engine : {"torch", "sitk"}
        Registration engine: the batched torch B-spline/LNCC engine (default; faster and more
        accurate, see :mod:`qperf.motion`) or SimpleITK symmetric-forces demons per frame.
    key_frame : int, optional
        Reference frame index (into all frames); chosen automatically when None.
    margin_px : int
        Margin around ``heart_mask`` in pixels.
    ranks : tuple of int
        Principal components of the synthetic frames per round (see :data:`DEFAULT_RANKS`).
    resample : {"spline", "bicubic"}
        Interpolation of the corrected series (:func:`qperf.motion.warp_images`). Cubic
        B-splines blur least: on breathing stress phantoms the median global MBF error fell
        from 3.6 % to 2.9 % against cubic convolution, as the thin myocardium took in less of
        the fat and blood beside it.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        Where the torch engine registers (:func:`qperf.runtime.resolve_device`; ``"auto"``: a
        GPU when there is one); the sitk engine always runs on the CPU.

    Returns
    -------
    MotionResult

    Raises
    ------
    ValidationError
        Not a PerfusionSeries, fewer than 3 dynamic frames, non-finite or constant frames,
        or a heart mask / key frame that does not fit the series.
    NotAvailableError
        A ``device`` this machine does not have.
    """
    t_start = time.perf_counter()
    series = _check_series(series)
    if not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
        raise ValidationError(f"n_rounds: expected an integer >= 1, found {n_rounds!r}")
    if resample not in ("spline", "bicubic"):
        raise ValidationError(f"resample: expected 'spline' or 'bicubic', found {resample!r}")
    if engine not in ("torch", "sitk"):
        raise ValidationError(f"engine: expected 'torch' or 'sitk', found {engine!r}")
    dev = resolve_device(device) if engine == "torch" else "cpu"
    n_pd = series.n_pd_frames
    n_t = series.n_frames
    if key_frame is not None and not (isinstance(key_frame, (int, np.integer)) and n_pd <= key_frame < n_t):
        raise ValidationError(f"key_frame: expected a dynamic frame index in [{n_pd}, {n_t - 1}], found {key_frame!r}")
    report = scaled(progress, 0.0, 1.0)
    timings: dict[str, float] = {"synthetic": 0.0, "registration": 0.0}

    (y0, y1, x0, x1), weight = _region(heart_mask, series.shape, margin_px)
    original = series.data[:, y0:y1, x0:x1]
    dyn = original[n_pd:]
    fields = np.zeros((n_t, 2, y1 - y0, x1 - x0), np.float32)
    corrected = original.copy()
    key_dyn = None if key_frame is None else int(key_frame) - n_pd
    dyn_fields = fields[n_pd:]
    for rnd in range(n_rounds):
        report(rnd / (n_rounds + 1.0), f"round {rnd + 1} of {n_rounds}")
        t0 = time.perf_counter()
        rank = min(ranks[min(rnd, len(ranks) - 1)], max(2, dyn.shape[0] // FRAMES_PER_COMPONENT))
        synthetic = low_rank_frames(corrected[n_pd:], rank)
        if key_dyn is None and rank > 0:
            key_dyn = choose_key_frame(dyn, synthetic, weight)
        timings["synthetic"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        stage = "only" if n_rounds == 1 else "first" if rnd == 0 else "last" if rnd == n_rounds - 1 else "middle"
        new = _register(engine, dyn, synthetic, dyn_fields, None, stage, dev)
        if key_dyn is None:
            key_dyn = choose_key_frame(dyn, low_rank_frames(warp_images(dyn, new), ranks[-1]), weight)
        # re-anchor on the key frame: v_t = u_t o u_key^-1, so the key frame stays as acquired
        key_inv = invert(new[key_dyn])
        dyn_fields = compose(new, np.broadcast_to(key_inv, new.shape))
        dyn_fields[key_dyn] = 0.0
        corrected[n_pd:] = warp_images(dyn, dyn_fields)
        timings["registration"] += time.perf_counter() - t0
    fields[n_pd:] = dyn_fields
    if n_pd:
        # proton-density frames: other contrast; a stiffer field against the corrected dynamic mean
        report(n_rounds / (n_rounds + 1.0), "proton-density frames")
        t0 = time.perf_counter()
        mean_dyn = corrected[n_pd:].mean(axis=0)
        targets = np.ascontiguousarray(np.broadcast_to(mean_dyn, (n_pd, *mean_dyn.shape)))
        init_pd = np.ascontiguousarray(np.broadcast_to(dyn_fields.mean(axis=0), (n_pd, *dyn_fields.shape[1:])))
        fields[:n_pd] = _register(engine, original[:n_pd], targets, init_pd, None, "pd", dev)
        corrected[:n_pd] = warp_images(original[:n_pd], fields[:n_pd])
        timings["registration_pd"] = time.perf_counter() - t0

    report(n_rounds / (n_rounds + 1.0) + 0.5 / (n_rounds + 1.0), "inverse fields and quality")
    t0 = time.perf_counter()
    inverse = invert(fields)
    forward_full = _embed(fields, series.shape, (y0, y1, x0, x1))
    inverse_full = _embed(inverse, series.shape, (y0, y1, x0, x1))
    corrected_full = warp_images(series.data, forward_full, mode=resample)
    timings["inverse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert key_dyn is not None
    quality = quality_score(series.data, corrected_full, forward_full, n_pd, (y0, y1, x0, x1), weight)
    timings["quality"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    report(1.0, "done")
    _log.info(
        "motion correction (%s on %s): %d frames, key frame %d, quality score %.3f (before %.3f), %.1f s",
        engine,
        dev,
        n_t,
        n_pd + key_dyn,
        float(quality.get("score", float("nan"))),
        float(quality.get("score_before", float("nan"))),
        timings["total"],
    )
    out = series.replace(data=corrected_full, metadata={**dict(series.metadata), "motion_corrected": True})
    return MotionResult(
        corrected=out,
        key_frame=n_pd + key_dyn,
        forward_px=forward_full,
        inverse_px=inverse_full,
        quality=quality,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        region=(y0, y1, x0, x1),
        engine=engine,
        settings={
            "n_rounds": int(n_rounds),
            "ranks": [ranks[min(i, len(ranks) - 1)] for i in range(n_rounds)],
            "margin_px": margin_px,
        },
    )


def _embed(
    fields: NDArray[np.float32], shape: tuple[int, int], region: tuple[int, int, int, int]
) -> NDArray[np.float32]:
    """Fields of a region placed on the full grid, continued outside by their border values."""
    y0, y1, x0, x1 = region
    ny, nx = shape
    if (y0, y1, x0, x1) == (0, ny, 0, nx):
        return np.ascontiguousarray(fields, dtype=np.float32)
    return np.pad(fields, ((0, 0), (0, 0), (y0, ny - y1), (x0, nx - x1)), mode="edge").astype(np.float32)
