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
    implement :meth:`curves` and :meth:`start_grid`.
    """

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
        return LeastSquaresSpec(
            names=self.parameter_names,
            lower=np.array([p.lower for p in self.parameters]),
            upper=np.array([p.upper for p in self.parameters]),
            grid=self.start_grid(),
            curves=self.curves,
        )

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
        """Fit pixel-wise: for each whole-sample delay up to ``max_delay_s``, a grid search
        then bounded Levenberg-Marquardt; the delay with the smallest residual wins.

        Returns
        -------
        FitResult
            Parameters (NaN where ``status != 0``), their standard deviations from the
            Jacobian at the solution, ``delay_s``, ``status`` and ``nrmse``.
        """
        params, sds, status, nrmse, shape = fit_least_squares(
            self._spec(), acquisition, tissue_mmol_l, mask, max_delay_s
        )
        params.update(self.derived_maps(params))
        return make_result(self, params, sds, status, nrmse, shape)
