"""Fermi-constrained deconvolution.

The tissue curve is the AIF convolved with a Fermi-shaped impulse residue function,
``R(t) = F / (1 + exp(k (t - tau)))`` for ``t >= 0`` (a plateau of length about ``tau``
followed by a wash-out of rate ``k``), after a delay. Flow is ``R(0)``.

References
----------
Jerosch-Herold M, Wilke N, Stillman AE. Magnetic resonance quantification of the myocardial
perfusion reserve with a Fermi function model for constrained deconvolution.
Med Phys 1998;25:73-84.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from qperf.errors import ValidationError
from qperf.kinetics._lsq_model import LeastSquaresModel
from qperf.kinetics.base import Acquisition, FitResult, FloatArray, ParameterInfo, check_tissue
from qperf.kinetics.convolution import kernel_convolve


def fermi_residue(time_s: FloatArray, params: FloatArray) -> FloatArray:
    """Impulse residue ``R(t)`` (1/s) for rows (F ml/min/g, k 1/s, tau s); shape (P, t)."""
    f = params[:, 0:1] / 60.0
    k = params[:, 1:2]
    tau = params[:, 2:3]
    arg = np.clip(k * (time_s[None, :] - tau), -700.0, 700.0)
    out: FloatArray = f / (1.0 + np.exp(arg))
    return out


class FermiModel(LeastSquaresModel):
    """Fermi-constrained deconvolution model.

    Parameters: F (amplitude, ml/min/g), k (wash-out rate, 1/s), tau (plateau, s).
    Reported flow (``params["Fp"]``, map ``mbf_ml_min_g``) is ``R(0) = F / (1 + exp(-k tau))``.

    Parameters
    ----------
    first_pass_only : bool
        Fit only the first pass (default), as is usual for Fermi deconvolution: the frames
        up to ``peak + max(2 (peak - foot), 10 samples)`` of the AIF, with the foot the last
        frame before the peak below 10 % of it. Recirculation and tracer retention, which
        the Fermi function cannot describe, then do not bias the flow.
    """

    name = "fermi"
    parameters = (
        ParameterInfo("F", "ml/min/g", "fermi_amplitude_ml_min_g", 1e-3, 12.0),
        ParameterInfo("k", "1/s", "fermi_k_per_s", 1e-3, 5.0),
        ParameterInfo("tau", "s", "fermi_tau_s", 0.0, 60.0),
    )

    @property
    def units(self) -> dict[str, str]:
        out = super().units
        out["Fp"] = "ml/min/g"
        return out

    def _map_names(self) -> dict[str, str]:
        out = super()._map_names()
        out["Fp"] = "fp_ml_min_g"
        return out

    def __init__(self, first_pass_only: bool = True, method: str = "nonlinear") -> None:
        super().__init__(method)
        self.first_pass_only = bool(first_pass_only)

    @staticmethod
    def first_pass_end(aif: FloatArray) -> int:
        """Number of frames of the first pass of an AIF (see the class notes)."""
        peak = int(np.argmax(aif))
        below = np.nonzero(aif[: peak + 1] <= 0.1 * aif[peak])[0]
        foot = int(below[-1]) if below.size else 0
        return int(min(aif.shape[0], peak + max(2 * (peak - foot), 10) + 1))

    def fit_acquisition(
        self, acquisition: Acquisition, tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float
    ) -> FitResult:
        """Fit pixel-wise (first pass only unless configured otherwise); see the base class.

        ``nrmse`` is computed over the fitted frames.
        """
        tissue = check_tissue(tissue_mmol_l, acquisition.n_time)
        aif, time = acquisition.aif_plasma_mmol_l, acquisition.time_s
        end = self.first_pass_end(aif) if self.first_pass_only else acquisition.n_time
        if end < 6:
            raise ValidationError(f"aif_plasma_mmol_l: expected a first pass of at least 6 frames, found {end}")
        first_pass = Acquisition.create(aif[:end], time[:end], acquisition.hematocrit)
        return super().fit_acquisition(first_pass, tissue[..., :end], mask, max_delay_s)

    def curves(self, aif: FloatArray, dt_s: float, params: FloatArray) -> FloatArray:
        """Tissue curves (P, t) for rows (F, k, tau)."""
        time = np.arange(aif.shape[0], dtype=np.float64) * dt_s
        return kernel_convolve(aif, dt_s, fermi_residue(time, params))

    def start_grid(self) -> FloatArray:
        axes = (np.geomspace(0.1, 8.0, 10), np.geomspace(0.02, 2.0, 6), np.array([0.0, 2.0, 5.0, 10.0, 20.0]))
        return np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], axis=1)

    def derived_maps(self, params: dict[str, FloatArray]) -> dict[str, FloatArray]:
        """Flow ``Fp = R(0)`` (ml/min/g)."""
        with np.errstate(over="ignore", invalid="ignore"):
            fp = params["F"] / (1.0 + np.exp(-params["k"] * params["tau"]))
        return {"Fp": fp}
