"""Image formation of one phantom slice: clusters, partial volume, signal, motion, noise, truth maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from qperf.phantom import physiology
from qperf.phantom.anatomy import CLASS_LABEL, MYO, N_BASE_CLASSES, SliceFrame
from qperf.phantom.motion import warp_frames, warp_static
from qperf.phantom.raster import Raster, fractions, label_fractions
from qperf.phantom.signal import Readout, rician, sr_signal, t2star_decay, truncate_kspace
from qperf.phantom.truth import aha_sector, septal_sense

_BIN_EDGES = np.array([-0.674, 0.0, 0.674], dtype=np.float32)
#: Standard deviation (degrees) of the angular perturbation of the kinetic segment borders.
BORDER_WOBBLE_DEG = 10.0


@dataclass
class ClassTable:
    """Per-class quantities on one slice's frame times.

    ``gd`` (k, t) mmol/L; ``t1_ms``, ``t2_ms``, ``t2star_ms``, ``proton_density`` (k,);
    ``params`` name -> (k,) kinetic parameters (NaN outside the myocardium).
    """

    gd: NDArray[np.float64]
    t1_ms: NDArray[np.float64]
    t2_ms: NDArray[np.float64]
    t2star_ms: NDArray[np.float64]
    proton_density: NDArray[np.float64]
    params: dict[str, NDArray[np.float64]]


@dataclass
class Acquisition:
    """How one series is acquired: readout, PD frames, gain, coil, noise, echoes."""

    readout: Readout
    n_pd_frames: int
    gain: float
    coil: NDArray[np.float32]
    noise_sigma: float  # absolute, 0 for noise-free
    echo_times_ms: Sequence[float] = ()
    kspace_fraction_yx: tuple[float, float] = (1.0, 1.0)
    noise_map: NDArray[np.float32] | None = None  # relative noise level (g-factor), (y, x)


@dataclass
class SliceLabels:
    """Reference labels and AHA assignment of one slice."""

    labels_ref: NDArray[np.uint8]
    label_frac: NDArray[np.float32]  # (4, y*x)
    aha: NDArray[np.int16]
    classes: NDArray[np.int16]  # sub-pixel classes with myocardial clusters
    lv_centroid_yx: tuple[float, float]
    sense: float


def assign_clusters(raster: Raster, frame: SliceFrame, clusters: bool = True) -> SliceLabels:
    """Reference labels, AHA segments and the myocardial cluster of every sub-pixel."""
    ny, nx = frame.shape
    s = raster.supersample
    base = fractions(raster.classes, frame.shape, s, N_BASE_CLASSES)
    lab_frac = label_fractions(base, CLASS_LABEL)
    labels_ref = np.argmax(lab_frac, axis=0).astype(np.uint8).reshape(ny, nx)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    lv = labels_ref == 1
    if lv.any():
        lv_c = (float(yy[lv].mean()), float(xx[lv].mean()))
    else:  # degenerate: centre of the myocardium
        myo = labels_ref == 2
        lv_c = (float(yy[myo].mean()), float(xx[myo].mean())) if myo.any() else (ny / 2.0, nx / 2.0)
    rv = labels_ref == 3
    if rv.any():
        rv_c = (float(yy[rv].mean()), float(xx[rv].mean()))
    else:
        a, b = raster.insertion_yx["anterior"], raster.insertion_yx["inferior"]
        rv_c = ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0)
    sense = septal_sense(frame.geometry, frame.spacing_mm, lv_c, rv_c)
    ins = raster.insertion_yx["anterior"]
    aha = np.zeros((ny, nx), dtype=np.int16)
    myo_px = labels_ref == 2
    aha[myo_px] = aha_sector(yy[myo_px], xx[myo_px], frame.spacing_mm, lv_c, ins, sense, frame.level)
    classes = raster.classes
    if clusters:
        classes = classes.copy()
        sub = np.nonzero(classes == MYO)
        sy = (sub[0] + 0.5) / s - 0.5
        sx = (sub[1] + 0.5) / s - 0.5
        # kinetic segments follow the AHA sectors with wavy borders (defects do not end on
        # straight radial lines); the AHA truth map itself is the exact convention
        wobble = np.deg2rad(BORDER_WOBBLE_DEG) * raster.hetero[sub]
        seg = aha_sector(sy, sx, frame.spacing_mm, lv_c, ins, sense, frame.level, wobble)
        layer = (raster.depth[sub] >= 0.5).astype(np.int64)
        bin_ = np.searchsorted(_BIN_EDGES, raster.hetero[sub])
        classes[sub] = physiology.cluster_id(seg.astype(np.int64), layer, bin_)
    return SliceLabels(labels_ref, lab_frac, aha, classes, lv_c, sense)


def class_fractions(labels: SliceLabels, frame: SliceFrame, s: int, n_classes: int) -> sp.csr_matrix:
    return fractions(labels.classes, frame.shape, s, n_classes)


def render_series(
    frac: sp.csr_matrix,
    table: ClassTable,
    acq: Acquisition,
    shape: tuple[int, int],
    moving_to_ref: NDArray[np.float32] | None,
    rng: np.random.Generator,
    classes: NDArray[np.integer] | None = None,
    supersample: int = 1,
) -> list[NDArray[np.float32]]:
    """Acquired frames (t, y, x) float32, one array per echo (one when there are no echoes).

    With motion and the sub-pixel ``classes`` (``(ny * supersample, nx * supersample)``, the
    rows of ``frac``'s classes), every moving frame is a fresh snapshot of the moved anatomy:
    each sub-pixel takes the class found at its moved position, and the pixel averages its
    sub-pixels (:func:`moving_subpixel_classes`), and the coil and receive shading stay
    where they are in the scanner. Without ``classes`` the static frames, shading included,
    are resampled (bicubic), which blurs every moving frame a little.
    """
    ny, nx = shape
    n_pd = acq.n_pd_frames
    pd = table.proton_density[:, None]
    sig = np.empty_like(table.gd)
    t1 = table.t1_ms[:, None]
    t2 = table.t2_ms[:, None]
    sig[:, :n_pd] = pd * sr_signal(table.gd[:, :n_pd], t1, t2, acq.readout, proton_density=True)
    sig[:, n_pd:] = pd * sr_signal(table.gd[:, n_pd:], t1, t2, acq.readout)
    echoes: list[float | None] = list(acq.echo_times_ms) or [None]
    out = []
    scale = (acq.coil.reshape(-1) * np.float32(acq.gain))[None, :]
    moved = None
    if moving_to_ref is not None and classes is not None:
        moved = moving_subpixel_classes(classes, supersample, moving_to_ref)
    for te in echoes:
        s_k = (
            sig
            if te is None
            else sig * t2star_decay(table.gd, table.t2star_ms[:, None], te, acq.readout.field_strength_t)
        )
        if moved is not None:
            frames = _snapshots(moved, s_k.astype(np.float32), supersample, shape) * scale.reshape(1, ny, nx)
        else:
            ref = np.asarray((frac @ s_k.astype(np.float32)).T, dtype=np.float32) * scale
            frames = ref.reshape(-1, ny, nx)
            if moving_to_ref is not None:
                frames = warp_frames(frames, moving_to_ref)
        frames = truncate_kspace(frames, acq.kspace_fraction_yx)
        if acq.noise_sigma > 0:
            sigma = acq.noise_sigma if acq.noise_map is None else acq.noise_sigma * acq.noise_map
            frames = rician(frames, sigma, rng)
        else:
            frames = np.abs(frames)  # magnitude image
        out.append(np.ascontiguousarray(frames, dtype=np.float32))
    return out


def moving_subpixel_classes(
    classes: NDArray[np.integer], supersample: int, moving_to_ref: NDArray[np.float32]
) -> NDArray[np.int16]:
    """The sub-pixel classes of every moving frame, ``(t, ny * s, nx * s)``.

    Sub-pixel ``i`` (pixel coordinate ``(i + 0.5) / s - 0.5``) of frame ``t`` shows the
    reference sub-pixel nearest to its moved position ``q + m_t(q)``, the displacement
    interpolated bilinearly between pixel centres: the anatomy is rasterised again for every
    frame, to a sixth of a pixel at ``s = 3``, instead of resampling a rendered image.
    """
    import torch
    import torch.nn.functional as F

    s = int(supersample)
    cls = np.asarray(classes)
    sy, sx = cls.shape
    with torch.no_grad():
        m = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(moving_to_ref, dtype=np.float32)),
            size=(sy, sx),
            mode="bilinear",
            align_corners=False,
        ).numpy()
    iy = np.arange(sy, dtype=np.float32)[:, None]
    ix = np.arange(sx, dtype=np.float32)[None, :]
    out = np.empty((m.shape[0], sy, sx), dtype=np.int16)
    for t in range(m.shape[0]):
        ry = np.clip(np.rint(iy + s * m[t, 0]), 0, sy - 1).astype(np.intp)
        rx = np.clip(np.rint(ix + s * m[t, 1]), 0, sx - 1).astype(np.intp)
        out[t] = cls[ry, rx]
    return out


def _snapshots(
    moved: NDArray[np.int16], signal: NDArray[np.float32], supersample: int, shape: tuple[int, int]
) -> NDArray[np.float32]:
    """Frames ``(t, ny, nx)``: the mean over each pixel's sub-pixels of their class's signal at ``t``."""
    ny, nx = shape
    s = int(supersample)
    out = np.empty((moved.shape[0], ny, nx), dtype=np.float32)
    for t in range(moved.shape[0]):
        out[t] = signal[moved[t], t].reshape(ny, s, nx, s).mean(axis=(1, 3))
    return out


def moving_labels(labels: SliceLabels, moving_to_ref: NDArray[np.float32] | None, n_frames: int) -> NDArray[np.uint8]:
    """Labels of every moving frame: label fractions warped with the motion, then the majority label."""
    ref = labels.labels_ref
    ny, nx = ref.shape
    if moving_to_ref is None:
        return np.repeat(ref[None], n_frames, axis=0)
    out = np.zeros((n_frames, ny, nx), dtype=np.uint8)
    fg = np.nonzero(ref > 0)
    if fg[0].size == 0:
        return out
    margin = int(np.ceil(np.abs(moving_to_ref).max())) + 3
    y0, y1 = max(int(fg[0].min()) - margin, 0), min(int(fg[0].max()) + margin + 1, ny)
    x0, x1 = max(int(fg[1].min()) - margin, 0), min(int(fg[1].max()) + margin + 1, nx)
    frac = labels.label_frac.reshape(4, ny, nx)[:, y0:y1, x0:x1]
    m = np.ascontiguousarray(moving_to_ref[:, :, y0:y1, x0:x1])
    warped = warp_static(np.ascontiguousarray(frac), m)
    out[:, y0:y1, x0:x1] = np.argmax(warped, axis=0).astype(np.uint8)
    return out


def parameter_maps(
    frac: sp.csr_matrix, table: ClassTable, labels_ref: NDArray[np.uint8]
) -> dict[str, NDArray[np.float32]]:
    """Sub-pixel averages of the kinetic parameters over the myocardium; NaN outside label 2."""
    ny, nx = labels_ref.shape
    myo_w = np.isfinite(table.params["Fp"]).astype(np.float32)
    weight = np.asarray(frac @ myo_w).reshape(ny, nx)
    out = {}
    for name in physiology.PARAM_NAMES:
        vals = np.nan_to_num(table.params[name]).astype(np.float32)
        num = np.asarray(frac @ vals).reshape(ny, nx)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = num / weight
        m[(labels_ref != 2) | (weight <= 0)] = np.nan
        out[name] = m.astype(np.float32)
    return out


def noise_free_gd(frac: sp.csr_matrix, table: ClassTable, shape: tuple[int, int]) -> NDArray[np.float32]:
    """Partial-volume Gd (t, y, x) in the reference frame."""
    return np.asarray((frac @ table.gd.astype(np.float32)).T, dtype=np.float32).reshape(-1, *shape)
