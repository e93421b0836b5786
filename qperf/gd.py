"""Saturation-recovery signal to gadolinium concentration.

The perfusion images are saturation-recovery (SR) images; the first ``n_pd_frames`` frames of
a series are proton-density (PD) weighted images read out with the same readout but a low
flip angle and no saturation. Dividing every SR frame by the mean PD image removes the receive
coil shading (and the proton density); the ratio depends only on the longitudinal relaxation
rate ``R1 = R1_0 + r1 * [Gd]`` and the sequence, so a look-up table from the signal equation
turns it into a concentration in mmol/L.

Signal models
-------------
Both readouts start at the saturation pulse (``Mz = 0``); the centre of k-space is read by
readout pulse number ``n_pe_to_center`` (counted from 0) at ``saturation_time_ms`` after the
saturation, so the first readout pulse comes ``TD = TS - n_pe_to_center * TR`` after it.

- ``"flash"`` (spoiled gradient echo): perfect spoiling, so only ``Mz`` is carried from pulse
  to pulse: ``Mz <- Mz cos(a)``, then recovery over ``TR``; the signal is ``Mz sin(a)`` at the
  centre pulse.
- ``"ssfp"`` (balanced SSFP): an on-resonance Bloch simulation with an ``a/2`` preparation pulse
  half a TR before the first of the alternating ``+-a`` pulses, with T1 and T2 relaxation; the
  signal is the transverse magnetisation half a TR after the centre pulse.

The PD frames use the same readout with ``pd_flip_angle_deg`` from fully relaxed magnetisation
(``Mz = M0``, no saturation) and the native (pre-contrast) relaxation times.

References
----------
Xue H. et al., "Automatic in-line quantitative myocardial perfusion mapping: processing
algorithm and implementation", Magn Reson Med 2020;83:712-730.
Kellman P. et al., "Myocardial perfusion cardiovascular magnetic resonance: optimized dual
sequence and reconstruction for quantification", J Cardiovasc Magn Reson 2017;19:43.
Scheffler K., "On the transient phase of balanced SSFP sequences", Magn Reson Med 2003;49:781-783.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError, describe
from qperf.types import PerfusionSeries

READOUTS: tuple[str, ...] = ("flash", "ssfp")
TISSUES: tuple[str, ...] = ("blood", "myocardium")

#: Longitudinal relaxivity of the contrast agent, L/mmol/s, by field strength (T).
R1_RELAXIVITY: dict[float, float] = {1.5: 5.565, 3.0: 4.9188}
#: Transverse relaxivity, L/mmol/s.
R2_RELAXIVITY: dict[float, float] = {1.5: 5.78, 3.0: 5.9133}
#: Native T1 (ms) by tissue and field strength.
NATIVE_T1_MS: dict[str, dict[float, float]] = {
    "blood": {1.5: 1700.0, 3.0: 2000.0},
    "myocardium": {1.5: 1100.0, 3.0: 1300.0},
}
#: Native T2 (ms) by tissue and field strength (only the SSFP readout depends on it).
NATIVE_T2_MS: dict[str, dict[float, float]] = {
    "blood": {1.5: 250.0, 3.0: 150.0},
    "myocardium": {1.5: 50.0, 3.0: 45.0},
}

#: Largest concentration of the look-up table, mmol/L.
GD_MAX_MMOL_L = 20.0

_METADATA_KEYS = (
    "readout",
    "field_strength_t",
    "saturation_time_ms",
    "flip_angle_deg",
    "pd_flip_angle_deg",
    "echo_spacing_ms",
    "n_pe_to_center",
)


def _field_key(field_strength_t: float) -> float:
    for key in R1_RELAXIVITY:
        if abs(field_strength_t - key) <= 0.2:
            return key
    raise ValidationError(
        f"field_strength_t: expected 1.5 or 3.0 T (relaxivities are known for these), found {field_strength_t!r}"
    )


@dataclass(frozen=True)
class SrSequence:
    """The saturation-recovery readout that produced a series.

    Parameters
    ----------
    readout : {"flash", "ssfp"}
    field_strength_t : float
        1.5 or 3.0 (within 0.2 T).
    saturation_time_ms : float
        Time from the saturation pulse to the readout of the centre of k-space.
    flip_angle_deg : float
        Readout flip angle of the SR frames.
    pd_flip_angle_deg : float
        Readout flip angle of the proton-density frames (typically 5 degrees).
    echo_spacing_ms : float
        Readout repetition time (time between readout pulses).
    n_pe_to_center : int
        Readout pulses before the one that reads the centre of k-space.
    """

    readout: str
    field_strength_t: float
    saturation_time_ms: float
    flip_angle_deg: float
    pd_flip_angle_deg: float
    echo_spacing_ms: float
    n_pe_to_center: int

    def __post_init__(self) -> None:
        readout = str(self.readout).lower()
        if readout not in READOUTS:
            raise ValidationError(f"readout: expected one of {', '.join(READOUTS)}, found {self.readout!r}")
        object.__setattr__(self, "readout", readout)
        for name in (
            "field_strength_t",
            "saturation_time_ms",
            "flip_angle_deg",
            "pd_flip_angle_deg",
            "echo_spacing_ms",
        ):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise ValidationError(f"{name}: expected a positive number, found {describe(value)}") from exc
            if not (math.isfinite(number) and number > 0):
                raise ValidationError(f"{name}: expected a positive number, found {value!r}")
            object.__setattr__(self, name, number)
        _field_key(self.field_strength_t)
        for name in ("flip_angle_deg", "pd_flip_angle_deg"):
            if getattr(self, name) >= 180.0:
                raise ValidationError(f"{name}: expected an angle below 180 degrees, found {getattr(self, name)!r}")
        n = self.n_pe_to_center
        if isinstance(n, bool) or not float(n).is_integer() or n < 0:
            raise ValidationError(f"n_pe_to_center: expected a non-negative integer, found {n!r}")
        object.__setattr__(self, "n_pe_to_center", int(n))
        lead_ms = self.n_pe_to_center * self.echo_spacing_ms + (
            0.5 * self.echo_spacing_ms if readout == "ssfp" else 0.0
        )
        if self.saturation_time_ms < lead_ms:
            raise ValidationError(
                f"saturation_time_ms: expected at least {lead_ms:.3g} ms (n_pe_to_center x echo_spacing_ms"
                f"{' + half a TR for the SSFP preparation' if readout == 'ssfp' else ''}), "
                f"found {self.saturation_time_ms:.3g} ms"
            )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], **overrides: Any) -> SrSequence:
        """Build from series metadata (keys as the field names); ``overrides`` win.

        Raises
        ------
        ValidationError
            Naming the first missing key.
        """
        values: dict[str, Any] = {}
        for key in _METADATA_KEYS:
            if overrides.get(key) is not None:
                values[key] = overrides[key]
            elif metadata.get(key) is not None:
                values[key] = metadata[key]
            else:
                raise ValidationError(
                    f"metadata[{key!r}]: required to convert signal to Gd concentration, not found "
                    f"(give it explicitly or use a series in gd_mmol_l)"
                )
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValidationError(f"sequence parameters: unknown name(s) {', '.join(sorted(unknown))}")
        return cls(**values)

    def relaxivity_r1(self) -> float:
        """Longitudinal relaxivity r1 (L/mmol/s) at this field strength."""
        return R1_RELAXIVITY[_field_key(self.field_strength_t)]

    def relaxivity_r2(self) -> float:
        """Transverse relaxivity r2 (L/mmol/s) at this field strength."""
        return R2_RELAXIVITY[_field_key(self.field_strength_t)]


def native_relaxation_ms(tissue: str, field_strength_t: float) -> tuple[float, float]:
    """Native ``(T1, T2)`` in ms of ``"blood"`` or ``"myocardium"`` at 1.5 or 3 T."""
    if tissue not in TISSUES:
        raise ValidationError(f"tissue: expected one of {', '.join(TISSUES)}, found {tissue!r}")
    key = _field_key(field_strength_t)
    return NATIVE_T1_MS[tissue][key], NATIVE_T2_MS[tissue][key]


def _flash_signal(
    r1_per_ms: NDArray[np.float64], mz0: NDArray[np.float64], delay_ms: float, flip_deg: float, tr_ms: float, n: int
) -> NDArray[np.float64]:
    """Spoiled gradient-echo signal (M0 = 1) of the centre pulse; ``mz0`` at the saturation."""
    a = math.radians(flip_deg)
    e_delay = np.exp(-delay_ms * r1_per_ms)
    mz = mz0 * e_delay + (1.0 - e_delay)
    e1 = np.exp(-tr_ms * r1_per_ms)
    for _ in range(n):
        mz = mz * math.cos(a) * e1 + (1.0 - e1)
    return np.asarray(mz * math.sin(a))


def _ssfp_signal(
    r1_per_ms: NDArray[np.float64],
    r2_per_ms: NDArray[np.float64],
    mz0: NDArray[np.float64],
    delay_ms: float,
    flip_deg: float,
    tr_ms: float,
    n: int,
) -> NDArray[np.float64]:
    """Balanced SSFP signal (M0 = 1) half a TR after the centre pulse, on resonance."""
    a = math.radians(flip_deg)

    def relax(
        my: NDArray[np.float64], mz: NDArray[np.float64], tau_ms: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        e1 = np.exp(-tau_ms * r1_per_ms)
        return my * np.exp(-tau_ms * r2_per_ms), mz * e1 + (1.0 - e1)

    def rotate(
        my: NDArray[np.float64], mz: NDArray[np.float64], angle: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        c, s = math.cos(angle), math.sin(angle)
        return my * c + mz * s, -my * s + mz * c

    my = np.zeros_like(r1_per_ms)
    mz = np.broadcast_to(mz0, r1_per_ms.shape).astype(np.float64)
    my, mz = relax(my, mz, delay_ms - 0.5 * tr_ms)
    my, mz = rotate(my, mz, -0.5 * a)
    my, mz = relax(my, mz, 0.5 * tr_ms)
    sign = 1.0
    for _ in range(n):
        my, mz = rotate(my, mz, sign * a)
        my, mz = relax(my, mz, tr_ms)
        sign = -sign
    my, mz = rotate(my, mz, sign * a)
    my, _ = relax(my, mz, 0.5 * tr_ms)
    return np.asarray(np.abs(my))


def sr_signal(gd_mmol_l: ArrayLike, sequence: SrSequence, tissue: str = "myocardium") -> NDArray[np.float64]:
    """Saturation-recovery signal (relative to M0 = 1) at given concentrations.

    Parameters
    ----------
    gd_mmol_l : array_like, any shape
        Gadolinium concentration, mmol/L.
    sequence : SrSequence
    tissue : {"blood", "myocardium"}
        Sets the native T1/T2.

    Returns
    -------
    ndarray of float64, same shape as ``gd_mmol_l``
    """
    gd = np.asarray(gd_mmol_l, dtype=np.float64)
    t1_ms, t2_ms = native_relaxation_ms(tissue, sequence.field_strength_t)
    r1 = 1.0 / t1_ms + sequence.relaxivity_r1() * gd / 1000.0
    tr, n = sequence.echo_spacing_ms, sequence.n_pe_to_center
    delay = sequence.saturation_time_ms - n * tr
    flat = np.atleast_1d(r1).reshape(-1)
    if sequence.readout == "flash":
        out = _flash_signal(flat, np.zeros_like(flat), delay, sequence.flip_angle_deg, tr, n)
    else:
        r2 = np.atleast_1d(1.0 / t2_ms + sequence.relaxivity_r2() * gd / 1000.0).reshape(-1)
        out = _ssfp_signal(flat, r2, np.zeros_like(flat), delay, sequence.flip_angle_deg, tr, n)
    return out.reshape(gd.shape)


def pd_signal(sequence: SrSequence, tissue: str = "myocardium") -> float:
    """Proton-density frame signal (relative to M0 = 1): no saturation, native relaxation."""
    t1_ms, t2_ms = native_relaxation_ms(tissue, sequence.field_strength_t)
    r1 = np.array([1.0 / t1_ms])
    tr, n = sequence.echo_spacing_ms, sequence.n_pe_to_center
    delay = sequence.saturation_time_ms - n * tr
    if sequence.readout == "flash":
        out = _flash_signal(r1, np.ones(1), delay, sequence.pd_flip_angle_deg, tr, n)
    else:
        out = _ssfp_signal(r1, np.array([1.0 / t2_ms]), np.ones(1), delay, sequence.pd_flip_angle_deg, tr, n)
    return float(out[0])


def sr_pd_ratio(gd_mmol_l: ArrayLike, sequence: SrSequence, tissue: str = "myocardium") -> NDArray[np.float64]:
    """The PD-normalised SR signal (SR / PD) that a concentration produces (forward model).

    Returns
    -------
    ndarray of float64, same shape as ``gd_mmol_l``
    """
    return sr_signal(gd_mmol_l, sequence, tissue) / pd_signal(sequence, tissue)


class GdLookupTable:
    """Inverse of :func:`sr_pd_ratio`: SR/PD ratio to concentration.

    The table samples the forward model over 0 to ``gd_max_mmol_l`` and inverts it by linear
    interpolation; ratios below the native one (noise) extrapolate linearly to negative
    concentrations so that noise averages out, ratios above the table's largest give
    ``gd_max_mmol_l``.

    Parameters
    ----------
    sequence : SrSequence
    tissue : {"blood", "myocardium"}
    gd_max_mmol_l : float
    step_mmol_l : float
    """

    def __init__(
        self,
        sequence: SrSequence,
        tissue: str = "myocardium",
        gd_max_mmol_l: float = GD_MAX_MMOL_L,
        step_mmol_l: float = 0.01,
    ) -> None:
        if not (gd_max_mmol_l > 0 and 0 < step_mmol_l < gd_max_mmol_l):
            raise ValidationError(
                f"gd_max_mmol_l/step_mmol_l: expected 0 < step < max, found {step_mmol_l!r} and {gd_max_mmol_l!r}"
            )
        self.sequence = sequence
        self.tissue = tissue
        gd = np.arange(0.0, gd_max_mmol_l + 0.5 * step_mmol_l, step_mmol_l)
        ratio = sr_pd_ratio(gd, sequence, tissue)
        # The signal rises with R1; keep the strictly increasing part (the whole table for
        # every realistic sequence).
        rising = np.concatenate([[True], np.diff(ratio) > 0])
        stop = int(np.argmin(rising)) if not rising.all() else gd.size
        self.gd_mmol_l: NDArray[np.float64] = gd[:stop]
        self.ratio: NDArray[np.float64] = ratio[:stop]
        if self.gd_mmol_l.size < 2:
            raise ValidationError("sequence: its signal does not increase with concentration; cannot convert to Gd")
        self._slope0 = (self.gd_mmol_l[1] - self.gd_mmol_l[0]) / (self.ratio[1] - self.ratio[0])

    def __call__(self, ratio: ArrayLike) -> NDArray[np.float64]:
        """Concentration (mmol/L, float64, same shape) of SR/PD ratios."""
        r = np.asarray(ratio, dtype=np.float64)
        gd = np.interp(r, self.ratio, self.gd_mmol_l)
        below = r < self.ratio[0]
        if np.any(below):
            gd = np.where(below, (r - self.ratio[0]) * self._slope0, gd)
        return np.asarray(gd)


@functools.lru_cache(maxsize=32)
def lookup_table(sequence: SrSequence, tissue: str = "myocardium") -> GdLookupTable:
    """A cached :class:`GdLookupTable` (sequences are hashable)."""
    return GdLookupTable(sequence, tissue)


def ratio_to_gd(ratio: ArrayLike, sequence: SrSequence, tissue: str = "myocardium") -> NDArray[np.float64]:
    """Concentration (mmol/L) of PD-normalised SR signals; any shape."""
    return lookup_table(sequence, tissue)(ratio)


def _tissue_name(tissue: str) -> str:
    if tissue not in TISSUES:
        raise ValidationError(f"tissue: expected one of {', '.join(TISSUES)}, found {tissue!r}")
    return tissue


def series_to_gd(
    series: PerfusionSeries,
    *,
    tissue: str = "myocardium",
    sequence: SrSequence | None = None,
    pd_threshold: float = 0.05,
    **overrides: Any,
) -> PerfusionSeries:
    """Convert a series to gadolinium concentration; a series already in Gd is returned as is.

    Parameters
    ----------
    series : PerfusionSeries
        ``(t, y, x)`` with ``n_pd_frames`` leading proton-density frames when ``units`` is
        ``"signal"``.
    tissue : {"blood", "myocardium"}
        Native T1/T2 used by the look-up table.
    sequence : SrSequence or None
        The readout; by default from ``series.metadata`` (with ``overrides``, e.g.
        ``flip_angle_deg=12``).
    pd_threshold : float
        Pixels whose mean PD is below this fraction of the image's 99th percentile PD
        (background, air) are set to 0 mmol/L.

    Returns
    -------
    PerfusionSeries
        The dynamic frames (PD frames removed) in ``"gd_mmol_l"``, float32; metadata gains
        ``"gd_conversion"`` (a short description).

    Raises
    ------
    ValidationError
        No PD frames, or metadata needed for the conversion missing (naming the key).
    """
    _tissue_name(tissue)
    if series.units == "gd_mmol_l":
        return series
    if series.n_pd_frames < 1:
        raise ValidationError("n_pd_frames: expected at least 1 proton-density frame to convert signal to Gd, found 0")
    seq = sequence if sequence is not None else SrSequence.from_metadata(series.metadata, **overrides)
    pd = series.pd_frames.astype(np.float64).mean(axis=0)
    valid = pd > pd_threshold * max(float(np.percentile(pd, 99)), np.finfo(np.float64).tiny)
    ratio = np.where(valid, series.dynamic.astype(np.float64) / np.where(valid, pd, 1.0), 0.0)
    gd = np.where(valid, ratio_to_gd(ratio, seq, tissue), 0.0).astype(np.float32)
    metadata = dict(series.metadata)
    metadata["gd_conversion"] = (
        f"SR/PD ({series.n_pd_frames} PD frames) via {seq.readout} look-up table, {tissue}, "
        f"{seq.field_strength_t:g} T, TS {seq.saturation_time_ms:g} ms, flip {seq.flip_angle_deg:g}/"
        f"{seq.pd_flip_angle_deg:g} deg"
    )
    return series.replace(data=gd, time_s=series.dynamic_time_s, units="gd_mmol_l", n_pd_frames=0, metadata=metadata)
