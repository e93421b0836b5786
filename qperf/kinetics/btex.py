"""The BTEX model: two-region axially distributed blood-tissue exchange.

Plasma ``Cp(x, t)`` and interstitium ``Cisf(x, t)`` along a capillary of length
``L = 0.1 cm``::

    dCp/dt   = -(Fp L / Vp) dCp/dx - (PS / Vp)(Cp - Cisf) + Dp d2Cp/dx2
    dCisf/dt =  (PS / Visf)(Cp - Cisf)                    + Disf d2Cisf/dx2

``Cp(0, t) = Cin(t)`` (the plasma AIF), zero gradient at the ends, zero initial
concentrations, ``Dp = 1e-5`` and ``Disf = 1e-6 cm^2/s``. The tissue curve follows Fick's
principle, ``Q(t) = Fp / 60 * integral_0^t (Cin - Cp(L, t')) dt'``.

The solution is computed in the Laplace domain (see :mod:`qperf.kinetics._btex_solver`):
exact for a piecewise-linear AIF up to the sampling of the transfer function, whose error
falls as ``dt**2`` and is about 1e-4 of the peak with the default 4-fold refinement.
Fitting uses a look-up table of curves built once per AIF (:mod:`qperf.kinetics._btex_lut`, :mod:`qperf.kinetics._btex_search`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.errors import ValidationError
from qperf.kinetics import _btex_fit, _spectral
from qperf.kinetics._btex_solver import (
    CAPILLARY_LENGTH_CM,
    DIFFUSION_ISF_CM2_S,
    DIFFUSION_PLASMA_CM2_S,
    outflow_transfer,
)
from qperf.kinetics.base import (
    Acquisition,
    FitResult,
    FloatArray,
    KineticModel,
    ParameterInfo,
    broadcast_params,
    simulation_inputs,
)
from qperf.kinetics.fitting import make_result

_BLOCK_ELEMENTS = 1 << 15  # parameter sets x frequencies per block (cache-friendly)


def btex_tissue_transfer(
    fp_ml_min_g: FloatArray,
    ps_ml_min_g: FloatArray,
    vp_ml_g: FloatArray,
    visf_ml_g: FloatArray,
    s: _spectral.ComplexArray,
    delay_s: FloatArray | None = None,
    length_cm: float = CAPILLARY_LENGTH_CM,
    dp_cm2_s: float = DIFFUSION_PLASMA_CM2_S,
    disf_cm2_s: float = DIFFUSION_ISF_CM2_S,
) -> _spectral.ComplexArray:
    """Transfer function from plasma inflow to tissue content, ``Fp/60 (1 - H(s)) / s``.

    Parameters
    ----------
    fp_ml_min_g, ps_ml_min_g, vp_ml_g, visf_ml_g : ndarray of float64, shape ``(P,)``
        Parameters of ``P`` systems.
    s : ndarray of complex128, shape ``(F,)``
        Laplace variable (1/s), ``Re(s) > 0``.
    delay_s : ndarray of float64, shape ``(P,)``, optional
        Delay of the tissue behind the AIF (s).
    length_cm, dp_cm2_s, disf_cm2_s : float
        Capillary length and axial diffusion coefficients.

    Returns
    -------
    ndarray of complex128, shape ``(P, F)``
    """
    n_params = fp_ml_min_g.shape[0]
    n_freq = s.shape[0]
    out = np.empty((n_params, n_freq), dtype=np.complex128)
    block = max(1, _BLOCK_ELEMENTS // max(n_freq, 1))
    for start in range(0, n_params, block):
        sl = slice(start, min(start + block, n_params))
        h = outflow_transfer(
            fp_ml_min_g[sl, None],
            ps_ml_min_g[sl, None],
            vp_ml_g[sl, None],
            visf_ml_g[sl, None],
            s[None, :],
            length_cm,
            dp_cm2_s,
            disf_cm2_s,
        )
        g = (fp_ml_min_g[sl, None] / 60.0) * (1.0 - h) / s[None, :]
        if delay_s is not None:
            g = g * np.exp(-s[None, :] * delay_s[sl, None])
        out[sl] = g
    return out


class BtexModel(KineticModel):
    """Two-region axially distributed blood-tissue exchange model (BTEX20).

    Parameters: ``Fp`` (plasma flow, reported as MBF; ml/min/g), ``PS`` (permeability-surface
    area product, ml/min/g), ``Vp`` (plasma volume, ml/g), ``Visf`` (interstitial volume,
    ml/g). Blood volume is reported as ``Vb = Vp / (1 - Hct)``.

    Parameters
    ----------
    length_cm, dp_cm2_s, disf_cm2_s : float
        Capillary length and axial diffusion coefficients (defaults from the original).
    upsample : int
        Refinement of the time grid in :meth:`simulate` (accuracy, see module notes).

    References
    ----------
    Bassingthwaighte JB, Wang CY, Chan IS. Circ Res 1989;65:997-1020.
    Xue H et al. Magn Reson Med 2020;83:712-730.
    """

    name = "btex"
    parameters = (
        ParameterInfo("Fp", "ml/min/g", "fp_ml_min_g", 0.1, 6.0),
        ParameterInfo("PS", "ml/min/g", "ps_ml_min_g", 0.35, 4.0),
        ParameterInfo("Vp", "ml/g", "vp_ml_g", 0.04, 0.10),
        ParameterInfo("Visf", "ml/g", "visf_ml_g", 0.1, 0.475),
    )

    def __init__(
        self,
        length_cm: float = CAPILLARY_LENGTH_CM,
        dp_cm2_s: float = DIFFUSION_PLASMA_CM2_S,
        disf_cm2_s: float = DIFFUSION_ISF_CM2_S,
        upsample: int = 4,
    ) -> None:
        if not (length_cm > 0 and dp_cm2_s > 0 and disf_cm2_s > 0):
            raise ValidationError(
                f"BtexModel: expected positive length and diffusion coefficients, found "
                f"{length_cm}, {dp_cm2_s}, {disf_cm2_s}"
            )
        if int(upsample) < 1:
            raise ValidationError(f"upsample: expected an integer >= 1, found {upsample!r}")
        self.length_cm = float(length_cm)
        self.dp_cm2_s = float(dp_cm2_s)
        self.disf_cm2_s = float(disf_cm2_s)
        self.upsample = int(upsample)

    def transfer(
        self,
        fp: FloatArray,
        ps: FloatArray,
        vp: FloatArray,
        visf: FloatArray,
        s: _spectral.ComplexArray,
        delay_s: FloatArray | None = None,
    ) -> _spectral.ComplexArray:
        """Tissue transfer function for flat parameter arrays of shape ``(P,)``; shape ``(P, F)``."""
        return btex_tissue_transfer(fp, ps, vp, visf, s, delay_s, self.length_cm, self.dp_cm2_s, self.disf_cm2_s)

    def simulate(self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, **params: Any) -> FloatArray:
        """Tissue curves for given parameters.

        Parameters
        ----------
        aif_plasma_mmol_l : array_like of float, shape ``(t,)``
            Plasma AIF (mmol/L) on ``time_s``, piecewise linear between samples.
        time_s : array_like of float, shape ``(t,)``
            Regular time grid (s).
        Fp, PS : float or array_like
            Plasma flow and permeability-surface area product (ml/min/g), > 0.
        Vp, Visf : float or array_like
            Plasma and interstitial volumes (ml/g), > 0.
        delay_s : float or array_like, optional
            Delay of the tissue behind the AIF (s, >= 0; default 0).

        Returns
        -------
        ndarray of float64, shape ``(P..., t)``
            Tissue concentration (mmol/L), ``P...`` the broadcast shape of the parameters.

        Raises
        ------
        ValidationError
            On a bad grid, AIF or parameter values.
        """
        time, dt, aif = simulation_inputs(time_s, aif_plasma_mmol_l)
        values, shape = broadcast_params(params, self.parameters)
        for name in self.parameter_names:
            if np.any(values[name] <= 0):
                raise ValidationError(f"{name}: expected values > 0, found minimum {values[name].min():g}")
        delay = values["delay_s"].reshape(-1)
        if np.any(delay < 0):
            raise ValidationError(f"delay_s: expected values >= 0 (s), found minimum {delay.min():g}")
        flat = {k: v.reshape(-1) for k, v in values.items()}
        n = time.shape[0]
        has_delay = bool(np.any(delay > 0))

        def transfer(s: _spectral.ComplexArray) -> _spectral.ComplexArray:
            return self.transfer(flat["Fp"], flat["PS"], flat["Vp"], flat["Visf"], s, delay if has_delay else None)

        out = _spectral.convolve(
            aif, dt, transfer, int(np.prod(shape, dtype=np.int64)), self.upsample, float(delay.max(initial=0.0))
        )
        return out.reshape(shape + (n,))

    def fit_acquisition(
        self, acquisition: Acquisition, tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float
    ) -> FitResult:
        """Fit BTEX pixel-wise by look-up table search and local refinement.

        Parameters
        ----------
        acquisition : Acquisition
            Plasma AIF (mmol/L), its regular time grid (s) and the haematocrit.
        tissue_mmol_l : array_like of float, shape ``(..., t)``
            Tissue curves (mmol/L).
        mask : array_like of bool, shape ``(...)``, optional
            Pixels to fit (default all).
        max_delay_s : float
            Largest delay of the tissue behind the AIF searched (s); delays are whole
            samples ``0, dt, ..., floor(max_delay_s / dt) dt``.

        Returns
        -------
        FitResult
            ``params`` Fp, PS, Vp, Visf, delay_s (NaN where ``status != 0``); ``derived``
            ``vb_ml_g = Vp / (1 - Hct)`` and ``mbf_ml_min_g = Fp / (1 - Hct)`` (myocardial
            whole-blood flow, the MBF QPerf reports); ``sd`` for Fp, PS, Vp, Visf (from the
            Jacobian at the solution, at the fitted delay); ``status``; ``nrmse``. ``maps()``
            names them ``fp_ml_min_g`` (plasma flow), ``mbf_ml_min_g``, ``ps_ml_min_g``,
            ``vp_ml_g``, ``visf_ml_g``, ``vb_ml_g``, ``delay_s``, ``nrmse`` and ``*_sd``.

        Notes
        -----
        Flow is bounded to 0.1-6 ml/min/g and the rates ``Fp / Vp``, ``PS / Vp``,
        ``PS / Visf`` to the original's parameter box; Vp, PS and Visf themselves may leave
        that box (solutions inside it are preferred at equal fit). The table (built per
        AIF) is searched exhaustively on a coarse grid at every delay, then refined
        locally at the whole-sample delays around the best coarse match
        (:mod:`qperf.kinetics._btex_search`); a study of 3 x 128 x 128 pixels takes
        about 1.5 s on one core. Chunks of pixels are fitted in parallel threads when
        ``QPERF_THREADS`` asks for more than one.
        """
        params, sds, status, nrmse, shape = _btex_fit.fit_btex(self, acquisition, tissue_mmol_l, mask, max_delay_s)
        # reported blood volume and myocardial (whole-)blood flow, from the plasma quantities
        plasma_fraction = 1.0 - acquisition.hematocrit
        derived = {"vb_ml_g": params["Vp"] / plasma_fraction, "mbf_ml_min_g": params["Fp"] / plasma_fraction}
        return make_result(self, params, sds, status, nrmse, shape, derived)
