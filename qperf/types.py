"""QPerf's data model: perfusion series, AIF curves and studies.

Conventions, stated once for the whole package
----------------------------------------------
- A 2D+T slice is an array of shape ``(t, y, x)``: frame, row, column. ``y`` is the row
  index (DICOM "rows", image top to bottom) and ``x`` the column index. Label maps and
  parameter maps of one slice are ``(y, x)``; 2D+T label series are ``(t, y, x)``.
- Spacing is ``(dy, dx)`` in millimetres: ``dy`` between rows, ``dx`` between columns.
- Times are seconds, one value per frame, strictly increasing, not necessarily evenly
  spaced (ECG-triggered acquisitions follow the heart rate).
- Physical space is DICOM patient space, LPS (x to the patient's left, y to posterior,
  z to superior), in millimetres. :meth:`SliceGeometry.ijk_to_ras` gives Slicer's RAS;
  :class:`SliceGeometry` and the pixel <-> RAS conversions live in :mod:`qperf.geometry` and
  are re-exported here.
- Concentrations are mmol/L; flows ml/min/g; volumes ml/g.

Known ``metadata`` keys (all optional; readers fill what the file records):
``field_strength_t`` (1.5 or 3.0), ``readout`` ("flash" or "ssfp"),
``saturation_time_ms``, ``flip_angle_deg``, ``pd_flip_angle_deg``, ``echo_spacing_ms``
(readout TR), ``n_pe_to_center`` (readout pulses before the centre of k-space),
``echo_times_ms`` (list, dual-echo AIF), ``series_description``, ``series_uid``,
``patient_id``, ``heart_rate_bpm``, ``source`` (path it was read from).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError, describe
from qperf.geometry import SliceGeometry, direction_name, ras_to_yx, yx_to_ras

__all__ = [
    "AIF_KINDS",
    "CONDITIONS",
    "DEFAULT_HEMATOCRIT",
    "LABELS",
    "LABEL_BACKGROUND",
    "LABEL_LV",
    "LABEL_MYO",
    "LABEL_RV",
    "UNITS",
    "AifCurve",
    "AifKind",
    "Condition",
    "PerfusionSeries",
    "PerfusionStudy",
    "SliceGeometry",
    "Units",
    "direction_name",
    "ras_to_yx",
    "yx_to_ras",
]

Units = Literal["signal", "gd_mmol_l"]
Condition = Literal["stress", "rest", "unknown"]
AifKind = Literal["blood", "plasma"]

UNITS: tuple[str, ...] = ("signal", "gd_mmol_l")
CONDITIONS: tuple[str, ...] = ("stress", "rest", "unknown")
AIF_KINDS: tuple[str, ...] = ("blood", "plasma")

#: Class labels used throughout QPerf (label maps, CNN output, phantom truth).
LABELS: dict[int, str] = {0: "background", 1: "lv_blood_pool", 2: "lv_myocardium", 3: "rv_blood_pool"}
LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV = 0, 1, 2, 3

DEFAULT_HEMATOCRIT = 0.42


def _as_time(name: str, value: ArrayLike, n: int | None) -> NDArray[np.float64]:
    try:
        arr = np.array(value, dtype=np.float64).reshape(-1) if np.ndim(value) <= 1 else None
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected numbers, found {describe(value)}") from exc
    if arr is None:
        raise ValidationError(f"{name}: expected a 1D array of times, found {describe(np.asarray(value))}")
    if n is not None and arr.shape[0] != n:
        raise ValidationError(f"{name}: expected {n} values (one per frame), found {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name}: expected finite times, found NaN or infinity")
    if arr.shape[0] > 1 and not np.all(np.diff(arr) > 0):
        bad = int(np.argmax(np.diff(arr) <= 0))
        raise ValidationError(
            f"{name}: expected strictly increasing times, found {arr[bad]:.4g} s followed by {arr[bad + 1]:.4g} s "
            f"at index {bad}"
        )
    arr.setflags(write=False)
    return arr


def _as_spacing(value: Any) -> tuple[float, float]:
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"spacing_mm: expected (dy, dx) in mm, found {describe(value)}") from exc
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValidationError(f"spacing_mm: expected two positive numbers (dy, dx) in mm, found {describe(value)}")
    return (float(arr[0]), float(arr[1]))


@dataclass(frozen=True, eq=False)
class PerfusionSeries:
    """One short-axis slice over time.

    Parameters
    ----------
    data : array_like, shape (t, y, x)
        Image intensities, stored as float32. Finite values only.
    time_s : array_like, shape (t,)
        Acquisition time of every frame in seconds, strictly increasing.
    spacing_mm : (float, float)
        Pixel spacing ``(dy, dx)`` in mm.
    geometry : SliceGeometry or None
        Position and orientation in patient space; None when the source does not record it
        (then anatomical directions are unknown and must not be assumed).
    units : {"signal", "gd_mmol_l"}
        Raw (or coil-corrected) signal, or gadolinium concentration in mmol/L.
    n_pd_frames : int
        Number of leading proton-density frames (0 if none).
    slice_position_mm : float or None
        Position along the LV long axis (larger towards the base), when known.
    name : str
        Short label, for example ``"slice 1"``.
    metadata : mapping
        Free-form acquisition metadata; see the module docstring for known keys.

    Raises
    ------
    ValidationError
        (a ``ValueError``) naming the field, what was expected and what was found.
    """

    data: NDArray[Any]
    time_s: NDArray[Any]
    spacing_mm: tuple[float, float] = (1.0, 1.0)
    geometry: SliceGeometry | None = None
    units: str = "signal"
    n_pd_frames: int = 0
    slice_position_mm: float | None = None
    name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if np.iscomplexobj(self.data):
            raise ValidationError(f"data: expected real numbers, found {describe(np.asarray(self.data))}")
        try:
            data = np.array(self.data, dtype=np.float32, copy=True, order="C")
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"data: expected a numeric (t, y, x) array, found {describe(self.data)}") from exc
        if data.ndim != 3:
            hint = " (a single 2D image has no time axis)" if data.ndim == 2 else ""
            raise ValidationError(f"data: expected 3 dimensions (t, y, x), found shape {data.shape}{hint}")
        if data.shape[0] < 2:
            raise ValidationError(f"data: expected at least 2 frames, found {data.shape[0]}")
        if data.shape[1] < 2 or data.shape[2] < 2:
            raise ValidationError(f"data: expected an image of at least 2 x 2 pixels, found {data.shape[1:]}")
        if not np.all(np.isfinite(data)):
            n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
            raise ValidationError(f"data: expected finite values, found {n_bad} NaN or infinite values")
        data.setflags(write=False)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "time_s", _as_time("time_s", self.time_s, data.shape[0]))
        object.__setattr__(self, "spacing_mm", _as_spacing(self.spacing_mm))
        if self.geometry is not None and not isinstance(self.geometry, SliceGeometry):
            raise ValidationError(f"geometry: expected a SliceGeometry or None, found {describe(self.geometry)}")
        if self.units not in UNITS:
            raise ValidationError(f"units: expected one of {', '.join(UNITS)}, found {self.units!r}")
        n_pd = self.n_pd_frames
        if not isinstance(n_pd, (int, np.integer)) or isinstance(n_pd, bool) or not 0 <= n_pd <= data.shape[0] - 2:
            raise ValidationError(
                f"n_pd_frames: expected an integer from 0 to {data.shape[0] - 2} (frames minus 2), found {n_pd!r}"
            )
        object.__setattr__(self, "n_pd_frames", int(n_pd))
        if self.slice_position_mm is not None:
            pos = float(self.slice_position_mm)
            if not math.isfinite(pos):
                raise ValidationError(f"slice_position_mm: expected a finite number or None, found {pos!r}")
            object.__setattr__(self, "slice_position_mm", pos)
        if not isinstance(self.metadata, Mapping):
            raise ValidationError(f"metadata: expected a mapping, found {describe(self.metadata)}")
        object.__setattr__(self, "metadata", dict(self.metadata))

    # Convenience views -------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """In-plane matrix ``(ny, nx)``."""
        return (int(self.data.shape[1]), int(self.data.shape[2]))

    @property
    def frame_interval_s(self) -> float:
        """Median interval between dynamic frames, in seconds."""
        return (
            float(np.median(np.diff(self.time_s[self.n_pd_frames :]))) if self.n_frames - self.n_pd_frames > 1 else 0.0
        )

    @property
    def dynamic(self) -> NDArray[np.float32]:
        """The frames after the proton-density frames, ``(t - n_pd, y, x)``."""
        return self.data[self.n_pd_frames :]

    @property
    def dynamic_time_s(self) -> NDArray[np.float64]:
        return self.time_s[self.n_pd_frames :]

    @property
    def pd_frames(self) -> NDArray[np.float32]:
        return self.data[: self.n_pd_frames]

    def ijk_to_ras(self) -> NDArray[np.float64]:
        """Slicer IJK-to-RAS matrix; identity orientation when the geometry is unknown."""
        return (self.geometry or SliceGeometry()).ijk_to_ras(self.spacing_mm)

    def replace(self, **changes: Any) -> PerfusionSeries:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        dt = np.diff(self.dynamic_time_s)
        ny, nx = self.shape
        units = self.units + (
            " (not recorded in the source; assumed)" if self.metadata.get("units_recorded") is False else ""
        )
        if self.metadata.get("time_recorded") is False:
            timing = "  time: not recorded in the source (frame interval unknown)"
        else:
            timing = f"  time {self.time_s[0]:.2f} to {self.time_s[-1]:.2f} s, interval " + (
                f"{np.median(dt):.3f} s (min {dt.min():.3f}, max {dt.max():.3f})" if dt.size else "n/a"
            )
        lines = [
            f"{self.name or 'series'}: {self.n_frames} frames ({self.n_pd_frames} PD), matrix {ny} x {nx}, "
            f"spacing {self.spacing_mm[0]:.3g} x {self.spacing_mm[1]:.3g} mm, units {units}",
            timing,
            "  geometry: " + (self.geometry.describe() if self.geometry else "unknown (not recorded in the source)"),
        ]
        if self.slice_position_mm is not None:
            lines.append(f"  slice position {self.slice_position_mm:.1f} mm")
        lo, hi = float(self.data.min()), float(self.data.max())
        lines.append(f"  values {lo:.4g} to {hi:.4g}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class AifCurve:
    """An arterial input function sampled at its own times.

    Parameters
    ----------
    values : array_like, shape (t,)
        Concentration (mmol/L) or signal.
    time_s : array_like, shape (t,)
        Sample times in seconds, strictly increasing, on the same clock as the series.
    units : {"gd_mmol_l", "signal"}
    kind : {"blood", "plasma"}
        Whole-blood or plasma concentration (plasma = blood / (1 - Hct)).
    """

    values: NDArray[Any]
    time_s: NDArray[Any]
    units: str = "gd_mmol_l"
    kind: str = "blood"

    def __post_init__(self) -> None:
        try:
            values = np.array(self.values, dtype=np.float64).reshape(-1) if np.ndim(self.values) <= 2 else None
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"aif.values: expected numbers, found {describe(self.values)}") from exc
        if values is None or (np.ndim(self.values) == 2 and 1 not in np.shape(self.values)):
            raise ValidationError(f"aif.values: expected a 1D curve, found {describe(np.asarray(self.values))}")
        if values.shape[0] < 2:
            raise ValidationError(f"aif.values: expected at least 2 samples, found {values.shape[0]}")
        if not np.all(np.isfinite(values)):
            raise ValidationError("aif.values: expected finite values, found NaN or infinity")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "time_s", _as_time("aif.time_s", self.time_s, values.shape[0]))
        if self.units not in UNITS:
            raise ValidationError(f"aif.units: expected one of {', '.join(UNITS)}, found {self.units!r}")
        if self.kind not in AIF_KINDS:
            raise ValidationError(f"aif.kind: expected one of {', '.join(AIF_KINDS)}, found {self.kind!r}")

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[0])


def _check_aif_covers(aif_time: NDArray[np.float64], series: PerfusionSeries, what: str) -> None:
    """A study's AIF must cover the dynamic part of every slice (within one frame interval)."""
    t = series.dynamic_time_s
    tol = max(series.frame_interval_s, 1e-6) * 1.5
    if aif_time[0] > t[0] + tol or aif_time[-1] < t[-1] - tol:
        raise ValidationError(
            f"{what}: expected times covering {series.name or 'the series'} ({t[0]:.2f} to {t[-1]:.2f} s), "
            f"found {aif_time[0]:.2f} to {aif_time[-1]:.2f} s (AIF and series do not match)"
        )


@dataclass(frozen=True, eq=False)
class PerfusionStudy:
    """The slices of one perfusion acquisition with their arterial input.

    Parameters
    ----------
    slices : sequence of PerfusionSeries
        Usually basal, mid and apical short-axis slices, each with its own times.
    aif : AifCurve or None
        The arterial input as a curve.
    aif_series : sequence of PerfusionSeries
        The dual-sequence AIF images, one series per echo (empty when there are none);
        echo times in ``metadata["echo_times_ms"]`` of the first.
    condition : {"stress", "rest", "unknown"}
    hematocrit : float
        Fraction in (0, 1); 0.42 by default.
    name : str
    metadata : mapping
    """

    slices: Sequence[PerfusionSeries]
    aif: AifCurve | None = None
    aif_series: Sequence[PerfusionSeries] = ()
    condition: str = "unknown"
    hematocrit: float = DEFAULT_HEMATOCRIT
    name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.slices, PerfusionSeries):
            object.__setattr__(self, "slices", (self.slices,))
        if not isinstance(self.slices, Sequence) or len(self.slices) == 0:
            raise ValidationError(f"slices: expected at least one PerfusionSeries, found {describe(self.slices)}")
        for i, s in enumerate(self.slices):
            if not isinstance(s, PerfusionSeries):
                raise ValidationError(f"slices[{i}]: expected a PerfusionSeries, found {describe(s)}")
        object.__setattr__(self, "slices", tuple(self.slices))
        if self.aif is not None and not isinstance(self.aif, AifCurve):
            raise ValidationError(f"aif: expected an AifCurve or None, found {describe(self.aif)}")
        aif_series = self.aif_series
        if isinstance(aif_series, PerfusionSeries):
            aif_series = (aif_series,)
        aif_series = tuple(aif_series or ())
        for i, s in enumerate(aif_series):
            if not isinstance(s, PerfusionSeries):
                raise ValidationError(f"aif_series[{i}]: expected a PerfusionSeries, found {describe(s)}")
            if s.data.shape != aif_series[0].data.shape or not np.allclose(s.time_s, aif_series[0].time_s):
                raise ValidationError(
                    f"aif_series[{i}]: expected the same frames and times as aif_series[0] "
                    f"{aif_series[0].data.shape}, found {s.data.shape}"
                )
        object.__setattr__(self, "aif_series", aif_series)
        if self.condition not in CONDITIONS:
            raise ValidationError(f"condition: expected one of {', '.join(CONDITIONS)}, found {self.condition!r}")
        hct = float(self.hematocrit)
        if not (math.isfinite(hct) and 0.0 < hct < 1.0):
            raise ValidationError(f"hematocrit: expected a fraction between 0 and 1, found {self.hematocrit!r}")
        object.__setattr__(self, "hematocrit", hct)
        for s in self.slices:
            if self.aif is not None:
                _check_aif_covers(self.aif.time_s, s, "aif.time_s")
            if aif_series:
                _check_aif_covers(aif_series[0].dynamic_time_s, s, "aif_series.time_s")
        if not isinstance(self.metadata, Mapping):
            raise ValidationError(f"metadata: expected a mapping, found {describe(self.metadata)}")
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    def replace(self, **changes: Any) -> PerfusionStudy:
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        lines = [
            f"study {self.name or '(unnamed)'}: {self.n_slices} slice(s), condition {self.condition}, "
            f"hematocrit {self.hematocrit:.2f}"
        ]
        lines += [s.summary() for s in self.slices]
        if self.aif is not None:
            a = self.aif
            lines.append(
                f"AIF curve: {a.n_samples} samples, {a.time_s[0]:.2f} to {a.time_s[-1]:.2f} s, {a.kind} {a.units}, "
                f"peak {a.values.max():.3g}"
            )
        if self.aif_series:
            lines.append(f"AIF image series ({len(self.aif_series)} echo(es)):")
            lines.append(self.aif_series[0].summary())
        if self.aif is None and not self.aif_series:
            lines.append("AIF: none")
        return "\n".join(lines)
