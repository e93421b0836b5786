"""Perfusion series simulated on real cine anatomy: a validation set that resembles real scans.

Each case takes one labelled real cine frame (:mod:`qperf.phantom.cine`) as the anatomy and
simulates a free-breathing first-pass saturation-recovery series on it with the phantom's
physics, so the backgrounds, coil shading and heart shapes are real while the contrast
dynamics and the signal are simulated:

- tissue: the cine intensity relative to the myocardium sets each background pixel's proton
  density and native T1 (bright SSFP tissue is fat-like, short T1, bright in SR too); blood
  pools and myocardium get blood and myocardium T1 with random inflow and proton-density
  factors, so the LV baseline ranges from about half to above the myocardium's;
- contrast: contrast left from an earlier injection in some series (stress after rest), which
  raises every baseline; the phantom's bolus (:func:`qperf.phantom.kinetics.blood_curves`): RV, then LV;
  the myocardium by the two-compartment exchange model at stress or rest flow, with a random
  subendocardial defect; background enhancement as smooth random fields of a liver-like
  late curve and of a muscle curve;
- signal: :func:`qperf.phantom.signal.sr_signal` (FLASH or SSFP readouts of either field),
  which saturates at high concentration, so stress LV peaks are weak against the baseline;
- breathing: the phantom's free-breathing trace (:class:`qperf.phantom.motion.Breathing`) as
  an in-plane displacement, largest at the heart and a fifth of it at the body wall; labels
  follow it frame by frame;
- acquisition: 40-100 frames at the heart rate's irregular intervals, no proton-density frames
  (or three), output pixels of 1.4-2.6 mm from a truncated k-space, Rician noise.

The code path is independent of the training generator (:mod:`qperf.segmentation.synth`): no
label clusters, no random per-class intensities; anatomy comes from patients that training
never sees (:data:`qperf.phantom.cine.VALIDATION_CASES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from qperf.phantom import kinetics as pk
from qperf.phantom import signal as psig
from qperf.phantom.cine import CineFrame
from qperf.phantom.generate import draw_readouts
from qperf.phantom.motion import Breathing
from qperf.types import PerfusionSeries

#: Myocardial plasma flow (ml/min/g) at stress and rest; PS, Vp, Ve of the exchange model.
FLOW_RANGE = {"stress": (1.8, 4.0), "rest": (0.5, 1.3)}


@dataclass(frozen=True)
class SimulatedScan:
    """A simulated real-like series with its truth.

    Attributes
    ----------
    series : PerfusionSeries
        Raw signal, uncorrected (breathing), on the output grid.
    labels : ndarray, uint8, shape (t, y, x)
        Labels of every frame (0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool).
    labels_ref : ndarray, uint8, shape (y, x)
        Labels without displacement.
    info : dict
        What was drawn (condition, field, readout, flows, motion amplitude, ...) and the
        measured contrast ratios of the issue's real-against-phantom table.
    """

    series: PerfusionSeries
    labels: NDArray[np.uint8]
    labels_ref: NDArray[np.uint8]
    info: dict[str, Any] = field(default_factory=dict)


def _tissue_maps(
    frame: CineFrame, field_t: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Proton density, native T1 and T2 (ms) maps from the cine image and the labels, and the
    fraction of the blood concentration that residual contrast reaches in each pixel."""
    img = np.asarray(frame.image, dtype=np.float64)
    myo = frame.myocardium if frame.myocardium is not None else np.zeros(img.shape, bool)
    ref = float(np.median(img[myo])) if myo.any() else float(np.percentile(img, 75))
    r = img / max(ref, 1e-6)
    m = psig.tissue("myocardium", field_t)
    fat = psig.tissue("fat", field_t)
    # SSFP brightness -> short T1 (fat-like above 2.5 x myocardium), proton density grows with it.
    w = np.clip((r - 1.0) / 1.5, 0.0, 1.0)
    t1 = np.exp((1 - w) * np.log(m.t1_ms) + w * np.log(fat.t1_ms))
    t2 = (1 - w) * m.t2_ms + w * fat.t2_ms
    pd = np.clip(r, 0.0, 1.0) ** 0.8 * (0.75 + 0.25 * w * rng.uniform(0.7, 1.6))
    residual = 0.05 + 0.2 * (1.0 - w)
    blood = psig.tissue("blood", field_t)
    for mask in (frame.lv, frame.rv):
        if mask is not None:
            t1[mask] = blood.t1_ms
            t2[mask] = blood.t2_ms
            pd[mask] = blood.proton_density * rng.uniform(0.7, 1.5)  # inflow of unsaturated blood
            residual[mask] = 1.0
    t1[myo] = m.t1_ms * rng.uniform(0.9, 1.1)
    t2[myo] = m.t2_ms
    pd[myo] = m.proton_density * psig.smooth_texture(img.shape, rng, 0.04)[myo]
    residual[myo] = 0.35
    return pd, t1, t2, residual


def _frame_times(rng: np.random.Generator, condition: str, n_frames: int) -> NDArray[np.float64]:
    hr = rng.uniform(70.0, 110.0) if condition == "stress" else rng.uniform(50.0, 85.0)
    rr = 60.0 / hr * (1.0 + rng.normal(0.0, 0.05, n_frames))
    if rng.random() < 0.3:  # every other beat (fast heart rates, several slices)
        rr *= 2.0
    rr = np.clip(rr, 0.45, 2.0)
    return np.concatenate([[0.0], np.cumsum(rr[:-1])])


def _displacements(
    frame: CineFrame, time_s: NDArray[np.float64], rng: np.random.Generator, amplitude_mm: float
) -> NDArray[np.float32]:
    """Moving-to-reference displacement (t, 2, y, x) in pixels of the cine grid."""
    ny, nx = frame.image.shape
    breathing = Breathing.draw(rng, float(time_s[0]), float(time_s[-1]))
    depth = breathing.at(time_s)
    depth = depth - float(np.percentile(depth, 10))  # end-expiration at zero displacement
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    cy, cx = ndi.center_of_mass(frame.lv)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    dist = np.hypot((yy - cy) * frame.spacing_mm[0], (xx - cx) * frame.spacing_mm[1])
    weight = 0.2 + 0.8 * np.exp(-0.5 * (dist / rng.uniform(60.0, 100.0)) ** 2)
    out = np.empty((time_s.size, 2, ny, nx), dtype=np.float32)
    for k in range(time_s.size):
        jitter = rng.normal(0.0, 0.3, 2)
        for a in range(2):
            out[k, a] = -(amplitude_mm * depth[k] * direction[a] + jitter[a]) * weight / frame.spacing_mm[a]
    return out


def _resample(
    frames: NDArray[np.float32], src_mm: tuple[float, float], dst_mm: tuple[float, float], shape: tuple[int, int]
) -> NDArray[np.float32]:
    """Frames (t, y, x) of the cine grid onto an output grid of ``shape`` at ``dst_mm``, same centre."""
    ny, nx = frames.shape[1:]
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    y = (v - (shape[0] - 1) / 2.0) * dst_mm[0] / src_mm[0] + (ny - 1) / 2.0
    x = (u - (shape[1] - 1) / 2.0) * dst_mm[1] / src_mm[1] + (nx - 1) / 2.0
    out = np.empty((frames.shape[0], *shape), dtype=np.float32)
    for k in range(frames.shape[0]):
        out[k] = ndi.map_coordinates(frames[k], [y, x], order=1, mode="constant", cval=0.0)
    return out


def _resample_labels(
    labels: NDArray[np.uint8], src_mm: tuple[float, float], dst_mm: tuple[float, float], shape: tuple[int, int]
) -> NDArray[np.uint8]:
    """Labels (t, y, x) onto the output grid: each class's area fraction, then the largest."""
    sigma = (0.0, 0.4 * dst_mm[0] / src_mm[0], 0.4 * dst_mm[1] / src_mm[1])
    fractions = np.stack(
        [
            _resample(ndi.gaussian_filter((labels == c).astype(np.float32), sigma), src_mm, dst_mm, shape)
            for c in range(4)
        ]
    )
    return np.asarray(np.argmax(fractions, axis=0), dtype=np.uint8)


@dataclass(frozen=True)
class _Contrast:
    """The bolus and the myocardial curves of one scan (dynamic clock, s from the first dynamic frame)."""

    blood: Any  # qperf.phantom.kinetics.BloodCurves
    arrival_s: float
    flow_ml_min_g: float
    myocardium: NDArray[np.float64]  # (2, t): normal and defect


def _draw_contrast(rng: np.random.Generator, condition: str, dyn_t: NDArray[np.float64]) -> _Contrast:
    bolus = pk.BolusParameters.draw(rng, condition)
    bolus = pk.BolusParameters(**{**bolus.__dict__, "arrival_s": float(rng.uniform(3.0, 12.0))})
    blood = pk.blood_curves(bolus, 0.0, float(dyn_t[-1]))
    model, _ = pk.get_tissue_model("2cxm-analytic")
    flow = rng.uniform(*FLOW_RANGE[condition])
    params = {
        "Fp": np.array([flow, flow * rng.uniform(0.3, 0.6)]),
        "PS": np.array([rng.uniform(0.8, 1.6)] * 2),
        "Vp": np.array([rng.uniform(0.04, 0.1)] * 2),
        "Visf": np.array([rng.uniform(0.15, 0.3)] * 2),
    }
    grid, tissue = pk.simulate_tissue(
        model, lambda t: blood.at("lv", t), bolus.hematocrit, 0.0, float(dyn_t[-1]), params
    )
    return _Contrast(blood, float(bolus.arrival_s), float(flow), np.array([np.interp(dyn_t, grid, c) for c in tissue]))


def _defect(frame: CineFrame, rng: np.random.Generator) -> NDArray[np.bool_]:
    """A subendocardial defect in 40 % of the scans: the inner 3-6 mm of the wall over a random arc."""
    shape = frame.image.shape
    if rng.random() >= 0.4 or frame.myocardium is None:
        return np.zeros(shape, bool)
    cy, cx = ndi.center_of_mass(frame.lv)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    ang = np.arctan2(yy - cy, xx - cx)
    centre, half = rng.uniform(-np.pi, np.pi), rng.uniform(0.4, 1.2)
    inner = ndi.distance_transform_edt(~frame.lv, sampling=frame.spacing_mm) < rng.uniform(3.0, 6.0)
    return np.asarray(frame.myocardium & inner & (np.abs((ang - centre + np.pi) % (2 * np.pi) - np.pi) < half))


def _gd_frames(
    frame: CineFrame, contrast: _Contrast, dyn_t: NDArray[np.float64], n_pd: int, rng: np.random.Generator
) -> tuple[list[NDArray[np.float64]], NDArray[np.bool_]]:
    """Gd (mmol/L) of every frame (PD frames: none) and the defect: pools, myocardium, and the
    background's late (liver-like) and muscle enhancement as smooth random fields."""
    lv, myo, rv = frame.lv, frame.myocardium, frame.rv
    assert myo is not None and rv is not None
    shape = frame.image.shape
    defect = _defect(frame, rng)
    background = ~(lv | myo | rv)
    late = psig.smooth_texture(shape, rng, 1.0, cell_px=20)
    liver_w = np.clip(late - 1.0, 0.0, None) * rng.uniform(0.5, 2.5) * background
    muscle_w = np.clip(psig.smooth_texture(shape, rng, 1.0, cell_px=12) - 1.0, 0.0, None) * background
    muscle_curve = contrast.blood.at("muscle_blood", dyn_t) * rng.uniform(0.03, 0.12)
    out = [np.zeros(shape) for _ in range(n_pd)]
    for j, t in enumerate(dyn_t):
        gd = liver_w * contrast.blood.at("liver", [t])[0] + muscle_w * muscle_curve[j]
        gd[lv] = contrast.blood.at("lv", [t])[0]
        gd[rv] = contrast.blood.at("rv", [t])[0]
        gd[myo] = contrast.myocardium[0, j]
        gd[defect] = contrast.myocardium[1, j]
        out.append(gd)
    return out, defect


def _breathe(
    frame: CineFrame, frames: NDArray[np.float32], time_s: NDArray[np.float64], rng: np.random.Generator, amp: float
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Frames and labels displaced by breathing (cubic B-spline images, nearest-neighbour labels)."""
    disp = _displacements(frame, time_s, rng, amp)
    shape = frame.image.shape
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    labels_ref = frame.labels()
    moved = np.empty_like(frames)
    moved_labels = np.empty(frames.shape, dtype=np.uint8)
    for k in range(frames.shape[0]):
        coords = [yy + disp[k, 0], xx + disp[k, 1]]
        moved[k] = ndi.map_coordinates(frames[k], coords, order=3, mode="nearest")
        moved_labels[k] = ndi.map_coordinates(labels_ref, coords, order=0, mode="nearest")
    return moved, moved_labels


def _acquire(
    frame: CineFrame,
    moved: NDArray[np.float32],
    moved_labels: NDArray[np.uint8],
    out_mm: float,
    n_pd: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.uint8]]:
    """The output grid (a 300-380 mm field of view): truncated k-space (acquired resolution coarser
    than the pixels), coil shading, gain and Rician noise; labels per frame and of the reference."""
    fov_mm = float(rng.uniform(300.0, 380.0))
    n_out = int(round(fov_mm / out_mm / 2.0)) * 2
    src, dst, shape = frame.spacing_mm, (out_mm, out_mm), (n_out, n_out)
    frac = float(rng.uniform(0.6, 1.0))
    sharp = _resample(psig.truncate_kspace(moved, (frac * src[0] / out_mm, frac * src[1] / out_mm)), src, dst, shape)
    labels = _resample_labels(moved_labels, src, dst, shape)
    labels_ref = _resample_labels(frame.labels()[None], src, dst, shape)[0]
    coil = psig.coil_shading(shape, dst, (np.sin(rng.uniform(0, 6.3)), np.cos(rng.uniform(0, 6.3))), rng, 0.3)
    gain = float(rng.uniform(200.0, 3000.0))
    signal = np.clip(sharp, 0.0, None) * coil[None] * gain
    myo_base = float(np.median(signal[n_pd:][:3][:, labels_ref == 2]))
    noisy = psig.rician(signal.astype(np.float32), myo_base / rng.uniform(8.0, 25.0), rng)
    return noisy, labels, labels_ref


def simulate_scan(
    frame: CineFrame,
    rng: np.random.Generator,
    *,
    condition: str | None = None,
    field_t: float | None = None,
    spacing_mm: float | None = None,
    n_frames: int | None = None,
    n_pd_frames: int | None = None,
    breathing_mm: float | None = None,
) -> SimulatedScan:
    """Simulate one free-breathing first-pass series on a labelled cine frame.

    Parameters
    ----------
    frame : CineFrame
        With myocardium and RV drawn.
    rng : numpy Generator
    condition, field_t, spacing_mm, n_frames, n_pd_frames, breathing_mm : optional
        Drawn at random when None: stress or rest, 1.5 or 3 T, output pixels 1.4-2.6 mm,
        40-100 frames, no PD frames (a quarter of the cases three), breathing amplitude
        (heart, mm) 0-15.

    Returns
    -------
    SimulatedScan
    """
    if frame.myocardium is None or frame.rv is None:
        raise ValueError("frame: expected a cine frame with myocardium and RV drawn")
    condition = condition or ("stress" if rng.random() < 0.5 else "rest")
    field_t = field_t or (1.5 if rng.random() < 0.5 else 3.0)
    out_mm = float(spacing_mm or rng.uniform(1.4, 2.6))
    n_frames = int(n_frames or rng.integers(40, 101))
    n_pd = int(n_pd_frames if n_pd_frames is not None else (3 if rng.random() < 0.25 else 0))
    amp = float(breathing_mm if breathing_mm is not None else rng.uniform(0.0, 15.0))
    readout, _ = draw_readouts(rng, field_t, None)
    time_s = _frame_times(rng, condition, n_frames + n_pd)
    dyn_t = time_s[n_pd:] - time_s[n_pd]
    contrast = _draw_contrast(rng, condition, dyn_t)
    pd, t1, t2, residual = _tissue_maps(frame, field_t, rng)
    # Contrast left from an earlier injection (stress after rest, or a second pass): it raises
    # every baseline, so the LV peak is a few times its baseline instead of ten or more.
    gd_before = float(rng.uniform(0.2, 1.0)) if rng.random() < (0.5 if condition == "stress" else 0.2) else 0.0
    gd, defect = _gd_frames(frame, contrast, dyn_t, n_pd, rng)
    frames = np.stack(
        [
            pd * psig.sr_signal(g + gd_before * residual, t1, t2, readout, proton_density=k < n_pd)
            for k, g in enumerate(gd)
        ]
    ).astype(np.float32)
    moved, moved_labels = _breathe(frame, frames, time_s, rng, amp)
    noisy, labels, labels_ref = _acquire(frame, moved, moved_labels, out_mm, n_pd, rng)
    series = PerfusionSeries(
        noisy, time_s, spacing_mm=(out_mm, out_mm), units="signal", n_pd_frames=n_pd, name=f"{frame.case}/{frame.index}"
    )
    info = {
        "case": frame.case,
        "frame_index": frame.index,
        "condition": condition,
        "field_t": field_t,
        "readout": readout.readout,
        "spacing_mm": out_mm,
        "n_frames": int(n_frames),
        "n_pd_frames": n_pd,
        "breathing_mm": amp,
        "flow_ml_min_g": contrast.flow_ml_min_g,
        "residual_gd_mmol_l": gd_before,
        "arrival_s": float(contrast.arrival_s + time_s[n_pd]),
        "defect": bool(defect.any()),
        **contrast_ratios(noisy[n_pd:], labels[n_pd:]),
    }
    return SimulatedScan(series, labels, labels_ref, info)


def contrast_ratios(frames: NDArray[np.float32], labels: NDArray[np.uint8]) -> dict[str, float]:
    """The quantities of the real-against-phantom table: LV peak / baseline, LV baseline /
    myocardium baseline, bright background (90th percentile) / myocardium baseline,
    myocardium peak / baseline (means over each region per frame, baseline the first 3 frames)."""

    def curve(c: int) -> NDArray[np.float64]:
        return np.array(
            [float(f[lab == c].mean()) if (lab == c).any() else np.nan for f, lab in zip(frames, labels, strict=True)]
        )

    lv, myo = curve(1), curve(2)
    lv_base, myo_base = float(np.nanmean(lv[:3])), float(np.nanmean(myo[:3]))
    bg = np.percentile(frames[:3][labels[:3] == 0], 90)
    smooth_myo = ndi.uniform_filter1d(myo, 3)
    return {
        "lv_peak_over_baseline": float(np.nanmax(lv) / lv_base),
        "lv_over_myo_baseline": float(lv_base / myo_base),
        "bright_background_over_myo": float(bg / myo_base),
        "myo_peak_over_baseline": float(np.nanmax(smooth_myo) / myo_base),
    }
