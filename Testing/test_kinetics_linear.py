"""Linear least-squares solutions (Murase, Flouri), the ``method="linear"`` fast path and the
continuous (sub-sample) delay of the least-squares models."""

from __future__ import annotations

import numpy as np
import pytest

from qperf import kinetics
from qperf.errors import ValidationError
from qperf.kinetics import FitStatus
from qperf.kinetics.convolution import delayed_curves
from qperf.kinetics.linear import (
    cumulative_integral,
    extended_tofts_linear,
    tofts_linear,
    two_compartment_linear,
)

TRUTH = {
    "2cxm": {"Fp": [0.3, 0.8, 1.2], "PS": [0.2, 1.0, 0.3], "Vp": [0.04, 0.06, 0.1], "Ve": [0.1, 0.15, 0.3]},
    "tofts": {"Ktrans": [0.1, 0.5, 1.2], "Ve": [0.1, 0.3, 0.5]},
    "extended_tofts": {"Ktrans": [0.1, 0.5, 1.2], "Ve": [0.1, 0.3, 0.5], "Vp": [0.02, 0.05, 0.1]},
}
SOLVERS = {"2cxm": two_compartment_linear, "tofts": tofts_linear, "extended_tofts": extended_tofts_linear}


def _aif(time_s: np.ndarray) -> np.ndarray:
    x = np.clip(time_s - 10.0, 0.0, None)
    return 5.0 * (x / 4.0) ** 2 * np.exp(2.0 * (1.0 - x / 4.0)) + 0.8 * (1.0 - np.exp(-x / 30.0))


def test_cumulative_integral_is_the_trapezoid_rule():
    y = np.array([[0.0, 1.0, 3.0, 2.0]])
    assert np.allclose(cumulative_integral(y, 0.5), [[0.0, 0.25, 1.25, 2.5]])


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_linear_solution_recovers_noise_free_parameters(name):
    """On a fine grid the integration error vanishes and the linearisation is exact."""
    time_s = np.arange(0.0, 120.0, 0.05)
    aif = _aif(time_s)
    model = kinetics.get_model(name)
    truth = {k: np.asarray(v) for k, v in TRUTH[name].items()}
    tissue = model.simulate(aif, time_s, **truth)
    x = SOLVERS[name](tissue, aif, 0.05)
    expected = np.stack([truth[p] for p in model.parameter_names], axis=1)
    assert np.allclose(x, expected, rtol=0.01, atol=1e-3)
    # A per-pixel AIF (each row its own delay) gives the same answer for the same input.
    assert np.allclose(SOLVERS[name](tissue, np.tile(aif, (3, 1)), 0.05), x)


def test_linear_solution_flags_unphysical_curves():
    time_s = np.arange(0.0, 90.0, 0.5)
    aif = _aif(time_s)
    tissue = kinetics.get_model("tofts").simulate(aif, time_s, Ktrans=0.5, Ve=0.3)
    assert np.all(np.isnan(tofts_linear(-tissue[None], aif, 0.5)))
    assert np.all(np.isnan(two_compartment_linear(-tissue[None], aif, 0.5)))


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_linear_method_fits_with_a_sub_sample_delay(name):
    time_s = np.arange(0.0, 90.0, 0.5)
    aif = _aif(time_s)
    model = kinetics.get_model(name, method="linear")
    assert model.method == "linear"
    truth = {k: np.asarray(v) for k, v in TRUTH[name].items()}
    delays = np.array([0.3, 1.7, 2.25])
    tissue = model.simulate(aif, time_s, delay_s=delays, **truth)
    fit = model.fit(tissue, aif, time_s, max_delay_s=3.0)
    assert np.all(fit.status == FitStatus.OK)
    # Integration bias of the 0.5 s grid: a few per cent.
    assert np.allclose(fit.params["delay_s"], delays, atol=0.05)
    for key, value in truth.items():
        assert np.allclose(fit.params[key], value, rtol=0.12, atol=5e-3), key
    assert np.all(fit.nrmse < 0.01)


@pytest.mark.parametrize("name", [*sorted(SOLVERS), "fermi"])
def test_nonlinear_fit_recovers_a_delay_between_samples(name):
    """Whole-sample delays alone would leave 0.2 s of error and a biased flow."""
    time_s = np.arange(0.0, 90.0, 0.5)
    aif = _aif(time_s)
    model = kinetics.get_model(name)
    truth = (
        {"F": np.array([1.0, 3.0, 0.6]), "k": np.array([0.2, 0.5, 0.1]), "tau": np.array([2.0, 1.0, 4.0])}
        if name == "fermi"
        else {k: np.asarray(v) for k, v in TRUTH[name].items()}
    )
    delays = np.array([0.3, 1.7, 2.25])
    tissue = model.simulate(aif, time_s, delay_s=delays, **truth)
    fit = model.fit(tissue, aif, time_s, max_delay_s=3.0)
    assert np.all(fit.status == FitStatus.OK)
    assert np.allclose(fit.params["delay_s"], delays, atol=0.01)
    assert np.all(fit.nrmse < 1e-3)
    for key, value in truth.items():
        assert np.allclose(fit.params[key], value, rtol=0.01, atol=1e-3), key


def test_delayed_curves_match_the_simulated_delay():
    """Two model evaluations serve every delay, a held non-zero baseline included."""
    time_s = np.arange(0.0, 60.0, 0.5)
    aif = _aif(time_s) + 0.2
    model = kinetics.get_model("2cxm")
    x = np.array([[0.8, 1.0, 0.06, 0.15]] * 4)
    delays = np.array([0.0, 0.5, 0.8, 3.3])
    expected = model.simulate(aif, time_s, delay_s=delays, Fp=0.8, PS=1.0, Vp=0.06, Ve=0.15)
    assert np.allclose(delayed_curves(model.curves, aif, 0.5, x, delays), expected, rtol=1e-10, atol=1e-12)


def test_linear_fast_path_falls_back_to_the_nonlinear_fit_for_unphysical_pixels():
    time_s = np.arange(0.0, 90.0, 0.5)
    aif = _aif(time_s)
    model = kinetics.get_model("tofts", method="linear")
    good = model.simulate(aif, time_s, Ktrans=0.5, Ve=0.3)
    fit = model.fit(np.stack([good, -good]), aif, time_s, max_delay_s=0.0)
    assert np.all(fit.status == FitStatus.OK)
    assert fit.params["Ktrans"][0] == pytest.approx(0.5, rel=0.02)
    assert fit.params["Ktrans"][1] == pytest.approx(model.parameters[0].lower)


@pytest.mark.parametrize("name, method", [("fermi", "linear"), ("tofts", "simplex"), ("btex", "linear")])
def test_unknown_fit_method_is_refused(name, method):
    with pytest.raises(ValidationError, match="method|options"):
        kinetics.get_model(name, method=method)
