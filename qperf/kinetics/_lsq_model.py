"""Base class of the models fitted by (vectorised) nonlinear least squares."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.errors import ValidationError
from qperf.kinetics.base import (
    Acquisition,
    FitResult,
    FloatArray,
    KineticModel,
    broadcast_params,
    delay_curve,
    simulation_inputs,
)
from qperf.kinetics.fitting import LeastSquaresSpec, fit_least_squares, make_result


class LeastSquaresModel(KineticModel):
    """A model given by ``curves(aif, dt, params)``, fitted by Levenberg-Marquardt.

    Subclasses set ``name`` and ``parameters`` (whose bounds are the fit bounds) and
    implement :meth:`curves` (linear in the AIF, as every convolution model is: the
    sub-sample delay relies on it) and :meth:`start_grid`; a model with a linear
    least-squares solution also implements :meth:`linear_solution`.

    Parameters
    ----------
    method : {"nonlinear", "linear"}
        ``"nonlinear"`` (default): bounded Levenberg-Marquardt from grid-search and linear
        starts, with a continuous delay. ``"linear"``: the linear least-squares solution
        (Murase, Flouri) with a sub-sample delay, about 100 times faster and slightly biased
        by the integration of the curves; only for the models that have one
        (``fit_methods``).
    """

    #: Values of ``method`` this model accepts.
    fit_methods: tuple[str, ...] = ("nonlinear",)

    def __init__(self, method: str = "nonlinear") -> None:
        key = str(method).strip().lower()
        if key not in self.fit_methods:
            raise ValidationError(f"method: expected one of {list(self.fit_methods)} for {self.name}, found {method!r}")
        self.method = key

    def linear_solution(self, tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray | None:
        """Linear least-squares parameters ``(P, n)`` of curves ``(P, t)`` for an AIF ``(t,)``
        or ``(P, t)``, NaN where not physical; None for a model without one."""
        return None

    @abc.abstractmethod
    def curves(self, aif: FloatArray, dt_s: float, params: FloatArray) -> FloatArray:
        """Tissue curves (P, t) for parameter rows ``params`` (P, n) in ``parameters`` order."""

    @abc.abstractmethod
    def start_grid(self) -> FloatArray:
        """Start candidates (G, n) for the grid search before the local fit."""

    def derived_maps(self, params: dict[str, FloatArray]) -> dict[str, FloatArray]:
        """Extra parameters computed from the fitted ones (added to ``params``)."""
        return {}

    def _spec(self) -> LeastSquaresSpec:
        has_linear = type(self).linear_solution is not LeastSquaresModel.linear_solution
        return LeastSquaresSpec(
            names=self.parameter_names,
            lower=np.array([p.lower for p in self.parameters]),
            upper=np.array([p.upper for p in self.parameters]),
            grid=self.start_grid(),
            curves=self.curves,
            linear=self._linear if has_linear else None,
        )

    def _linear(self, tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
        out = self.linear_solution(tissue, aif, dt_s)
        return np.full((tissue.shape[0], len(self.parameters)), np.nan) if out is None else out

    def simulate(self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, **params: Any) -> FloatArray:
        """Tissue curves for given parameters.

        Parameters
        ----------
        aif_plasma_mmol_l : array_like of float, shape ``(t,)``
            Plasma AIF (mmol/L), piecewise linear between samples.
        time_s : array_like of float, shape ``(t,)``
            Regular time grid (s).
        **params : float or array_like
            The model parameters (see ``parameters`` for names and units) and optionally
            ``delay_s`` (>= 0); all broadcast together to a shape ``(P...)``.

        Returns
        -------
        ndarray of float64, shape ``(P..., t)``

        Raises
        ------
        ValidationError
            On a bad grid, AIF or parameter values.
        """
        time, dt, aif = simulation_inputs(time_s, aif_plasma_mmol_l)
        values, shape = broadcast_params(params, self.parameters)
        for info in self.parameters:
            if np.any(values[info.name] < 0):
                raise ValidationError(
                    f"{info.name}: expected values >= 0 ({info.unit}), found {values[info.name].min():g}"
                )
        delay = values["delay_s"].reshape(-1)
        if np.any(delay < 0):
            raise ValidationError(f"delay_s: expected values >= 0 (s), found minimum {delay.min():g}")
        x = np.stack([values[name].reshape(-1) for name in self.parameter_names], axis=1)
        out = np.empty((x.shape[0], time.shape[0]))
        for d in np.unique(delay):
            sel = delay == d
            shifted = delay_curve(aif, dt, np.array(d)) if d > 0 else aif
            out[sel] = self.curves(shifted, dt, x[sel])
        return out.reshape(shape + (time.shape[0],))

    def fit_acquisition(
        self, acquisition: Acquisition, tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float
    ) -> FitResult:
        """Fit pixel-wise with a continuous delay in ``[0, max_delay_s]`` (see
        :func:`qperf.kinetics.fitting.fit_least_squares` for the two methods).

        Returns
        -------
        FitResult
            Parameters (NaN where ``status != 0``), their standard deviations from the
            Jacobian at the solution, ``delay_s``, ``status`` and ``nrmse``.
        """
        params, sds, status, nrmse, shape = fit_least_squares(
            self._spec(), acquisition, tissue_mmol_l, mask, max_delay_s, method=self.method
        )
        params.update(self.derived_maps(params))
        return make_result(self, params, sds, status, nrmse, shape)
