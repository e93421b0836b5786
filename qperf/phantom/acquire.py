"""Acquisition of the phantom images: class tables, one short-axis slice with its truth, the AIF images.

:mod:`qperf.phantom.generate` draws the subject, the condition and the scanner set-up; the
functions here turn those draws into images. Random numbers come only from the generators
passed in, in a fixed order, so a seed gives the same study draw for draw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qperf.phantom import anatomy as an
from qperf.phantom import physiology
from qperf.phantom.kinetics import BloodCurves
from qperf.phantom.motion import Breathing, MotionModel
from qperf.phantom.raster import lps_to_pixel, rasterise
from qperf.phantom.render import (
    Acquisition,
    ClassTable,
    SliceLabels,
    assign_clusters,
    class_fractions,
    moving_labels,
    noise_free_gd,
    parameter_maps,
    render_series,
)
from qperf.phantom.signal import Readout, coil_shading, smooth_texture, sr_signal, tissue
from qperf.phantom.truth import SliceTruth
from qperf.types import PerfusionSeries

#: Proton-density frames at the start of every series.
N_PD_FRAMES = 3
#: Sub-pixels per image pixel along each axis (partial volume of the anatomy).
SUPERSAMPLE = 3

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
_ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])


def class_table(
    n_classes: int,
    time_s: NDArray[np.float64],
    blood: BloodCurves,
    sim_grid: NDArray[np.float64],
    sims: dict[str, NDArray[np.float64]],
    cluster_params: dict[str, NDArray[np.float64]],
    field_t: float,
    t1_scale: dict[str, float] | None = None,
) -> ClassTable:
    """Gd curves on ``time_s``, relaxation times and kinetic parameters of every tissue class.

    Blood classes follow their blood curve, myocardial clusters the simulated tissue curve of
    their cluster (``sims["myo"]``), chest-wall muscle and the papillary muscles, RV wall and
    unassigned myocardium ``sims["other"]`` (muscle, mean myocardium); ``t1_scale`` scales the
    native T1 of ``"blood"`` and ``"myocardium"``.
    """
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


@dataclass(frozen=True)
class TissueCurves:
    """The simulated concentration curves of one study, from which every class table is read.

    Attributes
    ----------
    blood : BloodCurves
    sim_grid : ndarray (n,)
        Time grid (s) of the tissue curves.
    sims : dict
        ``"myo"``: one curve per myocardial cluster; ``"other"``: chest-wall muscle and the
        mean myocardium.
    cluster_params : dict of str to ndarray
        Plasma kinetic parameters per cluster (``Fp``, ``PS``, ``Vp``, ``Visf``).
    field_t : float
    t1_scale : dict of str to float
        Native-T1 scale of the subject's blood and myocardium.
    """

    blood: BloodCurves
    sim_grid: NDArray[np.float64]
    sims: dict[str, NDArray[np.float64]]
    cluster_params: dict[str, NDArray[np.float64]]
    field_t: float
    t1_scale: dict[str, float]

    def class_table(self, time_s: NDArray[np.float64]) -> ClassTable:
        """The class table of every class (clusters included) on ``time_s``."""
        return class_table(
            physiology.N_CLASSES,
            time_s,
            self.blood,
            self.sim_grid,
            self.sims,
            self.cluster_params,
            self.field_t,
            self.t1_scale,
        )


@dataclass(frozen=True)
class Scanner:
    """The imaging set-up shared by every short-axis slice of a study.

    Attributes
    ----------
    readout : Readout
    gain : float
        Signal per unit of the signal equation.
    noise_sigma : float
        Rician noise level in signal units (0: noise-free).
    kspace_fraction_yx : (float, float)
        Acquired fraction of k-space (1, 1: no blur).
    coil : ndarray (y, x) float32
        Surface-coil receive profile.
    texture_amplitude : float
        Amplitude of the static tissue texture drawn per slice.
    g_factor : ndarray (y, x) float32 or None
        Parallel-imaging noise amplification.
    """

    readout: Readout
    gain: float
    noise_sigma: float
    kspace_fraction_yx: tuple[float, float]
    coil: NDArray[np.float32]
    texture_amplitude: float
    g_factor: NDArray[np.float32] | None


@dataclass(frozen=True)
class Respiration:
    """Breathing of a study and the generator of its per-slice motion draws.

    ``motion_lps_mm`` is the heart's displacement at full breathing depth; ``moving`` False
    keeps the slices still (the breathing trace is still recorded in the truth).
    """

    breathing: Breathing
    motion_lps_mm: NDArray[np.float64]
    rng: np.random.Generator
    scale: float
    moving: bool


def anterior_yx(frame: an.SliceFrame) -> tuple[float, float]:
    """Image components ``(y, x)`` of the patient's anterior direction in a slice."""
    return (
        float(np.dot(frame.geometry.y_direction, _ANTERIOR_LPS)),
        float(np.dot(frame.geometry.x_direction, _ANTERIOR_LPS)),
    )


def _through_plane_scale(heart: an.Heart, zeta: float, motion_lps_mm: NDArray[np.float64]) -> float:
    """Relative radius change of the cut as breathing shifts the heart along its long axis.

    The slice then cuts a level shifted along the axis; the change is bounded to 8 %.
    """
    theta = np.linspace(0.0, 2 * np.pi, 36, endpoint=False)
    dz = 0.01
    dlog_r = np.log(
        heart.endo_radius(min(zeta + dz, 1.0), theta).mean() / heart.endo_radius(max(zeta - dz, 0.0), theta).mean()
    ) / (min(zeta + dz, 1.0) - max(zeta - dz, 0.0))
    dzeta = float(np.dot(motion_lps_mm, heart.long_axis)) / heart.length_mm
    return float(np.clip(dlog_r * dzeta, -0.08, 0.08))


def slice_motion(
    heart: an.Heart, frame: an.SliceFrame, resp: Respiration, depth: NDArray[np.float64]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Reference-to-moving and moving-to-reference displacements ``(t, 2, y, x)`` (pixels) of a slice.

    In-plane motion is the projection of the study's breathing motion plus a frame-to-frame
    jitter of 0.4 mm (times ``resp.scale``).
    """
    heart_yx = lps_to_pixel(frame, frame.centre_lps)
    my = float(np.dot(resp.motion_lps_mm, frame.geometry.y_direction))
    mx = float(np.dot(resp.motion_lps_mm, frame.geometry.x_direction))
    radial = _through_plane_scale(heart, frame.zeta, resp.motion_lps_mm)
    mm = MotionModel.draw(
        resp.rng, frame.shape, frame.spacing_mm, heart_yx, (my, mx), scale=resp.scale, radial_scale=radial
    )
    jitter = resp.rng.normal(0.0, 0.4 * resp.scale, (depth.shape[0], 2)) / np.asarray(frame.spacing_mm)
    return mm.displacement(depth, jitter), mm.inverse(depth, jitter)


def render_slice(
    heart: an.Heart,
    frame: an.SliceFrame,
    time_s: NDArray[np.float64],
    curves: TissueCurves,
    scanner: Scanner,
    resp: Respiration,
    texture_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    hematocrit: float,
) -> tuple[NDArray[np.float32], SliceTruth]:
    """The acquired frames ``(t, y, x)`` of one short-axis slice and its truth.

    Draws, in order: the slice's motion (``resp.rng``, when moving), its tissue texture
    (``texture_rng``) and its noise (``noise_rng``).
    """
    raster = rasterise(heart, frame, SUPERSAMPLE)
    labels = assign_clusters(raster, frame)
    frac = class_fractions(labels, frame, SUPERSAMPLE, physiology.N_CLASSES)
    table = curves.class_table(time_s)
    depth = resp.breathing.at(time_s)
    d = m = None
    if resp.moving:
        d, m = slice_motion(heart, frame, resp, depth)
    texture = smooth_texture(frame.shape, texture_rng, scanner.texture_amplitude)
    acq = Acquisition(
        scanner.readout,
        N_PD_FRAMES,
        scanner.gain,
        scanner.coil * texture,
        scanner.noise_sigma,
        (),
        scanner.kspace_fraction_yx,
        scanner.g_factor,
    )
    data = render_series(frac, table, acq, frame.shape, m, noise_rng, labels.classes, SUPERSAMPLE)[0]
    maps = parameter_maps(frac, table, labels.labels_ref)
    zeros = np.zeros((time_s.shape[0], 2, *frame.shape), dtype=np.float32)
    truth = SliceTruth(
        level=frame.level,
        labels_moving=moving_labels(labels, m, time_s.shape[0]),
        labels_ref=labels.labels_ref,
        ref_to_moving_px=d if d is not None else zeros,
        moving_to_ref_px=m if m is not None else zeros.copy(),
        insertion_points_yx=dict(raster.insertion_yx),
        aha_segments=labels.aha,
        mbf_ml_min_g=(maps["Fp"] / (1.0 - hematocrit)).astype(np.float32),
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
    return data, truth


# --- dual-echo AIF images -----------------------------------------------------------------


def _aif_slice(heart: an.Heart, placement: an.Placement, rng: np.random.Generator) -> tuple[an.SliceFrame, SliceLabels]:
    """A basal slice on a coarse grid of 48-64 pixels across the field of view."""
    ny, nx = placement.shape
    factor = nx / rng.uniform(48.0, 64.0)
    shape = (max(int(round(ny / factor)), 24), max(int(round(nx / factor)), 24))
    spacing = placement.spacing_mm[0] * nx / shape[1]
    cy, cx = placement.lv_pixel_yx
    aif_place = dataclasses.replace(
        placement, spacing_mm=(spacing, spacing), shape=shape, lv_pixel_yx=(cy * shape[0] / ny, cx * shape[1] / nx)
    )
    frame = aif_place.slice_frame(heart, float(rng.uniform(0.64, 0.74)))
    labels = assign_clusters(rasterise(heart, frame, SUPERSAMPLE), frame, clusters=False)
    return frame, labels


def _base_classes(table: ClassTable) -> ClassTable:
    """The rows of the base tissue classes (the AIF slice has no myocardial clusters)."""
    n = an.N_BASE_CLASSES
    return ClassTable(
        table.gd[:n],
        table.t1_ms[:n],
        table.t2_ms[:n],
        table.t2star_ms[:n],
        table.proton_density[:n],
        {k: v[:n] for k, v in table.params.items()},
    )


def _aif_acquisition(
    frame: an.SliceFrame,
    readout: Readout,
    field_t: float,
    noise: bool,
    coil: bool,
    blur: bool,
    rng: np.random.Generator,
) -> Acquisition:
    """Two echoes (TE1 0.7-1.1 ms, 1.0-1.6 ms apart) and a blood SNR of 50-120 in the PD frames."""
    te1 = rng.uniform(0.7, 1.1)
    echoes = (te1, te1 + rng.uniform(1.0, 1.6))
    blood_t = tissue("blood", field_t)
    pd_blood = float(sr_signal(0.0, blood_t.t1_ms, blood_t.t2_ms, readout, proton_density=True))
    level = rng.uniform(200.0, 800.0)
    snr = rng.uniform(50.0, 120.0)
    strength = rng.uniform(0.6, 1.0) if coil else 0.0
    coil_map = coil_shading(frame.shape, frame.spacing_mm, anterior_yx(frame), rng, strength)
    kspace = (rng.uniform(0.7, 0.95), rng.uniform(0.8, 1.0)) if blur else (1.0, 1.0)
    return Acquisition(readout, N_PD_FRAMES, level / pd_blood, coil_map, level / snr if noise else 0.0, echoes, kspace)


def _aif_motion(
    frame: an.SliceFrame,
    breathing: Breathing,
    motion_lps_mm: NDArray[np.float64],
    time_s: NDArray[np.float64],
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Moving-to-reference displacements of the AIF slice, with a 0.4 mm frame-to-frame jitter."""
    depth = breathing.at(time_s)
    my = float(np.dot(motion_lps_mm, frame.geometry.y_direction))
    mx = float(np.dot(motion_lps_mm, frame.geometry.x_direction))
    mm = MotionModel.draw(rng, frame.shape, frame.spacing_mm, lps_to_pixel(frame, frame.centre_lps), (my, mx))
    jitter = rng.normal(0.0, 0.4, (time_s.shape[0], 2)) / frame.spacing_mm[0]
    return mm.inverse(depth, jitter)


def simulate_aif_images(
    heart: an.Heart,
    placement: an.Placement,
    curves: TissueCurves,
    readout: Readout,
    time_s: NDArray[np.float64],
    breathing: Breathing,
    motion_lps_mm: NDArray[np.float64] | None,
    *,
    noise: bool,
    coil: bool,
    blur: bool,
    rng: np.random.Generator,
    motion_rng: np.random.Generator,
    noise_rng: np.random.Generator,
) -> tuple[tuple[PerfusionSeries, ...], tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    """Low-resolution dual-echo AIF images of a basal slice (short saturation time).

    Returns one series per echo and the slice's reference and moving labels. Draws, in
    order: the grid and slice level, the acquisition (``rng``), the motion (``motion_rng``,
    when ``motion_lps_mm`` is given) and the noise (``noise_rng``).
    """
    frame, labels = _aif_slice(heart, placement, rng)
    frac = class_fractions(labels, frame, SUPERSAMPLE, an.N_BASE_CLASSES)
    table = _base_classes(curves.class_table(time_s))
    acq = _aif_acquisition(frame, readout, curves.field_t, noise, coil, blur, rng)
    m = None if motion_lps_mm is None else _aif_motion(frame, breathing, motion_lps_mm, time_s, motion_rng)
    frames = render_series(frac, table, acq, frame.shape, m, noise_rng, labels.classes, SUPERSAMPLE)
    meta = {
        **readout.metadata(),
        "echo_times_ms": [round(float(e), 4) for e in acq.echo_times_ms],
        "series_description": "AIF",
    }
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
    return series, (labels.labels_ref, moving_labels(labels, m, time_s.shape[0]))
