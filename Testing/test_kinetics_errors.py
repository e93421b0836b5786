"""Bad input to the kinetic models: one-line ValidationErrors or per-pixel status, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from qperf import ValidationError, kinetics
from qperf.kinetics import FitStatus

N = 40
TIME_S = np.arange(N) * 0.5


def _aif() -> np.ndarray:
    x = np.clip(TIME_S - 4.0, 0.0, None)
    return 6.0 * (x / 3.0) ** 2 * np.exp(2.0 * (1.0 - x / 3.0))


MODELS = ["btex", "2cxm", "tofts", "fermi"]
PARAMS = {
    "btex": {"Fp": 1.0, "PS": 1.3, "Vp": 0.05, "Visf": 0.2},
    "2cxm": {"Fp": 1.0, "PS": 1.0, "Vp": 0.05, "Ve": 0.2},
    "tofts": {"Ktrans": 0.5, "Ve": 0.2},
    "fermi": {"F": 1.0, "k": 0.2, "tau": 2.0},
}


def _tissue(name: str) -> np.ndarray:
    return kinetics.get_model(name).simulate(_aif(), TIME_S, **PARAMS[name])


def _one_line(error: pytest.ExceptionInfo[ValidationError], *words: str) -> None:
    text = str(error.value)
    assert "\n" not in text
    for word in words:
        assert word in text


def test_unknown_model():
    with pytest.raises(ValidationError) as err:
        kinetics.get_model("gamma_variate")
    _one_line(err, "model", "btex")


@pytest.mark.parametrize("name", MODELS)
def test_aif_shorter_than_tissue(name):
    with pytest.raises(ValidationError) as err:
        kinetics.get_model(name).fit(_tissue(name), _aif()[:-5], TIME_S)
    _one_line(err, "aif_plasma_mmol_l", "shorter")


@pytest.mark.parametrize("name", MODELS)
def test_aif_without_bolus(name):
    with pytest.raises(ValidationError) as err:
        kinetics.get_model(name).bind(np.zeros(N), TIME_S)
    _one_line(err, "aif_plasma_mmol_l", "bolus")


@pytest.mark.parametrize("name", MODELS)
def test_aif_with_nan(name):
    aif = _aif()
    aif[7] = np.nan
    with pytest.raises(ValidationError) as err:
        kinetics.get_model(name).fit(_tissue(name), aif, TIME_S)
    _one_line(err, "aif_plasma_mmol_l", "NaN")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "time_s, word",
    [
        (TIME_S - 1.0, "non-negative"),
        (TIME_S[::-1].copy(), "increasing"),
        (np.concatenate([TIME_S[:10], TIME_S[10:] + 0.2]), "regular"),
        (np.where(np.arange(N) == 3, np.nan, TIME_S), "finite"),
    ],
)
def test_bad_times(name, time_s, word):
    with pytest.raises(ValidationError) as err:
        kinetics.get_model(name).fit(_tissue(name), _aif(), time_s)
    _one_line(err, "time_s", word)
    with pytest.raises(ValidationError):
        kinetics.get_model(name).simulate(_aif(), time_s, **PARAMS[name])


@pytest.mark.parametrize("name", MODELS)
def test_bad_hematocrit(name):
    for bad in (1.0, -0.1, float("nan"), "a lot"):
        with pytest.raises(ValidationError) as err:
            kinetics.get_model(name).bind(_aif(), TIME_S, hematocrit=bad)
        _one_line(err, "hematocrit", "[0, 1)")
    with pytest.raises(ValidationError) as err:
        kinetics.get_model(name).fit(_tissue(name), _aif(), TIME_S, hematocrit=1.2)
    _one_line(err, "hematocrit")


@pytest.mark.parametrize("name", MODELS)
def test_mismatched_shapes(name):
    model = kinetics.get_model(name)
    bound = model.bind(_aif(), TIME_S)
    with pytest.raises(ValidationError) as err:
        bound.fit(np.zeros((3, N + 1)))
    _one_line(err, "tissue_mmol_l", "last axis")
    with pytest.raises(ValidationError) as err:
        bound.fit(np.zeros((3, N)), mask=np.ones(4, dtype=bool))
    _one_line(err, "mask")
    with pytest.raises(ValidationError) as err:
        bound.fit(np.zeros((3, N)), max_delay_s=-1.0)
    _one_line(err, "max_delay_s")
    with pytest.raises(ValidationError) as err:
        model.fit(np.zeros((3, N + 1)), _aif(), TIME_S)
    _one_line(err, "tissue_mmol_l", "last axis")
    with pytest.raises(ValidationError) as err:
        model.simulate(_aif()[:-1], TIME_S, **PARAMS[name])
    _one_line(err, "aif_plasma_mmol_l")


@pytest.mark.parametrize("name", MODELS)
def test_bad_parameters_in_simulate(name):
    model = kinetics.get_model(name)
    params = dict(PARAMS[name])
    first = next(iter(params))
    with pytest.raises(ValidationError) as err:
        model.simulate(_aif(), TIME_S, **{**params, first: -1.0})
    _one_line(err, first)
    with pytest.raises(ValidationError) as err:
        model.simulate(_aif(), TIME_S, **{**params, "bogus": 1.0})
    _one_line(err, "bogus")
    with pytest.raises(ValidationError) as err:
        model.simulate(_aif(), TIME_S, **{**params, first: np.array([1.0, 2.0]), "delay_s": np.array([0.0, 1.0, 2.0])})
    _one_line(err, "broadcast")
    missing = dict(params)
    missing.pop(first)
    with pytest.raises(ValidationError) as err:
        model.simulate(_aif(), TIME_S, **missing)
    _one_line(err, first)


@pytest.mark.parametrize("name", MODELS)
def test_per_pixel_status_for_bad_pixels(name):
    good = _tissue(name)
    tissue = np.stack([good, np.zeros(N), np.full(N, 0.3), good, good])
    tissue[3, 5] = np.nan
    tissue[4, 6] = np.inf
    fit = kinetics.get_model(name).fit(tissue, _aif(), TIME_S, mask=np.array([1, 1, 1, 1, 0], dtype=bool))
    assert fit.status.dtype == np.int8
    assert fit.status.tolist() == [
        FitStatus.OK,
        FitStatus.NO_SIGNAL,
        FitStatus.NO_SIGNAL,
        FitStatus.INVALID_INPUT,
        FitStatus.MASKED,
    ]
    for value in fit.params.values():
        assert np.isfinite(value[0])
        assert np.all(np.isnan(value[1:]))
    assert np.isfinite(fit.nrmse[0]) and np.all(np.isnan(fit.nrmse[1:]))


@pytest.mark.parametrize("name", MODELS)
def test_all_masked_and_empty(name):
    bound = kinetics.get_model(name).bind(_aif(), TIME_S)
    fit = bound.fit(np.zeros((2, 3, N)), mask=np.zeros((2, 3), dtype=bool))
    assert fit.shape == (2, 3)
    assert np.all(fit.status == FitStatus.MASKED)
    empty = bound.fit(np.zeros((0, N)))
    assert empty.shape == (0,)
