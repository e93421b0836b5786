"""Assembly of a phantom study: random draws, timing, curves, then slices, AIF images and truth.

Every random quantity comes from its own stream ``default_rng([seed, *stream])``. The heart,
its perfusion, the image placement and the scanner set-up depend on the seed alone, so the
stress and rest studies of a seed share them; the bolus, timing, breathing, motion and noise
streams are offset by the condition. The images themselves are formed in
:mod:`qperf.phantom.acquire`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import ValidationError
from qperf.phantom import anatomy as an
from qperf.phantom import physiology
from qperf.phantom.acquire import (
    N_PD_FRAMES,
    SUPERSAMPLE,
    Respiration,
    Scanner,
    TissueCurves,
    anterior_yx,
    render_slice,
    simulate_aif_images,
)
from qperf.phantom.kinetics import BolusParameters, blood_curves, get_tissue_model, simulate_tissue
from qperf.phantom.motion import Breathing
from qperf.phantom.signal import Readout, coil_shading, smooth_texture, sr_signal, tissue
from qperf.phantom.truth import PhantomStudy, PhantomTruth, SliceTruth, segment_table
from qperf.progress import ProgressCallback, null_progress
from qperf.types import PerfusionSeries, PerfusionStudy

__all__ = ["N_PD_FRAMES", "SUPERSAMPLE", "draw_readouts", "generate_study"]

# stream identifiers of the random draws: heart-level draws are shared by stress and rest
_HEART, _PERFUSION, _PLACEMENT, _ACQUISITION = 1, 2, 3, 4
_CONDITION_STREAMS = {"stress": 100, "rest": 200}
_BOLUS, _TIMING, _BREATHING, _MOTION, _NOISE, _SCANNER = range(6)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one random stream of a seed."""
    return np.random.default_rng([int(seed), *stream])


def _check(
    seed: int, n_slices: int, n_frames: int, condition: str, field_t: float, motion_scale: float, t1_variation: float
) -> None:
    """Raise ValidationError naming the first option out of range."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"seed: expected a non-negative integer, found {seed!r}")
    if isinstance(n_slices, bool) or not isinstance(n_slices, (int, np.integer)) or not 1 <= n_slices <= 8:
        raise ValidationError(f"n_slices: expected an integer from 1 to 8, found {n_slices!r}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or not 10 <= n_frames <= 200:
        raise ValidationError(f"n_frames: expected an integer from 10 to 200, found {n_frames!r}")
    if condition not in ("stress", "rest"):
        raise ValidationError(f"condition: expected 'stress' or 'rest', found {condition!r}")
    if not any(abs(float(field_t) - f) < 0.26 for f in (1.5, 3.0)):
        raise ValidationError(f"field_t: expected 1.5 or 3 (tesla), found {field_t!r}")
    if not (isinstance(motion_scale, (int, float)) and math.isfinite(motion_scale) and motion_scale >= 0):
        raise ValidationError(f"motion_scale: expected a non-negative number, found {motion_scale!r}")
    if not (isinstance(t1_variation, (int, float)) and 0 <= t1_variation <= 0.3):
        raise ValidationError(f"t1_variation: expected a number from 0 to 0.3, found {t1_variation!r}")


def draw_readouts(rng: np.random.Generator, field_t: float, readout: str | None) -> tuple[Readout, Readout]:
    """Imaging and AIF readouts for one scanner set-up."""
    field = 1.5 if abs(field_t - 1.5) < 0.26 else 3.0
    kind = readout or ("ssfp" if rng.random() < (0.5 if field == 1.5 else 0.15) else "flash")
    if kind == "flash":
        tr, flip, n = rng.uniform(2.1, 2.8), rng.uniform(10.0, 15.0), int(rng.integers(24, 40))
    else:
        tr, flip, n = rng.uniform(2.6, 3.2), rng.uniform(40.0, 60.0), int(rng.integers(22, 36))
    img = Readout(field, kind, n * tr + rng.uniform(8.0, 35.0), flip, 5.0, tr, n)
    atr, an_ = rng.uniform(1.8, 2.4), int(rng.integers(6, 12))
    aif = Readout(field, "flash", an_ * atr + rng.uniform(1.0, 5.0), rng.uniform(8.0, 12.0), 5.0, atr, an_)
    return img, aif


def _timing(rng: np.random.Generator, condition: str, n_frames: int, n_slices: int) -> dict[str, Any]:
    """Heart beats (75-105 bpm at stress, 55-80 at rest, 3 % RR variation, 2 % ectopic beats) and
    the acquisition time of each slice and of the AIF image within the beat."""
    hr = rng.uniform(75.0, 105.0) if condition == "stress" else rng.uniform(55.0, 80.0)
    rr = 60.0 / hr * (1.0 + rng.normal(0.0, 0.03, n_frames))
    for k in np.nonzero(rng.random(n_frames - 1) < 0.02)[0]:  # ectopic beat, compensatory pause
        rr[k] *= 0.7
        rr[k + 1] *= 1.3
    starts = np.concatenate([[0.0], np.cumsum(rr[:-1])]) + rng.uniform(0.0, 0.5)
    slot = min(rng.uniform(0.13, 0.19), (0.9 * rr.min() - 0.08) / (n_slices + 1))
    offsets = 0.03 + slot * (np.arange(n_slices) + 1)
    return {"heart_rate_bpm": hr, "beat_start_s": starts, "slice_offset_s": offsets, "aif_offset_s": 0.03}


@dataclass(frozen=True)
class _Subject:
    """What a seed fixes whatever the condition: anatomy, perfusion, placement, readouts, native T1."""

    heart: an.Heart
    perf: physiology.Perfusion
    placement: an.Placement
    img_readout: Readout
    aif_readout: Readout
    t1_scale: dict[str, float]


def _draw_subject(
    seed: int,
    field_t: float,
    readout: str | None,
    t1_variation: float,
    shape: tuple[int, int] | None,
    spacing_mm: float | None,
    standard_view: bool,
) -> _Subject:
    """The seed's heart, perfusion, placement, readouts and native T1 (each from its own stream)."""
    heart = an.Heart.draw(_rng(seed, _HEART))
    perf = physiology.Perfusion.draw(_rng(seed, _PERFUSION))
    placement = an.Placement.draw(
        heart, _rng(seed, _PLACEMENT), shape=shape, spacing_mm=spacing_mm, standard_view=standard_view
    )
    img_readout, aif_readout = draw_readouts(_rng(seed, _ACQUISITION), field_t, readout)
    t1_rng = _rng(seed, _HEART, 5)
    t1_scale = {
        "blood": float(np.clip(1.0 + t1_variation * t1_rng.standard_normal(), 0.7, 1.3)),
        "myocardium": float(np.clip(1.0 + t1_variation * t1_rng.standard_normal(), 0.7, 1.3)),
    }
    return _Subject(heart, perf, placement, img_readout, aif_readout, t1_scale)


@dataclass(frozen=True)
class _Condition:
    """The draws of one condition: heart beats, bolus and the simulated curves."""

    timing: dict[str, Any]
    bolus: BolusParameters
    curves: TissueCurves
    t_stop_s: float
    kinetic_model: str


def _simulate_condition(
    seed: int,
    condition: str,
    n_frames: int,
    n_slices: int,
    model: str,
    field_t: float,
    subject: _Subject,
    progress: Callable[[float, str], None],
    tissue_delay_s: float = 0.0,
) -> _Condition:
    """Beat times, the bolus (arriving within the first third of short acquisitions) and the
    blood and tissue curves of the condition (tissue from the plasma parameters, its input the
    LV blood curve ``tissue_delay_s`` later)."""
    cs = _CONDITION_STREAMS[condition]
    timing = _timing(_rng(seed, cs + _TIMING), condition, n_frames, n_slices)
    starts = timing["beat_start_s"]
    bolus = BolusParameters.draw(_rng(seed, cs + _BOLUS), condition)
    t0_dyn = float(starts[N_PD_FRAMES])
    # the bolus arrives within the first third of short acquisitions
    arrival = min(bolus.arrival_s, 0.3 * float(starts[-1] - t0_dyn))
    bolus = dataclasses.replace(bolus, arrival_s=arrival + t0_dyn)
    t_stop = float(starts[-1] + 1.5)
    blood = blood_curves(bolus, 0.0, t_stop)
    hct = bolus.hematocrit
    # tissue curves: one per myocardial cluster, plus chest-wall muscle and the mean myocardium
    tissue_model, model_used = get_tissue_model(model)
    # the physiology draws whole-blood flow (MBF); the kinetic models take plasma flow
    cparams = physiology.plasma_parameters(subject.perf.cluster_parameters(condition), hct)
    mean = physiology.plasma_parameters(subject.perf.mean_parameters(condition), hct)
    muscle = {"Fp": 0.12 if condition == "stress" else 0.06, "PS": 0.05, "Vp": 0.03, "Visf": 0.12}
    params_all = {k: np.concatenate([cparams[k], [muscle[k], mean[k]]]) for k in physiology.PARAM_NAMES}
    progress(0.05, "simulating tissue curves")
    sim_grid, curves = simulate_tissue(
        tissue_model,
        lambda tt: blood.at("lv", np.asarray(tt) - tissue_delay_s),
        hct,
        0.0,
        t_stop,
        {k: v for k, v in params_all.items()},
    )
    n_cl = cparams["Fp"].shape[0]
    sims = {"myo": curves[:n_cl], "other": curves[n_cl:]}
    tissue_curves = TissueCurves(blood, sim_grid, sims, cparams, field_t, subject.t1_scale)
    return _Condition(timing, bolus, tissue_curves, t_stop, model_used)


def _draw_respiration(
    seed: int, condition: str, t_stop_s: float
) -> tuple[Breathing, np.random.Generator, NDArray[np.float64]]:
    """The breathing trace, the motion generator and the heart's motion at full depth (8-16 mm, mostly S-I)."""
    cs = _CONDITION_STREAMS[condition]
    mrng = _rng(seed, cs + _MOTION)
    breathing = Breathing.draw(_rng(seed, cs + _BREATHING), 0.0, t_stop_s)
    motion_dir = np.array([0.0, -0.3, -1.0]) + mrng.normal(0.0, 0.25, 3)
    motion_vec = mrng.uniform(8.0, 16.0) * motion_dir / np.linalg.norm(motion_dir)
    return breathing, mrng, motion_vec


def _draw_scanner(
    srng: np.random.Generator,
    field_t: float,
    readout: Readout,
    first: an.SliceFrame,
    *,
    coil: bool,
    blur: bool,
    noise: bool,
) -> tuple[Scanner, float]:
    """The imaging set-up and the SNR of the PD frames.

    Noise is set by the SNR of the pre-contrast myocardium in the saturation-recovery frames
    (6 to 16); parallel imaging amplifies it by a smooth g-factor map from 1 to about 1.2-1.6.
    """
    myo_t = tissue("myocardium", field_t)
    pd_myo = float(sr_signal(0.0, myo_t.t1_ms, myo_t.t2_ms, readout, proton_density=True)) * myo_t.proton_density
    sr_myo = float(sr_signal(0.0, myo_t.t1_ms, myo_t.t2_ms, readout)) * myo_t.proton_density
    level = srng.uniform(200.0, 800.0)  # PD-frame myocardial signal
    snr_sr = srng.uniform(6.0, 16.0)
    snr_pd = snr_sr * pd_myo / sr_myo
    coil_strength = srng.uniform(0.6, 1.0) if coil else 0.0
    phase_fraction = srng.uniform(0.5, 0.85)
    read_fraction = srng.uniform(0.75, 1.0)
    kspace = (phase_fraction, read_fraction) if srng.random() < 0.5 else (read_fraction, phase_fraction)
    if not blur:
        kspace = (1.0, 1.0)
    texture_amplitude = srng.uniform(0.02, 0.08) if coil else 0.0
    g_factor = None
    if noise:
        g_raw = smooth_texture(first.shape, srng, 1.0, cell_px=max(first.shape) // 4)
        g_factor = np.asarray(
            1.0 + srng.uniform(0.2, 0.6) * (g_raw - g_raw.min()) / max(float(np.ptp(g_raw)), 1e-6), dtype=np.float32
        )
    coil_map = coil_shading(first.shape, first.spacing_mm, anterior_yx(first), srng, coil_strength)
    noise_sigma = level / snr_pd if noise else 0.0
    return Scanner(readout, level / pd_myo, noise_sigma, kspace, coil_map, texture_amplitude, g_factor), snr_pd


def generate_study(
    seed: int = 0,
    n_slices: int = 3,
    n_frames: int = 60,
    condition: str = "stress",
    field_t: float = 1.5,
    motion: bool = True,
    noise: bool = True,
    *,
    readout: str | None = None,
    model: str = "btex",
    coil: bool = True,
    blur: bool = True,
    motion_scale: float = 1.0,
    t1_variation: float = 0.0,
    shape: tuple[int, int] | None = None,
    spacing_mm: float | None = None,
    standard_view: bool = False,
    aif_images: bool = True,
    tissue_delay_s: float = 0.0,
    progress: ProgressCallback | None = None,
) -> PhantomStudy:
    """Simulate a first-pass perfusion study with its ground truth.

    Parameters
    ----------
    seed : int
        Defines the heart (anatomy, perfusion, defect), the scanner set-up and, with the
        condition, everything else; the stress and rest studies of a seed share the heart.
    n_slices : int
        Short-axis slices, base first (3: basal, mid, apical).
    n_frames : int
        Frames per slice, the ``3`` proton-density frames included.
    condition : {"stress", "rest"}
    field_t : {1.5, 3.0}
    motion, noise : bool
        False gives static (motion-free) and noise-free images.
    readout : {"flash", "ssfp"} or None
        Imaging readout; None draws one from the seed.
    model : str
        Tissue forward model (``qperf.kinetics`` name; "2cxm-analytic" for the built-in one).
    coil : bool
        Surface-coil shading and a mild static tissue texture on (off: flat receive profile).
    blur : bool
        Finite acquired resolution (k-space truncation: blur and Gibbs ringing); off renders
        the partial-volume image as it is.
    motion_scale : float
        Multiplies the respiratory motion (for example 0.1-0.3 to mimic the residual motion
        of a motion-corrected series).
    t1_variation : float
        Relative standard deviation of the subject's native T1 of blood and myocardium around
        the published values (0: exactly the values of :data:`qperf.phantom.signal.TISSUES`,
        which the Gd look-up tables also assume).
    shape, spacing_mm : optional
        Image matrix ``(ny, nx)`` and isotropic pixel spacing; drawn from the seed when None.
    standard_view : bool
        Anterior up and septum on the image left (no random in-plane rotation or flip).
    aif_images : bool
        Also simulate the dual-echo AIF image series.
    tissue_delay_s : float
        How long after the LV blood pool (the AIF) the blood reaches the tissue (the
        myocardium and the chest-wall muscle), s (0 to 5). Real scans lag by a fraction of a second to about two seconds (the coronary
        transit, and the AIF image acquired at another moment of the heartbeat); a delay
        between the samples of the fitting grid tests the delay estimate.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    PhantomStudy
        ``.study`` (signal units, PD frames, acquisition metadata) and ``.truth``.
    """
    _check(seed, n_slices, n_frames, condition, field_t, motion_scale, t1_variation)
    if not (isinstance(tissue_delay_s, (int, float)) and 0.0 <= tissue_delay_s <= 5.0):
        raise ValidationError(f"tissue_delay_s: expected a delay in [0, 5] s, found {tissue_delay_s!r}")
    report = progress or null_progress
    subject = _draw_subject(seed, field_t, readout, t1_variation, shape, spacing_mm, standard_view)
    cond = _simulate_condition(seed, condition, n_frames, n_slices, model, field_t, subject, report, tissue_delay_s)
    breathing, mrng, motion_vec = _draw_respiration(seed, condition, cond.t_stop_s)
    zetas = an.slice_zetas(n_slices, _rng(seed, _PLACEMENT, 1))
    frames = [subject.placement.slice_frame(subject.heart, zeta) for zeta in zetas]
    srng = _rng(seed, _ACQUISITION, 1)
    scanner, snr_pd = _draw_scanner(srng, field_t, subject.img_readout, frames[0], coil=coil, blur=blur, noise=noise)
    resp = Respiration(breathing, motion_vec, mrng, motion_scale, motion)
    series, truths = _render_slices(seed, condition, subject, cond, frames, scanner, resp, srng, report)
    aif_series: tuple[PerfusionSeries, ...] = ()
    aif_labels: tuple[NDArray[np.uint8], NDArray[np.uint8]] | tuple[None, None] = (None, None)
    if aif_images:
        report(0.85, "AIF images")
        aif_series, aif_labels = _aif_images(seed, condition, subject, cond, resp, noise=noise, coil=coil, blur=blur)
    parameters = _describe(seed, subject, cond, scanner, snr_pd, motion_vec)
    parameters["tissue_delay_s"] = float(tissue_delay_s)
    ps = _assemble(seed, condition, subject, cond, series, truths, aif_series, aif_labels, parameters)
    report(1.0, "done")
    return ps


def _render_slices(
    seed: int,
    condition: str,
    subject: _Subject,
    cond: _Condition,
    frames: list[an.SliceFrame],
    scanner: Scanner,
    resp: Respiration,
    srng: np.random.Generator,
    report: Callable[[float, str], None],
) -> tuple[list[PerfusionSeries], list[SliceTruth]]:
    """The short-axis series and their truth, base first.

    ``srng`` continues the scanner stream after :func:`_draw_scanner` (one texture per slice);
    the noise stream runs on from slice to slice.
    """
    nrng = _rng(seed, _CONDITION_STREAMS[condition] + _NOISE)
    meta: dict[str, Any] = {
        **subject.img_readout.metadata(),
        "heart_rate_bpm": round(float(cond.timing["heart_rate_bpm"]), 1),
        "series_description": f"QPerf phantom seed {seed} {condition}",
        "patient_id": f"phantom-{seed}",
    }
    series: list[PerfusionSeries] = []
    truths: list[SliceTruth] = []
    n_slices = len(frames)
    for k, frame in enumerate(frames):
        report(0.1 + 0.7 * k / n_slices, f"slice {k + 1} of {n_slices}")
        time_s = cond.timing["beat_start_s"] + cond.timing["slice_offset_s"][k]
        hct = cond.bolus.hematocrit
        data, truth = render_slice(subject.heart, frame, time_s, cond.curves, scanner, resp, srng, nrng, hct)
        truths.append(truth)
        series.append(_slice_series(data, time_s, frame, f"slice {k + 1} ({frame.level})", meta))
    return series, truths


def _slice_series(
    data: NDArray[np.float32], time_s: NDArray[np.float64], frame: an.SliceFrame, name: str, meta: dict[str, Any]
) -> PerfusionSeries:
    """The acquired series of one slice, in signal units with its PD frames."""
    return PerfusionSeries(
        data=data,
        time_s=time_s,
        spacing_mm=frame.spacing_mm,
        geometry=frame.geometry,
        units="signal",
        n_pd_frames=N_PD_FRAMES,
        slice_position_mm=frame.slice_position_mm,
        name=name,
        metadata=dict(meta),
    )


def _aif_images(
    seed: int,
    condition: str,
    subject: _Subject,
    cond: _Condition,
    resp: Respiration,
    *,
    noise: bool,
    coil: bool,
    blur: bool,
) -> tuple[tuple[PerfusionSeries, ...], tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    """The dual-echo AIF images, on the AIF's own streams (so they leave the slices unchanged)."""
    cs = _CONDITION_STREAMS[condition]
    return simulate_aif_images(
        subject.heart,
        subject.placement,
        cond.curves,
        subject.aif_readout,
        cond.timing["beat_start_s"] + cond.timing["aif_offset_s"],
        resp.breathing,
        resp.motion_lps_mm * resp.scale if resp.moving else None,
        noise=noise,
        coil=coil,
        blur=blur,
        rng=_rng(seed, _ACQUISITION, 2),
        motion_rng=_rng(seed, cs + _MOTION, 9),
        noise_rng=_rng(seed, cs + _NOISE, 9),
    )


def _assemble(
    seed: int,
    condition: str,
    subject: _Subject,
    cond: _Condition,
    series: list[PerfusionSeries],
    truths: list[SliceTruth],
    aif_series: tuple[PerfusionSeries, ...],
    aif_labels: tuple[NDArray[np.uint8], NDArray[np.uint8]] | tuple[None, None],
    parameters: dict[str, Any],
) -> PhantomStudy:
    """The study and its truth (AIF on a 0.5 s grid, per-segment table, the random draws)."""
    hct = cond.bolus.hematocrit
    blood = cond.curves.blood
    study = PerfusionStudy(
        slices=tuple(series),
        aif=None,
        aif_series=aif_series,
        condition=condition,
        hematocrit=hct,
        name=f"phantom-{seed}-{condition}",
        metadata={"source": "qperf.phantom", "seed": int(seed), "kinetic_model": cond.kinetic_model},
    )
    grid = np.arange(0.0, float(max(s.time_s[-1] for s in series)) + 0.5, 0.5)
    truth = PhantomTruth(
        aif_blood_gd_mmol_l=blood.at("lv", grid),
        aif_time_s=grid,
        aif_frames_gd_mmol_l=blood.at("lv", cond.timing["beat_start_s"] + cond.timing["aif_offset_s"]),
        hematocrit=hct,
        slices=truths,
        segments=segment_table(truths, subject.perf, condition),
        condition=condition,
        kinetic_model=cond.kinetic_model,
        parameters=parameters,
        aif_labels_ref=aif_labels[0],
        aif_labels_moving=aif_labels[1],
    )
    return PhantomStudy(study=study, truth=truth)


def _describe(
    seed: int, subject: _Subject, cond: _Condition, scanner: Scanner, snr_pd: float, motion_vec: NDArray[np.float64]
) -> dict[str, Any]:
    """The random draws recorded in ``truth.json`` (``parameters``), floats rounded to 5 decimals."""
    heart, perf, timing = subject.heart, subject.perf, cond.timing

    def clean(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return [clean(x) for x in v.tolist()]
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return round(float(v), 5) if math.isfinite(v) else None
        if isinstance(v, (np.integer,)):
            return int(v)
        return v

    return {
        "seed": int(seed),
        "heart": {
            "long_axis_lps": clean(heart.long_axis),
            "endo_radius_mid_mm": clean(heart.endo_mid_mm),
            "wall_thickness_mid_mm": clean(heart.wall_mid_mm),
            "rv_depth_mm": clean(heart.rv_depth_mm),
        },
        "perfusion": {
            "defect": perf.defect,
            "territories": list(perf.territories),
            "heterogeneity_sd": clean(perf.heterogeneity_sd),
        },
        "bolus": clean(dataclasses.asdict(cond.bolus)),
        "heart_rate_bpm": clean(timing["heart_rate_bpm"]),
        "slice_offset_s": clean(timing["slice_offset_s"]),
        "readout": subject.img_readout.metadata(),
        "aif_readout": subject.aif_readout.metadata(),
        "snr_pd_myocardium": clean(snr_pd),
        "breathing_motion_lps_mm": clean(motion_vec),
        "native_t1_scale": subject.t1_scale,
        "kspace_fraction_yx": [round(float(v), 4) for v in scanner.kspace_fraction_yx],
    }
