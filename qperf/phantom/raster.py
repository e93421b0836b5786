"""High-resolution rasterisation of the phantom anatomy and its reduction to the image grid.

Each image pixel is split into ``s x s`` sub-pixels; every sub-pixel gets one tissue class
(and, in the myocardium, one kinetic cluster). The image grid sees the fractions of each
class in its pixels (partial volume), held as a sparse ``(pixels, classes)`` matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from qperf.phantom.anatomy import (
    AORTA,
    CLASS_LABEL,
    FAT,
    LIVER,
    LUNG,
    LV_BLOOD,
    MARROW,
    MUSCLE,
    MYO,
    N_BASE_CLASSES,
    PAPILLARY,
    RV_BLOOD,
    RV_WALL,
    Heart,
    SliceFrame,
)


@dataclass
class Raster:
    """Sub-pixel anatomy of one slice (reference, motion-free frame).

    Attributes
    ----------
    supersample : int
    classes : ndarray (ny*s, nx*s) int16
        Tissue class (myocardium is ``MYO`` until clusters are assigned).
    depth : ndarray (ny*s, nx*s) float32
        Transmural position in the myocardium, 0 endocardium to 1 epicardium (NaN elsewhere).
    hetero : ndarray (ny*s, nx*s) float32
        Smooth random field (about -1 to 1) for pixel-level heterogeneity.
    insertion_yx : dict
        RV insertion points, image pixel coordinates (y, x).
    """

    supersample: int
    classes: NDArray[np.int16]
    depth: NDArray[np.float32]
    hetero: NDArray[np.float32]
    insertion_yx: dict[str, tuple[float, float]]


def _subpixel_lps(frame: SliceFrame, s: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    ny, nx = frame.shape
    dy, dx = frame.spacing_mm
    yy = (np.arange(ny * s) + 0.5) / s - 0.5
    xx = (np.arange(nx * s) + 0.5) / s - 0.5
    g = frame.geometry
    o = np.asarray(g.origin_mm)
    xd = np.asarray(g.x_direction)
    yd = np.asarray(g.y_direction)
    # P = o + x dx xd + y dy yd, per LPS component (outer sums, no (n, n, 3) temporary)
    comps = [o[i] + np.add.outer(yy * dy * yd[i], xx * dx * xd[i]) for i in range(3)]
    return comps[0], comps[1], comps[2]


def rasterise(heart: Heart, frame: SliceFrame, supersample: int = 3) -> Raster:
    """Sub-pixel class map of one slice; see :class:`Raster`."""
    s = supersample
    px, py, pz = _subpixel_lps(frame, s)
    classes = _chest(heart, px, py, pz)
    # heart, in its canonical frame
    rel = (px - frame.centre_lps[0], py - frame.centre_lps[1], pz - frame.centre_lps[2])
    u = rel[0] * frame.u_dir[0] + rel[1] * frame.u_dir[1] + rel[2] * frame.u_dir[2]
    w = rel[0] * frame.w_dir[0] + rel[1] * frame.w_dir[1] + rel[2] * frame.w_dir[2]
    r = np.hypot(u, w)
    reach = heart.endo_mid_mm * 1.3 + 17.0 + heart.rv_depth_mm * 1.4 + 15.0
    box = r < reach
    ub, wb = u[box], w[box]
    sub = classes[box]
    depth_box = _heart(heart, frame, sub, r[box], ub, wb)
    classes[box] = sub
    depth = np.full(px.shape, np.nan, dtype=np.float32)
    depth[box] = depth_box
    hetero = np.zeros(px.shape, dtype=np.float32)
    hetero[box] = _heterogeneity(heart, ub, wb)
    return Raster(
        supersample=s, classes=classes, depth=depth, hetero=hetero, insertion_yx=_insertion_points(heart, frame)
    )


def _chest(
    heart: Heart, px: NDArray[np.float64], py: NDArray[np.float64], pz: NDArray[np.float64]
) -> NDArray[np.int16]:
    """Classes of the chest at LPS positions: body, fat, lungs, liver, aorta, spine, lung vessels."""
    b = heart.body
    classes = np.zeros(px.shape, dtype=np.int16)
    # body: elliptic cylinder along LPS z, with a subcutaneous fat layer
    ex = (px - b["body_cx"]) / b["body_ax"]
    ey = (py - b["body_cy"]) / b["body_ay"]
    rr = ex * ex + ey * ey
    classes[rr < 1.0] = FAT
    inner = 1.0 - b["subcut_mm"] / min(b["body_ax"], b["body_ay"])
    classes[rr < inner * inner] = MUSCLE
    # lungs: ellipsoids beside the heart; liver below the right dome of the diaphragm
    c = heart.centre_lps
    for cx in (c[0] + 70.0, c[0] - 105.0):
        lx = (px - cx) / 62.0
        ly = (py - (c[1] + 30.0)) / 85.0
        lz = (pz - (c[2] + 25.0)) / 150.0
        classes[(lx * lx + ly * ly + lz * lz < 1.0) & (rr < inner * inner * 0.93)] = LUNG
    hx = (px - (c[0] - 35.0)) / 115.0
    hy = (py - (c[1] + 45.0)) / 90.0
    hz = (pz - (c[2] + b["liver_top_z"] - 80.0)) / 80.0
    classes[(hx * hx + hy * hy + hz * hz < 1.0) & (rr < inner * inner)] = LIVER
    # descending aorta and vertebral body (cylinders along z), lung vessels
    ax_ = px - (b["body_cx"] + 22.0)
    ay_ = py - (b["body_cy"] + 50.0)
    classes[ax_ * ax_ + ay_ * ay_ < b["aorta_r"] ** 2] = AORTA
    sx_ = px - b["body_cx"]
    sy_ = py - (b["body_cy"] + 75.0)
    classes[sx_ * sx_ + sy_ * sy_ < b["spine_r"] ** 2] = MARROW
    for vx, vy, vr, vc in heart.vessels:
        m = ((px - (c[0] + vx)) ** 2 + (py - (c[1] + vy)) ** 2 < vr * vr) & (classes == LUNG)
        classes[m] = vc
    return classes


def _heart(
    heart: Heart,
    frame: SliceFrame,
    sub: NDArray[np.int16],
    rb: NDArray[np.float64],
    ub: NDArray[np.float64],
    wb: NDArray[np.float64],
) -> NDArray[np.float32]:
    """Paint the heart into ``sub`` (the sub-pixels near it, at radius ``rb``); return their transmural depth.

    From the outside in: pericardial soft tissue, epicardial fat, RV wall and blood, LV
    myocardium, then the LV cavity with its trabeculae and papillary muscles.
    """
    theta = np.mod(np.arctan2(wb, ub), 2 * np.pi)
    z = frame.zeta
    r_endo = heart.endo_radius(z, theta)
    r_epi = r_endo + heart.wall_thickness(z, theta)
    rv_depth = heart.rv_depth(z, theta)
    fat = np.clip(heart.fat_mm * heart.fat_profile(theta), 0.0, None)
    depth_box = np.full(rb.shape, np.nan, dtype=np.float32)
    # pericardial region around the heart: mediastinal soft tissue, not lung
    peri = rb < r_epi + np.where(rv_depth > 0, rv_depth + heart.rv_wall_mm, 0.0) + fat + 4.0
    sub[peri] = MUSCLE
    sub[rb < r_epi + np.where(rv_depth > 0, rv_depth + heart.rv_wall_mm, 0.0) + fat] = FAT
    has_rv = rv_depth > 0.6
    sub[has_rv & (rb >= r_epi) & (rb < r_epi + rv_depth + heart.rv_wall_mm)] = RV_WALL
    sub[has_rv & (rb >= r_epi) & (rb < r_epi + rv_depth)] = RV_BLOOD
    myo = rb < r_epi
    sub[myo] = MYO
    depth_box[myo] = ((rb[myo] - r_endo[myo]) / (r_epi[myo] - r_endo[myo])).astype(np.float32)
    _cavity(heart, frame, sub, rb, ub, wb, theta, r_endo)
    return depth_box


def _cavity(
    heart: Heart,
    frame: SliceFrame,
    sub: NDArray[np.int16],
    rb: NDArray[np.float64],
    ub: NDArray[np.float64],
    wb: NDArray[np.float64],
    theta: NDArray[np.float64],
    r_endo: NDArray[np.float64],
) -> None:
    """The LV cavity: blood, a trabeculated endocardial border and papillary muscles (blood-pool label)."""
    z = frame.zeta
    trab_depth = (
        1.2 + 1.0 * np.cos(11 * theta + heart.trabecular_phase[0]) * np.cos(17 * theta + heart.trabecular_phase[1])
    ) * (0.6 + 0.4 * min(z / 0.5, 1.0))
    cavity = rb < r_endo
    sub[cavity] = LV_BLOOD
    trab = (
        cavity
        & (rb > r_endo - np.clip(trab_depth, 0.0, None))
        & (np.cos(23 * theta + heart.trabecular_phase[2] + 0.15 * rb) > 0.2)
    )
    sub[trab] = PAPILLARY
    pap_scale = 0.5 if frame.level == "basal" else (0.6 if frame.level == "apical" else 1.0)
    for theta_deg, frac, size in heart.papillary:
        t0 = np.deg2rad(theta_deg)
        r0 = frac * heart.endo_radius(z, np.array([t0]))[0]
        cu, cw = r0 * np.cos(t0), r0 * np.sin(t0)
        rad = size * pap_scale
        sub[cavity & ((ub - cu) ** 2 + (wb - cw) ** 2 < rad * rad)] = PAPILLARY


def _heterogeneity(heart: Heart, ub: NDArray[np.float64], wb: NDArray[np.float64]) -> NDArray[np.float32]:
    """Sum of the heart's plane waves, scaled to unit variance (about -1 to 1 typically)."""
    hw = heart.hetero_waves
    hb = np.zeros(ub.shape)
    for kx, ky, ph in hw:
        hb += np.cos(kx * ub + ky * wb + ph)
    return (hb / np.sqrt(hw.shape[0] / 2.0)).astype(np.float32)


def _insertion_points(heart: Heart, frame: SliceFrame) -> dict[str, tuple[float, float]]:
    """RV insertion points (pixels): where the RV free wall meets the LV epicardium."""
    ins = {}
    z = frame.zeta
    ta, ti = heart.rv_angles_rad(z)
    for name, t0 in (("anterior", ta), ("inferior", ti)):
        rad = heart.endo_radius(z, np.array([t0]))[0] + heart.wall_thickness(z, np.array([t0]))[0]
        p = frame.centre_lps + rad * (np.cos(t0) * frame.u_dir + np.sin(t0) * frame.w_dir)
        ins[name] = lps_to_pixel(frame, p)
    return ins


def lps_to_pixel(frame: SliceFrame, p: NDArray[np.float64]) -> tuple[float, float]:
    """Pixel coordinates (y, x) of an LPS point projected onto the slice."""
    g = frame.geometry
    d = np.asarray(p) - np.asarray(g.origin_mm)
    dy, dx = frame.spacing_mm
    return float(np.dot(d, g.y_direction) / dy), float(np.dot(d, g.x_direction) / dx)


def fractions(classes: NDArray[np.integer], shape: tuple[int, int], s: int, n_classes: int) -> sp.csr_matrix:
    """Sparse ``(ny*nx, n_classes)`` matrix of class fractions per image pixel."""
    ny, nx = shape
    iy = np.arange(ny * s) // s
    ix = np.arange(nx * s) // s
    pix = (iy[:, None] * nx + ix[None, :]).ravel()
    key = pix.astype(np.int64) * n_classes + classes.ravel().astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    rows = uniq // n_classes
    cols = uniq % n_classes
    return sp.csr_matrix((counts.astype(np.float32) / (s * s), (rows, cols)), shape=(ny * nx, n_classes))


def label_fractions(frac: sp.csr_matrix, cluster_label: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Fractions of labels 0-3 per pixel, ``(4, ny*nx)``, from the class-fraction matrix."""
    onehot = np.zeros((cluster_label.shape[0], 4), dtype=np.float32)
    onehot[np.arange(cluster_label.shape[0]), cluster_label] = 1.0
    return np.asarray((frac @ onehot).T, dtype=np.float32)


def base_class_labels(n_classes: int) -> NDArray[np.uint8]:
    """Label of every class id: base classes from the table, clusters from ``N_BASE_CLASSES`` on are myocardium."""
    out = np.full(n_classes, 2, dtype=np.uint8)
    out[:N_BASE_CLASSES] = CLASS_LABEL
    return out
