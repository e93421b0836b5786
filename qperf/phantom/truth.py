"""Ground truth of a phantom study and the AHA segment convention applied to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.phantom import physiology
from qperf.types import PerfusionStudy, SliceGeometry


@dataclass(eq=False)
class SliceTruth:
    """Truth of one slice. Pixel arrays are on the slice's image grid ``(y, x)``.

    Attributes
    ----------
    level : {"basal", "mid", "apical"}
    labels_moving : ndarray (t, y, x) uint8
        Labels (0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool) of every
        acquired (moving) frame, PD frames included.
    labels_ref : ndarray (y, x) uint8
        Labels of the reference (motion-free) anatomy.
    ref_to_moving_px, moving_to_ref_px : ndarray (t, 2, y, x) float32
        Displacements ``(dy, dx)`` in pixels: reference pixel ``p`` appears at ``p + d(p)`` in
        frame ``t``; moving pixel ``q`` shows reference point ``q + m(q)``.
    insertion_points_yx : dict
        ``{"anterior": (y, x), "inferior": (y, x)}`` RV insertion points, reference frame, pixels.
    aha_segments : ndarray (y, x) int16
        0 outside the myocardium label, 1-16 inside.
    mbf_ml_min_g : ndarray (y, x) float32
        Myocardial (whole-)blood flow, ``Fp / (1 - Hct)``, as QPerf reports MBF.
    fp_ml_min_g, ps_ml_min_g, vp_ml_g, visf_ml_g : ndarray (y, x) float32
        Sub-pixel averages of the kinetic parameters (plasma flow Fp); NaN outside the
        myocardium label.
    gd_noise_free : ndarray (t, y, x) float32
        Noise-free, motion-free Gd (mmol/L) with partial volume, reference frame.
    time_s : ndarray (t,)
    breathing : ndarray (t,)
        Breathing depth at each frame (0 end-expiration, about 1 normal inspiration).
    """

    level: str
    labels_moving: NDArray[np.uint8]
    labels_ref: NDArray[np.uint8]
    ref_to_moving_px: NDArray[np.float32]
    moving_to_ref_px: NDArray[np.float32]
    insertion_points_yx: dict[str, tuple[float, float]]
    aha_segments: NDArray[np.int16]
    mbf_ml_min_g: NDArray[np.float32]
    fp_ml_min_g: NDArray[np.float32]
    ps_ml_min_g: NDArray[np.float32]
    vp_ml_g: NDArray[np.float32]
    visf_ml_g: NDArray[np.float32]
    gd_noise_free: NDArray[np.float32]
    time_s: NDArray[np.float64]
    breathing: NDArray[np.float64]
    spacing_mm: tuple[float, float]
    geometry: SliceGeometry
    slice_position_mm: float


@dataclass(eq=False)
class PhantomTruth:
    """Truth of a whole study.

    Attributes
    ----------
    aif_blood_gd_mmol_l, aif_time_s : ndarray (n,)
        The true arterial input (LV blood, mmol/L) on a regular 0.5 s grid covering the study.
    aif_frames_gd_mmol_l : ndarray (t,)
        The true LV blood Gd at the AIF image frame times.
    hematocrit : float
    slices : list of SliceTruth
    segments : dict
        Segment number -> table row (see :func:`segment_table`).
    condition : str
    kinetic_model : str
        Forward model that produced the tissue curves.
    parameters : dict
        The random draws that define the study (JSON-friendly).
    aif_labels_ref, aif_labels_moving : ndarray (y, x) and (t, y, x) uint8, or None
        Labels of the AIF images (same values as the slices), when they were simulated.
    """

    aif_blood_gd_mmol_l: NDArray[np.float64]
    aif_time_s: NDArray[np.float64]
    aif_frames_gd_mmol_l: NDArray[np.float64]
    hematocrit: float
    slices: list[SliceTruth]
    segments: dict[int, dict[str, Any]]
    condition: str
    kinetic_model: str
    parameters: dict[str, Any] = field(default_factory=dict)
    aif_labels_ref: NDArray[np.uint8] | None = None
    aif_labels_moving: NDArray[np.uint8] | None = None


@dataclass(eq=False)
class PhantomStudy:
    """A simulated study and its ground truth."""

    study: PerfusionStudy
    truth: PhantomTruth


def anterior_angle(geometry: SliceGeometry, spacing_mm: tuple[float, float]) -> float:
    """Angle (rad, ``atan2(y_mm, x_mm)`` in image millimetres) of the in-plane projection of LPS anterior."""
    ant = np.array([0.0, -1.0, 0.0])
    ay = float(np.dot(geometry.y_direction, ant))
    ax = float(np.dot(geometry.x_direction, ant))
    return float(np.arctan2(ay, ax))


def aha_sector(
    y: NDArray[np.float64],
    x: NDArray[np.float64],
    spacing_mm: tuple[float, float],
    lv_centroid_yx: tuple[float, float],
    anterior_insertion_yx: tuple[float, float],
    sense: float,
    level: str,
    angle_offset_rad: NDArray[np.floating] | float = 0.0,
) -> NDArray[np.int16]:
    """AHA segment (1-16) of pixel positions by the project convention.

    Angles are taken about the LV blood-pool centroid in millimetres, from the anterior
    insertion point, positive going away from anterior towards the septum (``sense`` +1 or -1
    in image ``atan2(y_mm, x_mm)`` angles). Basal/mid: six 60-degree sectors 2, 3, 4, 5, 6, 1;
    apical: 14 from +15 degrees, then 15, 16, 13. ``angle_offset_rad`` (broadcast with the
    positions) perturbs the angles; 0 gives the convention exactly.
    """
    dy, dx = spacing_mm
    cy, cx = lv_centroid_yx
    phi = np.arctan2((y - cy) * dy, (x - cx) * dx) + angle_offset_rad
    phi_ins = np.arctan2((anterior_insertion_yx[0] - cy) * dy, (anterior_insertion_yx[1] - cx) * dx)
    delta = np.mod(sense * (phi - phi_ins), 2 * np.pi)
    deg = np.degrees(delta)
    if level == "apical":
        idx = (np.floor(np.mod(deg - 15.0, 360.0) / 90.0).astype(int)) % 4
        return np.asarray(np.array([14, 15, 16, 13], dtype=np.int16)[idx])
    idx = np.floor(deg / 60.0).astype(int) % 6
    offset = 0 if level == "basal" else 6
    return np.asarray(np.array([2, 3, 4, 5, 6, 1], dtype=np.int16)[idx] + offset, dtype=np.int16)


def septal_sense(
    geometry: SliceGeometry,
    spacing_mm: tuple[float, float],
    lv_centroid_yx: tuple[float, float],
    rv_centroid_yx: tuple[float, float],
) -> float:
    """+1 or -1: the rotation sense (in image angles) from anterior towards the septum (RV side)."""
    dy, dx = spacing_mm
    phi_rv = np.arctan2((rv_centroid_yx[0] - lv_centroid_yx[0]) * dy, (rv_centroid_yx[1] - lv_centroid_yx[1]) * dx)
    diff = np.angle(np.exp(1j * (phi_rv - anterior_angle(geometry, spacing_mm))))
    return 1.0 if diff >= 0 else -1.0


def segment_table(truths: list[SliceTruth], perf: physiology.Perfusion, condition: str) -> dict[int, dict[str, Any]]:
    """Per-AHA-segment truth table.

    ``mbf_ml_min_g``, ``ps_ml_min_g``, ``vp_ml_g``, ``visf_ml_g``: means of the truth maps over
    the pixels of the AHA segment map (what a per-segment report should measure);
    ``nominal_stress_mbf_ml_min_g`` / ``nominal_rest_mbf_ml_min_g`` / ``nominal_mpr``: the
    segment's drawn flows (layer average; pixel heterogeneity and the wavy borders of the kinetic
    segments make the map means differ slightly); ``ischaemic``, ``defect``, ``territory``,
    ``name``, ``n_pixels``, ``slices`` (indices of the slices holding it).
    """
    out: dict[int, dict[str, Any]] = {}
    for seg in range(1, 17):
        vals: dict[str, list[NDArray[np.float32]]] = {
            "mbf_ml_min_g": [],
            "ps_ml_min_g": [],
            "vp_ml_g": [],
            "visf_ml_g": [],
        }
        slices = []
        for i, t in enumerate(truths):
            mask = t.aha_segments == seg
            if mask.any():
                slices.append(i)
                for key in vals:
                    vals[key].append(getattr(t, key)[mask])
        row: dict[str, Any] = {"name": physiology.SEGMENT_NAMES[seg], "territory": physiology.TERRITORY[seg]}
        n = int(sum(v.size for v in vals["mbf_ml_min_g"]))
        row["n_pixels"] = n
        row["slices"] = slices
        for key, parts in vals.items():
            row[key] = float(np.mean(np.concatenate(parts))) if n else None
        row["ischaemic"] = bool(perf.ischaemic[seg - 1])
        row["defect"] = perf.defect if perf.ischaemic[seg - 1] else "none"
        row["nominal_stress_mbf_ml_min_g"] = float(np.mean(perf.stress["MBF"][seg - 1]))
        row["nominal_rest_mbf_ml_min_g"] = float(np.mean(perf.rest["MBF"][seg - 1]))
        row["nominal_mpr"] = row["nominal_stress_mbf_ml_min_g"] / row["nominal_rest_mbf_ml_min_g"]
        row["condition"] = condition
        out[seg] = row
    return out


def insertion_points_over_frames(truth: SliceTruth, name: str = "anterior") -> NDArray[np.float64]:
    """An insertion point in every acquired (moving) frame, ``(t, 2)`` as ``(y, x)`` pixels.

    The reference-frame point ``p`` appears at ``p + ref_to_moving_px[t](p)`` in frame ``t``
    (the field interpolated bilinearly at ``p``).
    """
    from scipy.ndimage import map_coordinates

    p = np.asarray(truth.insertion_points_yx[name], dtype=float)
    coords = p.reshape(2, 1)
    shift = np.array(
        [
            [map_coordinates(field[c], coords, order=1, mode="nearest")[0] for c in range(2)]
            for field in truth.ref_to_moving_px
        ]
    )
    return p[None, :] + shift
