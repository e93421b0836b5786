"""Common interface of the tracer-kinetic models and their fit results.

A model (:class:`KineticModel`) bound to an acquisition (:class:`Acquisition`: the plasma
AIF, its time grid and the haematocrit) is a :class:`BoundModel`, whose ``fit(curves)``
returns a :class:`FitResult`, in the manner of DIPY's ``Model(gtab).fit(data) -> Fit``.
Every model has the same signatures, so models are interchangeable and a new one plugs in
by implementing :meth:`KineticModel.simulate` and :meth:`KineticModel.fit_acquisition`.

Conventions
-----------
- Concentrations are mmol/L. The AIF is the *plasma* concentration (blood AIF divided by
  ``1 - Hct``). Tissue curves have time on the last axis: shape ``(..., t)``.
- ``time_s`` is a regular, strictly increasing grid (s), shared by the AIF and the tissue.
  The AIF is taken to be piecewise linear between its samples.
- Units: flows (Fp, PS) ml/min/g; volumes (Vp, Visf, Ve, vp) ml/g; Ktrans and kep /min;
  delays s. Tissue density is taken as 1 g/ml, so ml/g equals ml/ml, the tissue curve in
  mmol/L is the amount per ml of tissue, and OSIPI's ml/100 ml/min is 100 x ml/min/g.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError, describe
from qperf.types import DEFAULT_HEMATOCRIT

FloatArray = NDArray[np.float64]


class FitStatus(enum.IntEnum):
    """Per-pixel outcome of a fit (``FitResult.status``, int8).

    Any non-zero code comes with NaN parameters.
    """

    OK = 0  #: fitted
    MASKED = 1  #: outside the mask, not fitted
    INVALID_INPUT = 2  #: the tissue curve has NaN or infinite values
    NO_SIGNAL = 3  #: the tissue curve is flat (all zero or constant), nothing to fit
    FAILED = 4  #: the optimiser did not reach a finite solution


@dataclass(frozen=True)
class ParameterInfo:
    """Name, unit, map name and bounds of one model parameter."""

    name: str
    unit: str
    map_name: str
    lower: float
    upper: float


@dataclass(frozen=True, eq=False)
class FitResult:
    """Per-pixel parameters of a kinetic model fit (DIPY's ``Fit``).

    Attributes
    ----------
    model : str
        Model name (``"btex"``, ``"fermi"``, ``"2cxm"``, ``"tofts"``, ``"extended_tofts"``).
    params : dict of str to ndarray of float64, each of shape ``(...)``
        Fitted parameters (see the model's ``parameters`` for names and units), NaN where
        ``status != 0``. Always contains ``delay_s``.
    status : ndarray of int8, shape ``(...)``
        :class:`FitStatus` codes.
    nrmse : ndarray of float64, shape ``(...)``
        The residual, ``||fit - data|| / ||data||`` per pixel (NaN where not fitted).
    sd : dict of str to ndarray of float64
        Approximate parameter standard deviations from the Jacobian at the solution (only
        the models and parameters for which it is cheap); may be empty.
    units : dict of str to str
        Unit of each entry of ``params``.
    map_names : dict of str to str
        Name (with unit) of each parameter in :meth:`maps`.
    derived : dict of str to ndarray
        Extra maps (for example ``vb_ml_g`` for BTEX), keyed by their map names.
    """

    model: str
    params: dict[str, FloatArray]
    status: NDArray[np.int8]
    nrmse: FloatArray
    units: dict[str, str]
    map_names: dict[str, str]
    sd: dict[str, FloatArray] = field(default_factory=dict)
    derived: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Pixel shape ``(...)`` of the result."""
        return tuple(self.status.shape)

    @property
    def ok(self) -> NDArray[np.bool_]:
        """Boolean array, True where the fit succeeded."""
        result: NDArray[np.bool_] = self.status == FitStatus.OK
        return result

    def maps(self) -> dict[str, FloatArray]:
        """Named parameter maps with units in their names.

        Returns
        -------
        dict of str to ndarray of float64, each of shape ``(...)``
            For example ``{"fp_ml_min_g": ..., "mbf_ml_min_g": ..., "ps_ml_min_g": ..., "vb_ml_g": ...,
            "visf_ml_g": ..., "delay_s": ..., "nrmse": ...}`` for BTEX. NaN where not fitted.
        """
        out: dict[str, FloatArray] = {}
        for name, value in self.params.items():
            out[self.map_names.get(name, name)] = value
        out.update(self.derived)
        for name, value in self.sd.items():
            out[self.map_names.get(name, name) + "_sd"] = value
        out["nrmse"] = self.nrmse
        return out


# ----------------------------------------------------------------------------- validation


def simulation_inputs(time_s: ArrayLike, aif_plasma_mmol_l: ArrayLike) -> tuple[FloatArray, float, FloatArray]:
    """The checked time grid, its interval and the plasma AIF of a ``simulate`` call.

    Raises
    ------
    ValidationError
        On a bad grid, or an AIF of another length or with non-finite values.
    """
    time, dt = regular_time_grid(time_s)
    aif = np.asarray(aif_plasma_mmol_l, dtype=np.float64)
    if aif.shape != time.shape:
        raise ValidationError(
            f"aif_plasma_mmol_l: expected shape {time.shape} (one value per time), found shape {aif.shape}"
        )
    if not np.all(np.isfinite(aif)):
        raise ValidationError("aif_plasma_mmol_l: expected finite values (mmol/L), found NaN or infinite values")
    return time, dt, aif


def regular_time_grid(time_s: ArrayLike, name: str = "time_s") -> tuple[FloatArray, float]:
    """Check a regular, strictly increasing, non-negative time grid.

    Parameters
    ----------
    time_s : array_like of float, shape ``(t,)``
        Sample times (s), ``t >= 4``.
    name : str
        Parameter name for error messages.

    Returns
    -------
    time_s : ndarray of float64, shape ``(t,)``
    dt_s : float
        The sampling interval.

    Raises
    ------
    ValidationError
        On NaN, negative, non-increasing or irregular times, or fewer than 4 samples.
    """
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] < 4:
        raise ValidationError(f"{name}: expected a 1-D array of at least 4 times (s), found {describe(time_s)}")
    if not np.all(np.isfinite(t)):
        raise ValidationError(f"{name}: expected finite times (s), found NaN or infinite values")
    if t[0] < 0:
        raise ValidationError(f"{name}: expected non-negative times (s), found first time {t[0]:g}")
    step = np.diff(t)
    if np.any(step <= 0):
        raise ValidationError(f"{name}: expected strictly increasing times, found a step of {step.min():g} s")
    dt = float(np.mean(step))
    if np.max(np.abs(step - dt)) > 1e-3 * dt:
        raise ValidationError(
            f"{name}: expected a regular grid, found steps from {step.min():g} to {step.max():g} s "
            "(resample the curves to a regular grid first)"
        )
    return t, dt


def check_aif(aif_plasma_mmol_l: ArrayLike, n_time: int, name: str = "aif_plasma_mmol_l") -> FloatArray:
    """Check a plasma AIF on the fitting grid: finite, length ``n_time``, with a bolus.

    Raises
    ------
    ValidationError
        On a wrong length, non-finite values or an AIF without a bolus (peak not above
        the baseline).
    """
    aif = np.asarray(aif_plasma_mmol_l, dtype=np.float64)
    if aif.ndim != 1:
        raise ValidationError(f"{name}: expected a 1-D curve of {n_time} samples, found {describe(aif_plasma_mmol_l)}")
    if aif.shape[0] != n_time:
        raise ValidationError(
            f"{name}: expected {n_time} samples (one per time in time_s), found {aif.shape[0]}"
            + (" (the AIF is shorter than the tissue curves)" if aif.shape[0] < n_time else "")
        )
    if not np.all(np.isfinite(aif)):
        raise ValidationError(f"{name}: expected finite values (mmol/L), found NaN or infinite values")
    baseline = float(np.median(aif[: max(1, n_time // 10)]))
    peak = float(aif.max())
    if not peak > baseline + 1e-6 or peak <= 0:
        raise ValidationError(
            f"{name}: expected a bolus (peak above the baseline), found peak {peak:g} and baseline {baseline:g} mmol/L"
        )
    return aif


def check_tissue(tissue_mmol_l: ArrayLike, n_time: int, name: str = "tissue_mmol_l") -> FloatArray:
    """Check tissue curves of shape ``(..., t)``; NaN values are allowed (flagged per pixel)."""
    tissue = np.asarray(tissue_mmol_l, dtype=np.float64)
    if tissue.ndim < 1 or tissue.shape[-1] != n_time:
        raise ValidationError(
            f"{name}: expected shape (..., {n_time}) with time on the last axis, found {describe(tissue_mmol_l)}"
        )
    return tissue


def check_mask(mask: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """Boolean mask of pixel shape ``shape`` (all True when ``mask`` is None)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValidationError(f"mask: expected shape {shape} (the tissue shape without time), found {describe(mask)}")
    return m.astype(bool)


def check_max_delay(max_delay_s: float) -> float:
    """Check the delay bound (s)."""
    value = float(max_delay_s)
    if not np.isfinite(value) or value < 0:
        raise ValidationError(f"max_delay_s: expected a finite number >= 0 (s), found {max_delay_s!r}")
    return value


def check_hematocrit(hematocrit: float) -> float:
    """Check the haematocrit: a fraction in ``[0, 1)``."""
    try:
        value = float(hematocrit)
    except (TypeError, ValueError):
        raise ValidationError(f"hematocrit: expected a fraction in [0, 1), found {hematocrit!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValidationError(f"hematocrit: expected a fraction in [0, 1), found {hematocrit!r}")
    return value


def broadcast_params(
    params: Mapping[str, Any], infos: tuple[ParameterInfo, ...], defaults: Mapping[str, float] | None = None
) -> tuple[dict[str, FloatArray], tuple[int, ...]]:
    """Broadcast the keyword parameters of ``simulate`` to one shape.

    Raises
    ------
    ValidationError
        On a missing or unknown parameter, non-finite values or shapes that do not broadcast.
    """
    names = [p.name for p in infos]
    unknown = sorted(set(params) - set(names) - {"delay_s"})
    if unknown:
        raise ValidationError(f"parameters: expected some of {names + ['delay_s']}, found unknown {unknown}")
    values: dict[str, FloatArray] = {}
    for info in infos:
        if info.name in params:
            value = params[info.name]
        elif defaults is not None and info.name in defaults:
            value = defaults[info.name]
        else:
            raise ValidationError(f"{info.name}: expected a value in {info.unit}, found none")
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValidationError(f"{info.name}: expected finite values in {info.unit}, found NaN or infinite values")
        values[info.name] = arr
    values["delay_s"] = np.asarray(params.get("delay_s", 0.0), dtype=np.float64)
    try:
        arrays = np.broadcast_arrays(*values.values())
    except ValueError:
        shapes = {k: v.shape for k, v in values.items()}
        raise ValidationError(f"parameters: expected shapes that broadcast together, found {shapes}") from None
    out = {k: np.ascontiguousarray(a) for k, a in zip(values, arrays, strict=True)}
    return out, tuple(arrays[0].shape)


def delay_curve(aif: FloatArray, dt_s: float, delay_s: FloatArray) -> FloatArray:
    """Delay a curve by ``delay_s`` (>= 0, any shape) with linear interpolation.

    Returns an array of shape ``delay_s.shape + (t,)``; the curve is taken as constant at
    its first value before time 0.
    """
    n = aif.shape[-1]
    pos = np.arange(n)[None, :] - (np.asarray(delay_s, dtype=np.float64).reshape(-1, 1) / dt_s)
    pos = np.clip(pos, 0.0, n - 1.0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    out = aif[lo] * (1.0 - frac) + aif[hi] * frac
    result: FloatArray = out.reshape(np.shape(delay_s) + (n,))
    return result


@dataclass(frozen=True, eq=False)
class Acquisition:
    """What a model is fitted against: the plasma AIF on a regular time grid, and the haematocrit.

    Build it with :meth:`create`, which checks the inputs.

    Attributes
    ----------
    aif_plasma_mmol_l : ndarray of float64, shape ``(t,)``
        Plasma AIF (mmol/L), piecewise linear between samples.
    time_s : ndarray of float64, shape ``(t,)``
        Regular, strictly increasing time grid (s).
    dt_s : float
        Its sampling interval (s).
    hematocrit : float
        Fraction of blood volume taken by cells, for the whole-blood quantities (``Vb``, MBF)
        of the models that report them; the others ignore it.
    """

    aif_plasma_mmol_l: FloatArray
    time_s: FloatArray
    dt_s: float
    hematocrit: float

    @classmethod
    def create(
        cls, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, hematocrit: float = DEFAULT_HEMATOCRIT
    ) -> Acquisition:
        """Check and hold an AIF, its time grid and the haematocrit.

        Raises
        ------
        ValidationError
            On a bad grid (:func:`regular_time_grid`), a bad AIF (:func:`check_aif`) or a
            haematocrit outside ``[0, 1)``.
        """
        time, dt = regular_time_grid(time_s)
        aif = check_aif(aif_plasma_mmol_l, time.shape[0])
        return cls(aif, time, dt, check_hematocrit(hematocrit))

    @property
    def n_time(self) -> int:
        """Number of samples ``t``."""
        return int(self.time_s.shape[0])


class KineticModel(abc.ABC):
    """A tracer-kinetic model: simulate tissue curves and fit them pixel-wise.

    Subclasses define ``name`` and ``parameters`` and implement :meth:`simulate` and
    :meth:`fit_acquisition`; :meth:`bind` and :meth:`fit` then come for free.
    """

    name: str = ""
    parameters: tuple[ParameterInfo, ...] = ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the model parameters (without ``delay_s``)."""
        return tuple(p.name for p in self.parameters)

    @property
    def units(self) -> dict[str, str]:
        """Unit of each parameter, ``delay_s`` included."""
        out = {p.name: p.unit for p in self.parameters}
        out["delay_s"] = "s"
        return out

    def _map_names(self) -> dict[str, str]:
        out = {p.name: p.map_name for p in self.parameters}
        out["delay_s"] = "delay_s"
        return out

    @abc.abstractmethod
    def simulate(self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, **params: Any) -> FloatArray:
        """Tissue curves (mmol/L), shape ``(P..., t)`` for parameters broadcasting to ``(P...)``."""

    @abc.abstractmethod
    def fit_acquisition(
        self, acquisition: Acquisition, tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float
    ) -> FitResult:
        """Fit tissue curves of shape ``(..., t)`` against a checked acquisition.

        Every model implements this one signature; use :meth:`BoundModel.fit` to call it.
        """

    def bind(
        self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, hematocrit: float = DEFAULT_HEMATOCRIT
    ) -> BoundModel:
        """The model bound to an AIF, its time grid and the haematocrit, ready to fit curves.

        Parameters
        ----------
        aif_plasma_mmol_l : array_like of float, shape ``(t,)``
            Plasma AIF (mmol/L) on ``time_s``.
        time_s : array_like of float, shape ``(t,)``
            Regular time grid (s).
        hematocrit : float
            In ``[0, 1)``; models without whole-blood quantities ignore it.

        Returns
        -------
        BoundModel

        Raises
        ------
        ValidationError
            On a bad grid, AIF or haematocrit (see :meth:`Acquisition.create`).
        """
        return BoundModel(self, Acquisition.create(aif_plasma_mmol_l, time_s, hematocrit))

    def fit(
        self,
        tissue_mmol_l: ArrayLike,
        aif_plasma_mmol_l: ArrayLike,
        time_s: ArrayLike,
        mask: ArrayLike | None = None,
        max_delay_s: float = 3.0,
        hematocrit: float = DEFAULT_HEMATOCRIT,
    ) -> FitResult:
        """Fit tissue curves in one call: ``bind(aif_plasma_mmol_l, time_s, hematocrit).fit(...)``."""
        return self.bind(aif_plasma_mmol_l, time_s, hematocrit).fit(tissue_mmol_l, mask, max_delay_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(frozen=True, eq=False)
class BoundModel:
    """A kinetic model bound to an acquisition: ``fit(curves)`` gives per-pixel parameter maps.

    Made by :meth:`KineticModel.bind`. The same AIF and grid serve every fit, so one bound
    model fits the curves of many slices or regions.

    Attributes
    ----------
    model : KineticModel
    acquisition : Acquisition
    """

    model: KineticModel
    acquisition: Acquisition

    @property
    def name(self) -> str:
        """The model's name."""
        return self.model.name

    @property
    def parameters(self) -> tuple[ParameterInfo, ...]:
        """The model's parameters (names, units, map names, bounds)."""
        return self.model.parameters

    def fit(self, tissue_mmol_l: ArrayLike, mask: ArrayLike | None = None, max_delay_s: float = 3.0) -> FitResult:
        """Fit tissue curves pixel-wise.

        Parameters
        ----------
        tissue_mmol_l : array_like of float, shape ``(..., t)``
            Tissue curves (mmol/L) on the acquisition's grid; NaN values are flagged per pixel.
        mask : array_like of bool, shape ``(...)``, optional
            Pixels to fit (default all).
        max_delay_s : float
            Largest delay of the tissue behind the AIF searched (s). The least-squares
            models (2CXM, Tofts, extended Tofts, Fermi) fit a continuous delay in
            ``[0, max_delay_s]`` (the AIF delayed with linear interpolation); BTEX searches
            the whole samples ``0, dt, ..., floor(max_delay_s / dt) dt``.

        Returns
        -------
        FitResult
            Parameters (NaN where ``status != 0``), ``delay_s``, ``status`` and ``nrmse``.

        Raises
        ------
        ValidationError
            On curves of another length, a mask of another shape or a negative delay bound.
        """
        return self.model.fit_acquisition(self.acquisition, tissue_mmol_l, mask, max_delay_s)

    def simulate(self, **params: Any) -> FloatArray:
        """Tissue curves (mmol/L) of the model for given parameters, on the acquisition's grid."""
        return self.model.simulate(self.acquisition.aif_plasma_mmol_l, self.acquisition.time_s, **params)
