"""BTEX model: simulation against a finite-difference reference, and fitting known parameters back."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from qperf import kinetics
from qperf.kinetics import FitStatus

DT_S = 0.5
N_TIME = 80


def _aif_plasma(time_s: np.ndarray, foot_s: float = 8.0) -> np.ndarray:
    """A first-pass bolus with a slow recirculation tail (plasma, mmol/L)."""
    x = np.clip(time_s - foot_s, 0.0, None)
    blood = 6.0 * (x / 5.0) ** 3 * np.exp(3.0 * (1.0 - x / 5.0)) + 0.6 * (1.0 - np.exp(-x / 15.0))
    return blood / (1.0 - 0.42)


@pytest.fixture(scope="module")
def grid() -> tuple[np.ndarray, np.ndarray]:
    time_s = np.arange(N_TIME) * DT_S
    return time_s, _aif_plasma(time_s)


def _fd_btex(aif, time_s, fp, ps, vp, visf, nx, dt_s, length=0.1, dp=1e-5, di=1e-6):
    """Method-of-lines reference: central differences in x, Crank-Nicolson in t, Fick output."""
    dx = length / nx
    v = fp / 60.0 * length / vp
    a = ps / 60.0 / vp
    b = ps / 60.0 / visf
    n_p, n_i = nx, nx + 1  # plasma nodes 1..nx (node 0 is the inflow), interstitial nodes 0..nx
    rows, cols, vals = [], [], []
    inflow = np.zeros(n_p + n_i)

    def add(r, c, value):
        rows.append(r)
        cols.append(c)
        vals.append(value)

    for i in range(1, nx + 1):
        r = i - 1
        left = dp / dx**2 + v / (2 * dx)
        right = dp / dx**2 - v / (2 * dx)
        if i == nx:  # zero gradient at the outlet: ghost node mirrors node nx-1
            left, right = left + right, 0.0
        add(r, r, -2 * dp / dx**2 - a)
        if i == 1:
            inflow[r] += left
        else:
            add(r, r - 1, left)
        if right:
            add(r, r + 1, right)
        add(r, n_p + i, a)
    for i in range(n_i):
        r = n_p + i
        add(r, r, -2 * di / dx**2 - b)
        add(r, n_p + (i - 1 if i > 0 else 1), di / dx**2)
        add(r, n_p + (i + 1 if i < nx else nx - 1), di / dx**2)
        if i == 0:
            inflow[r] += b
        else:
            add(r, i - 1, b)
    op = sp.csc_matrix((vals, (rows, cols)), shape=(n_p + n_i, n_p + n_i))
    eye = sp.identity(n_p + n_i, format="csc")
    lu = spla.splu((eye - dt_s / 2 * op).tocsc())
    rhs = (eye + dt_s / 2 * op).tocsr()
    t_fine = np.arange(0.0, time_s[-1] + dt_s / 2, dt_s)
    cin = np.interp(t_fine, time_s, aif)
    state = np.zeros(n_p + n_i)
    outflow = np.zeros(t_fine.size)
    for k in range(1, t_fine.size):
        state = lu.solve(rhs @ state + dt_s / 2 * inflow * (cin[k - 1] + cin[k]))
        outflow[k] = state[n_p - 1]
    g = cin - outflow
    q = fp / 60.0 * np.concatenate([[0.0], np.cumsum((g[1:] + g[:-1]) / 2 * dt_s)])
    return np.interp(time_s, t_fine, q)


@pytest.mark.parametrize(
    "params",
    [
        {"Fp": 1.0, "PS": 1.3, "Vp": 0.05, "Visf": 0.2},
        {"Fp": 0.5, "PS": 0.5, "Vp": 0.08, "Visf": 0.4},
        {"Fp": 3.0, "PS": 2.0, "Vp": 0.05, "Visf": 0.15},
    ],
)
def test_simulation_converges_to_finite_difference_reference(grid, params):
    time_s, aif = grid
    fast = kinetics.get_model("btex").simulate(aif, time_s, **params)
    errors = []
    for nx, dt in [(200, 0.02), (400, 0.01), (800, 0.005)]:
        ref = _fd_btex(aif, time_s, params["Fp"], params["PS"], params["Vp"], params["Visf"], nx, dt)
        errors.append(np.max(np.abs(ref - fast)) / np.max(fast))
    # The reference converges (second order) to the Laplace-domain solution.
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] > 3.0
    assert errors[2] < 1e-3


def test_simulation_shapes_units_and_delay(grid):
    time_s, aif = grid
    model = kinetics.get_model("btex")
    curves = model.simulate(aif, time_s, Fp=np.array([[0.5], [2.0]]), PS=np.array([1.0, 1.5, 2.0]), Vp=0.05, Visf=0.2)
    assert curves.shape == (2, 3, N_TIME)
    assert np.all(np.isfinite(curves))
    # Zero before the bolus arrives, positive after; higher flow gives a steeper upslope.
    assert np.allclose(curves[..., :15], 0.0, atol=1e-6)
    assert curves[1, 0, 25] > curves[0, 0, 25] > 0
    # Fick: the early content equals Fp/60 times the integral of the input (no outflow yet).
    one = model.simulate(aif, time_s, Fp=1.2, PS=1.0, Vp=0.08, Visf=0.2)
    cum = np.concatenate([[0.0], np.cumsum((aif[1:] + aif[:-1]) / 2 * DT_S)])
    early = slice(17, 19)  # within about one transit time (Vp / Fp * 60 = 4 s) of the foot
    assert np.allclose(one[early], 1.2 / 60 * cum[early], rtol=0.05)
    # A whole-sample delay shifts the curve.
    delayed = model.simulate(aif, time_s, Fp=1.2, PS=1.0, Vp=0.08, Visf=0.2, delay_s=1.5)
    assert np.allclose(delayed[3:], one[:-3], atol=1e-6 * one.max())


def _truth(rng, n, fp_range, delays):
    return {
        "Fp": rng.uniform(*fp_range, n),
        "PS": rng.uniform(1.0, 1.7, n),
        "Vp": rng.uniform(0.045, 0.095, n),
        "Visf": rng.uniform(0.12, 0.45, n),
        "delay_s": rng.choice(delays, n),
    }


@pytest.mark.parametrize("condition, fp_range", [("rest", (0.5, 1.3)), ("stress", (2.0, 3.6))])
def test_noise_free_fit_recovers_flow(grid, condition, fp_range):
    time_s, aif = grid
    rng = np.random.default_rng(11 if condition == "rest" else 12)
    truth = _truth(rng, 60, fp_range, np.arange(0, 6) * DT_S)
    model = kinetics.get_model("btex")
    tissue = model.simulate(aif, time_s, **truth)
    fit = model.fit(tissue, aif, time_s, max_delay_s=3.0)
    assert np.all(fit.status == FitStatus.OK)
    err = np.abs(fit.params["Fp"] / truth["Fp"] - 1.0)
    assert np.median(err) < 0.002
    assert np.mean(err < 0.01) >= 0.95
    assert np.median(np.abs(fit.params["delay_s"] - truth["delay_s"])) == 0.0
    assert np.median(np.abs(fit.params["PS"] / truth["PS"] - 1.0)) < 0.02
    assert np.median(fit.nrmse) < 1e-3


def test_stress_flow_on_a_one_beat_grid():
    """Curves sampled once a beat (1 s) are fitted with table curves computed on a finer grid:
    on the 1 s grid itself, MBF 3.5 ml/min/g read 6-13 % low."""
    time_s = np.arange(60) * 1.0
    aif = _aif_plasma(time_s)
    rng = np.random.default_rng(13)
    truth = _truth(rng, 24, (1.8, 3.0), np.zeros(1))
    model = kinetics.get_model("btex")
    fit = model.fit(model.simulate(aif, time_s, **truth), aif, time_s, max_delay_s=0.0)
    err = fit.params["Fp"] / truth["Fp"] - 1.0
    assert abs(np.median(err)) < 0.005
    assert np.mean(np.abs(err) < 0.02) >= 0.9


def test_noisy_segment_median_flow(grid):
    time_s, aif = grid
    model = kinetics.get_model("btex")
    rng = np.random.default_rng(3)
    for params in ({"Fp": 0.7, "PS": 1.3, "Vp": 0.05, "Visf": 0.2}, {"Fp": 2.8, "PS": 1.3, "Vp": 0.06, "Visf": 0.2}):
        clean = model.simulate(aif, time_s, delay_s=1.0, **params)
        noise = rng.normal(0.0, 0.02 * clean.max(), (150, N_TIME))
        fit = model.fit((clean[None, :] + noise).reshape(10, 15, N_TIME), aif, time_s)
        assert fit.params["Fp"].shape == (10, 15)
        assert abs(np.median(fit.params["Fp"]) / params["Fp"] - 1.0) < 0.05
        # The Jacobian-based uncertainty scales with the noise.
        louder = model.fit(clean[None, :] + 2.0 * noise, aif, time_s)
        ratio = np.median(louder.sd["Fp"]) / np.median(fit.sd["Fp"])
        assert 1.4 < ratio < 3.0


def test_fit_maps_status_and_mask(grid):
    time_s, aif = grid
    model = kinetics.get_model("btex")
    curve = model.simulate(aif, time_s, Fp=1.5, PS=1.2, Vp=0.06, Visf=0.25)
    tissue = np.stack([curve, np.zeros(N_TIME), curve, curve])
    tissue[2, 10] = np.nan
    mask = np.array([True, True, True, False])
    fit = model.bind(aif, time_s, hematocrit=0.45).fit(tissue, mask=mask)
    assert fit.status.tolist() == [FitStatus.OK, FitStatus.NO_SIGNAL, FitStatus.INVALID_INPUT, FitStatus.MASKED]
    maps = fit.maps()
    for name in ("fp_ml_min_g", "mbf_ml_min_g", "ps_ml_min_g", "vb_ml_g", "visf_ml_g", "delay_s", "nrmse"):
        assert maps[name].shape == (4,)
        assert np.isfinite(maps[name][0])
        assert np.all(np.isnan(maps[name][1:]))
    assert maps["fp_ml_min_g"][0] == pytest.approx(1.5, rel=0.01)
    assert maps["mbf_ml_min_g"][0] == pytest.approx(1.5 / 0.55, rel=0.01)  # whole-blood flow
    assert maps["vb_ml_g"][0] == pytest.approx(fit.params["Vp"][0] / 0.55)


# --- The table search (qperf.kinetics._btex_search, _btex_local) ---------------------------


@pytest.fixture(scope="module")
def search_table(grid):
    from qperf.kinetics import _btex_lut, _btex_search

    time_s, aif = grid
    table = _btex_lut.build_table(kinetics.get_model("btex"), aif, DT_S, 7)
    return _btex_search.prepare_search(table, _btex_lut.coarse_candidates(table.shape))


def test_node_models_reproduce_the_table_around_their_node(search_table):
    from qperf.kinetics import _btex_local

    search = search_table
    coef = search.table.coef
    rng = np.random.default_rng(5)
    shape = np.asarray(search.shape)
    nodes = np.stack([rng.integers(0, shape[0], 40)] + [rng.integers(1, n - 1, 40) for n in shape[1:]], axis=1)
    stencil = search.stencil[np.ravel_multi_index(tuple(nodes.T), search.shape)]
    scale = np.abs(coef).max()
    # The quadratic model passes through the node, its axis neighbours and its forward
    # diagonal neighbours.
    offsets = [(0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    offsets += [(1, 1, 0), (1, 0, 1), (0, 1, 1)]
    for off in offsets:
        delta = np.tile(np.asarray(off, dtype=float), (nodes.shape[0], 1))
        model = _btex_local.node_model(stencil, delta)[:, 0]
        target = coef[tuple(nodes.T + np.array([0, *off])[:, None])]
        assert np.max(np.abs(model - target)) < 1e-5 * scale, off
    # Rows 1-3 are the derivatives of row 0 (central differences of the model).
    delta = rng.uniform(-0.5, 0.5, (nodes.shape[0], 3))
    g = _btex_local.node_model(stencil, delta).astype(np.float64)
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-2
        numeric = (
            _btex_local.node_model(stencil, delta + h)[:, 0].astype(np.float64)
            - _btex_local.node_model(stencil, delta - h)[:, 0].astype(np.float64)
        ) / 2e-2
        assert np.max(np.abs(numeric - g[:, 1 + i])) < 1e-3 * scale


def test_cholesky_solver_matches_numpy():
    from qperf.kinetics import _btex_local

    rng = np.random.default_rng(8)
    m = rng.normal(size=(200, 4, 6))
    spd = m @ m.transpose(0, 2, 1) + 0.1 * np.eye(4)
    rhs = rng.normal(size=(200, 4))
    x = _btex_local.solve_spd(spd, rhs)
    assert np.allclose(x, np.linalg.solve(spd, rhs[..., None])[..., 0], rtol=1e-9, atol=1e-9)
    # Not positive definite: NaN, not an exception.
    bad = _btex_local.solve_spd(-spd[:3], rhs[:3])
    assert np.all(np.isnan(bad))


def test_coarse_search_finds_the_bounded_minimum_over_the_coarse_nodes(grid, search_table):
    from qperf.kinetics import _btex_search

    time_s, aif = grid
    search = search_table
    table = search.table
    rng = np.random.default_rng(9)
    truth = _truth(rng, 300, (0.3, 4.5), np.arange(0, 7) * DT_S)
    tissue = kinetics.get_model("btex").simulate(aif, time_s, **truth)
    tissue = tissue * rng.uniform(0.2, 3.0, (300, 1)) + rng.normal(0.0, 0.05, tissue.shape)  # flows out of bounds too
    a = tissue.astype(np.float32) @ table.basis
    nodes, costs = _btex_search.coarse_search(search, a)
    # Brute force: every coarse node of every delay, flow clipped to the node's bounds.
    n_delays = table.shape[0]
    flat = np.ravel_multi_index(tuple(search.coarse_nodes.T), table.shape[1:])
    per_delay = int(np.prod(table.shape[1:]))
    for d in range(n_delays):
        coef = table.coef.reshape(n_delays, per_delay, -1)[d, flat].astype(np.float64)
        norm2 = np.sum(coef * coef, axis=1)
        dot = a.astype(np.float64) @ coef.T
        lo = table.flow_lo.reshape(n_delays, -1)[d, flat]
        hi = table.flow_hi.reshape(n_delays, -1)[d, flat]
        scale = np.clip(dot / norm2, lo, hi)
        brute = scale * (scale * norm2 - 2.0 * dot)
        best = brute.min(axis=1)
        tol = 1e-4 * np.sum(a.astype(np.float64) ** 2, axis=1)
        assert np.all(nodes[:, d, 0] == d)
        assert np.all(np.abs(costs[:, d] - best) <= tol)
        chosen = np.ravel_multi_index(tuple(nodes[:, d, 1:].T), table.shape[1:])
        column = np.searchsorted(flat, chosen)
        assert np.all(flat[column] == chosen)
        assert np.all(brute[np.arange(300), column] - best <= tol)


def test_fit_recovers_every_whole_sample_delay(grid):
    time_s, aif = grid
    model = kinetics.get_model("btex")
    rng = np.random.default_rng(21)
    delays = np.repeat(np.arange(0, 7) * DT_S, 12)  # 0 .. 3 s, the whole searched range
    truth = _truth(rng, delays.size, (0.5, 3.6), delays)
    truth["delay_s"] = delays
    fit = model.fit(model.simulate(aif, time_s, **truth), aif, time_s, max_delay_s=3.0)
    assert np.all(fit.status == FitStatus.OK)
    assert np.mean(fit.params["delay_s"] == delays) >= 0.95
    for d in np.unique(delays):  # no delay is systematically missed
        assert np.mean(fit.params["delay_s"][delays == d] == d) >= 0.75
    err = np.abs(fit.params["Fp"] / truth["Fp"] - 1.0)
    assert np.mean(err < 0.01) >= 0.95
    # A shorter searched range: a smaller table, the delays beyond it are not reported.
    short = model.fit(model.simulate(aif, time_s, **truth), aif, time_s, max_delay_s=1.0)
    assert np.nanmax(short.params["delay_s"]) <= 1.0
    inside = delays <= 1.0
    assert np.mean(short.params["delay_s"][inside] == delays[inside]) >= 0.95


def test_fit_does_not_depend_on_chunks_or_threads(grid, monkeypatch):
    from qperf.kinetics import _btex_fit

    time_s, aif = grid
    model = kinetics.get_model("btex")
    rng = np.random.default_rng(4)
    truth = _truth(rng, 90, (0.5, 3.6), np.arange(0, 6) * DT_S)
    clean = model.simulate(aif, time_s, **truth)
    tissue = clean + rng.normal(0.0, 0.02 * clean.max(), clean.shape)
    bound = model.bind(aif, time_s)
    whole = bound.fit(tissue)
    monkeypatch.setattr(_btex_fit, "CHUNK_PIXELS", 16)
    monkeypatch.setenv("QPERF_THREADS", "2")
    parts = bound.fit(tissue)
    assert np.array_equal(parts.status, whole.status)
    # Equal up to float32 rounding, which differs with the sizes of the batched products
    # (and may, rarely, tip a near tie between two delays).
    assert np.mean(parts.params["delay_s"] == whole.params["delay_s"]) >= 0.97
    for name in ("Fp", "PS", "Vp", "Visf"):
        close = np.isclose(parts.params[name], whole.params[name], rtol=1e-3)
        assert np.mean(close) >= 0.97, name
