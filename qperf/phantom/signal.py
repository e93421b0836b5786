"""MR signal physics of the phantom: saturation-recovery signal, relaxation, noise, coil shading.

Signal equation
---------------
Every image is a saturation-recovery (SR) acquisition read out at the centre of k-space.
The metadata keys of :class:`qperf.PerfusionSeries` that define it are:

``field_strength_t`` (1.5 or 3.0), ``readout`` ("flash" or "ssfp"), ``saturation_time_ms``
(TS: saturation pulse to the centre of k-space), ``flip_angle_deg`` (alpha),
``pd_flip_angle_deg`` (alpha of the proton-density frames), ``echo_spacing_ms`` (TR, the
readout repetition time), ``n_pe_to_center`` (n, readout pulses before the k-space centre)
and, for the dual-echo AIF images, ``echo_times_ms``.

Relaxation with gadolinium (concentration C in mmol/L):
``R1 = 1 / T1_0 + r1 * C`` and ``R2 = 1 / T2_0 + r2 * C`` (r1, r2 in L/mmol/s, see
:data:`FIELD_CONSTANTS`).

FLASH (spoiled gradient echo), ``E1 = exp(-TR * R1)``, ``TD = TS - n * TR``:

- after the saturation pulse ``Mz(TD) = M0 (1 - exp(-TD * R1))``;
- each readout pulse ``Mz <- Mz cos(alpha) E1 + M0 (1 - E1)``, so after n pulses
  ``Mz_n = Mss + (Mz(TD) - Mss) (cos(alpha) E1)^n`` with ``Mss = M0 (1 - E1) / (1 - cos(alpha) E1)``;
- signal ``S = Mz_n sin(alpha)``.

SSFP (balanced, on resonance), an exact Bloch simulation of the transverse (y) and
longitudinal (z) magnetisation: after ``Mz(TD)`` relaxation until half a TR before the first
pulse, an ``alpha/2`` catalysation pulse, half a TR of relaxation, then ``n + 1`` pulses of
alternating sign ``+alpha, -alpha, ...`` (pulse ``k`` at ``TD + k TR``) each followed by
relaxation with ``R1`` (towards M0) and ``R2`` (to 0); the signal is ``|My|`` half a TR after
pulse ``n`` (the centre of k-space, at ``TS``).

Proton-density frames use the same readout with ``pd_flip_angle_deg`` and no saturation
(``Mz(TD) = M0``). Echo ``k`` of the AIF images is multiplied by ``exp(-TE_k * R2*)`` with
``R2* = 1 / T2*_0 + r2star * C``.

The image is ``gain * coil(y, x) * S``; the finite acquired resolution is a low-pass window in
k-space (a fraction of the phase- and readout-encoding lines kept, with a Fermi roll-off), which
gives the blur and the Gibbs ringing (dark-rim) of real images; then Rician noise:
``|S + n1 + i n2|``, ``n1, n2 ~ N(0, sigma^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError

#: Relaxivities (L/mmol/s) and native relaxation times (ms) per field strength (tesla).
#: r1, r2 and the blood/myocardium T1 are the constants of the original implementation.
FIELD_CONSTANTS: dict[float, dict[str, float]] = {
    1.5: {"r1": 5.565, "r2": 5.78, "r2star": 12.0},
    3.0: {"r1": 4.9188, "r2": 5.9133, "r2star": 20.0},
}


@dataclass(frozen=True)
class TissueProperties:
    """Native relaxation and proton density of one tissue class at one field strength."""

    t1_ms: float
    t2_ms: float
    t2star_ms: float
    proton_density: float


#: Native tissue properties: (T1 ms, T2 ms, T2* ms, relative proton density) at 1.5 T and 3 T.
TISSUES: dict[str, dict[float, TissueProperties]] = {
    "blood": {1.5: TissueProperties(1700.0, 250.0, 200.0, 0.90), 3.0: TissueProperties(2000.0, 150.0, 100.0, 0.90)},
    "myocardium": {
        1.5: TissueProperties(1100.0, 50.0, 35.0, 0.80),
        3.0: TissueProperties(1300.0, 45.0, 25.0, 0.80),
    },
    "muscle": {1.5: TissueProperties(1000.0, 35.0, 28.0, 0.75), 3.0: TissueProperties(1400.0, 30.0, 20.0, 0.75)},
    "fat": {1.5: TissueProperties(260.0, 80.0, 60.0, 0.95), 3.0: TissueProperties(380.0, 70.0, 40.0, 0.95)},
    "liver": {1.5: TissueProperties(580.0, 45.0, 30.0, 0.70), 3.0: TissueProperties(800.0, 35.0, 20.0, 0.70)},
    "lung": {1.5: TissueProperties(1200.0, 40.0, 2.0, 0.12), 3.0: TissueProperties(1300.0, 35.0, 1.0, 0.12)},
    "marrow": {1.5: TissueProperties(550.0, 60.0, 20.0, 0.60), 3.0: TissueProperties(650.0, 50.0, 12.0, 0.60)},
    "air": {1.5: TissueProperties(1000.0, 50.0, 50.0, 0.0), 3.0: TissueProperties(1000.0, 50.0, 50.0, 0.0)},
}


def field_constants(field_t: float) -> dict[str, float]:
    """Relaxivities at ``field_t`` (1.5 or 3 T)."""
    key = _field_key(field_t)
    return FIELD_CONSTANTS[key]


def _field_key(field_t: float) -> float:
    for key in FIELD_CONSTANTS:
        if abs(float(field_t) - key) < 0.26:
            return key
    raise ValidationError(f"field_t: expected 1.5 or 3 (tesla), found {field_t!r}")


def tissue(name: str, field_t: float) -> TissueProperties:
    """Native properties of tissue ``name`` at ``field_t``."""
    return TISSUES[name][_field_key(field_t)]


@dataclass(frozen=True)
class Readout:
    """Acquisition parameters of one SR image type (names match the metadata keys)."""

    field_strength_t: float
    readout: str
    saturation_time_ms: float
    flip_angle_deg: float
    pd_flip_angle_deg: float
    echo_spacing_ms: float
    n_pe_to_center: int

    def __post_init__(self) -> None:
        if self.readout not in ("flash", "ssfp"):
            raise ValidationError(f"readout: expected 'flash' or 'ssfp', found {self.readout!r}")
        lead = (self.n_pe_to_center + (0.5 if self.readout == "ssfp" else 0.0)) * self.echo_spacing_ms
        if self.saturation_time_ms < lead:
            raise ValidationError(
                f"saturation_time_ms: expected at least {lead:.1f} ms (readout pulses before the k-space centre), "
                f"found {self.saturation_time_ms:.1f} ms"
            )

    def metadata(self) -> dict[str, float | int | str]:
        """The acquisition metadata keys of :mod:`qperf.types`."""
        return {
            "field_strength_t": float(self.field_strength_t),
            "readout": self.readout,
            "saturation_time_ms": float(self.saturation_time_ms),
            "flip_angle_deg": float(self.flip_angle_deg),
            "pd_flip_angle_deg": float(self.pd_flip_angle_deg),
            "echo_spacing_ms": float(self.echo_spacing_ms),
            "n_pe_to_center": int(self.n_pe_to_center),
        }


def relaxation_rates(
    gd_mmol_l: ArrayLike, t1_ms: ArrayLike, t2_ms: ArrayLike, field_t: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``R1, R2`` in 1/ms for concentrations ``gd_mmol_l`` (broadcast with the native times)."""
    c = field_constants(field_t)
    gd = np.asarray(gd_mmol_l, dtype=np.float64)
    r1 = 1.0 / np.asarray(t1_ms, dtype=np.float64) + c["r1"] * 1e-3 * gd
    r2 = 1.0 / np.asarray(t2_ms, dtype=np.float64) + c["r2"] * 1e-3 * gd
    return r1, r2


def sr_signal(
    gd_mmol_l: ArrayLike,
    t1_ms: ArrayLike,
    t2_ms: ArrayLike,
    readout: Readout,
    proton_density: bool = False,
) -> NDArray[np.float64]:
    """Signal per unit M0 of a saturation-recovery (or proton-density) readout.

    Parameters
    ----------
    gd_mmol_l : array_like
        Gadolinium concentration (mmol/L), any shape.
    t1_ms, t2_ms : array_like
        Native T1 and T2 (ms), broadcast against ``gd_mmol_l``.
    readout : Readout
        Acquisition parameters; see the module docstring for the equations.
    proton_density : bool
        True for a proton-density frame: no saturation, flip ``pd_flip_angle_deg``.

    Returns
    -------
    ndarray of float64
        Signal for M0 = 1, broadcast shape of the inputs.
    """
    r1, r2 = relaxation_rates(gd_mmol_l, t1_ms, t2_ms, readout.field_strength_t)
    tr = readout.echo_spacing_ms
    n = readout.n_pe_to_center
    alpha = np.deg2rad(readout.pd_flip_angle_deg if proton_density else readout.flip_angle_deg)
    td = readout.saturation_time_ms - n * tr
    mz0 = np.ones_like(r1) if proton_density else 1.0 - np.exp(-td * r1)
    if readout.readout == "flash":
        e1 = np.exp(-tr * r1)
        ce = np.cos(alpha) * e1
        mss = (1.0 - e1) / (1.0 - ce)
        mz = mss + (mz0 - mss) * ce**n
        return np.asarray(mz * np.sin(alpha))
    r1, r2 = np.broadcast_arrays(r1, r2)
    mz_saturation = np.full(r1.shape, 1.0 if proton_density else 0.0)
    return _ssfp(r1, r2, mz_saturation, td, float(alpha), tr, n)


def _ssfp(
    r1: NDArray[np.float64],
    r2: NDArray[np.float64],
    mz0: NDArray[np.float64],
    td: float,
    alpha: float,
    tr: float,
    n: int,
) -> NDArray[np.float64]:
    """Balanced SSFP Bloch simulation (see the module docstring); rates in 1/ms, ``mz0`` at the saturation."""
    e1_half, e2_half = np.exp(-0.5 * tr * r1), np.exp(-0.5 * tr * r2)
    e1, e2 = e1_half * e1_half, e2_half * e2_half
    pre = np.exp(-(td - 0.5 * tr) * r1)
    mz = mz0 * pre + (1.0 - pre)
    my = np.zeros_like(mz)

    def rotate(
        my: NDArray[np.float64], mz: NDArray[np.float64], angle: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        c, s = np.cos(angle), np.sin(angle)
        return my * c + mz * s, mz * c - my * s

    my, mz = rotate(my, mz, -0.5 * alpha)
    my, mz = my * e2_half, mz * e1_half + (1.0 - e1_half)
    sign = 1.0
    for _ in range(n):
        my, mz = rotate(my, mz, sign * alpha)
        my, mz = my * e2, mz * e1 + (1.0 - e1)
        sign = -sign
    my, mz = rotate(my, mz, sign * alpha)
    return np.asarray(np.abs(my * e2_half))


def t2star_decay(
    gd_mmol_l: ArrayLike, t2star_ms: ArrayLike, echo_time_ms: float, field_t: float
) -> NDArray[np.float64]:
    """Echo attenuation ``exp(-TE (1 / T2*_0 + r2star C))``."""
    c = field_constants(field_t)
    rate = 1.0 / np.asarray(t2star_ms, dtype=np.float64) + c["r2star"] * 1e-3 * np.asarray(gd_mmol_l, dtype=np.float64)
    return np.asarray(np.exp(-echo_time_ms * rate))


def rician(
    signal: NDArray[np.float32], sigma: float | NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Magnitude of ``signal`` plus complex Gaussian noise of standard deviation ``sigma`` per channel.

    ``sigma`` is a number or a (y, x) map (spatially varying noise of parallel imaging).
    """
    sig = np.asarray(sigma, dtype=np.float32)
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * sig
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * sig
    return np.asarray(np.hypot(real, imag), dtype=np.float32)


def coil_shading(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    anterior_yx: tuple[float, float],
    rng: np.random.Generator,
    strength: float = 1.0,
) -> NDArray[np.float32]:
    """Smooth surface-coil sensitivity, brighter towards the anterior and posterior coil arrays.

    Parameters
    ----------
    shape : (ny, nx)
    spacing_mm : (dy, dx)
    anterior_yx : (float, float)
        In-plane unit vector (dy, dx components) pointing to the patient's anterior.
    rng : numpy Generator
    strength : float
        0 gives a flat (all ones) profile.

    Returns
    -------
    ndarray (ny, nx) float32, mean about 1.
    """
    ny, nx = shape
    if strength <= 0:
        return np.ones(shape, dtype=np.float32)
    y = (np.arange(ny) - ny / 2.0) * spacing_mm[0]
    x = (np.arange(nx) - nx / 2.0) * spacing_mm[1]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    ay, ax = anterior_yx
    along = yy * ay + xx * ax  # mm towards anterior
    across = -yy * ax + xx * ay
    sens = np.zeros(shape)
    for side, weight in ((1.0, rng.uniform(0.8, 1.2)), (-1.0, rng.uniform(0.5, 1.0))):
        for _ in range(int(rng.integers(2, 4))):
            centre_along = side * rng.uniform(140.0, 220.0)
            centre_across = rng.uniform(-120.0, 120.0)
            width = rng.uniform(90.0, 150.0)
            d2 = (along - centre_along) ** 2 + (across - centre_across) ** 2
            sens += weight * np.exp(-d2 / (2.0 * width**2))
    sens = np.sqrt(sens + 0.05 * sens.max())
    sens /= sens.mean()
    return np.asarray(1.0 + strength * (sens - 1.0), dtype=np.float32)


def kspace_window(
    shape: tuple[int, int], fraction_yx: tuple[float, float], rolloff: float = 0.04
) -> NDArray[np.float32]:
    """Real-FFT k-space window ``(ny, nx // 2 + 1)`` keeping ``fraction_yx`` of k-space with a Fermi edge."""
    ny, nx = shape
    ky = np.abs(np.fft.fftfreq(ny))[:, None] * 2.0  # 0 .. 1 (Nyquist)
    kx = np.abs(np.fft.rfftfreq(nx))[None, :] * 2.0
    wy = 1.0 / (1.0 + np.exp((ky - fraction_yx[0]) / rolloff))
    wx = 1.0 / (1.0 + np.exp((kx - fraction_yx[1]) / rolloff))
    return np.asarray(wy * wx, dtype=np.float32)


def truncate_kspace(frames: NDArray[np.float32], fraction_yx: tuple[float, float]) -> NDArray[np.float32]:
    """Frames (t, y, x) as reconstructed from the central ``fraction_yx`` of k-space (blur and ringing)."""
    if fraction_yx[0] >= 1.0 and fraction_yx[1] >= 1.0:
        return frames
    from scipy import fft

    window = kspace_window(frames.shape[1:], fraction_yx)  # type: ignore[arg-type]
    spec = fft.rfft2(frames, axes=(-2, -1), workers=1)
    spec *= window
    return np.asarray(fft.irfft2(spec, s=frames.shape[1:], axes=(-2, -1), workers=1), dtype=np.float32)


def smooth_texture(
    shape: tuple[int, int], rng: np.random.Generator, amplitude: float, cell_px: int = 6
) -> NDArray[np.float32]:
    """A smooth random multiplicative field ``1 + amplitude * g`` (``g`` about unit variance), (ny, nx)."""
    ny, nx = shape
    if amplitude <= 0:
        return np.ones(shape, dtype=np.float32)
    from scipy.ndimage import zoom

    coarse = rng.standard_normal((ny // cell_px + 2, nx // cell_px + 2)).astype(np.float32)
    fine = zoom(coarse, cell_px, order=3)[:ny, :nx]
    fine /= max(float(fine.std()), 1e-6)
    return np.asarray(1.0 + amplitude * fine, dtype=np.float32)
