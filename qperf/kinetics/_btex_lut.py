"""Look-up-table fitting of the BTEX model, vectorised over pixels.

Steps
-----
1. Transfer-function basis: the tissue transfer function of every table entry at the
   Laplace frequencies of the time grid. It does not depend on the AIF, so it is computed
   once per (grid length, step) and kept in memory (:func:`transfer_basis`).
2. Table per AIF: one multiplication by the AIF spectrum and an inverse FFT give the
   table's curves; delays are whole-sample shifts of them (:class:`BtexTable`).
3. Compression: the curves of all delays are projected onto their leading principal
   components (an orthonormal basis ``U`` of ``K`` time courses); distances between a
   pixel curve and table curves are computed from ``K`` coefficients.
4. Search per pixel: exhaustive over a coarse sub-grid (one matrix product), then
   coordinate descent over the full five-dimensional grid (four parameters and the delay).
5. Local refinement: Gauss-Newton on a local quadratic model of the curve around the best
   node, built from its neighbours along each axis, re-centred until it settles;
   parameter standard deviations from the same Jacobian.

Table axes: the outflow ``H(s)`` depends on the parameters only through the three rates
``u = Fp / (60 Vp)`` (inverse transit time), ``a = PS / (60 Vp)`` and
``b = PS / (60 Visf)`` (1/s), and the tissue curve is ``Fp`` times a curve ``q(t; u, a, b)``.
The table therefore holds ``q`` on a logarithmic grid of ``(u, a, b)`` and the flow is a
linear scale solved exactly for every candidate (variable projection), which removes the
flow axis from the interpolation. The original's parameter bounds (Fp 0.1-6.0,
PS 0.35-4.0 ml/min/g; Vp 0.04-0.10, Visf 0.1-0.475 ml/g) become, for given ``(u, a, b)``,
an interval of allowed flows; table entries with an empty interval are never selected.
27,648 entries (48 x 24 x 24) cover the same parameter box as the original's 124,320; the
interpolation error between nodes is well below the error of the curves themselves.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.kinetics import _spectral
from qperf.kinetics.base import (
    FitResult,
    FitStatus,
    FloatArray,
    check_mask,
    check_max_delay,
    check_tissue,
)

if TYPE_CHECKING:
    from qperf.kinetics.btex import BtexModel

FP_RANGE = (0.1, 6.0)
PS_RANGE = (0.35, 4.0)
VP_RANGE = (0.04, 0.10)
VISF_RANGE = (0.1, 0.475)
N_U, N_A, N_B = 48, 24, 24
BOX_SLACK = 2.0
U_RANGE = (FP_RANGE[0] / (60.0 * VP_RANGE[1]), FP_RANGE[1] / (60.0 * VP_RANGE[0]))
A_RANGE = (PS_RANGE[0] / (60.0 * VP_RANGE[1]), PS_RANGE[1] / (60.0 * VP_RANGE[0]))
B_RANGE = (PS_RANGE[0] / (60.0 * VISF_RANGE[1]), PS_RANGE[1] / (60.0 * VISF_RANGE[0]))
LUT_UPSAMPLE = 1
N_COMPONENTS = 16
CHUNK_PIXELS = 2048
_COARSE_STEP = (2, 4, 4)  # u, a, b
_RECENTRE_ITERATIONS = 10
_RECENTRE_STEP = 3.0
_RECENTRE_LM_ITERATIONS = 5
_OUTSIDE_PENALTY = 4.0
_NP = 4  # u, a, b offsets and Fp (the delay is searched, not fitted)

_BASIS_CACHE: dict[tuple[object, ...], tuple[NDArray[np.complex64], int, float]] = {}


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


def transfer_basis(model: BtexModel, n_time: int, dt_s: float) -> tuple[NDArray[np.complex64], int, float]:
    """Transfer functions of ``q`` (unit flow) for all table entries, shape ``(n_entries, F)`` (cached).

    Evaluated on the time grid refined ``LUT_UPSAMPLE`` times (accuracy of the curves).
    """
    key = (n_time, round(dt_s, 9), model.length_cm, model.dp_cm2_s, model.disf_cm2_s)
    cached = _BASIS_CACHE.get(key)
    if cached is not None:
        return cached
    n_fine = (n_time - 1) * LUT_UPSAMPLE + 1
    dt_s = dt_s / LUT_UPSAMPLE
    n_fft, sigma, s = _spectral.damped_grid(n_fine, dt_s)
    u, a, b = (x.reshape(-1) for x in np.meshgrid(*grid_axes(), indexing="ij"))
    # With Vp = 1 ml/g: Fp = 60 u, PS = 60 a, Visf = a / b reproduce the rates; divide by Fp.
    one = np.ones_like(u)
    g = model.transfer(60.0 * u, 60.0 * a, one, a / b, s) / (60.0 * u)[:, None]
    g = g * _spectral.hat_factor(s, dt_s)[None, :]
    entry = (g.astype(np.complex64), n_fft, sigma)
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


def build_table(model: BtexModel, aif: FloatArray, dt_s: float, n_delays: int) -> BtexTable:
    """Table of curves for a plasma AIF with delays of ``0 .. n_delays - 1`` samples."""
    n = aif.shape[0]
    g, n_fft, sigma = transfer_basis(model, n, dt_s)
    fine = _spectral.upsample_linear(aif, LUT_UPSAMPLE)
    dt_fine = dt_s / LUT_UPSAMPLE
    spec = _spectral.input_spectrum(fine, dt_fine, n_fft, sigma).astype(np.complex64)
    curves = np.empty((g.shape[0], n), dtype=np.float32)
    damp_inv = np.exp(sigma * dt_fine * np.arange(fine.shape[0])[::LUT_UPSAMPLE]).astype(np.float32)
    block = 4096
    for start in range(0, g.shape[0], block):
        sl = slice(start, start + block)
        full = np.fft.irfft(g[sl] * spec[None, :], n_fft, axis=-1)
        curves[sl] = full[:, : fine.shape[0] : LUT_UPSAMPLE] * damp_inv
    # Principal components of the curves over all delays (a random subset suffices).
    rng = np.random.default_rng(0)
    pick = rng.choice(curves.shape[0], size=min(curves.shape[0], 3000), replace=False)
    sample = np.zeros((n_delays, pick.shape[0], n), dtype=np.float64)
    for d in range(n_delays):
        sample[d, :, d:] = curves[pick, : n - d]
    sample /= np.linalg.norm(sample, axis=-1, keepdims=True) + 1e-30
    _, _, vt = np.linalg.svd(sample.reshape(-1, n), full_matrices=False)
    k = min(N_COMPONENTS, n)
    basis = np.ascontiguousarray(vt[:k].T.astype(np.float32))
    coef = np.empty((n_delays, curves.shape[0], k), dtype=np.float32)
    for d in range(n_delays):
        coef[d] = curves[:, : n - d] @ basis[d:, :]
    coef = coef.reshape(n_delays, N_U, N_A, N_B, k)
    norm2 = np.einsum("...k,...k->...", coef, coef)
    lo, hi = flow_interval(*np.meshgrid(*grid_axes(), indexing="ij"))
    flow_lo = np.broadcast_to(lo.astype(np.float32), norm2.shape)
    flow_hi = np.broadcast_to(hi.astype(np.float32), norm2.shape)
    return BtexTable(basis=basis, coef=coef, norm2=norm2, flow_lo=flow_lo, flow_hi=flow_hi, dt_s=dt_s)


def _coarse_candidates(shape: tuple[int, ...]) -> NDArray[np.intp]:
    """Flat indices (within one delay) of the coarse rate nodes of the first search."""
    axes = []
    for size, step in zip(shape[1:], _COARSE_STEP, strict=True):
        idx = np.arange(step // 2, size, step)
        axes.append(idx if idx.size else np.array([size // 2]))
    mesh = np.meshgrid(*axes, indexing="ij")
    result: NDArray[np.intp] = np.ravel_multi_index([m.reshape(-1) for m in mesh], shape[1:])
    return result


def _coarse_search(
    table: BtexTable, a: NDArray[np.float32], coarse: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Best node of the coarse sub-grid for every delay, flow solved.

    ``coarse`` holds the flat indices of the coarse rate nodes at delay 0, shape (M,).
    Returns the nodes (P, D, 4) and their costs (P, D) (squared distance minus ``||a||^2``).
    """
    n_delays = table.shape[0]
    per_delay = int(np.prod(table.shape[1:]))
    coef = table.coef.reshape(n_delays, per_delay, -1)
    out = np.empty((a.shape[0], n_delays, 4), dtype=np.intp)
    costs = np.empty((a.shape[0], n_delays), dtype=np.float32)
    lo = table.flow_lo.reshape(n_delays, per_delay)[0, coarse]
    hi = table.flow_hi.reshape(n_delays, per_delay)[0, coarse]
    feasible = lo <= hi
    idx = coarse[feasible]
    lo, hi = lo[feasible], hi[feasible]
    rates = np.stack(np.unravel_index(idx, table.shape[1:]), axis=1)
    for d in range(n_delays):
        norm2 = table.norm2.reshape(n_delays, per_delay)[d, idx]
        dot = a @ coef[d, idx].T  # (P, M)
        scale = np.clip(dot / norm2, lo, hi)
        cost = scale * (scale * norm2 - 2.0 * dot)
        best = np.argmin(cost, axis=1)
        out[:, d, 0] = d
        out[:, d, 1:] = rates[best]
        costs[:, d] = cost[np.arange(a.shape[0]), best]
    return out, costs


_PAIRS = ((1, 2), (1, 3), (2, 3))  # (u, a), (u, b), (a, b): mixed second differences


@dataclass
class _Stencil:
    """Local quadratic model of the unit-flow curve around grid nodes (coefficient space)."""

    c0: FloatArray  # (P, K) curve at the node
    jac: FloatArray  # (P, 4, K) first differences along each axis
    curv: FloatArray  # (P, 4, K) second differences along each axis
    cross: FloatArray  # (P, 3, K) mixed second differences of the rate pairs

    def curve(self, delta: FloatArray) -> FloatArray:
        """Model curve at offsets ``delta`` (P, 4), shape (P, K)."""
        out = self.c0 + np.einsum("pi,pik->pk", delta, self.jac)
        out = out + 0.5 * np.einsum("pi,pik->pk", delta * delta, self.curv)
        for j, (i1, i2) in enumerate(_PAIRS):
            out = out + (delta[:, i1] * delta[:, i2])[:, None] * self.cross[:, j]
        result: FloatArray = out
        return result

    def gradient(self, delta: FloatArray) -> FloatArray:
        """Derivatives of the model curve along the rate axes (u, a, b) at ``delta``, (P, 3, K)."""
        out = self.jac[:, 1:] + delta[:, 1:, None] * self.curv[:, 1:]
        for j, (i1, i2) in enumerate(_PAIRS):
            out[:, i1 - 1] += delta[:, i2, None] * self.cross[:, j]
            out[:, i2 - 1] += delta[:, i1, None] * self.cross[:, j]
        result: FloatArray = out
        return result


def _stencil(table: BtexTable, centre: NDArray[np.intp]) -> _Stencil:
    """Quadratic model from a node, its axis neighbours and three diagonal neighbours."""
    shape = np.asarray(table.shape)
    tshape = tuple(table.shape)
    eye = np.eye(4, dtype=np.intp)
    plus = np.minimum(centre[:, None, :] + eye[None], shape - 1)
    minus = np.maximum(centre[:, None, :] - eye[None], 0)
    diag = np.stack([eye[i1] + eye[i2] for i1, i2 in _PAIRS])  # (3, 4)
    corner = np.minimum(centre[:, None, :] + diag[None], shape - 1)
    coef = table.coef.reshape(-1, table.coef.shape[-1])
    c0 = coef[np.ravel_multi_index(tuple(centre.T), tshape)].astype(np.float64)
    cp = coef[np.ravel_multi_index(tuple(plus.transpose(2, 0, 1)), tshape)].astype(np.float64)
    cm = coef[np.ravel_multi_index(tuple(minus.transpose(2, 0, 1)), tshape)].astype(np.float64)
    cc = coef[np.ravel_multi_index(tuple(corner.transpose(2, 0, 1)), tshape)].astype(np.float64)
    span_p = (plus - centre[:, None, :]).diagonal(axis1=1, axis2=2).astype(np.float64)  # 1, or 0 at the top
    span_m = (centre[:, None, :] - minus).diagonal(axis1=1, axis2=2).astype(np.float64)
    span = span_p + span_m
    jac = np.where(span[..., None] > 0, (cp - cm) / np.maximum(span, 1.0)[..., None], 0.0)
    both = (span_p > 0) & (span_m > 0)
    curv = np.where(both[..., None], cp + cm - 2.0 * c0[:, None, :], 0.0)
    cross = np.empty((centre.shape[0], len(_PAIRS), c0.shape[1]))
    for j, (i1, i2) in enumerate(_PAIRS):
        # f(+i1, +i2) - f(+i1) - f(+i2) + f(0), where both forward neighbours exist.
        inside = (span_p[:, i1] > 0) & (span_p[:, i2] > 0)
        cross[:, j] = np.where(inside[:, None], cc[:, j] - cp[:, i1] - cp[:, i2] + c0, 0.0)
    return _Stencil(c0=c0, jac=jac, curv=curv, cross=cross)


def _rates(centre: NDArray[np.intp], delta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rates ``u, a, b`` (1/s) at fractional grid positions."""
    out = []
    for j, axis in enumerate(grid_axes()):
        step = np.log(axis[1] / axis[0])
        out.append(axis[0] * np.exp((centre[:, j + 1] + delta[:, j + 1]) * step))
    return out[0], out[1], out[2]


def _gauss_newton(
    a64: FloatArray,
    st: _Stencil,
    lo: FloatArray,
    hi: FloatArray,
    iterations: int = 5,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rate offsets and flow minimising ``||a - Fp q(delta)||`` within bounds, delay fixed.

    Levenberg-Marquardt (steps that do not lower the cost are rejected and the damping
    raised), vectorised over pixels. ``lo`` and ``hi`` (P, 4) bound the offsets along
    (delay, u, a, b); the delay offset stays 0. Returns the offsets (P, 4), the flow (P,)
    and the Jacobian (P, 4, K) with respect to (u, a, b offsets; Fp) at the solution.
    """
    n_pix = a64.shape[0]
    delta = np.zeros(lo.shape)
    flo, fhi = FP_RANGE
    c0 = st.c0
    fp = np.clip(np.einsum("pk,pk->p", a64, c0) / np.maximum(np.einsum("pk,pk->p", c0, c0), 1e-30), flo, fhi)
    q = st.curve(delta)
    cost = np.sum((a64 - fp[:, None] * q) ** 2, axis=1)
    lam = np.full(n_pix, 1e-3)
    eye = np.eye(_NP)
    jd = np.empty((n_pix, _NP, a64.shape[1]))
    for _ in range(iterations):
        jd[:, :3] = fp[:, None, None] * st.gradient(delta)
        jd[:, 3] = q
        r = a64 - fp[:, None] * q
        jtj = np.matmul(jd, jd.transpose(0, 2, 1))
        scale = np.sqrt(np.einsum("pii->pi", jtj)) + 1e-30
        jtj_s = jtj / (scale[:, :, None] * scale[:, None, :]) + lam[:, None, None] * eye
        jtr = np.matmul(jd, r[..., None])[..., 0] / scale
        step = np.linalg.solve(jtj_s, jtr[..., None])[..., 0] / scale
        step = np.where(np.isfinite(step), step, 0.0)
        new_delta = delta.copy()
        new_delta[:, 1:] = np.clip(delta[:, 1:] + step[:, :3], lo[:, 1:], hi[:, 1:])
        new_fp = np.clip(fp + step[:, 3], flo, fhi)
        new_q = st.curve(new_delta)
        new_cost = np.sum((a64 - new_fp[:, None] * new_q) ** 2, axis=1)
        better = new_cost < cost
        delta = np.where(better[:, None], new_delta, delta)
        fp = np.where(better, new_fp, fp)
        q = np.where(better[:, None], new_q, q)
        cost = np.where(better, new_cost, cost)
        lam = np.where(better, lam * 0.3, lam * 5.0)
    jd[:, :3] = fp[:, None, None] * st.gradient(delta)
    jd[:, 3] = q
    return delta, fp, jd


def _recentred_search(table: BtexTable, a64: FloatArray, centre: NDArray[np.intp]) -> NDArray[np.intp]:
    """Follow the cost down the grid from ``centre`` (P, 4); returns the final centre node.

    The local quadratic model is valid near its centre node, so after each solve (steps of
    up to ``_RECENTRE_STEP`` grid steps; the delay stays) the centre moves to the nearest
    node and the solve is repeated until it stays put. This follows the long, flat valleys
    of the cost (flow against transit time and PS) across the grid.
    """
    shape = np.asarray(table.shape)
    inner_lo = np.minimum(1, shape - 1)
    inner_hi = np.maximum(shape - 2, 0)
    inner_lo[0] = 0
    inner_hi[0] = shape[0] - 1
    centre = np.clip(centre, inner_lo, inner_hi)
    active = np.ones(centre.shape[0], dtype=bool)
    for _ in range(_RECENTRE_ITERATIONS):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        st = _stencil(table, centre[idx])
        lo = np.maximum(-_RECENTRE_STEP, -centre[idx]).astype(np.float64)
        hi = np.minimum(_RECENTRE_STEP, shape - 1 - centre[idx]).astype(np.float64)
        lo[:, 0] = 0.0
        hi[:, 0] = 0.0
        d, _, _ = _gauss_newton(a64[idx], st, lo, hi, _RECENTRE_LM_ITERATIONS)
        new = np.clip(np.rint(centre[idx] + d).astype(np.intp), inner_lo, inner_hi)
        moved = np.any(new != centre[idx], axis=1)
        centre[idx] = new
        active[idx[~moved]] = False
    return centre


def _final_fit(
    table: BtexTable, a64: FloatArray, centre: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Levenberg-Marquardt at the centre's (whole-sample) delay, rates within one step."""
    shape = np.asarray(table.shape)
    st = _stencil(table, centre)
    lo = np.maximum(-1.0, -centre).astype(np.float64)
    hi = np.minimum(1.0, shape - 1 - centre).astype(np.float64)
    lo[:, 0] = 0.0
    hi[:, 0] = 0.0
    delta, fp, jd = _gauss_newton(a64, st, lo, hi)
    resid2 = np.sum((a64 - fp[:, None] * st.curve(delta)) ** 2, axis=1)
    return centre + delta, fp, resid2, jd


def _inside_box(pos: FloatArray, fp: FloatArray) -> NDArray[np.bool_]:
    """True where the parameters at grid positions ``pos`` (P, 4) and flows lie in the box."""
    u, ra, rb = _rates(np.zeros(pos.shape, dtype=np.intp), pos)
    p = rates_to_params(u, ra, rb, fp)
    tol = 1.1
    result: NDArray[np.bool_] = (
        (p["Vp"] >= VP_RANGE[0] / tol)
        & (p["Vp"] <= VP_RANGE[1] * tol)
        & (p["PS"] >= PS_RANGE[0] / tol)
        & (p["PS"] <= PS_RANGE[1] * tol)
        & (p["Visf"] >= VISF_RANGE[0] / tol)
        & (p["Visf"] <= VISF_RANGE[1] * tol)
    )
    return result


def _node_cost(table: BtexTable, a: NDArray[np.float32], node: NDArray[np.intp]) -> NDArray[np.float32]:
    """Cost (squared distance minus ``||a||^2``) of grid nodes (P, 4), flow solved within its bounds."""
    flat = np.ravel_multi_index(tuple(node.T), table.shape)
    coef = table.coef.reshape(-1, table.coef.shape[-1])[flat]
    norm2 = table.norm2.reshape(-1)[flat]
    dot = np.einsum("pk,pk->p", coef, a)
    scale = np.clip(dot / norm2, table.flow_lo.reshape(-1)[flat], table.flow_hi.reshape(-1)[flat])
    result: NDArray[np.float32] = scale * (scale * norm2 - 2.0 * dot)
    return result


def _locate(
    table: BtexTable, a: NDArray[np.float32], coarse: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Best fit per pixel.

    1. Exhaustive search over a coarse sub-grid of the rates for every delay (one matrix
       product per delay).
    2. At the delay of the best coarse match: Levenberg-Marquardt on a local quadratic
       model of the unit-flow curve (from the neighbours of the current node) with the
       flow as a linear parameter, re-centred on the nearest node until it settles, and a
       last solve with the rates within one grid step.
    3. The same at every other whole-sample delay, outwards from the first, each starting
       from the settled node of its neighbouring delay (the optimum usually moves little
       from one delay to the next) or from its own coarse match, whichever fits better.

    The delay with the smallest residual wins. (The cost is nearly flat along a valley
    where a later delay trades against a higher flow, so every delay is fitted.)

    Returns
    -------
    pos : (P, 4) grid position (whole-sample delay; fractional u, a, b)
    fp : (P,) flow (ml/min/g)
    resid2 : (P,) squared distance in coefficient space at the solution
    cov : (P, 4, 4) inverse normal matrix in (u, a, b grid units; flow) for uncertainties
    """
    n_pix = a.shape[0]
    n_delays = table.shape[0]
    starts, coarse_cost = _coarse_search(table, a, coarse)
    rows = np.arange(n_pix)
    a64 = a.astype(np.float64)
    pos_best = np.full((n_pix, 4), np.nan)
    fp_best = np.full(n_pix, np.nan)
    resid_best = np.full(n_pix, np.inf)
    jd_best = np.zeros((n_pix, _NP, a.shape[1]))
    score_best = np.full(n_pix, np.inf)

    def consider(sel: NDArray[np.intp], centre: NDArray[np.intp]) -> None:
        pos, fp, resid2, jd = _final_fit(table, a64[sel], centre)
        # Prefer solutions inside the parameter box (10 % tolerance) over equally good
        # ones outside it: outside, the flow trades against volumes the box excludes.
        score = np.where(_inside_box(pos, fp), resid2, resid2 * _OUTSIDE_PENALTY + 1e-30)
        better = score < score_best[sel]
        upd = sel[better]
        score_best[upd] = score[better]
        pos_best[upd] = pos[better]
        fp_best[upd] = fp[better]
        resid_best[upd] = resid2[better]
        jd_best[upd] = jd[better]

    # The delay of the best coarse match first, then outwards one delay at a time, each
    # search starting from the settled node of the neighbouring delay.
    first = np.argmin(coarse_cost, axis=1)
    centre0 = _recentred_search(table, a64, starts[rows, first])
    consider(rows, centre0)
    previous = {1: centre0, -1: centre0}
    for step in range(1, n_delays):
        for direction in (1, -1):
            delay = first + direction * step
            sel = np.nonzero((delay >= 0) & (delay < n_delays))[0]
            if sel.size == 0:
                continue
            warm = previous[direction][sel].copy()
            warm[:, 0] = delay[sel]
            cold = starts[sel, delay[sel]]
            use_warm = _node_cost(table, a[sel], warm) <= _node_cost(table, a[sel], cold)
            start = np.where(use_warm[:, None], warm, cold)
            centre = _recentred_search(table, a64[sel], start)
            consider(sel, centre)
            updated = previous[direction].copy()
            updated[sel] = centre
            previous[direction] = updated
    result = (pos_best, fp_best, resid_best, jd_best)
    assert result is not None
    pos, fp, resid2, jd = result
    jtj = np.einsum("pik,pjk->pij", jd, jd) + 1e-12 * np.eye(_NP)
    with np.errstate(all="ignore"):
        cov = np.linalg.pinv(jtj)
    return pos, fp, resid2, cov


def _parameters_and_sd(
    pos: FloatArray, fp: FloatArray, cov: FloatArray, sigma2: FloatArray, dt_s: float
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Model parameters and their standard deviations from grid positions and flow."""
    centre = np.zeros(pos.shape, dtype=np.intp)
    u, ra, rb = _rates(centre, pos)
    params = rates_to_params(u, ra, rb, fp)
    params["delay_s"] = pos[:, 0] * dt_s
    du, da, db = (np.log(ax[1] / ax[0]) for ax in grid_axes())
    zero = np.zeros_like(fp)
    vp, ps, visf = params["Vp"], params["PS"], params["Visf"]
    # Rows: d(parameter) / d(u, a, b offsets; Fp). The delay is searched on the sample
    # grid; its uncertainty is not estimated.
    rows = {
        "Fp": [zero, zero, zero, np.ones_like(fp)],
        "Vp": [-vp * du, zero, zero, vp / fp],
        "PS": [-ps * du, ps * da, zero, ps / fp],
        "Visf": [-visf * du, visf * da, -visf * db, visf / fp],
    }
    sd = {}
    for name, row in rows.items():
        g = np.stack(row, axis=1)  # (P, 4)
        var = np.einsum("pi,pij,pj->p", g, cov, g) * sigma2
        sd[name] = np.sqrt(np.maximum(var, 0.0))
    return params, sd


def _threads() -> int:
    """Worker threads for the fit: ``QPERF_THREADS`` if set, else the CPU count (at most 4)."""
    text = os.environ.get("QPERF_THREADS", "")
    if text.strip().isdigit() and int(text) > 0:
        return int(text)
    return min(4, os.cpu_count() or 1)


def fit_btex(
    model: BtexModel,
    tissue_mmol_l: ArrayLike,
    aif: FloatArray,
    time_s: FloatArray,
    dt_s: float,
    mask: ArrayLike | None,
    max_delay_s: float,
    hematocrit: float,
) -> FitResult:
    """Pixel-wise BTEX fit; see :meth:`qperf.kinetics.btex.BtexModel.fit`."""
    n = time_s.shape[0]
    tissue = check_tissue(tissue_mmol_l, n)
    pix_shape = tuple(tissue.shape[:-1])
    fit_mask = check_mask(mask, pix_shape)
    max_delay = check_max_delay(max_delay_s)
    n_delays = int(np.floor(max_delay / dt_s + 1e-9)) + 1
    n_delays = max(1, min(n_delays, n - 2))

    flat = tissue.reshape(-1, n)
    status = np.full(flat.shape[0], FitStatus.MASKED, dtype=np.int8)
    finite = np.all(np.isfinite(flat), axis=1)
    clean = np.where(np.isfinite(flat), flat, 0.0)
    peak = np.max(np.abs(clean), axis=1)
    spread = np.ptp(clean, axis=1)
    m = fit_mask.reshape(-1)
    status[m & ~finite] = FitStatus.INVALID_INPUT
    flat_signal = ~(spread > 1e-9 * np.maximum(peak, 1e-30)) | ~(peak > 0)
    status[m & finite & flat_signal] = FitStatus.NO_SIGNAL
    todo = np.nonzero(m & finite & ~flat_signal)[0]

    names = ("Fp", "PS", "Vp", "Visf", "delay_s")
    params = {k: np.full(flat.shape[0], np.nan) for k in names}
    sds = {k: np.full(flat.shape[0], np.nan) for k in ("Fp", "PS", "Vp", "Visf")}
    nrmse = np.full(flat.shape[0], np.nan)
    if todo.size:
        table = build_table(model, aif, dt_s, n_delays)
        coarse = _coarse_candidates(table.shape)

        def run(chunk: NDArray[np.intp]) -> None:
            y64 = flat[chunk]
            a = y64.astype(np.float32) @ table.basis
            pos, fp, resid2, cov = _locate(table, a, coarse)
            ynorm2 = np.sum(y64 * y64, axis=1)
            a64 = a.astype(np.float64)
            err2 = np.maximum(ynorm2 - np.sum(a64 * a64, axis=1), 0.0) + resid2
            sigma2 = err2 / max(n - _NP - 1, 1)
            values, sd = _parameters_and_sd(pos, fp, cov, sigma2, dt_s)
            ok = np.all(np.isfinite(pos), axis=1) & np.isfinite(err2) & np.isfinite(fp)
            for name in names:
                params[name][chunk] = np.where(ok, values[name], np.nan)
            for name in sds:
                sds[name][chunk] = np.where(ok, sd[name], np.nan)
            nrmse[chunk] = np.where(ok, np.sqrt(err2 / np.maximum(ynorm2, 1e-30)), np.nan)
            status[chunk] = np.where(ok, FitStatus.OK, FitStatus.FAILED)

        chunks = [todo[i : i + CHUNK_PIXELS] for i in range(0, todo.size, CHUNK_PIXELS)]
        workers = max(1, min(_threads(), len(chunks)))
        if workers == 1:
            for chunk in chunks:
                run(chunk)
        else:
            # numpy releases the GIL in its array loops: chunks run in parallel threads.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, chunks))

    out_params = {k: params[k].reshape(pix_shape) for k in names}
    vb = out_params["Vp"] / (1.0 - hematocrit)
    return FitResult(
        model=model.name,
        params=out_params,
        status=status.reshape(pix_shape),
        nrmse=nrmse.reshape(pix_shape),
        units=model.units,
        map_names=model._map_names(),
        sd={k: v.reshape(pix_shape) for k, v in sds.items()},
        derived={"vb_ml_g": vb},
    )
