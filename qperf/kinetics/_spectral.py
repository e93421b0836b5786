"""Convolution of a sampled input with a continuous-time LTI system given by its transfer function.

The input is taken as piecewise linear between its samples (the usual reading of an AIF on
a regular grid). The output at the sample times is then ``y = c * w`` (discrete
convolution) with ``w_m = w(m dt)`` and ``W(s) = G(s) * TRI(s)``, ``TRI`` the Laplace
transform of the unit hat function of half-width ``dt``. The convolution is evaluated on a
damped Fourier grid ``s = sigma + i omega`` (a numerical inverse Laplace transform): the
exponential window makes the wrap-around of the FFT negligible (``exp(-sigma N dt)`` is
1e-10) for responses that do not decay within the record, such as tracer retention. The
remaining error, from sampling ``W``, falls as ``dt**2`` and is reduced further by
evaluating on a grid refined by an integer factor (exact for a piecewise-linear input).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]

_LOG_WRAP = 23.0  # sigma * N * dt: suppresses wrap-around by exp(-23) ~ 1e-10


def damped_grid(n_time: int, dt_s: float, extra_samples: int = 0) -> tuple[int, float, ComplexArray]:
    """FFT length, damping and Laplace variable for ``n_time`` samples.

    Returns
    -------
    n_fft : int
        FFT length, at least ``2 n_time + extra_samples``.
    sigma : float
        Damping (1/s).
    s : ndarray of complex128, shape ``(n_fft // 2 + 1,)``
        ``sigma + i omega_k`` at the rfft frequencies.
    """
    n_fft = int(scipy.fft.next_fast_len(2 * n_time + int(extra_samples), real=True))
    sigma = _LOG_WRAP / (n_fft * dt_s)
    omega = 2.0 * np.pi * np.fft.rfftfreq(n_fft, dt_s)
    s: ComplexArray = (sigma + 1j * omega).astype(np.complex128)
    return n_fft, sigma, s


def hat_factor(s: ComplexArray, dt_s: float) -> ComplexArray:
    """``TRI(s) / dt = (sinh(s dt / 2) / (s dt / 2))**2`` (piecewise-linear input)."""
    x = s * (dt_s / 2.0)
    small = np.abs(x) < 1e-6
    safe = np.where(small, 1.0, x)
    ratio = np.where(small, 1.0 + x * x / 6.0, np.sinh(safe) / safe)
    result: ComplexArray = ratio * ratio
    return result


def input_spectrum(signal: FloatArray, dt_s: float, n_fft: int, sigma: float) -> ComplexArray:
    """Damped rfft of the input samples (last axis), shape ``(..., n_fft // 2 + 1)``."""
    n = signal.shape[-1]
    damp = np.exp(-sigma * dt_s * np.arange(n))
    result: ComplexArray = np.fft.rfft(signal * damp, n_fft, axis=-1)
    return result


def output_from_spectrum(spectrum: ComplexArray, n_time: int, dt_s: float, n_fft: int, sigma: float) -> FloatArray:
    """Inverse of :func:`input_spectrum`: the first ``n_time`` samples of the output."""
    y = np.fft.irfft(spectrum, n_fft, axis=-1)[..., :n_time]
    result: FloatArray = y * np.exp(sigma * dt_s * np.arange(n_time))
    return result


def upsample_linear(signal: FloatArray, factor: int) -> FloatArray:
    """Refine a piecewise-linear curve (last axis) by an integer factor; exact for it."""
    if factor == 1:
        return signal
    n = signal.shape[-1]
    fine = np.arange((n - 1) * factor + 1) / factor
    lo = np.minimum(np.floor(fine).astype(np.intp), n - 2)
    frac = fine - lo
    result: FloatArray = signal[..., lo] * (1.0 - frac) + signal[..., lo + 1] * frac
    return result


def convolve(
    aif: FloatArray,
    dt_s: float,
    transfer: Callable[[ComplexArray], ComplexArray],
    n_params: int,
    upsample: int = 4,
    max_delay_s: float = 0.0,
) -> FloatArray:
    """Response of ``n_params`` systems to one piecewise-linear input.

    Parameters
    ----------
    aif : ndarray of float64, shape ``(t,)``
        Input samples on a regular grid of step ``dt_s``.
    dt_s : float
        Sampling interval (s).
    transfer : callable
        ``transfer(s)`` with ``s`` of shape ``(F,)`` returns ``G(s)`` of shape ``(n_params, F)``
        (the transfer function of each system, including any gain and delay).
    n_params : int
        Number of systems.
    upsample : int
        Refinement factor of the evaluation grid (accuracy; see the module notes).
    max_delay_s : float
        Largest delay contained in ``transfer`` (s); the FFT is lengthened to hold it.

    Returns
    -------
    ndarray of float64, shape ``(n_params, t)``
    """
    n = aif.shape[-1]
    fine = upsample_linear(aif, upsample)
    dtf = dt_s / upsample
    n_fft, sigma, s = damped_grid(fine.shape[-1], dtf, int(np.ceil(max_delay_s / dtf)))
    spec = input_spectrum(fine, dtf, n_fft, sigma) * hat_factor(s, dtf)
    out = output_from_spectrum(spec * transfer(s), fine.shape[-1], dtf, n_fft, sigma)
    result: FloatArray = out[:, ::upsample][:, :n].reshape(n_params, n)
    return result
