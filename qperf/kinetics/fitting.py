"""Fitting utilities shared by the kinetic models: a vectorised, bounded Levenberg-Marquardt
solver with grid-search and linear starts, a whole-sample delay search and a continuous
(sub-sample) delay refinement. The convolutions are in :mod:`qperf.kinetics.convolution`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.kinetics.base import (
    Acquisition,
    FitResult,
    FitStatus,
    FloatArray,
    KineticModel,
    check_mask,
    check_max_delay,
    check_tissue,
    delay_curve,
)
from qperf.kinetics.convolution import CurveFunction, delayed_curves, shift_curve

#: Largest number of (pixel, start) rows that :func:`best_of_starts` fits in one run, all delays together.
BATCH_ROWS = 2048

#: Chi-square (1 degree of freedom, 95 %) by which a later delay must fit better than an
#: earlier one to be preferred, in units of the pixel's noise variance (estimated from its
#: residual). The rule of :mod:`qperf.flow.delay` for mean curves, applied per pixel: on the
#: OSIPI 2CXM case with Fp 5 ml/100 ml/min, PS 0.15 /min, a free delay of 0.04 s fits 0.5
#: noise variances better than the true 0 s and moves PS outside the OSIPI tolerance.
DELAY_CHI2 = 3.84


@dataclass
class LeastSquaresSpec:
    """What the generic fitter needs from a model."""

    names: tuple[str, ...]
    lower: FloatArray
    upper: FloatArray
    grid: FloatArray  # (G, n) start candidates
    curves: CurveFunction
    #: ``linear(tissue (P, t), aif (t,) or (P, t), dt_s) -> (P, n)`` linear least-squares
    #: solution (NaN where not physical), or None for a model without one.
    linear: Callable[[FloatArray, FloatArray, float], FloatArray] | None = None


def jacobian(spec: LeastSquaresSpec, aif: FloatArray, dt_s: float, x: FloatArray, model: FloatArray) -> FloatArray:
    """Forward-difference Jacobian ``(P, n, t)`` of ``spec.curves`` at ``x`` (P, n), ``model`` the curves there.

    Steps go inwards at an upper bound.
    """
    width = spec.upper - spec.lower
    out = np.empty((x.shape[0], x.shape[1], model.shape[1]))
    for j in range(x.shape[1]):
        h = 1e-6 * np.maximum(np.abs(x[:, j]), 1e-3 * width[j])
        step_dir = np.where(x[:, j] + h > spec.upper[j], -1.0, 1.0)
        xp = x.copy()
        xp[:, j] += step_dir * h
        out[:, j] = (spec.curves(aif, dt_s, xp) - model) / (step_dir * h)[:, None]
    return out


def with_delays(spec: LeastSquaresSpec, delay_s: FloatArray) -> LeastSquaresSpec:
    """The model with row ``p`` of every evaluation delayed by ``delay_s[p]`` (s)."""
    curves = spec.curves

    def delayed(aif: FloatArray, dt_s: float, x: FloatArray) -> FloatArray:
        return delayed_curves(curves, aif, dt_s, x, delay_s)

    return LeastSquaresSpec(spec.names, spec.lower, spec.upper, spec.grid, delayed, spec.linear)


def levenberg_marquardt(
    y: FloatArray,
    aif: FloatArray,
    dt_s: float,
    spec: LeastSquaresSpec,
    x0: FloatArray,
    iterations: int = 40,
    delay_s: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bounded Levenberg-Marquardt, vectorised over pixels; converged pixels drop out.

    Parameters
    ----------
    y : ndarray of float64, shape ``(P, t)``
    x0 : ndarray of float64, shape ``(P, n)``
    delay_s : ndarray of float64, shape ``(P,)``, optional
        A fixed delay of each row (s), so that rows of different delays share one run.

    Returns
    -------
    x : (P, n) solution, cost : (P,) sum of squared residuals, jac : (P, n, t) Jacobian.
    """

    def rows_spec(rows: NDArray[np.intp]) -> LeastSquaresSpec:
        return spec if delay_s is None else with_delays(spec, delay_s[rows])

    lo, hi = spec.lower, spec.upper
    x = np.clip(x0, lo, hi)
    n_par = x.shape[1]
    model = rows_spec(np.arange(x.shape[0])).curves(aif, dt_s, x)
    cost = np.sum((y - model) ** 2, axis=1)
    lam = np.full(x.shape[0], 1e-2)
    width = hi - lo
    jac = np.zeros((x.shape[0], n_par, y.shape[1]))
    active = np.ones(x.shape[0], dtype=bool)  # pixels still iterating
    for _ in range(iterations):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        xa, ma, ya, la = x[idx], model[idx], y[idx], lam[idx]
        active_spec = rows_spec(idx)
        ja = jacobian(active_spec, aif, dt_s, xa, ma)
        jac[idx] = ja
        r = ya - ma
        jtj = np.einsum("pit,pjt->pij", ja, ja)
        scale = np.sqrt(np.einsum("pii->pi", jtj)) + 1e-30
        a = jtj / (scale[:, :, None] * scale[:, None, :]) + la[:, None, None] * np.eye(n_par)
        g = np.einsum("pit,pt->pi", ja, r) / scale
        step = np.linalg.solve(a, g[..., None])[..., 0] / scale
        step = np.where(np.isfinite(step), step, 0.0)
        x_new = np.clip(xa + step, lo, hi)
        model_new = active_spec.curves(aif, dt_s, x_new)
        cost_new = np.sum((ya - model_new) ** 2, axis=1)
        better = cost_new < cost[idx]
        rel = np.where(better, (cost[idx] - cost_new) / np.maximum(cost[idx], 1e-300), 0.0)
        x[idx] = np.where(better[:, None], x_new, xa)
        model[idx] = np.where(better[:, None], model_new, ma)
        cost[idx] = np.where(better, cost_new, cost[idx])
        lam[idx] = np.where(better, np.maximum(la * 0.3, 1e-9), np.minimum(la * 10.0, 1e9))
        tiny_step = np.all(np.abs(x_new - xa) <= 1e-9 * (np.abs(xa) + width), axis=1)
        done = (better & (rel < 1e-9)) | (lam[idx] > 1e6) | tiny_step
        active[idx[done]] = False
    return x, cost, jac


def grid_costs(y: FloatArray, aif: FloatArray, dt_s: float, spec: LeastSquaresSpec) -> FloatArray:
    """Squared distance (up to ``||y||^2``) of every pixel (P) to every grid candidate (G)."""
    curves = spec.curves(aif, dt_s, spec.grid)  # (G, t)
    result: FloatArray = np.sum(curves * curves, axis=1)[None, :] - 2.0 * (y @ curves.T)
    return result


@dataclass(frozen=True, eq=False)
class PixelSelection:
    """Tissue curves as rows, their per-pixel status before the fit, and the pixels to fit.

    Attributes
    ----------
    flat : ndarray of float64, shape ``(P, t)``
        The curves, one row per pixel.
    shape : tuple of int
        Pixel shape ``(...)`` of the input.
    status : ndarray of int8, shape ``(P,)``
        MASKED, INVALID_INPUT or NO_SIGNAL; the rows in ``todo`` are set by the fit.
    todo : ndarray of intp
        Rows to fit: in the mask, finite and not flat.
    n_delays : int
        Whole-sample delays searched, ``0 .. n_delays - 1``.
    """

    flat: FloatArray
    shape: tuple[int, ...]
    status: NDArray[np.int8]
    todo: NDArray[np.intp]
    n_delays: int


def select_pixels(
    tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float, acquisition: Acquisition
) -> PixelSelection:
    """Check the curves, the mask and the delay bound; flag the pixels that cannot be fitted.

    Raises
    ------
    ValidationError
        On curves of another length, a mask of another shape or a negative delay bound.
    """
    n = acquisition.n_time
    tissue = check_tissue(tissue_mmol_l, n)
    pix_shape = tuple(tissue.shape[:-1])
    fit_mask = check_mask(mask, pix_shape).reshape(-1)
    max_delay = check_max_delay(max_delay_s)
    n_delays = max(1, min(int(np.floor(max_delay / acquisition.dt_s + 1e-9)) + 1, n - 2))
    flat = tissue.reshape(-1, n)
    status = np.full(flat.shape[0], FitStatus.MASKED, dtype=np.int8)
    finite = np.all(np.isfinite(flat), axis=1)
    clean = np.where(np.isfinite(flat), flat, 0.0)
    peak = np.max(np.abs(clean), axis=1)
    flat_signal = ~(np.ptp(clean, axis=1) > 1e-9 * np.maximum(peak, 1e-30)) | ~(peak > 0)
    status[fit_mask & ~finite] = FitStatus.INVALID_INPUT
    status[fit_mask & finite & flat_signal] = FitStatus.NO_SIGNAL
    todo = np.nonzero(fit_mask & finite & ~flat_signal)[0]
    return PixelSelection(flat, pix_shape, status, todo, n_delays)


def _clip(spec: LeastSquaresSpec, x: FloatArray) -> FloatArray:
    out: FloatArray = np.clip(x, spec.lower, spec.upper)
    return out


def _cost(y: FloatArray, model: FloatArray) -> FloatArray:
    out: FloatArray = np.sum((y - model) ** 2, axis=1)
    return out


def linear_at_delays(
    y: FloatArray, shifted: list[FloatArray], dt_s: float, spec: LeastSquaresSpec
) -> tuple[FloatArray, FloatArray]:
    """The linear solution at every whole-sample delay, clipped to the bounds, and its cost.

    Returns
    -------
    x : (D, P, n) solutions (NaN where not physical), cost : (D, P) squared residual of the
    model curve (inf where not physical).
    """
    n_par = len(spec.names)
    xs = np.full((len(shifted), y.shape[0], n_par), np.nan)
    costs = np.full((len(shifted), y.shape[0]), np.inf)
    if spec.linear is None:
        return xs, costs
    for d, aif in enumerate(shifted):
        x = spec.linear(y, aif, dt_s)
        good = np.all(np.isfinite(x), axis=1)
        if not np.any(good):
            continue
        x = _clip(spec, x[good])
        xs[d, good] = x
        costs[d, good] = _cost(y[good], spec.curves(aif, dt_s, x))
    return xs, costs


@dataclass
class StartsResult:
    """Best solution of every whole-sample delay, from :func:`best_of_starts`.

    Attributes
    ----------
    x : (P, D, n) parameters, cost : (P, D) squared residuals (inf where no start ran).
    """

    x: FloatArray
    cost: FloatArray

    def best(self, dt_s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Parameters ``(P, n)``, cost and delay (s) of the best delay of each pixel."""
        d = np.argmin(self.cost, axis=1)
        rows = np.arange(self.cost.shape[0])
        return self.x[rows, d], self.cost[rows, d], d * dt_s

    def earliest(self, cost: FloatArray, delay_s: FloatArray, margin: FloatArray, dt_s: float) -> NDArray[np.intp]:
        """For each pixel, the earliest whole-sample delay ``<= delay_s`` whose cost is within
        ``margin`` of ``cost``, or -1 where none is."""
        n_delays = self.cost.shape[1]
        within = (self.cost <= (cost + margin)[:, None]) & (
            np.arange(n_delays)[None, :] * dt_s <= delay_s[:, None] + 1e-9
        )
        first = np.argmax(within, axis=1)
        out: NDArray[np.intp] = np.where(np.any(within, axis=1), first, -1)
        return out


def best_of_starts(
    y: FloatArray, shifted: list[FloatArray], dt_s: float, spec: LeastSquaresSpec, n_starts: int
) -> StartsResult:
    """Levenberg-Marquardt from the best (delay, candidate) pairs of the grid search, from
    the best candidate of every delay and from the best linear solution; the best solution
    found at each whole-sample delay is kept.
    """
    n_par, n_delays, n_grid = len(spec.names), len(shifted), spec.grid.shape[0]
    n_pix = y.shape[0]
    by_x = np.zeros((n_pix, n_delays, n_par))
    by_cost = np.full((n_pix, n_delays), np.inf)
    costs = np.concatenate([grid_costs(y, shifted[d], dt_s, spec) for d in range(n_delays)], axis=1)
    n_best = min(n_starts, costs.shape[1])
    order = (
        np.argpartition(costs, n_best - 1, axis=1)[:, :n_best] if n_best < costs.shape[1] else np.argsort(costs, axis=1)
    )
    if n_delays > 1:  # also the best candidate of every delay
        per_delay = np.argmin(costs.reshape(n_pix, n_delays, n_grid), axis=2)
        order = np.concatenate([order, per_delay + np.arange(n_delays) * n_grid], axis=1)
    # A (delay, candidate) pair already started from (the best of a delay is often among the
    # best overall) is not started again: its delay index becomes -1.
    repeated = np.zeros(order.shape, dtype=bool)
    for rank in range(1, order.shape[1]):
        repeated[:, rank] = np.any(order[:, :rank] == order[:, rank : rank + 1], axis=1)
    starts = [
        (np.where(repeated[:, rank], -1, order[:, rank] // n_grid), spec.grid[order[:, rank] % n_grid])
        for rank in range(order.shape[1])
    ]
    if spec.linear is not None:
        # The linear solution at its best delay: a start near the answer wherever the grid's
        # nearest candidates lie in another valley (low flows, where the plasma and
        # interstitial terms trade against each other and against the delay).
        lin_x, lin_cost = linear_at_delays(y, shifted, dt_s, spec)
        lin_delay = np.argmin(lin_cost, axis=0)
        starts.append((lin_delay, lin_x[lin_delay, np.arange(n_pix)]))
    if n_pix * len(starts) <= BATCH_ROWS and n_delays > 1:
        # Few pixels: every start of every delay in one run (per-row delays), rather than
        # many small runs whose cost is call overhead (24 OSIPI curves, 21 delays: 4x faster).
        rows_all, delays_all, starts_all = [], [], []
        for delay_idx, start in starts:
            usable = np.nonzero(np.all(np.isfinite(start), axis=1) & (delay_idx >= 0))[0]
            rows_all.append(usable)
            delays_all.append(delay_idx[usable])
            starts_all.append(start[usable])
        rows, delays = np.concatenate(rows_all), np.concatenate(delays_all)
        x, cost, _ = levenberg_marquardt(
            y[rows], shifted[0], dt_s, spec, np.concatenate(starts_all), delay_s=delays * dt_s
        )
        for i in range(rows.size):
            if cost[i] < by_cost[rows[i], delays[i]]:
                by_x[rows[i], delays[i]] = x[i]
                by_cost[rows[i], delays[i]] = cost[i]
        return StartsResult(by_x, by_cost)
    for delay_idx, start in starts:
        usable = np.all(np.isfinite(start), axis=1) & (delay_idx >= 0)
        for d in np.unique(delay_idx[usable]):
            sel = np.nonzero((delay_idx == d) & usable)[0]
            x, cost, _ = levenberg_marquardt(y[sel], shifted[d], dt_s, spec, start[sel])
            better = cost < by_cost[sel, d]
            rows = sel[better]
            by_x[rows, d] = x[better]
            by_cost[rows, d] = cost[better]
    return StartsResult(by_x, by_cost)


def delay_spec(spec: LeastSquaresSpec, max_delay_s: float) -> LeastSquaresSpec:
    """The model with its delay as a last, continuous parameter in ``[0, max_delay_s]``."""
    curves = spec.curves

    def with_delay(aif: FloatArray, dt_s: float, xa: FloatArray) -> FloatArray:
        return delayed_curves(curves, aif, dt_s, xa[:, :-1], xa[:, -1])

    return LeastSquaresSpec(
        names=(*spec.names, "delay_s"),
        lower=np.append(spec.lower, 0.0),
        upper=np.append(spec.upper, max_delay_s),
        grid=np.empty((0, len(spec.names) + 1)),
        curves=with_delay,
    )


def refine_delay(
    y: FloatArray,
    aif: FloatArray,
    dt_s: float,
    spec: LeastSquaresSpec,
    x: FloatArray,
    delay_s: FloatArray,
    max_delay_s: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Levenberg-Marquardt over the parameters and a continuous delay, from ``(x, delay_s)``.

    Up to 200 iterations: the delay trades against a model's own timing parameter (the Fermi
    plateau, for one), a narrow valley that 40 iterations do not cross (noise-free Fermi
    curves delayed by 2.25 s: 2.240 s after 40, 2.250 s after 200). Converged pixels stop.

    Returns the parameters ``(P, n)``, the delay (s) and the cost; never worse than the start.
    """
    xa, cost, _ = levenberg_marquardt(
        y, aif, dt_s, delay_spec(spec, max_delay_s), np.column_stack([x, delay_s]), iterations=200
    )
    return xa[:, :-1], xa[:, -1], cost


def _linear_at(
    y: FloatArray, aif: FloatArray, dt_s: float, spec: LeastSquaresSpec, delay_s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The linear solution with each row's own delay, clipped, and its cost (inf where not physical)."""
    assert spec.linear is not None
    x = spec.linear(y, delay_curve(aif, dt_s, delay_s), dt_s)
    good = np.all(np.isfinite(x), axis=1)
    x = _clip(spec, np.where(good[:, None], x, spec.lower))
    cost = np.where(good, _cost(y, delayed_curves(spec.curves, aif, dt_s, x, delay_s)), np.inf)
    return x, cost


#: Sub-sample offsets (in samples) around the best whole-sample delay tried by the linear fit.
LINEAR_DELAY_OFFSETS = (-0.75, -0.5, -0.25, 0.25, 0.5, 0.75)


def _linear_fit(
    y: FloatArray, aif: FloatArray, shifted: list[FloatArray], dt_s: float, spec: LeastSquaresSpec, max_delay_s: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The linear solution at the best whole-sample delay, then at quarter-sample delays
    around it and at the minimum of a parabola through the best quarter and its neighbours.

    The cost against the delay is a narrow V (noise-free 2CXM at 0.8 ml/min/g delayed by
    1.7 s: 2e-8 at 1.7 s, 7e-5 at 1.5 s, no physical solution at 1.0 s), which a parabola
    through whole samples misses; quarter samples then a parabola find 1.7 s.

    Returns parameters ``(P, n)`` (NaN rows where no delay gives a physical solution), cost, delay (s).
    """
    xs, costs = linear_at_delays(y, shifted, dt_s, spec)
    n_pix = y.shape[0]
    rows = np.arange(n_pix)
    best = np.argmin(costs, axis=0)
    x, cost, delay = xs[best, rows], costs[best, rows], best * dt_s
    if max_delay_s <= 0 or spec.linear is None:
        return x, cost, delay
    step = 0.25 * dt_s
    for offset in LINEAR_DELAY_OFFSETS:
        trial = np.clip(best * dt_s + offset * dt_s, 0.0, max_delay_s)
        x_new, cost_new = _linear_at(y, aif, dt_s, spec, trial)
        better = cost_new < cost
        x[better], cost[better], delay[better] = x_new[better], cost_new[better], trial[better]
    centre = delay.copy()
    _, c_lo = _linear_at(y, aif, dt_s, spec, np.clip(centre - step, 0.0, max_delay_s))
    _, c_hi = _linear_at(y, aif, dt_s, spec, np.clip(centre + step, 0.0, max_delay_s))
    with np.errstate(all="ignore"):
        curvature = c_lo - 2.0 * cost + c_hi
        offset = np.clip(0.5 * (c_lo - c_hi) / curvature, -1.0, 1.0)
    move = np.isfinite(offset) & (curvature > 0) & (np.abs(offset) > 1e-3)
    trial = np.clip(centre + np.where(move, offset, 0.0) * step, 0.0, max_delay_s)
    x_new, cost_new = _linear_at(y, aif, dt_s, spec, trial)
    better = move & (cost_new < cost)
    x[better], cost[better], delay[better] = x_new[better], cost_new[better], trial[better]
    return x, cost, delay


def _jacobian_at_delay(
    spec: LeastSquaresSpec, aif: FloatArray, dt_s: float, x: FloatArray, delay_s: FloatArray
) -> FloatArray:
    """Jacobian ``(P, n, t)`` of the curves with respect to the parameters, each row's delay held."""

    def curves(a: FloatArray, h: float, p: FloatArray) -> FloatArray:
        return delayed_curves(spec.curves, a, h, p, delay_s)

    fixed = LeastSquaresSpec(spec.names, spec.lower, spec.upper, spec.grid, curves)
    return jacobian(fixed, aif, dt_s, x, curves(aif, dt_s, x))


def fit_least_squares(
    spec: LeastSquaresSpec,
    acquisition: Acquisition,
    tissue_mmol_l: ArrayLike,
    mask: ArrayLike | None,
    max_delay_s: float,
    n_starts: int = 5,
    chunk_pixels: int = 4096,
    method: str = "nonlinear",
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], NDArray[np.int8], FloatArray, tuple[int, ...]]:
    """Pixel-wise fit with a continuous delay in ``[0, max_delay_s]``.

    ``method="nonlinear"``: a grid search over the start candidates and the whole-sample
    delays, then Levenberg-Marquardt from the ``n_starts`` best (delay, candidate) pairs,
    from the best candidate of every delay and from the linear solution at its best delay
    (where the model has one); the smallest residual wins, and a last Levenberg-Marquardt
    run frees the delay between samples.

    ``method="linear"``: the linear least-squares solution (``spec.linear``) at the best
    whole-sample delay, refined to a sub-sample delay by a parabola through the costs of the
    neighbouring delays; the pixels whose linear solution is not physical at any delay get
    the nonlinear fit.

    Returns parameters (delay_s included) and their standard deviations (from the Jacobian
    at the solution, the delay held; none for the linear method) as flat arrays, the status,
    the NRMSE and the pixel shape.
    """
    pixels = select_pixels(tissue_mmol_l, mask, max_delay_s, acquisition)
    flat, status, todo, n = pixels.flat, pixels.status, pixels.todo, acquisition.n_time
    dt, aif = acquisition.dt_s, acquisition.aif_plasma_mmol_l
    names = spec.names
    max_delay = max(0.0, min(float(max_delay_s), (n - 3) * dt))
    params = {k: np.full(flat.shape[0], np.nan) for k in (*names, "delay_s")}
    linear = method == "linear" and spec.linear is not None
    # Standard deviations cost a Jacobian (n + 1 model evaluations): the fast path has none.
    sds = {} if linear else {k: np.full(flat.shape[0], np.nan) for k in names}
    nrmse = np.full(flat.shape[0], np.nan)
    shifted = [shift_curve(aif, d) for d in range(pixels.n_delays)]
    for first in range(0, todo.size, chunk_pixels):
        idx = todo[first : first + chunk_pixels]
        y = flat[idx]
        if linear:
            best_x, best_cost, best_delay = _linear_fit(y, aif, shifted, dt, spec, max_delay)
            rest = np.nonzero(~np.all(np.isfinite(best_x), axis=1))[0]
        else:
            rest = np.arange(y.shape[0])
            best_x, best_cost, best_delay = (
                np.zeros((y.shape[0], len(names))),
                np.full(y.shape[0], np.inf),
                np.zeros(y.shape[0]),
            )
        if rest.size:
            starts = best_of_starts(y[rest], shifted, dt, spec, n_starts)
            x, cost, delay = starts.best(dt)
            if max_delay > 0:
                x, delay, cost = refine_delay(y[rest], aif, dt, spec, x, delay, max_delay)
                # The earliest delay that fits as well as the best (within DELAY_CHI2 noise
                # variances): a later delay trades against the plasma volume and the exchange
                # at low flows, and noise alone then picks it.
                margin = DELAY_CHI2 * cost / max(n - len(names) - 2, 1)
                early = starts.earliest(cost, delay, margin, dt)
                take = np.nonzero((early >= 0) & (early * dt < delay - 1e-9))[0]
                x[take] = starts.x[take, early[take]]
                cost[take] = starts.cost[take, early[take]]
                delay[take] = early[take] * dt
            best_x[rest], best_cost[rest], best_delay[rest] = x, cost, delay
        ok = np.all(np.isfinite(best_x), axis=1) & np.isfinite(best_cost)
        ynorm2 = np.sum(y * y, axis=1)
        for j, name in enumerate(names):
            params[name][idx] = np.where(ok, best_x[:, j], np.nan)
        if sds:
            sigma2 = best_cost / max(n - len(names) - 1, 1)
            safe_x = np.where(ok[:, None], best_x, spec.lower)
            best_jac = _jacobian_at_delay(spec, aif, dt, safe_x, np.where(ok, best_delay, 0.0))
            jtj = np.einsum("pit,pjt->pij", best_jac, best_jac) + 1e-300 * np.eye(len(names))
            with np.errstate(all="ignore"):
                cov = np.linalg.pinv(jtj)
            for j, name in enumerate(names):
                sds[name][idx] = np.where(ok, np.sqrt(np.maximum(cov[:, j, j] * sigma2, 0.0)), np.nan)
        params["delay_s"][idx] = np.where(ok, best_delay, np.nan)
        nrmse[idx] = np.where(ok, np.sqrt(best_cost / np.maximum(ynorm2, 1e-300)), np.nan)
        status[idx] = np.where(ok, FitStatus.OK, FitStatus.FAILED)
    return params, sds, status, nrmse, pixels.shape


def make_result(
    model: KineticModel,
    params: dict[str, FloatArray],
    sds: dict[str, FloatArray],
    status: NDArray[np.int8],
    nrmse: FloatArray,
    pix_shape: tuple[int, ...],
    derived: dict[str, FloatArray] | None = None,
) -> FitResult:
    """Package flat fit outputs as a :class:`FitResult` of pixel shape ``pix_shape``."""
    return FitResult(
        model=model.name,
        params={k: v.reshape(pix_shape) for k, v in params.items()},
        status=status.reshape(pix_shape),
        nrmse=nrmse.reshape(pix_shape),
        units=model.units,
        map_names=model._map_names(),
        sd={k: v.reshape(pix_shape) for k, v in sds.items()},
        derived={k: v.reshape(pix_shape) for k, v in (derived or {}).items()},
    )
