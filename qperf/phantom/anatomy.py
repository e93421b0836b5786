"""Anatomy of the phantom: a random heart in a canonical frame, the chest around it, slice geometry.

The heart is described in a canonical short-axis frame per slice: ``u`` (mm) towards the
anatomical anterior wall, ``w`` (mm) towards the septum (the RV side); the polar angle
``theta = atan2(w, u)`` is 0 anteriorly, 90 degrees at the septum, 180 inferiorly and 270
laterally. Radii of the LV endocardium, wall thickness, RV extent and epicardial fat are
smooth random Fourier series of ``theta`` that vary smoothly from base to apex.

This frame is placed in patient space (LPS) with a realistic oblique short-axis orientation:
the LV long axis points from base to apex towards the patient's left, anterior and inferior;
``u`` is the in-plane projection of LPS anterior (0, -1, 0) and ``w`` the in-plane projection
of the patient's right (-1, 0, 0), each perturbed by the heart's own rotation. The chest
(body outline, subcutaneous fat, lungs, liver, descending aorta, spine) is made of 3D
ellipsoids and cylinders in LPS, cut by each slice plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from qperf.types import SliceGeometry

# Tissue classes of the high-resolution class map
AIR, MUSCLE, FAT, LUNG, LIVER, AORTA, RV_BLOOD, LV_BLOOD, RV_WALL, PAPILLARY, MARROW, VESSEL_RV, VESSEL_LV, MYO = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
)
N_BASE_CLASSES = 16  # myocardial clusters are numbered from here
#: Label (0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool) of each base class.
CLASS_LABEL = np.zeros(N_BASE_CLASSES, dtype=np.uint8)
CLASS_LABEL[[LV_BLOOD, PAPILLARY]] = 1
CLASS_LABEL[MYO] = 2
CLASS_LABEL[RV_BLOOD] = 3

LEVEL_BOUNDS = (0.35, 0.61)  # fractional position from apex (0) to base (1): apical | mid | basal


def level_of(zeta: float) -> str:
    """AHA level of a fractional long-axis position (0 apex, 1 base)."""
    return "apical" if zeta < LEVEL_BOUNDS[0] else ("mid" if zeta < LEVEL_BOUNDS[1] else "basal")


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(v / np.linalg.norm(v))


@dataclass(frozen=True)
class Harmonics:
    """A smooth periodic function ``1 + sum_k a_k cos(k theta + phi_k)`` (k = 1..K)."""

    amplitude: NDArray[np.float64]
    phase: NDArray[np.float64]

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float, n: int = 5, first: int = 2) -> Harmonics:
        """Amplitudes ``N(0, scale)`` decaying as ``(k - first + 1)^-1.2``, zero below harmonic ``first``."""
        k = np.arange(1, n + 1, dtype=float)
        amp = rng.normal(0.0, scale, n) / np.maximum(k - first + 1.0, 1.0) ** 1.2
        amp[k < first] = 0.0
        return cls(amp, rng.uniform(0, 2 * np.pi, n))

    def __call__(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """The function at the angles ``theta`` (radians)."""
        out = np.ones_like(theta)
        for i, (a, p) in enumerate(zip(self.amplitude, self.phase, strict=True)):
            if a != 0.0:
                out += a * np.cos((i + 1) * theta + p)
        return out


def _blend(a: Harmonics, b: Harmonics, zeta: float, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Base (``a``) to apex (``b``) interpolation of two harmonic profiles."""
    return zeta * a(theta) + (1.0 - zeta) * b(theta)


@dataclass(frozen=True)
class Heart:
    """One random heart (shared by the stress and rest studies drawn from the same seed)."""

    long_axis: NDArray[np.float64]  # unit LPS vector, base to apex
    centre_lps: NDArray[np.float64]  # mid-ventricular LV centre
    twist_rad: float  # rotation of the heart about its long axis
    length_mm: float  # base (zeta 1) to apex (zeta 0) along the axis
    endo_mid_mm: float
    wall_mid_mm: float
    endo_base: Harmonics
    endo_apex: Harmonics
    wall_base: Harmonics
    wall_apex: Harmonics
    rv_depth_mm: float
    rv_anterior_deg: float
    rv_inferior_deg: float
    rv_skew: float
    rv_wall_mm: float
    rv_shape: Harmonics
    fat_mm: float
    fat_profile: Harmonics
    papillary: tuple[tuple[float, float, float], ...]  # (theta_deg, radius fraction, size mm)
    trabecular_phase: NDArray[np.float64]
    hetero_waves: NDArray[np.float64]  # (n, 3): kx, ky (1/mm), phase
    centre_drift_mm: NDArray[np.float64]  # (2,) in (u, w) per unit zeta
    body: dict[str, float] = field(default_factory=dict)
    vessels: tuple[tuple[float, float, float, int], ...] = ()  # LPS x, y, radius mm, class

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Heart:
        """A random heart and its chest.

        The draws are taken in the order written here (keyword arguments left to right); any
        change of that order changes every phantom study of every seed.
        """
        axis = _unit(np.array([0.62, -0.45, -0.64]) + rng.normal(0.0, 0.1, 3))
        endo_mid = float(rng.uniform(14.0, 25.0))
        wall_mid = float(rng.uniform(7.0, 11.0) if rng.random() > 0.15 else rng.uniform(11.0, 14.5))
        pap = _draw_papillary(rng)
        waves = _draw_hetero_waves(rng)
        body = _draw_body(rng)
        vessels = _draw_vessels(rng)
        return cls(
            long_axis=axis,
            centre_lps=np.array([25.0, -20.0, 0.0]) + rng.normal(0.0, [8.0, 6.0, 8.0]),
            twist_rad=float(np.deg2rad(rng.normal(0.0, 10.0))),
            length_mm=float(rng.uniform(75.0, 95.0)),
            endo_mid_mm=endo_mid,
            wall_mid_mm=wall_mid,
            endo_base=Harmonics.draw(rng, 0.06),
            endo_apex=Harmonics.draw(rng, 0.06),
            wall_base=Harmonics.draw(rng, 0.18, first=1),
            wall_apex=Harmonics.draw(rng, 0.18, first=1),
            rv_depth_mm=float(rng.uniform(14.0, 26.0)),
            rv_anterior_deg=float(rng.uniform(22.0, 42.0)),
            rv_inferior_deg=float(rng.uniform(135.0, 158.0)),
            rv_skew=float(rng.uniform(0.6, 1.0)),
            rv_wall_mm=float(rng.uniform(2.5, 4.0)),
            rv_shape=Harmonics.draw(rng, 0.1, n=4, first=2),
            fat_mm=float(rng.uniform(0.5, 4.5)),
            fat_profile=Harmonics.draw(rng, 0.8, n=4, first=1),
            papillary=pap,
            trabecular_phase=rng.uniform(0, 2 * np.pi, 3),
            hetero_waves=waves,
            centre_drift_mm=rng.normal(0.0, 4.0, 2),
            body=body,
            vessels=vessels,
        )

    # Profiles at a long-axis position --------------------------------------------------------
    def endo_radius(self, zeta: float, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """LV endocardial radius (mm): the mid radius, tapering to 15 % at the apex, times the shape profile."""
        scale = 0.15 + 0.85 * np.sin(np.pi / 2 * min(zeta / 0.6, 1.0)) + 0.06 * max(zeta - 0.5, 0.0)
        return np.asarray(self.endo_mid_mm * scale * _blend(self.endo_base, self.endo_apex, zeta, theta))

    def wall_thickness(self, zeta: float, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """LV wall thickness (mm): the mid value, 72 % at the apex, times the profile, within 4-17 mm."""
        scale = 0.72 + 0.28 * min(zeta / 0.5, 1.0)
        return np.asarray(
            np.clip(self.wall_mid_mm * scale * _blend(self.wall_base, self.wall_apex, zeta, theta), 4.0, 17.0)
        )

    def rv_angles_rad(self, zeta: float) -> tuple[float, float]:
        """Anterior and inferior RV insertion angles (radians); each moves in by up to 12.5 degrees at the apex."""
        shrink = 0.5 * (1.0 - min(zeta / 0.5, 1.0)) * 25.0  # the RV narrows towards the apex
        return float(np.deg2rad(self.rv_anterior_deg + shrink)), float(np.deg2rad(self.rv_inferior_deg - shrink))

    def rv_depth(self, zeta: float, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Depth (mm) of the RV cavity outside the LV wall: a skewed bell between the insertion angles, 0 elsewhere."""
        ta, ti = self.rv_angles_rad(zeta)
        x = np.clip((np.mod(theta, 2 * np.pi) - ta) / (ti - ta), 0.0, 1.0)
        bell = np.sin(np.pi * x**self.rv_skew) ** 0.55
        depth = self.rv_depth_mm * (0.35 + 0.65 * min(zeta / 0.6, 1.0)) * (1.0 + 0.15 * (zeta - 0.5))
        # trabeculated free wall: a fine ripple of the cavity border
        p0, p1 = self.trabecular_phase[0], self.trabecular_phase[1]
        ripple = 1.0 + 0.05 * np.cos(13 * theta + p1) + 0.035 * np.cos(21 * theta + p0)
        return np.asarray(depth * bell * self.rv_shape(theta) * ripple)


def _draw_papillary(rng: np.random.Generator) -> tuple[tuple[float, float, float], ...]:
    """Two papillary muscles: (angle in degrees, radius fraction, size in mm)."""
    return (
        (float(rng.uniform(295, 325)), float(rng.uniform(0.55, 0.85)), float(rng.uniform(3.0, 5.5))),
        (float(rng.uniform(195, 225)), float(rng.uniform(0.55, 0.85)), float(rng.uniform(3.0, 5.5))),
    )


def _draw_hetero_waves(rng: np.random.Generator, n_waves: int = 6) -> NDArray[np.float64]:
    """Plane waves ``(kx, ky, phase)`` of 6-18 mm wavelength for the pixel-level heterogeneity."""
    waves = np.empty((n_waves, 3))
    ang = rng.uniform(0, 2 * np.pi, n_waves)
    freq = 1.0 / rng.uniform(6.0, 18.0, n_waves)
    waves[:, 0] = np.cos(ang) * freq * 2 * np.pi
    waves[:, 1] = np.sin(ang) * freq * 2 * np.pi
    waves[:, 2] = rng.uniform(0, 2 * np.pi, n_waves)
    return waves


def _draw_body(rng: np.random.Generator) -> dict[str, float]:
    """Body outline, subcutaneous fat, diaphragm, aorta and spine sizes (mm)."""
    return {
        "body_cx": float(rng.normal(0.0, 8.0)),
        "body_cy": float(rng.normal(15.0, 6.0)),
        "body_ax": float(rng.uniform(140.0, 185.0)),
        "body_ay": float(rng.uniform(95.0, 125.0)),
        "subcut_mm": float(rng.uniform(6.0, 22.0)),
        "lung_gap_mm": float(rng.uniform(3.0, 12.0)),
        "liver_top_z": float(rng.uniform(-55.0, -25.0)),
        "aorta_r": float(rng.uniform(10.0, 14.0)),
        "spine_r": float(rng.uniform(15.0, 20.0)),
    }


def _draw_vessels(rng: np.random.Generator) -> tuple[tuple[float, float, float, int], ...]:
    """3-8 lung vessels beside the heart: (LPS x, y offsets, radius in mm, class)."""
    vessels = []
    for _ in range(int(rng.integers(3, 9))):
        side = rng.choice([-1.0, 1.0])
        vessels.append(
            (
                float(side * rng.uniform(60.0, 130.0)),
                float(rng.uniform(-40.0, 60.0)),
                float(rng.uniform(2.0, 5.0)),
                int(VESSEL_RV if rng.random() < 0.5 else VESSEL_LV),
            )
        )
    return tuple(vessels)


@dataclass(frozen=True)
class SliceFrame:
    """Placement of one slice: its canonical heart frame in LPS and its image grid."""

    zeta: float
    level: str
    centre_lps: NDArray[np.float64]  # LV centre of this slice
    u_dir: NDArray[np.float64]  # anterior (heart frame)
    w_dir: NDArray[np.float64]  # septal (heart frame)
    geometry: SliceGeometry
    spacing_mm: tuple[float, float]
    shape: tuple[int, int]
    slice_position_mm: float


@dataclass(frozen=True)
class Placement:
    """Image orientation and grid shared by all slices of one study."""

    normal: NDArray[np.float64]
    anterior_dir: NDArray[np.float64]
    septal_dir: NDArray[np.float64]
    x_dir: NDArray[np.float64]
    y_dir: NDArray[np.float64]
    spacing_mm: tuple[float, float]
    shape: tuple[int, int]
    lv_pixel_yx: tuple[float, float]
    slice_thickness_mm: float

    @classmethod
    def draw(
        cls,
        heart: Heart,
        rng: np.random.Generator,
        shape: tuple[int, int] | None = None,
        spacing_mm: float | None = None,
        standard_view: bool = False,
    ) -> Placement:
        """A random in-plane rotation and flip (none with ``standard_view``), 1.4-3 mm pixels, a
        128-256 matrix over a 280-420 mm field of view, the LV in the middle quarter of each axis."""
        a = heart.long_axis
        normal = a
        ant = np.array([0.0, -1.0, 0.0])
        ant_p = _unit(ant - np.dot(ant, a) * a)
        right = np.array([-1.0, 0.0, 0.0])
        sep_p = right - np.dot(right, a) * a - np.dot(right, ant_p) * ant_p
        sep_p = _unit(sep_p)
        c, s = np.cos(heart.twist_rad), np.sin(heart.twist_rad)
        u_dir = c * ant_p + s * sep_p
        w_dir = -s * ant_p + c * sep_p
        # standard view: anterior up (y towards inferior), septum on the image left
        y_std = -ant_p
        x_std = -sep_p
        if standard_view:
            psi = 0.0
            flip = False
        else:
            psi = float(rng.normal(0.0, 0.3) if rng.random() < 0.5 else rng.uniform(-np.pi, np.pi))
            flip = bool(rng.random() < 0.3)
        cp, sp = np.cos(psi), np.sin(psi)
        x_dir = cp * x_std + sp * y_std
        y_dir = -sp * x_std + cp * y_std
        if flip:
            x_dir = -x_dir
        if spacing_mm is None:
            spacing_mm = float(rng.uniform(1.4, 3.0))
        if shape is None:
            fov = float(rng.uniform(280.0, 420.0))
            nx = int(np.clip(round(fov / spacing_mm), 128, 256))
            ny = int(np.clip(round(nx * rng.uniform(0.75, 1.0)), 128, 256))
            shape = (ny, nx)
        ny, nx = shape
        lv_yx = (float(rng.uniform(0.38, 0.62) * ny), float(rng.uniform(0.38, 0.62) * nx))
        return cls(
            normal=normal,
            anterior_dir=u_dir,
            septal_dir=w_dir,
            x_dir=x_dir,
            y_dir=y_dir,
            spacing_mm=(spacing_mm, spacing_mm),
            shape=(ny, nx),
            lv_pixel_yx=lv_yx,
            slice_thickness_mm=float(rng.uniform(8.0, 10.0)),
        )

    def slice_frame(self, heart: Heart, zeta: float) -> SliceFrame:
        """The frame of the slice at fractional long-axis position ``zeta`` (0 apex, 1 base)."""
        along = (zeta - 0.5) * heart.length_mm  # towards the base is -long_axis
        centre = heart.centre_lps - along * heart.long_axis
        centre = centre + (zeta - 0.5) * (
            heart.centre_drift_mm[0] * self.anterior_dir + heart.centre_drift_mm[1] * self.septal_dir
        )
        # all slices share the in-plane grid: origin from the mid-ventricular centre
        mid_plane_centre = heart.centre_lps - along * heart.long_axis
        dy, dx = self.spacing_mm
        cy, cx = self.lv_pixel_yx
        origin = mid_plane_centre - cx * dx * self.x_dir - cy * dy * self.y_dir
        geometry = SliceGeometry(
            origin_mm=tuple(float(v) for v in origin),  # type: ignore[arg-type]
            x_direction=tuple(float(v) for v in self.x_dir),  # type: ignore[arg-type]
            y_direction=tuple(float(v) for v in self.y_dir),  # type: ignore[arg-type]
            slice_thickness_mm=self.slice_thickness_mm,
        )
        return SliceFrame(
            zeta=zeta,
            level=level_of(zeta),
            centre_lps=centre,
            u_dir=self.anterior_dir,
            w_dir=self.septal_dir,
            geometry=geometry,
            spacing_mm=self.spacing_mm,
            shape=self.shape,
            slice_position_mm=float(zeta * heart.length_mm),
        )


def slice_zetas(n_slices: int, rng: np.random.Generator | None) -> list[float]:
    """Long-axis positions, base first: three slices give basal, mid and apical."""
    if n_slices == 1:
        base = [0.48]
    else:
        base = list(np.linspace(0.74, 0.22, n_slices))
    jitter = 0.0 if rng is None else 1.0
    return [float(z + (jitter * rng.uniform(-0.035, 0.035) if rng is not None else 0.0)) for z in base]
