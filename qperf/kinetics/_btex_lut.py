"""BTEX look-up table: curves of unit flow on a grid of rates, for one AIF, compressed.

1. Transfer-function basis: the tissue transfer function of every table entry at the
   Laplace frequencies of the time grid. It does not depend on the AIF, so it is computed
   once per (grid length, step) and kept in memory (:func:`transfer_basis`).
2. Table per AIF: one multiplication by the AIF spectrum and an inverse FFT give the
   table's curves; delays are whole-sample shifts of them (:class:`BtexTable`).
3. Compression: the curves of all delays are projected onto their leading principal
   components (an orthonormal basis ``U`` of ``K`` time courses); distances between a
   pixel curve and table curves are computed from ``K`` coefficients.

Table axes: the outflow ``H(s)`` depends on the parameters only through the three rates
``u = Fp / (60 Vp)`` (inverse transit time), ``a = PS / (60 Vp)`` and
``b = PS / (60 Visf)`` (1/s), and the tissue curve is ``Fp`` times a curve ``q(t; u, a, b)``.
The table therefore holds ``q`` on a logarithmic grid of ``(u, a, b)`` and the flow is a
linear scale solved exactly for every candidate (variable projection), which removes the
flow axis from the interpolation. The original's parameter bounds (Fp 0.1-6.0,
PS 0.35-4.0 ml/min/g; Vp 0.04-0.10, Visf 0.1-0.475 ml/g) become, for given ``(u, a, b)``,
an interval of allowed flows. 27,648 entries (48 x 24 x 24) cover the same parameter box
as the original's 124,320; the interpolation error between nodes is well below the error
of the curves themselves. The search over the table is in :mod:`qperf.kinetics._btex_search`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from qperf.kinetics import _basis_cache, _spectral
from qperf.kinetics.base import FloatArray

FP_RANGE = (0.1, 6.0)
PS_RANGE = (0.35, 4.0)
VP_RANGE = (0.04, 0.10)
VISF_RANGE = (0.1, 0.475)
N_U, N_A, N_B = 48, 24, 24
BOX_SLACK = 2.0
U_RANGE = (FP_RANGE[0] / (60.0 * VP_RANGE[1]), FP_RANGE[1] / (60.0 * VP_RANGE[0]))
A_RANGE = (PS_RANGE[0] / (60.0 * VP_RANGE[1]), PS_RANGE[1] / (60.0 * VP_RANGE[0]))
B_RANGE = (PS_RANGE[0] / (60.0 * VISF_RANGE[1]), PS_RANGE[1] / (60.0 * VISF_RANGE[0]))
#: Longest step (s) of the grid on which the table's curves are computed. At high flow the
#: curves change within a second: noise-free BTEX curves sampled every 1.0 s and fitted with
#: curves computed on that grid itself read MBF 3.5 ml/min/g 6-13 % low and 5.0 ml/min/g
#: 17-27 % low; on a grid of 0.5 s or finer (qperf.flow resamples to 0.5 s) they are fitted
#: within 0.1 %. A coarser grid is refined by a whole factor to reach this step.
MAX_LUT_STEP_S = 0.5
# Principal components kept. Clean tissue curves (first-pass AIF, delays 0-2.5 s) leave a
# median relative residual of about 1e-4 outside 12 components (3e-4 with 10, 8e-4 with 8,
# below 1e-4 with 16), far below measurement noise; the search's cost grows with the count,
# and fits at 2 % noise were as accurate with 8 as with 16.
N_COMPONENTS = 12
_COARSE_STEP = (2, 3, 3)  # u, a, b

#: Grid lengths of the cached transfer-function basis are multiples of this (samples).
BASIS_LENGTH_STEP = 32
_BASIS_CACHE: dict[tuple[object, ...], tuple[NDArray[np.complex64], int, float]] = {}


class TransferModel(Protocol):
    """What the table needs of the BTEX model: its constants and tissue transfer function."""

    length_cm: float
    dp_cm2_s: float
    disf_cm2_s: float

    def transfer(
        self,
        fp: FloatArray,
        ps: FloatArray,
        vp: FloatArray,
        visf: FloatArray,
        s: _spectral.ComplexArray,
        delay_s: FloatArray | None = None,
    ) -> _spectral.ComplexArray: ...


def grid_axes() -> tuple[FloatArray, FloatArray, FloatArray]:
    """Values along the three table axes ``u``, ``a``, ``b`` (1/s), logarithmically spaced."""
    return np.geomspace(*U_RANGE, N_U), np.geomspace(*A_RANGE, N_A), np.geomspace(*B_RANGE, N_B)


def flow_interval(u: FloatArray, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Allowed flows (ml/min/g) for given rates (1/s).

    The flow range, and the volume and PS ranges widened by ``BOX_SLACK`` either way,
    written as bounds on Fp. The slack keeps the search from being trapped at the box's
    edges, where the coupling of the bounds to the rates would distort the cost.
    """
    k = BOX_SLACK
    lo = np.maximum.reduce(
        [
            np.full(np.shape(u), FP_RANGE[0]),
            60.0 * u * VP_RANGE[0] / k,
            u * PS_RANGE[0] / (k * a),
            60.0 * u * b * VISF_RANGE[0] / (k * a),
        ]
    )
    hi = np.minimum.reduce(
        [
            np.full(np.shape(u), FP_RANGE[1]),
            60.0 * u * VP_RANGE[1] * k,
            k * u * PS_RANGE[1] / a,
            k * 60.0 * u * b * VISF_RANGE[1] / a,
        ]
    )
    return lo, hi


def rates_to_params(u: FloatArray, a: FloatArray, b: FloatArray, fp: FloatArray) -> dict[str, FloatArray]:
    """Model parameters from the rates and the flow."""
    vp = fp / (60.0 * u)
    ps = 60.0 * a * vp
    return {"Fp": fp, "PS": ps, "Vp": vp, "Visf": ps / (60.0 * b)}


def lut_upsample(dt_s: float) -> int:
    """Refinement of a grid of step ``dt_s`` on which the table's curves are computed."""
    return max(1, int(np.ceil(dt_s / MAX_LUT_STEP_S - 1e-9)))


def transfer_basis(model: TransferModel, n_time: int, dt_s: float) -> tuple[NDArray[np.complex64], int, float]:
    """Transfer functions of ``q`` (unit flow) for all table entries, shape ``(n_entries, F)`` (cached).

    Evaluated on the time grid refined :func:`lut_upsample` times (accuracy of the curves).
    Kept in memory for the last grid, and on disk between processes
    (:mod:`qperf.kinetics._basis_cache`).
    """
    key = (n_time, round(dt_s, 9), model.length_cm, model.dp_cm2_s, model.disf_cm2_s)
    cached = _BASIS_CACHE.get(key)
    if cached is not None:
        return cached
    upsample = lut_upsample(dt_s)
    n_fine = (n_time - 1) * upsample + 1
    dt_s = dt_s / upsample
    n_fft, sigma, s = _spectral.damped_grid(n_fine, dt_s)
    u, a, b = (x.reshape(-1) for x in np.meshgrid(*grid_axes(), indexing="ij"))
    disk_key = (*key, upsample, N_U, N_A, N_B, U_RANGE, A_RANGE, B_RANGE)
    basis = _basis_cache.load(model, disk_key, (u.shape[0], s.shape[0]))
    if basis is None:
        # With Vp = 1 ml/g: Fp = 60 u, PS = 60 a, Visf = a / b reproduce the rates; divide by Fp.
        one = np.ones_like(u)
        g = model.transfer(60.0 * u, 60.0 * a, one, a / b, s) / (60.0 * u)[:, None]
        g = g * _spectral.hat_factor(s, dt_s)[None, :]
        basis = g.astype(np.complex64)
        _basis_cache.save(model, disk_key, basis)
    entry = (basis, n_fft, sigma)
    _BASIS_CACHE.clear()  # keep one grid in memory
    _BASIS_CACHE[key] = entry
    return entry


@dataclass
class BtexTable:
    """Table of unit-flow BTEX curves ``q`` for one AIF, in compressed form.

    Attributes
    ----------
    basis : ndarray of float32, shape ``(t, K)``
        Orthonormal time courses.
    coef : ndarray of float32, shape ``(D, N_U, N_A, N_B, K)``
        Coefficients of every curve for each whole-sample delay ``0 .. D-1``.
    norm2 : ndarray of float32, shape ``(D, N_U, N_A, N_B)``
        Squared norms of the coefficient vectors.
    flow_lo, flow_hi : ndarray of float32, shape ``(D, N_U, N_A, N_B)``
        Allowed flows of each entry (``flow_lo > flow_hi``: no allowed flow).
    dt_s : float
        Sampling interval (s).
    """

    basis: NDArray[np.float32]
    coef: NDArray[np.float32]
    norm2: NDArray[np.float32]
    flow_lo: NDArray[np.float32]
    flow_hi: NDArray[np.float32]
    dt_s: float

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape ``(D, N_U, N_A, N_B)``."""
        return tuple(self.norm2.shape)


def basis_length(n_time: int) -> int:
    """Grid length of the cached basis used for ``n_time`` samples (rounded up to ``BASIS_LENGTH_STEP``)."""
    return -(-int(n_time) // BASIS_LENGTH_STEP) * BASIS_LENGTH_STEP


def build_table(model: TransferModel, aif: FloatArray, dt_s: float, n_delays: int) -> BtexTable:
    """Table of curves for a plasma AIF with delays of ``0 .. n_delays - 1`` samples."""
    n = aif.shape[0]
    # The basis is computed for the grid length rounded up to BASIS_LENGTH_STEP samples, so
    # the slices of a study (whose grids differ by a sample or two) share one cached basis;
    # the AIF is continued with its last value and the curves (causal) are cut back to n.
    n_basis = basis_length(n)
    padded = np.concatenate([np.asarray(aif, dtype=np.float64), np.full(n_basis - n, float(aif[-1]))])
    g, n_fft, sigma = transfer_basis(model, n_basis, dt_s)
    upsample = lut_upsample(dt_s)
    fine = _spectral.upsample_linear(padded, upsample)
    dt_fine = dt_s / upsample
    spec = _spectral.input_spectrum(fine, dt_fine, n_fft, sigma).astype(np.complex64)
    curves = np.empty((g.shape[0], n), dtype=np.float32)
    damp_inv = np.exp(sigma * dt_fine * np.arange(fine.shape[0])[::upsample][:n]).astype(np.float32)
    block = 4096
    for start in range(0, g.shape[0], block):
        sl = slice(start, start + block)
        full = np.fft.irfft(g[sl] * spec[None, :], n_fft, axis=-1)
        curves[sl] = full[:, : fine.shape[0] : upsample][:, :n] * damp_inv
    # Principal components of the curves over all delays (a random subset suffices).
    rng = np.random.default_rng(0)
    pick = rng.choice(curves.shape[0], size=min(curves.shape[0], 3000), replace=False)
    sample = np.zeros((n_delays, pick.shape[0], n), dtype=np.float64)
    for d in range(n_delays):
        sample[d, :, d:] = curves[pick, : n - d]
    sample /= np.linalg.norm(sample, axis=-1, keepdims=True) + 1e-30
    flat = sample.reshape(-1, n)
    # Leading right singular vectors from the small (t, t) scatter matrix.
    _, vectors = np.linalg.eigh(flat.T @ flat)
    k = min(N_COMPONENTS, n)
    basis = np.ascontiguousarray(vectors[:, ::-1][:, :k].astype(np.float32))
    # A curve delayed by d samples has coefficients curves[:, :n-d] @ basis[d:]: one
    # product with the basis shifted for every delay.
    shifted = np.zeros((n, n_delays, k), dtype=np.float32)
    for d in range(n_delays):
        shifted[: n - d, d, :] = basis[d:, :]
    coef = (curves @ shifted.reshape(n, n_delays * k)).reshape(curves.shape[0], n_delays, k)
    coef = np.ascontiguousarray(coef.transpose(1, 0, 2)).reshape(n_delays, N_U, N_A, N_B, k)
    norm2 = np.einsum("...k,...k->...", coef, coef)
    lo, hi = flow_interval(*np.meshgrid(*grid_axes(), indexing="ij"))
    flow_lo = np.broadcast_to(lo.astype(np.float32), norm2.shape)
    flow_hi = np.broadcast_to(hi.astype(np.float32), norm2.shape)
    return BtexTable(basis=basis, coef=coef, norm2=norm2, flow_lo=flow_lo, flow_hi=flow_hi, dt_s=dt_s)


def coarse_candidates(shape: tuple[int, ...]) -> NDArray[np.intp]:
    """Flat indices (within one delay) of the coarse rate nodes of the first search."""
    axes = []
    for size, step in zip(shape[1:], _COARSE_STEP, strict=True):
        idx = np.arange(step // 2, size, step)
        axes.append(idx if idx.size else np.array([size // 2]))
    mesh = np.meshgrid(*axes, indexing="ij")
    result: NDArray[np.intp] = np.ravel_multi_index([m.reshape(-1) for m in mesh], shape[1:])
    return result
