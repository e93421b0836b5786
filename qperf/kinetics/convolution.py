"""Convolution of an arterial input with the kinetic models' impulse responses, and delayed inputs.

Shared by the models (:mod:`qperf.kinetics.compartment`, :mod:`qperf.kinetics.fermi`) and the
fitting machinery (:mod:`qperf.kinetics.fitting`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qperf.kinetics.base import FloatArray

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
    if 8 * lam.shape[0] < n:
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
    # Many rates: the recursion vectorised over the rates. (A per-rate compiled filter pays
    # about 20 us of call overhead per rate, this loop a few us per sample, so it wins from
    # about n / 8 rates on: 480 rates of 600 samples in 1.5 ms against 5.7 ms.)
    # The input terms of every step computed at once, then the recursion in place.
    inputs = aif[:-1, None] * a_w[None, :] + np.diff(aif)[:, None] * b_w[None, :]
    out[:, 0] = 0.0
    y = np.zeros(lam.shape[0])
    for i in range(1, n):
        y *= e
        y += inputs[i - 1]
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


def delayed_curves(
    curves: CurveFunction, aif: FloatArray, dt_s: float, x: FloatArray, delay_s: FloatArray
) -> FloatArray:
    """Tissue curves ``(P, t)`` of a model linear in its input, each row with its own delay.

    The input of row ``p`` is ``aif`` delayed by ``delay_s[p]`` (>= 0, any real number of
    samples) with linear interpolation and its first value held before time 0, as in
    :func:`qperf.kinetics.base.delay_curve`. A delay of ``(k + f) dt`` interpolates the
    inputs shifted by ``k`` and ``k + 1`` samples, and every convolution model is linear and
    shift-invariant, so two model evaluations serve all delays: ``curves(aif - aif[0])``,
    shifted per row, plus ``aif[0] curves(1)``.

    Parameters
    ----------
    curves : callable
        ``curves(aif (t,), dt_s, params (P, n)) -> (P, t)``, linear in ``aif``.
    x : ndarray of float64, shape ``(P, n)``
    delay_s : ndarray of float64, shape ``(P,)``
    """
    if not np.any(delay_s):
        return curves(aif, dt_s, x)
    n = aif.shape[0]
    base = aif[0]
    response = curves(aif - base, dt_s, x)
    pos = np.clip(np.asarray(delay_s, dtype=np.float64) / dt_s, 0.0, n - 1.0)
    k = np.floor(pos).astype(np.intp)
    f = pos - k
    idx = np.arange(n)[None, :] - k[:, None]
    rows = np.arange(x.shape[0])[:, None]
    out: FloatArray = np.where(idx >= 0, response[rows, np.maximum(idx, 0)], 0.0)
    if np.any(f):
        hi = np.where(idx >= 1, response[rows, np.maximum(idx - 1, 0)], 0.0)
        out = (1.0 - f)[:, None] * out + f[:, None] * hi
    if base != 0.0:
        out += base * curves(np.ones(n), dt_s, x)
    return out
