"""Label-driven synthesis of training series (after SynthSeg, Billot et al., Med Image Anal 2023).

Every sample is rendered from a label map (:mod:`qperf.segmentation.labelmaps`) with everything
that is not anatomy drawn at random, so that the network learns the shapes and the order of the
contrast dynamics rather than one scanner's or one phantom's look:

- geometry: any rotation, flips, scaling 0.85-1.2, a smooth elastic deformation, output pixels of
  1.2-3 mm rendered with partial volume (sub-pixel class fractions), fields of view from a tight
  110 mm to 300 mm with the heart anywhere in them;
- timing: 30-120 frames at irregular 0.5-1.2 s intervals (or every other beat), the bolus
  arriving 1-25 s after the first frame, with or without 1-4 proton-density frames;
- contrast: every class has its own baseline and its own enhancement curve. The RV gets a gamma
  variate with recirculation, the LV the RV curve through a random pulmonary transit (2-8 s),
  the myocardium the LV curve through a random residue with a random defect; each background
  class a curve of its kind or of a random kind (none, late and slow, vessel-like early,
  myocardium-like, lung-like), with a random saturation of every curve;
- intensity ranges (relative to the myocardial baseline) that cover the real series with margin:
  LV baseline 0.35-1.9 (real 0.47-1.40), LV peak / baseline 2.3-31 (real 2.8-25), background
  baselines 0.05-9 (bright background of real series 2.0-7.1), myocardium peak / baseline
  1.25-(real 1.8-5.1);
- a smooth multiplicative coil field, texture, blur or truncated k-space (ringing), Rician
  noise, breathing: small residual motion of a corrected series or free breathing through the
  first pass (largest at the heart), with the labels of the reference (end-expiration) position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from qperf.segmentation.augment import AnnotatedSlice
from qperf.segmentation.labelmaps import FIRST_BACKGROUND, LabelMap
from qperf.types import PerfusionSeries


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the synthesis (see the module docstring)."""

    spacing_mm: tuple[float, float] = (1.2, 3.0)
    fov_mm: tuple[float, float] = (180.0, 300.0)
    p_tight_fov: float = 0.15
    tight_fov_mm: tuple[float, float] = (110.0, 170.0)
    n_frames: tuple[int, int] = (30, 120)
    rr_s: tuple[float, float] = (0.5, 1.2)
    p_pd: float = 0.3
    arrival_s: tuple[float, float] = (1.0, 25.0)
    lv_baseline: tuple[float, float] = (0.35, 1.9)
    lv_peak_ratio: tuple[float, float] = (2.3, 31.0)
    background_baseline: tuple[float, float] = (0.05, 9.0)
    p_gd_units: float = 0.15
    p_breathing: float = 0.35
    breathing_mm: tuple[float, float] = (1.0, 10.0)
    residual_mm: float = 1.0
    noise: tuple[float, float] = (0.02, 0.3)
    coil_strength: tuple[float, float] = (0.0, 1.2)
    p_kspace: float = 0.4
    elastic_mm: float = 4.0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _gamma(t: NDArray[np.float64], t0: float, tmax: float, alpha: float) -> NDArray[np.float64]:
    x = np.clip((t - t0) / tmax, 0.0, None)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, np.exp(alpha * (np.log(np.maximum(x, 1e-300)) + 1.0 - x)), 0.0)


def _convolve(curve: NDArray[np.float64], kernel: NDArray[np.float64]) -> NDArray[np.float64]:
    s = kernel.sum()
    return np.convolve(curve, kernel / s if s > 0 else kernel)[: curve.size]


def _gamma_kernel(dt: float, mean_s: float, shape: float) -> NDArray[np.float64]:
    tk = np.arange(0.0, mean_s * 4.0 + 5.0, dt)
    scale = mean_s / shape
    return np.where(tk > 0, tk ** (shape - 1.0) * np.exp(-tk / scale), 0.0)


def _saturate(curve: NDArray[np.float64], kappa: float) -> NDArray[np.float64]:
    """Monotone compression of a curve of peak 1 (saturation of the signal at high concentration)."""
    if kappa < 1e-3:
        return curve
    return (1.0 - np.exp(-kappa * curve)) / (1.0 - np.exp(-kappa))


@dataclass(frozen=True)
class _Curves:
    """Shapes (peak 1) on a fine clock: RV, LV and a factory of the other kinds."""

    grid: NDArray[np.float64]
    rv: NDArray[np.float64]
    lv: NDArray[np.float64]

    def kind(self, name: str, rng: np.random.Generator) -> NDArray[np.float64]:
        dt = float(self.grid[1] - self.grid[0])
        if name == "none":
            return np.zeros_like(self.grid)
        if name == "late":
            c = _convolve(self.lv, _gamma_kernel(dt, rng.uniform(8.0, 40.0), rng.uniform(1.0, 3.0)))
        elif name == "vessel_lv":
            c = np.interp(self.grid - rng.uniform(0.0, 2.0), self.grid, self.lv, left=0.0)
            c = _convolve(c, _gamma_kernel(dt, rng.uniform(0.2, 1.5), 2.0))
        elif name == "vessel_rv":
            c = _convolve(self.rv, _gamma_kernel(dt, rng.uniform(0.2, 1.5), 2.0))
        elif name == "tissue":
            k = rng.uniform(0.02, 0.5)
            c = _convolve(self.lv, np.exp(-k * np.arange(0.0, 60.0, dt)))
        elif name == "washout":
            c = _convolve(self.lv, _gamma_kernel(dt, rng.uniform(2.0, 8.0), rng.uniform(2.0, 5.0)))
        else:
            raise ValueError(name)
        return c / max(float(c.max()), 1e-9)


def _draw_curves(rng: np.random.Generator, duration_s: float) -> tuple[_Curves, float]:
    dt = 0.1
    grid = np.arange(-5.0, duration_s + 5.0, dt)
    lo, hi = 1.0, 25.0
    arrival = float(rng.uniform(lo, min(hi, max(lo + 0.5, 0.55 * duration_s))))
    rv = _gamma(grid, arrival, rng.uniform(1.2, 4.0), rng.uniform(2.0, 5.0))
    recirc_delay = rng.uniform(8.0, 18.0)
    rv = rv + rng.uniform(0.05, 0.3) * _convolve(
        np.interp(grid - recirc_delay, grid, rv, left=0.0), _gamma_kernel(dt, 6.0, 3.0)
    )
    rv = rv + rng.uniform(0.0, 0.1) * np.clip((grid - arrival - recirc_delay) / 20.0, 0.0, 1.0)
    lv = _convolve(rv, _gamma_kernel(dt, rng.uniform(2.0, 8.0), rng.uniform(4.0, 12.0)))
    return _Curves(grid, rv / rv.max(), lv / lv.max()), arrival


#: Curve kinds a background class of each label-map kind takes (with their weights).
_KIND_CURVES: dict[str, tuple[tuple[str, float], ...]] = {
    "air": (("none", 1.0),),
    "fat": (("none", 0.75), ("late", 0.25)),
    "muscle": (("late", 0.5), ("tissue", 0.3), ("none", 0.2)),
    "lung": (("vessel_rv", 0.6), ("none", 0.4)),
    "liver": (("late", 0.8), ("washout", 0.2)),
    "vessel_lv": (("vessel_lv", 0.9), ("washout", 0.1)),
    "vessel_rv": (("vessel_rv", 0.9), ("vessel_lv", 0.1)),
    "marrow": (("late", 0.6), ("none", 0.4)),
    "wall": (("tissue", 0.7), ("vessel_rv", 0.3)),
}
_ANY_CURVE = ("none", "late", "vessel_lv", "vessel_rv", "tissue", "washout")


def _background_curve_kind(kind: str, rng: np.random.Generator) -> str:
    options = _KIND_CURVES.get(kind)
    if options is None or rng.random() < 0.25:
        return str(rng.choice(_ANY_CURVE, p=[0.3, 0.25, 0.12, 0.1, 0.13, 0.1]))
    names, weights = zip(*options, strict=True)
    w = np.asarray(weights, dtype=float)
    return str(rng.choice(list(names), p=w / w.sum()))


def _frame_times(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    rr = rng.uniform(0.5, 1.2)
    if rng.random() < 0.15:
        rr = min(2.0 * rr, 2.0)  # every other beat
    steps = rr * (1.0 + rng.normal(0.0, rng.uniform(0.0, 0.1), n))
    return np.concatenate([[0.0], np.cumsum(np.clip(steps[:-1], 0.3, 2.5))]) + rng.uniform(0.0, 2.0)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> NDArray[np.float64]:
    """A smooth random field of about unit variance."""
    coarse = rng.standard_normal((cells, cells))
    f = ndi.zoom(coarse, (shape[0] / cells, shape[1] / cells), order=3, grid_mode=True, mode="nearest")
    f = f[: shape[0], : shape[1]]
    if f.shape != shape:
        f = np.pad(f, ((0, shape[0] - f.shape[0]), (0, shape[1] - f.shape[1])), mode="edge")
    return (f - f.mean()) / (f.std() + 1e-9)


def _heart_centre(classes: NDArray[np.integer]) -> tuple[float, float]:
    heart = (classes >= 1) & (classes <= 3)
    cy, cx = ndi.center_of_mass(heart) if heart.any() else ((classes.shape[0] - 1) / 2, (classes.shape[1] - 1) / 2)
    return float(cy), float(cx)


def _defect_classes(lm: LabelMap, rng: np.random.Generator, first_free: int) -> tuple[NDArray[np.int16], int | None]:
    """The class map with part of the myocardium as its own class (a perfusion defect), if drawn."""
    classes = lm.classes
    myo = classes == 2
    if rng.random() > 0.4 or not myo.any() or not (classes == 1).any():
        return classes, None
    cy, cx = ndi.center_of_mass(classes == 1)
    yy, xx = np.mgrid[0 : classes.shape[0], 0 : classes.shape[1]]
    ang = np.arctan2(yy - cy, xx - cx)
    centre, half = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 1.5)
    depth_mm = rng.uniform(2.0, 12.0)
    inner = ndi.distance_transform_edt(classes != 1) * lm.spacing_mm < depth_mm
    region = myo & inner & (np.abs((ang - centre + np.pi) % (2 * np.pi) - np.pi) < half)
    out = classes.copy()
    out[region] = first_free
    return out, first_free


@dataclass(frozen=True)
class _Grid:
    """The label map placed on the output grid: class fractions, labels, insertion points."""

    spacing_mm: float
    fractions: NDArray[np.float32]  # (classes, y, x)
    labels: NDArray[np.uint8]
    points_yx: dict[str, tuple[float, float]]


def _place(
    lm: LabelMap, classes: NDArray[np.int16], defect_class: int | None, rng: np.random.Generator, cfg: SynthConfig
) -> _Grid:
    """Output grid, rotation, flip, scaling and elastic deformation; partial volume from sub-pixels."""
    n_cls = int(classes.max()) + 1
    out_mm = float(rng.uniform(*cfg.spacing_mm))
    fov = float(rng.uniform(*(cfg.tight_fov_mm if rng.random() < cfg.p_tight_fov else cfg.fov_mm)))
    n_out = max(32, int(round(fov / out_mm)))
    ss = max(1, int(np.ceil(out_mm / (1.5 * lm.spacing_mm))))
    n_fine, fine_mm = n_out * ss, out_mm / ss
    angle, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0.85, 1.2)
    c, s = np.cos(angle), np.sin(angle)
    mat = np.array([[c, -s], [s, c]]) * (fine_mm / lm.spacing_mm / scale)
    if rng.random() < 0.5:
        mat = mat @ np.diag([1.0, -1.0])
    centre_src = np.array(_heart_centre(lm.classes))
    offset = rng.uniform(-0.3, 0.3, 2) * min(fov, 200.0) / fine_mm + (n_fine - 1) / 2.0
    v, u = np.mgrid[0:n_fine, 0:n_fine].astype(np.float64)
    src = np.tensordot(mat, np.stack([v - offset[0], u - offset[1]]), axes=1) + centre_src[:, None, None]
    if cfg.elastic_mm > 0:
        amp = rng.uniform(0.0, cfg.elastic_mm) / lm.spacing_mm
        for a in range(2):
            src[a] += amp * _smooth_field(rng, (n_fine, n_fine), 5)
    fine = ndi.map_coordinates(classes, src, order=0, mode="constant", cval=0).astype(np.int64)
    onehot = np.zeros((n_cls, n_fine, n_fine), dtype=np.float32)
    np.put_along_axis(onehot, fine[None], 1.0, axis=0)
    frac = onehot.reshape(n_cls, n_out, ss, n_out, ss).mean(axis=(2, 4))
    defect = frac[defect_class] if defect_class else 0.0
    label_frac = np.stack([frac[0] + frac[FIRST_BACKGROUND:].sum(0) - defect, frac[1], frac[2] + defect, frac[3]])
    inv = np.linalg.inv(mat)
    points = {}
    for name, p in lm.points_yx.items():
        fv, fu = inv @ (np.asarray(p, dtype=float) - centre_src) + offset
        points[name] = ((fv + 0.5) / ss - 0.5, (fu + 0.5) / ss - 0.5)
    return _Grid(out_mm, frac, np.asarray(np.argmax(label_frac, axis=0), dtype=np.uint8), points)


def _shapes(
    lm: LabelMap, n_cls: int, defect_class: int | None, curves: _Curves, rng: np.random.Generator
) -> dict[int, NDArray[np.float64]]:
    """Enhancement curve shape (peak 1, on the fine clock) of every class."""
    shape_of: dict[int, NDArray[np.float64]] = {1: curves.lv, 3: curves.rv}
    dt = float(curves.grid[1] - curves.grid[0])
    myo = _convolve(curves.lv, np.exp(-rng.uniform(0.02, 0.5) * np.arange(0.0, 60.0, dt)))
    shape_of[2] = myo / myo.max()
    if defect_class is not None:
        d = _convolve(
            np.interp(curves.grid - rng.uniform(0.0, 3.0), curves.grid, curves.lv, left=0.0),
            np.exp(-rng.uniform(0.01, 0.3) * np.arange(0.0, 60.0, dt)),
        )
        shape_of[defect_class] = d / max(float(d.max()), 1e-9)
    for k in range(FIRST_BACKGROUND, n_cls):
        if k != defect_class:
            shape_of[k] = curves.kind(_background_curve_kind(lm.kinds.get(k, "generic"), rng), rng)
    shape_of[0] = np.zeros_like(curves.grid)
    return shape_of


def _levels(
    lm: LabelMap,
    n_cls: int,
    defect_class: int | None,
    shape_of: dict[int, NDArray[np.float64]],
    rng: np.random.Generator,
    cfg: SynthConfig,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Baseline and peak enhancement of every class, relative to the myocardial baseline."""
    base, peak = np.zeros(n_cls), np.zeros(n_cls)
    b_lv = _log_uniform(rng, *cfg.lv_baseline)
    base[1], base[2] = b_lv, 1.0
    base[3] = b_lv * _log_uniform(rng, 0.75, 1.3)
    peak[1] = b_lv * (_log_uniform(rng, *cfg.lv_peak_ratio) - 1.0)
    peak[3] = peak[1] * _log_uniform(rng, 0.6, 2.0)
    peak[2] = max(peak[1] * _log_uniform(rng, 0.05, 0.85), 0.25)
    peak[1] = max(peak[1], peak[2] / 0.85)
    if defect_class is not None:
        base[defect_class] = 1.0
        peak[defect_class] = peak[2] * rng.uniform(0.2, 0.8)
    base[0] = _log_uniform(rng, 0.005, 0.1)
    for k in range(FIRST_BACKGROUND, n_cls):
        if k == defect_class:
            continue
        dark = lm.kinds.get(k, "generic") in ("air", "lung")
        base[k] = _log_uniform(rng, 0.01, 0.15) if dark else _log_uniform(rng, *cfg.background_baseline)
        if shape_of[k].any():
            vessel = shape_of[k].argmax() < shape_of[1].argmax() + 40
            if vessel and rng.random() < 0.5:
                peak[k] = peak[1] * _log_uniform(rng, 0.2, 1.2)
            else:
                peak[k] = base[k] * _log_uniform(rng, 0.05, 2.0)
    return base, peak


def _render(
    grid: _Grid,
    base: NDArray[np.float64],
    enh: NDArray[np.float64],
    pd_level: NDArray[np.float64],
    n_pd: int,
    rng: np.random.Generator,
    cfg: SynthConfig,
) -> NDArray[np.float64]:
    """Frames (PD first) from the class fractions, with texture, per-class gain fields and coil shading."""
    n_cls, ny, nx = grid.fractions.shape
    shape2 = (ny, nx)
    flat = grid.fractions.reshape(n_cls, -1)
    texture = 1.0 + rng.uniform(0.0, 0.15) * _smooth_field(rng, shape2, max(4, ny // 8))
    gains = [
        1.0 + rng.uniform(0.0, 0.4) * _smooth_field(rng, shape2, 4) if k >= FIRST_BACKGROUND else np.ones(shape2)
        for k in range(n_cls)
    ]
    gain_fields = np.stack(gains).reshape(n_cls, -1).clip(0.1, None)
    baseline = (base @ flat).reshape(shape2) * texture
    dyn = (enh @ (flat * gain_fields)).reshape(enh.shape[0], *shape2) + baseline[None]
    pd = ((pd_level @ flat).reshape(shape2) * texture)[None].repeat(n_pd, 0)
    coil = np.exp(rng.uniform(*cfg.coil_strength) * _smooth_field(rng, shape2, 3) * 0.5)
    return np.asarray(np.concatenate([pd, dyn]) * coil[None])


def _acquire(
    frames: NDArray[Any], myo_pre: NDArray[np.bool_], gd_peak: float | None, rng: np.random.Generator, cfg: SynthConfig
) -> NDArray[np.float32]:
    """Blur or truncated k-space, noise (Rician for magnitude signal) and an arbitrary gain.

    The noise is relative to the myocardial pre-contrast level (``myo_pre``: the myocardium in
    the first three dynamic frames), or to the myocardial peak ``gd_peak`` of Gd-like series.
    """
    if rng.random() < cfg.p_kspace:
        from qperf.phantom.signal import truncate_kspace

        f = (rng.uniform(0.45, 0.95), rng.uniform(0.7, 1.0))
        frames = truncate_kspace(frames.astype(np.float32), f if rng.random() < 0.5 else (f[1], f[0]))
    else:
        sigma = rng.uniform(0.0, 0.8)
        if sigma > 0.05:
            frames = ndi.gaussian_filter(frames, (0.0, sigma, sigma))
    gd_units = gd_peak is not None
    level = gd_peak if gd_peak is not None else (float(np.median(frames[myo_pre])) if myo_pre.any() else 1.0)
    sd = max(level, 1e-3) * _log_uniform(rng, *cfg.noise)
    data = frames + rng.standard_normal(frames.shape) * sd
    if not gd_units:
        data = np.hypot(data, rng.standard_normal(frames.shape) * sd)
    return np.asarray(data * _log_uniform(rng, 10.0, 3000.0), dtype=np.float32)


def synthesize(lm: LabelMap, rng: np.random.Generator, cfg: SynthConfig | None = None) -> AnnotatedSlice:
    """Render one random 2D+T series from a label map.

    Returns
    -------
    AnnotatedSlice
        A raw-signal series (the reference position's labels on its grid, the insertion points
        when known, and the classes that were drawn).
    """
    cfg = cfg or SynthConfig()
    classes, defect_class = _defect_classes(lm, rng, max(int(lm.classes.max()) + 1, FIRST_BACKGROUND))
    n_cls = int(classes.max()) + 1
    grid = _place(lm, classes, defect_class, rng, cfg)
    n_dyn = int(rng.integers(cfg.n_frames[0], cfg.n_frames[1] + 1))
    n_pd = int(rng.integers(1, 5)) if rng.random() < cfg.p_pd else 0
    times = _frame_times(rng, n_dyn + n_pd)
    t_dyn = times[n_pd:] - times[n_pd]
    curves, _ = _draw_curves(rng, float(t_dyn[-1]))
    shape_of = _shapes(lm, n_cls, defect_class, curves, rng)
    gd_units = rng.random() < cfg.p_gd_units
    base, peak = _levels(lm, n_cls, defect_class, shape_of, rng, cfg)
    if gd_units:
        base[:] = 0.0
    kappa_blood, kappa_tissue = rng.uniform(0.0, 4.0), rng.uniform(0.0, 1.5)
    enh = np.zeros((n_dyn, n_cls))
    for k in range(n_cls):
        sat = 0.0 if gd_units else (kappa_blood if k in (1, 3) or peak[k] > 2.0 else kappa_tissue)
        enh[:, k] = peak[k] * np.interp(t_dyn, curves.grid, _saturate(shape_of[k], sat))
    pd_level = np.array([_log_uniform(rng, 1.5, 8.0) * max(b, 0.05) ** 0.3 for b in base])
    frames = _render(grid, base, enh, pd_level, n_pd, rng, cfg)
    labels = grid.labels
    frames = _move(frames, times, n_pd, grid.spacing_mm, labels, rng, cfg)
    myo_pre = np.zeros(frames.shape, dtype=bool)
    myo_pre[n_pd : n_pd + 3] = labels == 2
    data = _acquire(frames, myo_pre, float(peak[2]) if gd_units else None, rng, cfg)
    series = PerfusionSeries(
        data,
        times,
        spacing_mm=(grid.spacing_mm, grid.spacing_mm),
        units="gd_mmol_l" if gd_units else "signal",
        n_pd_frames=n_pd,
        name=lm.source,
    )
    points = grid.points_yx if (labels == 3).any() and 3 in lm.drawn else {}
    return AnnotatedSlice(series, labels, points, lm.drawn)


def _move(
    frames: NDArray[np.float64],
    times: NDArray[np.float64],
    n_pd: int,
    spacing_mm: float,
    labels: NDArray[np.uint8],
    rng: np.random.Generator,
    cfg: SynthConfig,
) -> NDArray[np.float64]:
    """Frames displaced by breathing (largest at the heart) or by a corrected series' residue."""
    n_t = frames.shape[0]
    if rng.random() < cfg.p_breathing:
        amp = rng.uniform(*cfg.breathing_mm)
        period = rng.uniform(3.0, 6.0)
        phase = 2 * np.pi * times / period + rng.uniform(0, 2 * np.pi)
        depth = ((1.0 - np.cos(phase)) / 2.0) ** 1.5
        if rng.random() < 0.5:  # breath-hold through the first pass
            hold = (times > times[n_pd] + rng.uniform(0.0, 5.0)) & (times < times[n_pd] + rng.uniform(15.0, 35.0))
            depth[hold] = rng.uniform(0.0, 0.4)
        ang = rng.uniform(0, 2 * np.pi)
        disp_mm = np.outer(depth * amp, [np.sin(ang), np.cos(ang)])
        disp_mm += rng.normal(0.0, 0.3, disp_mm.shape)
    else:
        disp_mm = rng.normal(0.0, rng.uniform(0.0, cfg.residual_mm), (n_t, 2))
        for k in rng.choice(n_t, size=int(rng.integers(0, 3)), replace=False):
            size, a = rng.uniform(2.0, 6.0), rng.uniform(0, 6.3)
            disp_mm[k] += size * np.array([np.sin(a), np.cos(a)])
    if np.abs(disp_mm).max() < 0.05 * spacing_mm:
        return frames
    ny, nx = labels.shape
    heart = np.isin(labels, (1, 2, 3))
    cy, cx = ndi.center_of_mass(heart) if heart.any() else ((ny - 1) / 2, (nx - 1) / 2)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    dist = np.hypot(yy - cy, xx - cx) * spacing_mm
    floor = rng.uniform(0.0, 0.5)
    weight = floor + (1.0 - floor) * np.exp(-0.5 * (dist / rng.uniform(50.0, 120.0)) ** 2)
    out = np.empty_like(frames)
    for k in range(n_t):
        dy, dx = disp_mm[k] / spacing_mm
        out[k] = ndi.map_coordinates(frames[k], [yy - dy * weight, xx - dx * weight], order=1, mode="nearest")
    return out
