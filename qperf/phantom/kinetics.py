"""Contrast kinetics of the phantom: the bolus, the blood curves and the tissue forward model.

Tissue curves come from :func:`qperf.kinetics.get_model` ("btex" by default) when that
package is installed; otherwise from :class:`TwoCompartmentExchange`, an exact analytic
two-compartment exchange model (2CXM) with the same ``simulate`` interface. The analytic
model is also the fast path for training streams (``model="2cxm-analytic"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError

#: Regular time step (s) of simulated curves (the kinetics convention).
SIM_DT_S = 0.5


class TissueModel(Protocol):
    """What the phantom needs of a kinetic model: ``simulate(aif_plasma, time_s, **params)``."""

    def simulate(self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, **params: Any) -> NDArray[np.float64]: ...


def _exp_conv(signal: NDArray[np.float64], rate_per_s: NDArray[np.float64], dt: float) -> NDArray[np.float64]:
    """Exact ``integral signal(u) exp(-k (t - u)) du`` for a piecewise-linear ``signal`` (t,).

    ``rate_per_s`` has shape (k,); returns (k, t).
    """
    k = np.maximum(rate_per_s, 1e-9)[:, None]
    x = k * dt
    decay = np.exp(-x)
    # weights of the left and right samples of each interval (linear interpolation, exact)
    w1 = np.where(x > 1e-6, (x - 1.0 + decay) / (k * x), dt / 2.0)
    w0 = np.where(x > 1e-6, (1.0 - decay) / k - w1, dt / 2.0)
    out = np.zeros((k.shape[0], signal.shape[0]))
    acc = np.zeros(k.shape[0])
    d = decay[:, 0]
    a0 = w0[:, 0]
    a1 = w1[:, 0]
    for i in range(1, signal.shape[0]):
        acc = acc * d + a0 * signal[i - 1] + a1 * signal[i]
        out[:, i] = acc
    return out


class TwoCompartmentExchange:
    """Analytic two-compartment exchange model (plasma and interstitium).

    ``Vp dCp/dt = Fp (Ca - Cp) - PS (Cp - Cisf)``, ``Visf dCisf/dt = PS (Cp - Cisf)``,
    tissue ``C = Vp Cp + Visf Cisf``; flows in ml/min/g, volumes in ml/g, solved exactly by the
    bi-exponential impulse response convolved with the piecewise-linear input.

    References
    ----------
    Sourbron SP, Buckley DL. Tracer kinetic modelling in MRI. Phys Med Biol 2012;57:R1-R33.
    """

    name = "2cxm"

    def simulate(self, aif_plasma_mmol_l: ArrayLike, time_s: ArrayLike, **params: Any) -> NDArray[np.float64]:
        """Tissue curves (..., t) for parameter arrays ``Fp, PS, Vp, Visf`` (broadcast)."""
        aif = np.asarray(aif_plasma_mmol_l, dtype=np.float64).reshape(-1)
        t = np.asarray(time_s, dtype=np.float64).reshape(-1)
        if aif.shape != t.shape:
            raise ValidationError(
                f"aif_plasma_mmol_l: expected {t.shape[0]} samples (one per time), found {aif.shape[0]}"
            )
        dts = np.diff(t)
        if dts.size == 0 or np.ptp(dts) > 1e-6 * max(dts.mean(), 1e-9):
            raise ValidationError("time_s: expected a regular time grid")
        dt = float(dts.mean())
        try:
            fp, ps, vp, ve = np.broadcast_arrays(
                *(np.asarray(params[k], dtype=np.float64) for k in ("Fp", "PS", "Vp", "Visf"))
            )
        except KeyError as exc:
            raise ValidationError(f"params: expected Fp, PS, Vp and Visf, missing {exc.args[0]}") from exc
        shape = fp.shape
        fp, ps, vp, ve = (a.reshape(-1) / s for a, s in zip((fp, ps, vp, ve), (60.0, 60.0, 1.0, 1.0), strict=True))
        # system matrix M = [[-(Fp+PS)/Vp, PS/Vp], [PS/Ve, -PS/Ve]]; eigen-rates are -lambda
        a = -(fp + ps) / vp
        b = ps / vp
        c = ps / ve
        d = -ps / ve
        tr = a + d
        det = a * d - b * c
        disc = np.sqrt(np.maximum(tr * tr / 4.0 - det, 0.0))
        lam1 = tr / 2.0 + disc  # slower (less negative)
        lam2 = tr / 2.0 - disc
        # impulse response h(t) = [Vp, Ve] exp(M t) [Fp/Vp, 0]; exp(M t) = sum_i P_i exp(lam_i t)
        gap = np.where(np.abs(lam1 - lam2) > 1e-12, lam1 - lam2, 1e-12)
        # P1 = (M - lam2 I)/(lam1 - lam2), P2 = (M - lam1 I)/(lam2 - lam1)
        x0 = fp / vp
        cp1 = (a - lam2) * x0 / gap
        ce1 = c * x0 / gap
        cp2 = (a - lam1) * x0 / (-gap)
        ce2 = c * x0 / (-gap)
        amp1 = vp * cp1 + ve * ce1
        amp2 = vp * cp2 + ve * ce2
        conv1 = _exp_conv(aif, -lam1, dt)
        conv2 = _exp_conv(aif, -lam2, dt)
        out = amp1[:, None] * conv1 + amp2[:, None] * conv2
        return np.asarray(out.reshape(*shape, t.shape[0]))


def get_tissue_model(name: str = "btex") -> tuple[TissueModel, str]:
    """The forward model ``name`` from :mod:`qperf.kinetics`, or the analytic 2CXM.

    ``"2cxm-analytic"`` (or ``"analytic"``) always gives :class:`TwoCompartmentExchange`, the
    fast path; ``"2cxm"`` gives it when :mod:`qperf.kinetics` has no 2CXM of its own. Returns the
    model and the name of the model actually used.
    """
    key = str(name).strip().lower()
    if key in ("2cxm-analytic", "analytic"):
        return TwoCompartmentExchange(), "2cxm-analytic"
    try:
        from qperf import kinetics

        return kinetics.get_model(key), key
    except ImportError:
        if key in ("btex", "2cxm"):
            return TwoCompartmentExchange(), "2cxm-analytic"
        raise ValidationError(f"model: expected 'btex', '2cxm' or '2cxm-analytic', found {name!r}") from None
    except ValidationError:
        if key == "2cxm":
            return TwoCompartmentExchange(), "2cxm-analytic"
        names = [*kinetics.available_models(), "2cxm-analytic"]
        raise ValidationError(f"model: expected one of {', '.join(names)}, found {name!r}") from None


# -------------------------------------------------------------------------------------------------
# Bolus and blood curves


def gamma_variate(t_s: NDArray[np.float64], t0_s: float, tmax_s: float, alpha: float) -> NDArray[np.float64]:
    """Gamma variate of peak 1 at ``t0 + tmax``, zero before ``t0``."""
    x = np.clip((t_s - t0_s) / tmax_s, 0.0, None)
    with np.errstate(divide="ignore"):
        y = np.where(x > 0, np.exp(alpha * (np.log(np.maximum(x, 1e-300)) + 1.0 - x)), 0.0)
    return np.asarray(y)


@dataclass(frozen=True)
class BolusParameters:
    """Random description of one first-pass bolus (times in s from the first dynamic frame)."""

    arrival_s: float
    rv_tmax_s: float
    rv_alpha: float
    lung_transit_s: float
    lung_dispersion: float
    lv_peak_mmol_l: float
    recirculation_fraction: float
    recirculation_delay_s: float
    steady_state_fraction: float
    hematocrit: float

    @classmethod
    def draw(cls, rng: np.random.Generator, condition: str) -> BolusParameters:
        stress = condition == "stress"
        return cls(
            arrival_s=float(rng.uniform(5.0, 14.0)),
            rv_tmax_s=float(rng.uniform(1.5, 3.0) * (0.85 if stress else 1.0)),
            rv_alpha=float(rng.uniform(2.5, 4.5)),
            lung_transit_s=float(rng.uniform(3.0, 5.5) * (0.8 if stress else 1.0)),
            lung_dispersion=float(rng.uniform(5.0, 12.0)),
            lv_peak_mmol_l=float(rng.uniform(3.5, 8.0)),
            recirculation_fraction=float(rng.uniform(0.1, 0.25)),
            recirculation_delay_s=float(rng.uniform(9.0, 16.0) * (0.8 if stress else 1.0)),
            steady_state_fraction=float(rng.uniform(0.02, 0.06)),
            hematocrit=float(rng.uniform(0.36, 0.46)),
        )


@dataclass(frozen=True)
class BloodCurves:
    """Blood Gd (mmol/L) on a fine regular grid; evaluate with :meth:`at`."""

    time_s: NDArray[np.float64]
    curves: dict[str, NDArray[np.float64]]

    def at(self, name: str, time_s: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(np.interp(np.asarray(time_s, dtype=np.float64), self.time_s, self.curves[name]))


def _transit(curve: NDArray[np.float64], dt: float, mean_s: float, shape: float) -> NDArray[np.float64]:
    """Convolution with a normalised gamma-density transit kernel of mean ``mean_s``."""
    tk = np.arange(0.0, mean_s * 4.0 + 10.0, dt)
    scale = mean_s / shape
    kernel = np.where(tk > 0, tk ** (shape - 1.0) * np.exp(-tk / scale), 0.0)
    kernel /= kernel.sum()
    return np.convolve(curve, kernel)[: curve.shape[0]]


def blood_curves(bolus: BolusParameters, t_start_s: float, t_stop_s: float, dt_s: float = 0.05) -> BloodCurves:
    """RV, LV (the AIF), aorta, pulmonary-vessel and liver curves of one bolus.

    The RV curve is a gamma variate with recirculation and a slow steady-state rise; the
    LV blood pool is the RV curve through the pulmonary transit (gamma kernel), scaled to
    ``lv_peak_mmol_l``; so the RV enhances first, then the LV.
    """
    t = np.arange(t_start_s - 30.0, t_stop_s + 5.0, dt_s)
    first = gamma_variate(t, bolus.arrival_s, bolus.rv_tmax_s, bolus.rv_alpha)
    delayed = np.interp(t - bolus.recirculation_delay_s, t, first, left=0.0)
    recirc = bolus.recirculation_fraction * _transit(delayed, dt_s, 8.0, 3.0)
    since = np.clip(t - bolus.arrival_s - bolus.recirculation_delay_s, 0.0, None)
    steady = bolus.steady_state_fraction * (1.0 - np.exp(-since / 20.0))
    rv = first + recirc + steady
    lv = _transit(rv, dt_s, bolus.lung_transit_s, bolus.lung_dispersion)
    scale = bolus.lv_peak_mmol_l / max(lv.max(), 1e-12)
    rv *= scale
    lv *= scale
    aorta = np.interp(t - 0.6, t, lv, left=0.0)
    liver = 0.3 * _transit(np.interp(t - 4.0, t, lv, left=0.0), dt_s, 18.0, 1.0)
    muscle_blood = _transit(lv, dt_s, 3.0, 2.0)
    curves = {"rv": rv, "lv": lv, "aorta": aorta, "liver": liver, "lung": 0.12 * rv, "vessel_rv": rv, "vessel_lv": lv}
    curves["muscle_blood"] = muscle_blood
    return BloodCurves(time_s=t, curves=curves)


def simulate_tissue(
    model: TissueModel,
    aif_blood: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    hematocrit: float,
    t_start_s: float,
    t_stop_s: float,
    params: dict[str, NDArray[np.float64]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Tissue Gd curves (k, t) on the regular grid ``SIM_DT_S`` from ``t_start_s`` for parameter sets (k,).

    Returns the grid (t,) and the curves (k, t).
    """
    grid = np.arange(t_start_s, t_stop_s + SIM_DT_S, SIM_DT_S)
    plasma = aif_blood(grid) / (1.0 - hematocrit)
    curves = model.simulate(plasma, grid, **params)
    return grid, np.asarray(curves, dtype=np.float64).reshape(-1, grid.shape[0])
