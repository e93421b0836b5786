"""Assembly of a phantom study: random draws, timing, curves, slices, AIF images, truth."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import ValidationError
from qperf.phantom import anatomy as an
from qperf.phantom import physiology
from qperf.phantom.kinetics import BloodCurves, BolusParameters, blood_curves, get_tissue_model, simulate_tissue
from qperf.phantom.motion import Breathing, MotionModel
from qperf.phantom.raster import lps_to_pixel, rasterise
from qperf.phantom.render import (
    Acquisition,
    ClassTable,
    assign_clusters,
    class_fractions,
    moving_labels,
    noise_free_gd,
    parameter_maps,
    render_series,
)
from qperf.phantom.signal import Readout, smooth_texture, sr_signal, tissue
from qperf.phantom.truth import PhantomStudy, PhantomTruth, SliceTruth, segment_table
from qperf.progress import ProgressCallback, null_progress
from qperf.types import PerfusionSeries, PerfusionStudy

N_PD_FRAMES = 3
SUPERSAMPLE = 3

# stream identifiers of the random draws: heart-level draws are shared by stress and rest
_HEART, _PERFUSION, _PLACEMENT, _ACQUISITION = 1, 2, 3, 4
_CONDITION_STREAMS = {"stress": 100, "rest": 200}
_BOLUS, _TIMING, _BREATHING, _MOTION, _NOISE, _SCANNER = range(6)

_CLASS_TISSUE = {
    an.AIR: "air",
    an.MUSCLE: "muscle",
    an.FAT: "fat",
    an.LUNG: "lung",
    an.LIVER: "liver",
    an.AORTA: "blood",
    an.RV_BLOOD: "blood",
    an.LV_BLOOD: "blood",
    an.RV_WALL: "myocardium",
    an.PAPILLARY: "myocardium",
    an.MARROW: "marrow",
    an.VESSEL_RV: "blood",
    an.VESSEL_LV: "blood",
    an.MYO: "myocardium",
}
_CLASS_BLOOD = {
    an.AORTA: "aorta",
    an.RV_BLOOD: "rv",
    an.LV_BLOOD: "lv",
    an.VESSEL_RV: "vessel_rv",
    an.VESSEL_LV: "vessel_lv",
    an.LIVER: "liver",
    an.LUNG: "lung",
}


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _check(seed: int, n_slices: int, n_frames: int, condition: str, field_t: float) -> None:
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
    hr = rng.uniform(75.0, 105.0) if condition == "stress" else rng.uniform(55.0, 80.0)
    rr = 60.0 / hr * (1.0 + rng.normal(0.0, 0.03, n_frames))
    for k in np.nonzero(rng.random(n_frames - 1) < 0.02)[0]:  # ectopic beat, compensatory pause
        rr[k] *= 0.7
        rr[k + 1] *= 1.3
    starts = np.concatenate([[0.0], np.cumsum(rr[:-1])]) + rng.uniform(0.0, 0.5)
    slot = min(rng.uniform(0.13, 0.19), (0.9 * rr.min() - 0.08) / (n_slices + 1))
    offsets = 0.03 + slot * (np.arange(n_slices) + 1)
    return {"heart_rate_bpm": hr, "beat_start_s": starts, "slice_offset_s": offsets, "aif_offset_s": 0.03}


def _class_table(
    n_classes: int,
    time_s: NDArray[np.float64],
    blood: BloodCurves,
    sim_grid: NDArray[np.float64],
    sims: dict[str, NDArray[np.float64]],
    cluster_params: dict[str, NDArray[np.float64]],
    field_t: float,
    t1_scale: dict[str, float] | None = None,
) -> ClassTable:
    t = time_s
    gd = np.zeros((n_classes, t.shape[0]))
    props = np.zeros((n_classes, 4))
    scale = t1_scale or {}
    for cls, name in _CLASS_TISSUE.items():
        p = tissue(name, field_t)
        props[cls] = (p.t1_ms * scale.get(name, 1.0), p.t2_ms, p.t2star_ms, p.proton_density)
    myo = tissue("myocardium", field_t)
    props[an.N_BASE_CLASSES :] = (
        myo.t1_ms * scale.get("myocardium", 1.0),
        myo.t2_ms,
        myo.t2star_ms,
        myo.proton_density,
    )
    props[(props[:, 0] == 0)] = (1000.0, 50.0, 50.0, 0.0)
    for cls, curve in _CLASS_BLOOD.items():
        gd[cls] = blood.at(curve, t)
    interp = {k: np.array([np.interp(t, sim_grid, c, left=0.0) for c in v]) for k, v in sims.items()}
    gd[an.MUSCLE] = interp["other"][0]
    gd[an.MYO] = interp["other"][1]
    gd[an.PAPILLARY] = interp["other"][1]
    gd[an.RV_WALL] = interp["other"][1]
    gd[an.N_BASE_CLASSES :] = interp["myo"]
    params: dict[str, NDArray[np.float64]] = {}
    for name in physiology.PARAM_NAMES:
        v = np.full(n_classes, np.nan)
        v[an.N_BASE_CLASSES :] = cluster_params[name]
        params[name] = v
    return ClassTable(gd, props[:, 0].copy(), props[:, 1].copy(), props[:, 2].copy(), props[:, 3].copy(), params)


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
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    PhantomStudy
        ``.study`` (signal units, PD frames, acquisition metadata) and ``.truth``.
    """
    _check(seed, n_slices, n_frames, condition, field_t)
    if not (isinstance(motion_scale, (int, float)) and math.isfinite(motion_scale) and motion_scale >= 0):
        raise ValidationError(f"motion_scale: expected a non-negative number, found {motion_scale!r}")
    if not (isinstance(t1_variation, (int, float)) and 0 <= t1_variation <= 0.3):
        raise ValidationError(f"t1_variation: expected a number from 0 to 0.3, found {t1_variation!r}")
    progress = progress or null_progress
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
    cparams = physiology.plasma_parameters(perf.cluster_parameters(condition), hct)
    mean = physiology.plasma_parameters(perf.mean_parameters(condition), hct)
    muscle = {"Fp": 0.12 if condition == "stress" else 0.06, "PS": 0.05, "Vp": 0.03, "Visf": 0.12}
    params_all = {k: np.concatenate([cparams[k], [muscle[k], mean[k]]]) for k in physiology.PARAM_NAMES}
    progress(0.05, "simulating tissue curves")
    sim_grid, curves = simulate_tissue(
        tissue_model, lambda tt: blood.at("lv", tt), hct, 0.0, t_stop, {k: v for k, v in params_all.items()}
    )
    n_cl = cparams["Fp"].shape[0]
    sims = {"myo": curves[:n_cl], "other": curves[n_cl:]}

    mrng = _rng(seed, cs + _MOTION)
    breathing = Breathing.draw(_rng(seed, cs + _BREATHING), 0.0, t_stop)
    motion_dir = np.array([0.0, -0.3, -1.0]) + mrng.normal(0.0, 0.25, 3)
    motion_vec = mrng.uniform(8.0, 16.0) * motion_dir / np.linalg.norm(motion_dir)
    nrng = _rng(seed, cs + _NOISE)
    srng = _rng(seed, _ACQUISITION, 1)
    myo_t = tissue("myocardium", field_t)
    pd_myo = float(sr_signal(0.0, myo_t.t1_ms, myo_t.t2_ms, img_readout, proton_density=True)) * myo_t.proton_density
    sr_myo = float(sr_signal(0.0, myo_t.t1_ms, myo_t.t2_ms, img_readout)) * myo_t.proton_density
    level = srng.uniform(200.0, 800.0)  # PD-frame myocardial signal
    gain = level / pd_myo
    # noise set by the SNR of the pre-contrast myocardium in the SR frames (about 6 to 16)
    snr_sr = srng.uniform(6.0, 16.0)
    snr_pd = snr_sr * pd_myo / sr_myo
    coil_strength = srng.uniform(0.6, 1.0) if coil else 0.0
    coil_map = None
    phase_fraction = srng.uniform(0.5, 0.85)
    read_fraction = srng.uniform(0.75, 1.0)
    kspace = (phase_fraction, read_fraction) if srng.random() < 0.5 else (read_fraction, phase_fraction)
    if not blur:
        kspace = (1.0, 1.0)
    texture_amplitude = srng.uniform(0.02, 0.08) if coil else 0.0
    # parallel-imaging noise amplification: a smooth g-factor map from 1 to about 1.2-1.6
    g_factor = None
    if noise:
        g_raw = smooth_texture(placement.shape, srng, 1.0, cell_px=max(placement.shape) // 4)
        g_factor = np.asarray(
            1.0 + srng.uniform(0.2, 0.6) * (g_raw - g_raw.min()) / max(float(np.ptp(g_raw)), 1e-6), dtype=np.float32
        )

    zetas = an.slice_zetas(n_slices, _rng(seed, _PLACEMENT, 1))
    series: list[PerfusionSeries] = []
    truths: list[SliceTruth] = []
    common_meta: dict[str, Any] = {
        **img_readout.metadata(),
        "heart_rate_bpm": round(float(timing["heart_rate_bpm"]), 1),
        "series_description": f"QPerf phantom seed {seed} {condition}",
        "patient_id": f"phantom-{seed}",
    }
    for k, zeta in enumerate(zetas):
        progress(0.1 + 0.7 * k / n_slices, f"slice {k + 1} of {n_slices}")
        frame = placement.slice_frame(heart, zeta)
        time_s = starts + timing["slice_offset_s"][k]
        raster = rasterise(heart, frame, SUPERSAMPLE)
        labels = assign_clusters(raster, frame)
        frac = class_fractions(labels, frame, SUPERSAMPLE, physiology.N_CLASSES)
        table = _class_table(physiology.N_CLASSES, time_s, blood, sim_grid, sims, cparams, field_t, t1_scale)
        if coil_map is None:
            ant = np.array([0.0, -1.0, 0.0])
            ant_yx = (float(np.dot(frame.geometry.y_direction, ant)), float(np.dot(frame.geometry.x_direction, ant)))
            coil_map = _coil(frame.shape, frame.spacing_mm, ant_yx, srng, coil_strength)
        d = m = None
        depth = breathing.at(time_s)
        if motion:
            heart_yx = lps_to_pixel(frame, frame.centre_lps)
            my = float(np.dot(motion_vec, frame.geometry.y_direction))
            mx = float(np.dot(motion_vec, frame.geometry.x_direction))
            # through-plane motion: the slice cuts a level shifted along the long axis
            theta = np.linspace(0.0, 2 * np.pi, 36, endpoint=False)
            dz = 0.01
            dlog_r = np.log(
                heart.endo_radius(min(zeta + dz, 1.0), theta).mean()
                / heart.endo_radius(max(zeta - dz, 0.0), theta).mean()
            ) / (min(zeta + dz, 1.0) - max(zeta - dz, 0.0))
            dzeta = float(np.dot(motion_vec, heart.long_axis)) / heart.length_mm
            radial = float(np.clip(dlog_r * dzeta, -0.08, 0.08))
            mm = MotionModel.draw(
                mrng, frame.shape, frame.spacing_mm, heart_yx, (my, mx), scale=motion_scale, radial_scale=radial
            )
            jitter = mrng.normal(0.0, 0.4 * motion_scale, (time_s.shape[0], 2)) / np.asarray(frame.spacing_mm)
            d = mm.displacement(depth, jitter)
            m = mm.inverse(depth, jitter)
        texture = smooth_texture(frame.shape, srng, texture_amplitude)
        acq = Acquisition(
            img_readout, N_PD_FRAMES, gain, coil_map * texture, level / snr_pd if noise else 0.0, (), kspace, g_factor
        )
        data = render_series(frac, table, acq, frame.shape, m, nrng, labels.classes, SUPERSAMPLE)[0]
        maps = parameter_maps(frac, table, labels.labels_ref)
        zeros = np.zeros((time_s.shape[0], 2, *frame.shape), dtype=np.float32)
        truths.append(
            SliceTruth(
                level=frame.level,
                labels_moving=moving_labels(labels, m, time_s.shape[0]),
                labels_ref=labels.labels_ref,
                ref_to_moving_px=d if d is not None else zeros,
                moving_to_ref_px=m if m is not None else zeros.copy(),
                insertion_points_yx=dict(raster.insertion_yx),
                aha_segments=labels.aha,
                mbf_ml_min_g=(maps["Fp"] / (1.0 - hct)).astype(np.float32),
                fp_ml_min_g=maps["Fp"],
                ps_ml_min_g=maps["PS"],
                vp_ml_g=maps["Vp"],
                visf_ml_g=maps["Visf"],
                gd_noise_free=noise_free_gd(frac, table, frame.shape),
                time_s=time_s,
                breathing=depth,
                spacing_mm=frame.spacing_mm,
                geometry=frame.geometry,
                slice_position_mm=frame.slice_position_mm,
            )
        )
        series.append(
            PerfusionSeries(
                data=data,
                time_s=time_s,
                spacing_mm=frame.spacing_mm,
                geometry=frame.geometry,
                units="signal",
                n_pd_frames=N_PD_FRAMES,
                slice_position_mm=frame.slice_position_mm,
                name=f"slice {k + 1} ({frame.level})",
                metadata=dict(common_meta),
            )
        )

    aif_series: tuple[PerfusionSeries, ...] = ()
    aif_labels: tuple[NDArray[np.uint8], NDArray[np.uint8]] | tuple[None, None] = (None, None)
    aif_time = starts + timing["aif_offset_s"]
    if aif_images:
        progress(0.85, "AIF images")
        aif_series, aif_labels = _aif_series(
            heart, placement, perf, condition, blood, sim_grid, sims, cparams, field_t, aif_readout, aif_time,
            breathing, motion_vec * motion_scale if motion else None, noise, coil, blur, seed, cs, t1_scale,
        )  # fmt: skip
    study = PerfusionStudy(
        slices=tuple(series),
        aif=None,
        aif_series=aif_series,
        condition=condition,
        hematocrit=hct,
        name=f"phantom-{seed}-{condition}",
        metadata={"source": "qperf.phantom", "seed": int(seed), "kinetic_model": model_used},
    )
    grid = np.arange(0.0, float(max(s.time_s[-1] for s in series)) + 0.5, 0.5)
    truth = PhantomTruth(
        aif_blood_gd_mmol_l=blood.at("lv", grid),
        aif_time_s=grid,
        aif_frames_gd_mmol_l=blood.at("lv", aif_time),
        hematocrit=hct,
        slices=truths,
        segments=segment_table(truths, perf, condition),
        condition=condition,
        kinetic_model=model_used,
        parameters={
            **_describe(seed, heart, perf, bolus, timing, img_readout, aif_readout, snr_pd, motion_vec),
            "native_t1_scale": t1_scale,
            "kspace_fraction_yx": [round(float(v), 4) for v in kspace],
        },
        aif_labels_ref=aif_labels[0],
        aif_labels_moving=aif_labels[1],
    )
    progress(1.0, "done")
    return PhantomStudy(study=study, truth=truth)


def _coil(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    ant_yx: tuple[float, float],
    rng: np.random.Generator,
    strength: float,
) -> NDArray[np.float32]:
    from qperf.phantom.signal import coil_shading

    return coil_shading(shape, spacing, ant_yx, rng, strength)


def _aif_series(
    heart: an.Heart,
    placement: an.Placement,
    perf: physiology.Perfusion,
    condition: str,
    blood: BloodCurves,
    sim_grid: NDArray[np.float64],
    sims: dict[str, NDArray[np.float64]],
    cparams: dict[str, NDArray[np.float64]],
    field_t: float,
    readout: Readout,
    time_s: NDArray[np.float64],
    breathing: Breathing,
    motion_vec: NDArray[np.float64] | None,
    noise: bool,
    coil: bool,
    blur: bool,
    seed: int,
    cs: int,
    t1_scale: dict[str, float],
) -> tuple[tuple[PerfusionSeries, ...], tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    """Low-resolution dual-echo AIF images of a basal slice (short saturation time)."""
    rng = _rng(seed, _ACQUISITION, 2)
    ny, nx = placement.shape
    factor = nx / rng.uniform(48.0, 64.0)
    shape = (max(int(round(ny / factor)), 24), max(int(round(nx / factor)), 24))
    spacing = placement.spacing_mm[0] * nx / shape[1]
    cy, cx = placement.lv_pixel_yx
    aif_place = dataclasses.replace(
        placement, spacing_mm=(spacing, spacing), shape=shape, lv_pixel_yx=(cy * shape[0] / ny, cx * shape[1] / nx)
    )
    frame = aif_place.slice_frame(heart, float(rng.uniform(0.64, 0.74)))
    raster = rasterise(heart, frame, SUPERSAMPLE)
    labels = assign_clusters(raster, frame, clusters=False)
    frac = class_fractions(labels, frame, SUPERSAMPLE, an.N_BASE_CLASSES)
    table = _class_table(physiology.N_CLASSES, time_s, blood, sim_grid, sims, cparams, field_t, t1_scale)
    table = ClassTable(
        table.gd[: an.N_BASE_CLASSES],
        table.t1_ms[: an.N_BASE_CLASSES],
        table.t2_ms[: an.N_BASE_CLASSES],
        table.t2star_ms[: an.N_BASE_CLASSES],
        table.proton_density[: an.N_BASE_CLASSES],
        {k: v[: an.N_BASE_CLASSES] for k, v in table.params.items()},
    )
    te1 = rng.uniform(0.7, 1.1)
    echoes = (te1, te1 + rng.uniform(1.0, 1.6))
    blood_t = tissue("blood", field_t)
    pd_blood = float(sr_signal(0.0, blood_t.t1_ms, blood_t.t2_ms, readout, proton_density=True))
    level = rng.uniform(200.0, 800.0)
    snr = rng.uniform(50.0, 120.0)
    ant = np.array([0.0, -1.0, 0.0])
    ant_yx = (float(np.dot(frame.geometry.y_direction, ant)), float(np.dot(frame.geometry.x_direction, ant)))
    coil_map = _coil(shape, frame.spacing_mm, ant_yx, rng, rng.uniform(0.6, 1.0) if coil else 0.0)
    m = None
    if motion_vec is not None:
        mrng = _rng(seed, cs + _MOTION, 9)
        depth = breathing.at(time_s)
        my = float(np.dot(motion_vec, frame.geometry.y_direction))
        mx = float(np.dot(motion_vec, frame.geometry.x_direction))
        mm = MotionModel.draw(mrng, shape, frame.spacing_mm, lps_to_pixel(frame, frame.centre_lps), (my, mx))
        jitter = mrng.normal(0.0, 0.4, (time_s.shape[0], 2)) / spacing
        m = mm.inverse(depth, jitter)
    kspace = (rng.uniform(0.7, 0.95), rng.uniform(0.8, 1.0)) if blur else (1.0, 1.0)
    acq = Acquisition(readout, N_PD_FRAMES, level / pd_blood, coil_map, level / snr if noise else 0.0, echoes, kspace)
    frames = render_series(frac, table, acq, shape, m, _rng(seed, cs + _NOISE, 9), labels.classes, SUPERSAMPLE)
    meta = {**readout.metadata(), "echo_times_ms": [round(float(e), 4) for e in echoes], "series_description": "AIF"}
    moving = moving_labels(labels, m, time_s.shape[0])
    series = tuple(
        PerfusionSeries(
            data=f,
            time_s=time_s,
            spacing_mm=frame.spacing_mm,
            geometry=frame.geometry,
            units="signal",
            n_pd_frames=N_PD_FRAMES,
            slice_position_mm=frame.slice_position_mm,
            name=f"AIF echo {i + 1}",
            metadata={**meta, "echo_index": i},
        )
        for i, f in enumerate(frames)
    )
    return series, (labels.labels_ref, moving)


def _describe(
    seed: int,
    heart: an.Heart,
    perf: physiology.Perfusion,
    bolus: BolusParameters,
    timing: dict[str, Any],
    img: Readout,
    aif: Readout,
    snr_pd: float,
    motion_vec: NDArray[np.float64],
) -> dict[str, Any]:
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
        "bolus": clean(dataclasses.asdict(bolus)),
        "heart_rate_bpm": clean(timing["heart_rate_bpm"]),
        "slice_offset_s": clean(timing["slice_offset_s"]),
        "readout": img.metadata(),
        "aif_readout": aif.metadata(),
        "snr_pd_myocardium": clean(snr_pd),
        "breathing_motion_lps_mm": clean(motion_vec),
    }
