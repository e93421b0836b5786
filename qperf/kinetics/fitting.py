"""Fitting utilities shared by the kinetic models: convolution kernels and a vectorised,
bounded Levenberg-Marquardt solver with a grid-search start and a whole-sample delay search.
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
)

#: ``curves(aif (t,), dt_s, params (P, n)) -> (P, t)``
CurveFunction = Callable[[FloatArray, float, FloatArray], FloatArray]


def exp_convolve(aif: FloatArray, dt_s: float, rate_per_s: FloatArray) -> FloatArray:
    """``integral_0^t aif(tau) exp(-rate (t - tau)) dtau`` for a piecewise-linear ``aif``.

    Exact recursion over the samples.

    Parameters
    ----------
    aif : ndarray of float64, shape ``(t,)``
        Input samples on a regular grid of step ``dt_s`` starting at time 0.
    dt_s : float
        Sampling interval (s).
    rate_per_s : ndarray of float64, shape ``(P,)``
        Decay rates (1/s), >= 0.

    Returns
    -------
    ndarray of float64, shape ``(P, t)``
    """
    lam = np.maximum(np.asarray(rate_per_s, dtype=np.float64), 0.0)
    x = lam * dt_s
    e = np.exp(-x)
    small = x < 1e-4
    xs = np.where(small, 1.0, x)
    # A = (1 - e) / lam, B = 1 / lam - (1 - e) / (lam^2 dt): weights of c[n-1] and of the slope.
    a_w = np.where(small, dt_s * (1.0 - x / 2.0), -np.expm1(-xs) / np.where(small, 1.0, lam))
    b_w = np.where(small, dt_s * (0.5 - x / 6.0), dt_s * (1.0 / xs + np.expm1(-xs) / (xs * xs)))
    n = aif.shape[0]
    out = np.empty((lam.shape[0], n))
    if lam.shape[0] < n:
        # Few rates: a first-order recursive filter per rate (compiled loop over time). Imported
        # here: scipy.signal takes 0.6 s to import and the BTEX path never needs it.
        import scipy.signal

        inputs = np.zeros((2, n))
        inputs[0, 1:] = aif[:-1]
        inputs[1, 1:] = np.diff(aif)
        for j in range(lam.shape[0]):
            filtered = scipy.signal.lfilter([1.0], [1.0, -e[j]], inputs, axis=1)
            out[j] = a_w[j] * filtered[0] + b_w[j] * filtered[1]
        return out
    out[:, 0] = 0.0
    y = np.zeros(lam.shape[0])
    for i in range(1, n):
        y = e * y + aif[i - 1] * a_w + (aif[i] - aif[i - 1]) * b_w
        out[:, i] = y
    return out


def kernel_convolve(aif: FloatArray, dt_s: float, kernel: FloatArray) -> FloatArray:
    """``integral aif(tau) r(t - tau) dtau`` by the trapezoidal rule; ``kernel`` (P, t) samples r."""
    n = aif.shape[0]
    n_fft = int(2 ** np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(aif, n_fft)[None, :] * np.fft.rfft(kernel, n_fft, axis=-1)
    full = np.fft.irfft(spec, n_fft, axis=-1)[:, :n]
    out: FloatArray = dt_s * (full - 0.5 * (aif[0] * kernel + aif[None, :] * kernel[:, :1]))
    return out


def shift_curve(aif: FloatArray, samples: int) -> FloatArray:
    """Delay a curve by whole samples, holding its first value before time 0."""
    if samples <= 0:
        return aif
    return np.concatenate([np.full(samples, aif[0]), aif[:-samples]])


@dataclass
class LeastSquaresSpec:
    """What the generic fitter needs from a model."""

    names: tuple[str, ...]
    lower: FloatArray
    upper: FloatArray
    grid: FloatArray  # (G, n) start candidates
    curves: CurveFunction


def levenberg_marquardt(
    y: FloatArray,
    aif: FloatArray,
    dt_s: float,
    spec: LeastSquaresSpec,
    x0: FloatArray,
    iterations: int = 40,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bounded Levenberg-Marquardt, vectorised over pixels; converged pixels drop out.

    Parameters
    ----------
    y : ndarray of float64, shape ``(P, t)``
    x0 : ndarray of float64, shape ``(P, n)``

    Returns
    -------
    x : (P, n) solution, cost : (P,) sum of squared residuals, jac : (P, n, t) Jacobian.
    """
    lo, hi = spec.lower, spec.upper
    x = np.clip(x0, lo, hi)
    n_par = x.shape[1]
    model = spec.curves(aif, dt_s, x)
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
        ja = np.empty((idx.size, n_par, y.shape[1]))
        for j in range(n_par):
            h = 1e-6 * np.maximum(np.abs(xa[:, j]), 1e-3 * width[j])
            step_dir = np.where(xa[:, j] + h > hi[j], -1.0, 1.0)
            xp = xa.copy()
            xp[:, j] += step_dir * h
            ja[:, j] = (spec.curves(aif, dt_s, xp) - ma) / (step_dir * h)[:, None]
        jac[idx] = ja
        r = ya - ma
        jtj = np.einsum("pit,pjt->pij", ja, ja)
        scale = np.sqrt(np.einsum("pii->pi", jtj)) + 1e-30
        a = jtj / (scale[:, :, None] * scale[:, None, :]) + la[:, None, None] * np.eye(n_par)
        g = np.einsum("pit,pt->pi", ja, r) / scale
        step = np.linalg.solve(a, g[..., None])[..., 0] / scale
        step = np.where(np.isfinite(step), step, 0.0)
        x_new = np.clip(xa + step, lo, hi)
        model_new = spec.curves(aif, dt_s, x_new)
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


def _best_of_starts(
    y: FloatArray, shifted: list[FloatArray], dt_s: float, spec: LeastSquaresSpec, n_starts: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Levenberg-Marquardt from the best (delay, candidate) pairs of the grid search.

    Returns the best parameters ``(P, n)``, cost ``(P,)``, Jacobian ``(P, n, t)`` and delay (s).
    """
    n_par, n_delays, n_grid = len(spec.names), len(shifted), spec.grid.shape[0]
    best_x = np.zeros((y.shape[0], n_par))
    best_cost = np.full(y.shape[0], np.inf)
    best_jac = np.zeros((y.shape[0], n_par, y.shape[1]))
    best_delay = np.zeros(y.shape[0])
    costs = np.concatenate([grid_costs(y, shifted[d], dt_s, spec) for d in range(n_delays)], axis=1)
    order = np.argsort(costs, axis=1)[:, : min(n_starts, costs.shape[1])]
    if n_delays > 1:  # also the best candidate of every delay
        per_delay = np.argmin(costs.reshape(y.shape[0], n_delays, n_grid), axis=2)
        order = np.concatenate([order, per_delay + np.arange(n_delays) * n_grid], axis=1)
    for rank in range(order.shape[1]):
        delay_idx = order[:, rank] // n_grid
        start = spec.grid[order[:, rank] % n_grid]
        for d in np.unique(delay_idx):
            sel = np.nonzero(delay_idx == d)[0]
            x, cost, jac = levenberg_marquardt(y[sel], shifted[d], dt_s, spec, start[sel])
            better = cost < best_cost[sel]
            rows = sel[better]
            best_x[rows] = x[better]
            best_cost[rows] = cost[better]
            best_jac[rows] = jac[better]
            best_delay[rows] = d * dt_s
    return best_x, best_cost, best_jac, best_delay


def fit_least_squares(
    spec: LeastSquaresSpec,
    acquisition: Acquisition,
    tissue_mmol_l: ArrayLike,
    mask: ArrayLike | None,
    max_delay_s: float,
    n_starts: int = 5,
    chunk_pixels: int = 4096,
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], NDArray[np.int8], FloatArray, tuple[int, ...]]:
    """Pixel-wise fit: a grid search over the start candidates and the whole-sample delays,
    then Levenberg-Marquardt from the ``n_starts`` best (delay, candidate) pairs and from
    the best candidate of every delay; the smallest residual wins.

    Returns parameters (delay_s included) and their standard deviations as flat arrays,
    the status, the NRMSE and the pixel shape.
    """
    pixels = select_pixels(tissue_mmol_l, mask, max_delay_s, acquisition)
    flat, status, todo, n = pixels.flat, pixels.status, pixels.todo, acquisition.n_time
    names = spec.names
    params = {k: np.full(flat.shape[0], np.nan) for k in (*names, "delay_s")}
    sds = {k: np.full(flat.shape[0], np.nan) for k in names}
    nrmse = np.full(flat.shape[0], np.nan)
    shifted = [shift_curve(acquisition.aif_plasma_mmol_l, d) for d in range(pixels.n_delays)]
    for first in range(0, todo.size, chunk_pixels):
        idx = todo[first : first + chunk_pixels]
        y = flat[idx]
        best_x, best_cost, best_jac, best_delay = _best_of_starts(y, shifted, acquisition.dt_s, spec, n_starts)
        ok = np.all(np.isfinite(best_x), axis=1) & np.isfinite(best_cost)
        ynorm2 = np.sum(y * y, axis=1)
        sigma2 = best_cost / max(n - len(names) - 1, 1)
        jtj = np.einsum("pit,pjt->pij", best_jac, best_jac) + 1e-300 * np.eye(len(names))
        with np.errstate(all="ignore"):
            cov = np.linalg.pinv(jtj)
        for j, name in enumerate(names):
            params[name][idx] = np.where(ok, best_x[:, j], np.nan)
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
