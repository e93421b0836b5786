"""Search of the BTEX look-up table, vectorised over pixels.

For every pixel: an exhaustive search over a coarse sub-grid of the rates at every delay,
then Levenberg-Marquardt on a local quadratic model of the unit-flow curve (from a node,
its axis neighbours and three diagonal neighbours) with the flow as a linear parameter,
re-centred on the nearest node until it settles, at every whole-sample delay; the best
fit wins. See :func:`locate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qperf.kinetics._btex_lut import (
    FP_RANGE,
    PS_RANGE,
    VISF_RANGE,
    VP_RANGE,
    BtexTable,
    grid_axes,
    rates_to_params,
)
from qperf.kinetics.base import FloatArray

_RECENTRE_ITERATIONS = 10
_RECENTRE_STEP = 3.0
_RECENTRE_LM_ITERATIONS = 5
_OUTSIDE_PENALTY = 4.0
_PRUNE_AFTER = 2
N_FITTED = 4  # u, a, b offsets and Fp (the delay is searched, not fitted)


def coarse_search(
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


def rates_at(centre: NDArray[np.intp], delta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
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
    eye = np.eye(N_FITTED)
    jd = np.empty((n_pix, N_FITTED, a64.shape[1]))
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
    u, ra, rb = rates_at(np.zeros(pos.shape, dtype=np.intp), pos)
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


def locate(
    table: BtexTable, a: NDArray[np.float32], coarse: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Best fit per pixel.

    1. Exhaustive search over a coarse sub-grid of the rates for every delay (one matrix
       product per delay).
    2. At the delay of the best coarse match: Levenberg-Marquardt on a local quadratic
       model of the unit-flow curve (from the neighbours of the current node) with the
       flow as a linear parameter, re-centred on the nearest node until it settles, and a
       last solve with the rates within one grid step.
    3. The same at the other whole-sample delays, outwards from the first, each starting
       from the settled node of its neighbouring delay (the optimum usually moves little
       from one delay to the next) or from its own coarse match, whichever fits better;
       a direction stops once the fit has worsened at two successive delays.

    The delay with the smallest residual wins. (The cost is nearly flat along a valley
    where a later delay trades against a higher flow, so delays are fitted one by one
    rather than chosen from the coarse search.)

    Returns
    -------
    pos : (P, 4) grid position (whole-sample delay; fractional u, a, b)
    fp : (P,) flow (ml/min/g)
    resid2 : (P,) squared distance in coefficient space at the solution
    cov : (P, 4, 4) inverse normal matrix in (u, a, b grid units; flow) for uncertainties
    """
    n_pix = a.shape[0]
    n_delays = table.shape[0]
    starts, coarse_cost = coarse_search(table, a, coarse)
    rows = np.arange(n_pix)
    a64 = a.astype(np.float64)
    pos_best = np.full((n_pix, 4), np.nan)
    fp_best = np.full(n_pix, np.nan)
    resid_best = np.full(n_pix, np.inf)
    jd_best = np.zeros((n_pix, N_FITTED, a.shape[1]))
    score_best = np.full(n_pix, np.inf)

    def consider(sel: NDArray[np.intp], centre: NDArray[np.intp]) -> FloatArray:
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
        return score

    # The delay of the best coarse match first, then outwards one delay at a time, each
    # search starting from the settled node of the neighbouring delay. A direction stops
    # for a pixel once its fit has worsened at _PRUNE_AFTER successive delays.
    first = np.argmin(coarse_cost, axis=1)
    centre0 = _recentred_search(table, a64, starts[rows, first])
    score0 = consider(rows, centre0)
    previous = {1: centre0, -1: centre0}
    last = {1: score0.copy(), -1: score0.copy()}
    worse = {1: np.zeros(n_pix, dtype=np.intp), -1: np.zeros(n_pix, dtype=np.intp)}
    for step in range(1, n_delays):
        for direction in (1, -1):
            delay = first + direction * step
            sel = np.nonzero((delay >= 0) & (delay < n_delays) & (worse[direction] < _PRUNE_AFTER))[0]
            if sel.size == 0:
                continue
            warm = previous[direction][sel].copy()
            warm[:, 0] = delay[sel]
            cold = starts[sel, delay[sel]]
            use_warm = _node_cost(table, a[sel], warm) <= _node_cost(table, a[sel], cold)
            start = np.where(use_warm[:, None], warm, cold)
            centre = _recentred_search(table, a64[sel], start)
            score = consider(sel, centre)
            rising = score > last[direction][sel]
            worse[direction][sel] = np.where(rising, worse[direction][sel] + 1, 0)
            last[direction][sel] = score
            updated = previous[direction].copy()
            updated[sel] = centre
            previous[direction] = updated
    result = (pos_best, fp_best, resid_best, jd_best)
    assert result is not None
    pos, fp, resid2, jd = result
    jtj = np.einsum("pik,pjk->pij", jd, jd) + 1e-12 * np.eye(N_FITTED)
    with np.errstate(all="ignore"):
        cov = np.linalg.pinv(jtj)
    return pos, fp, resid2, cov
