"""Compartment models: two-compartment exchange (2CXM), Tofts and extended Tofts.

Tissue density is taken as 1 g/ml, so volumes in ml/g are volume fractions and flows in
ml/min/g equal ml/min/ml (OSIPI's ml/100 ml/min divided by 100).

References
----------
Sourbron SP, Buckley DL. Tracer kinetic modelling in MRI: estimating perfusion and
capillary permeability. Phys Med Biol 2012;57:R1-R33.
Tofts PS et al. Estimating kinetic parameters from dynamic contrast-enhanced T1-weighted
MRI of a diffusable tracer. J Magn Reson Imaging 1999;10:223-232.
Murase K. Efficient method for calculating kinetic parameters using T1-weighted dynamic
contrast-enhanced magnetic resonance imaging. Magn Reson Med 2004;51:858-862.
Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI by linear
inversion. Magn Reson Med 2016;76:998-1006.
"""

from __future__ import annotations

import numpy as np

from qperf.kinetics._lsq_model import LeastSquaresModel
from qperf.kinetics.base import FloatArray, ParameterInfo
from qperf.kinetics.convolution import exp_convolve
from qperf.kinetics.linear import extended_tofts_linear, tofts_linear, two_compartment_linear


def _mesh(*axes: FloatArray) -> FloatArray:
    return np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], axis=1)


class TwoCompartmentExchangeModel(LeastSquaresModel):
    """Two-compartment exchange model (plasma and interstitium, well mixed).

    ``vp dCp/dt = Fp (Ca - Cp) - PS (Cp - Ce)``, ``ve dCe/dt = PS (Cp - Ce)``,
    tissue ``C = vp Cp + ve Ce``. The impulse response is bi-exponential,
    ``Fp [w exp(-K+ t) + (1 - w) exp(-K- t)]`` with ``K+-`` the eigenvalues of the system
    and ``w = (Fp / vp - K-) / (K+ - K-)``.

    Parameters: Fp, PS (ml/min/g), Vp, Ve (ml/g). ``method="linear"`` fits the linearisation
    of Flouri et al. (2016), :func:`qperf.kinetics.linear.two_compartment_linear`.
    """

    name = "2cxm"
    fit_methods = ("nonlinear", "linear")
    parameters = (
        ParameterInfo("Fp", "ml/min/g", "fp_ml_min_g", 1e-3, 10.0),
        ParameterInfo("PS", "ml/min/g", "ps_ml_min_g", 1e-5, 10.0),
        ParameterInfo("Vp", "ml/g", "vp_ml_g", 1e-3, 0.6),
        ParameterInfo("Ve", "ml/g", "ve_ml_g", 1e-3, 0.95),
    )

    def curves(self, aif: FloatArray, dt_s: float, params: FloatArray) -> FloatArray:
        """Tissue curves (P, t) for rows (Fp, PS, Vp, Ve)."""
        f = params[:, 0] / 60.0
        p = params[:, 1] / 60.0
        vp = np.maximum(params[:, 2], 1e-9)
        ve = np.maximum(params[:, 3], 1e-9)
        tr = (f + p) / vp + p / ve
        det = f * p / (vp * ve)
        disc = np.sqrt(np.maximum(tr * tr - 4.0 * det, 0.0))
        k_plus = 0.5 * (tr + disc)
        k_minus = 2.0 * det / np.maximum(tr + disc, 1e-300)
        gap = np.maximum(k_plus - k_minus, 1e-12)
        w_plus = f * (f / vp - k_minus) / gap
        w_minus = f - w_plus
        out: FloatArray = w_plus[:, None] * exp_convolve(aif, dt_s, k_plus) + w_minus[:, None] * exp_convolve(
            aif, dt_s, k_minus
        )
        return out

    def linear_solution(self, tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
        """Flouri et al. (2016) linear least-squares ``(Fp, PS, Vp, Ve)``, NaN where not physical."""
        return two_compartment_linear(tissue, aif, dt_s)

    def start_grid(self) -> FloatArray:
        return _mesh(
            np.geomspace(0.02, 5.0, 10),
            np.geomspace(0.002, 3.0, 8),
            np.array([0.01, 0.03, 0.06, 0.1, 0.2]),
            np.array([0.05, 0.1, 0.2, 0.35, 0.6]),
        )


class ToftsModel(LeastSquaresModel):
    """Standard Tofts model, ``C = Ktrans * Cp (x) exp(-kep t)``, ``kep = Ktrans / ve``.

    Parameters: Ktrans (/min), Ve (ml/g). ``method="linear"`` fits Murase's (2004)
    linearisation, :func:`qperf.kinetics.linear.tofts_linear`.
    """

    name = "tofts"
    fit_methods = ("nonlinear", "linear")
    parameters = (
        ParameterInfo("Ktrans", "1/min", "ktrans_per_min", 1e-5, 5.0),
        ParameterInfo("Ve", "ml/g", "ve_ml_g", 1e-3, 1.0),
    )

    def curves(self, aif: FloatArray, dt_s: float, params: FloatArray) -> FloatArray:
        """Tissue curves (P, t) for rows (Ktrans, Ve)."""
        ktrans = params[:, 0] / 60.0
        kep = ktrans / np.maximum(params[:, 1], 1e-9)
        out: FloatArray = ktrans[:, None] * exp_convolve(aif, dt_s, kep)
        return out

    def linear_solution(self, tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
        """Murase (2004) linear least-squares ``(Ktrans, Ve)``, NaN where not physical."""
        return tofts_linear(tissue, aif, dt_s)

    def start_grid(self) -> FloatArray:
        return _mesh(np.geomspace(0.005, 3.0, 16), np.geomspace(0.02, 0.9, 12))


class ExtendedToftsModel(LeastSquaresModel):
    """Extended Tofts model, ``C = vp Cp + Ktrans * Cp (x) exp(-kep t)``.

    Parameters: Ktrans (/min), Ve, Vp (ml/g). ``method="linear"`` fits Murase's (2004)
    linearisation, :func:`qperf.kinetics.linear.extended_tofts_linear`.
    """

    name = "extended_tofts"
    fit_methods = ("nonlinear", "linear")
    parameters = (
        ParameterInfo("Ktrans", "1/min", "ktrans_per_min", 1e-5, 5.0),
        ParameterInfo("Ve", "ml/g", "ve_ml_g", 1e-3, 1.0),
        ParameterInfo("Vp", "ml/g", "vp_ml_g", 0.0, 0.6),
    )

    def curves(self, aif: FloatArray, dt_s: float, params: FloatArray) -> FloatArray:
        """Tissue curves (P, t) for rows (Ktrans, Ve, Vp)."""
        ktrans = params[:, 0] / 60.0
        kep = ktrans / np.maximum(params[:, 1], 1e-9)
        out: FloatArray = ktrans[:, None] * exp_convolve(aif, dt_s, kep) + params[:, 2:3] * aif[None, :]
        return out

    def linear_solution(self, tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
        """Murase (2004) linear least-squares ``(Ktrans, Ve, Vp)``, NaN where not physical."""
        return extended_tofts_linear(tissue, aif, dt_s)

    def start_grid(self) -> FloatArray:
        return _mesh(np.geomspace(0.005, 3.0, 12), np.geomspace(0.02, 0.9, 8), np.array([0.0, 0.02, 0.06, 0.15]))
