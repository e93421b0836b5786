"""Search of the BTEX look-up table, vectorised over pixels.

For every pixel: an exhaustive search over a coarse sub-grid of the rates at every delay,
then Levenberg-Marquardt on a local quadratic model of the unit-flow curve (from a node,
its axis neighbours and three diagonal neighbours) with the flow as a linear parameter,
re-centred on the nearest node until it settles, at the whole-sample delays around the
best coarse match; the best fit wins. See :func:`locate`.

Why it is shaped so. The cost has long, flat valleys (the plasma volume, which moves
``u`` and ``a`` together, and the delay both trade against the flow), so a single local
descent from the coarse match often ends short of the best fit. Re-centring follows a
valley across the grid, and each whole-sample delay near the coarse match gets its own
search. Each solve is deliberately short (a few iterations from the node, restarted at
every new centre): more, or continuing a solve across centres, was measured to cost more
steps than it saved and to find the best fit less often; the winner alone is then solved
to convergence.

Speed. The quadratic model of every node is computed once per table
(:func:`prepare_search`), so a model costs one gather of a ``(10, K)`` block per pixel,
and the curve and its derivatives at an offset are one small matrix product with a row of
monomials of the offset. The normal equations are formed from that product directly and
solved by an elementwise Cholesky factorisation; pixels leave the iterations once their
steps become negligible, and a pixel whose re-centring cycles between two nodes stops.
The fit (:mod:`qperf.kinetics._btex_fit`) passes pixels in chunks of several thousand,
which keeps the arrays near the processor's cache while amortising numpy's per-call
overhead. Measured on 49,152 noisy pixels (80 frames, 7 delays): about 40 Levenberg-
Marquardt iterations per pixel at about 0.5 us each, a coarse search of about 6 us, and
0.1 s per table for the node models.
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
_RECENTRE_STEP = 5.0
_RECENTRE_LM_ITERATIONS = 3
_FINAL_LM_ITERATIONS = 5
_STEP_TOLERANCE = 1e-3  # grid steps (and flow fraction): a smaller proposed step ends a pixel's solve
_OUTSIDE_PENALTY = 4.0
# A direction of the delay search stops for a pixel once its fit has worsened at this many
# successive delays. The best coarse match tends to lie one or two samples late (the coarse
# rate grid cannot follow a steep upslope, a later curve makes up for it), so the search
# goes further towards earlier delays.
_PRUNE_AFTER = {1: 1, -1: 2}
_COMPACT_FRACTION = 0.3  # stopped fraction of the working set that triggers its compaction
_COARSE_BLOCK = 256  # pixels per product of the coarse search
N_FITTED = 4  # u, a, b offsets and Fp (the delay is searched, not fitted)

_PAIRS = ((0, 1), (0, 2), (1, 2))  # (u, a), (u, b), (a, b): mixed second differences
N_TERMS = 1 + 3 + 3 + len(_PAIRS)  # node, first and second differences, mixed differences


@dataclass
class SearchTable:
    """A look-up table prepared for the search.

    Attributes
    ----------
    table : BtexTable
        The table.
    stencil : ndarray of float32, shape ``(D * N_U * N_A * N_B, 10, K)``
        Quadratic model of the unit-flow curve around every node, in coefficient space:
        the curve at the node, the first differences along ``u, a, b`` (central inside the
        grid, one-sided at its faces), the second differences (zero at the faces) and the
        forward mixed differences of the pairs ``(u, a), (u, b), (a, b)`` (zero at the
        upper faces).
    coarse_unit : ndarray of float32, shape ``(D, K, M)``
        Coefficients of the coarse nodes with an allowed flow, scaled to unit norm.
    coarse_lo, coarse_hi : ndarray of float32, shape ``(D, M)``
        Allowed flows of those nodes times their norms: bounds on the scale of the unit
        curves.
    coarse_nodes : ndarray of intp, shape ``(M, 3)``
        Rate indices ``(u, a, b)`` of those nodes.
    """

    table: BtexTable
    stencil: NDArray[np.float32]
    coarse_unit: NDArray[np.float32]
    coarse_lo: NDArray[np.float32]
    coarse_hi: NDArray[np.float32]
    coarse_nodes: NDArray[np.intp]

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape ``(D, N_U, N_A, N_B)``."""
        return self.table.shape


def _axis_slice(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    index = [slice(None)] * 5
    index[axis] = slice(start, stop)
    return tuple(index)


def _stencils(coef: NDArray[np.float32]) -> NDArray[np.float32]:
    """Quadratic model of every node of ``coef`` (D, U, A, B, K), shape ``(nodes, 10, K)``."""
    grid = coef.shape[:4]
    out = np.zeros(grid + (N_TERMS, coef.shape[-1]), dtype=np.float32)
    out[..., 0, :] = coef
    for i in range(3):
        axis, n = i + 1, grid[i + 1]
        if n < 2:
            continue
        jac, curv = out[..., 1 + i, :], out[..., 4 + i, :]
        up, mid, down = _axis_slice(axis, 2, n), _axis_slice(axis, 1, n - 1), _axis_slice(axis, 0, n - 2)
        jac[mid] = 0.5 * (coef[up] - coef[down])
        curv[mid] = coef[up] + coef[down] - 2.0 * coef[mid]
        jac[_axis_slice(axis, 0, 1)] = coef[_axis_slice(axis, 1, 2)] - coef[_axis_slice(axis, 0, 1)]
        jac[_axis_slice(axis, n - 1, n)] = coef[_axis_slice(axis, n - 1, n)] - coef[_axis_slice(axis, n - 2, n - 1)]
    for j, (i1, i2) in enumerate(_PAIRS):
        ax1, ax2 = i1 + 1, i2 + 1
        n1, n2 = grid[ax1], grid[ax2]
        if n1 < 2 or n2 < 2:
            continue

        def shifted(o1: int, o2: int, ax1: int = ax1, ax2: int = ax2, n1: int = n1, n2: int = n2) -> tuple[slice, ...]:
            index = [slice(None)] * 5
            index[ax1] = slice(o1, n1 - 1 + o1)
            index[ax2] = slice(o2, n2 - 1 + o2)
            return tuple(index)

        # f(+i1, +i2) - f(+i1) - f(+i2) + f(0), where both forward neighbours exist.
        out[..., 7 + j, :][shifted(0, 0)] = (
            coef[shifted(1, 1)] - coef[shifted(1, 0)] - coef[shifted(0, 1)] + coef[shifted(0, 0)]
        )
    return out.reshape(-1, N_TERMS, coef.shape[-1])


def prepare_search(table: BtexTable, coarse: NDArray[np.intp]) -> SearchTable:
    """Node models and the normalised coarse sub-grid of a table.

    ``coarse`` holds the flat indices of the coarse rate nodes within one delay, shape (M,).
    """
    n_delays = table.shape[0]
    per_delay = int(np.prod(table.shape[1:]))
    lo = table.flow_lo.reshape(n_delays, per_delay)[0, coarse]
    hi = table.flow_hi.reshape(n_delays, per_delay)[0, coarse]
    idx = coarse[lo <= hi]
    coef = table.coef.reshape(n_delays, per_delay, -1)[:, idx]  # (D, M, K)
    norm = np.sqrt(table.norm2.reshape(n_delays, per_delay)[:, idx])
    unit = coef / np.maximum(norm, 1e-30)[..., None]
    return SearchTable(
        table=table,
        stencil=_stencils(table.coef),
        coarse_unit=np.ascontiguousarray(unit.transpose(0, 2, 1)),
        coarse_lo=(lo[lo <= hi] * norm).astype(np.float32),
        coarse_hi=(hi[lo <= hi] * norm).astype(np.float32),
        coarse_nodes=np.stack(np.unravel_index(idx, table.shape[1:]), axis=1).astype(np.intp),
    )


def coarse_search(search: SearchTable, a: NDArray[np.float32]) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Best node of the coarse sub-grid for every delay, flow solved within its bounds.

    With ``c`` a node's curve scaled to unit norm, the squared distance of ``a`` from
    ``g c`` is ``||a||^2 + g (g - 2 a . c)``, minimal at ``g = a . c`` clipped to the node's
    allowed flows times its norm: one matrix product and a few passes per delay.
    Returns the nodes (P, D, 4) and their costs (P, D) (squared distance minus ``||a||^2``).
    """
    n_pix = a.shape[0]
    n_delays = search.shape[0]
    out = np.empty((n_pix, n_delays, 4), dtype=np.intp)
    out[:, :, 0] = np.arange(n_delays)
    costs = np.empty((n_pix, n_delays), dtype=np.float32)
    # Blocks of pixels small enough for the products to stay in the processor's cache.
    for start in range(0, n_pix, _COARSE_BLOCK):
        block = slice(start, min(start + _COARSE_BLOCK, n_pix))
        rows = np.arange(block.stop - block.start)
        for d in range(n_delays):
            lo, hi = search.coarse_lo[d], search.coarse_hi[d]
            dot = a[block] @ search.coarse_unit[d]  # (P, M)
            best = np.argmax(dot, axis=1)
            top = dot[rows, best]
            cost = -top * top
            # Where the best unbounded scale is outside its node's bounds, the full bounded
            # search (several passes over the products, so only there).
            clipped = np.nonzero((top < lo[best]) | (top > hi[best]))[0]
            if clipped.size:
                sub = dot[clipped]
                scale = np.minimum(np.maximum(sub, lo), hi)
                sub_cost = scale * (scale - 2.0 * sub)
                sub_best = np.argmin(sub_cost, axis=1)
                best[clipped] = sub_best
                cost[clipped] = sub_cost[np.arange(clipped.size), sub_best]
            out[block, d, 1:] = search.coarse_nodes[best]
            costs[block, d] = cost
    return out, costs


def _monomial_tables() -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp], NDArray[np.float32]]:
    """Constant, linear and quadratic parts of :func:`_monomials` as index tables."""
    const = np.zeros((4, N_TERMS), dtype=np.float32)
    linear = np.zeros((3, 4, N_TERMS), dtype=np.float32)
    const[0, 0] = 1.0
    for i in range(3):
        linear[i, 0, 1 + i] = 1.0  # curve: delta_i * first difference
        const[1 + i, 1 + i] = 1.0  # derivative: first difference
        linear[i, 1 + i, 4 + i] = 1.0  # derivative: delta_i * second difference
    for j, (i1, i2) in enumerate(_PAIRS):
        linear[i2, 1 + i1, 7 + j] = 1.0
        linear[i1, 1 + i2, 7 + j] = 1.0
    pairs = np.array([(0, 0), (1, 1), (2, 2), *_PAIRS], dtype=np.intp)  # curve terms 4..9
    weight = np.array([0.5, 0.5, 0.5, 1.0, 1.0, 1.0], dtype=np.float32)
    return const, linear.reshape(3, -1), pairs, weight


_MONOMIAL_CONST, _MONOMIAL_LINEAR, _MONOMIAL_PAIRS, _MONOMIAL_WEIGHT = _monomial_tables()


def _monomials(delta: FloatArray) -> NDArray[np.float32]:
    """Weights of the node model's terms for the curve and its derivatives at ``delta``.

    ``delta`` (P, 3) are offsets from the node along ``u, a, b`` (grid steps). Returns
    ``w`` (P, 4, 10) such that ``w @ stencil`` gives the curve (row 0) and its derivatives
    along ``u, a, b`` (rows 1-3) of the quadratic model: the curve weighs the terms by
    ``1, delta_i, delta_i^2 / 2, delta_i delta_j``, its derivative along ``i`` by their
    derivatives.
    """
    d32 = delta.astype(np.float32)
    w = (d32 @ _MONOMIAL_LINEAR).reshape(-1, 4, N_TERMS)
    w += _MONOMIAL_CONST
    w[:, 0, 4:] = d32[:, _MONOMIAL_PAIRS[:, 0]] * d32[:, _MONOMIAL_PAIRS[:, 1]] * _MONOMIAL_WEIGHT
    return w


def _model(stencil: NDArray[np.float32], delta: FloatArray) -> NDArray[np.float32]:
    """Curve and derivatives (P, 4, K) of the node models ``stencil`` (P, 10, K) at ``delta`` (P, 3)."""
    result: NDArray[np.float32] = np.matmul(_monomials(delta), stencil)
    return result


def rates_at(centre: NDArray[np.intp], delta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rates ``u, a, b`` (1/s) at fractional grid positions (P, 4)."""
    out = []
    for j, axis in enumerate(grid_axes()):
        step = np.log(axis[1] / axis[0])
        out.append(axis[0] * np.exp((centre[:, j + 1] + delta[:, j + 1]) * step))
    return out[0], out[1], out[2]


def _solve_spd(matrix: FloatArray, rhs: FloatArray) -> FloatArray:
    """Solve symmetric positive definite systems (P, n, n) x = (P, n) by Cholesky, elementwise.

    For the small systems of the fit this is several times faster than a batched
    ``np.linalg.solve``. A system that is not positive definite gives NaN.
    """
    n = matrix.shape[-1]
    low: dict[tuple[int, int], FloatArray] = {}
    inv_diag: list[FloatArray] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n):
            diag = matrix[:, j, j].copy()
            for k in range(j):
                diag -= low[j, k] * low[j, k]
            inv_diag.append(1.0 / np.sqrt(diag))
            for i in range(j + 1, n):
                off = matrix[:, i, j].copy()
                for k in range(j):
                    off -= low[i, k] * low[j, k]
                low[i, j] = off * inv_diag[j]
        y: list[FloatArray] = []
        for i in range(n):
            acc = rhs[:, i].copy()
            for k in range(i):
                acc -= low[i, k] * y[k]
            y.append(acc * inv_diag[i])
        x: list[FloatArray] = [y[0]] * n
        for i in reversed(range(n)):
            acc = y[i].copy()
            for k in range(i + 1, n):
                acc -= low[k, i] * x[k]
            x[i] = acc * inv_diag[i]
    return np.stack(x, axis=1)


def _levenberg_marquardt(
    a: NDArray[np.float32],
    stencil: NDArray[np.float32],
    lo: FloatArray,
    hi: FloatArray,
    iterations: int,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.float32]]:
    """Rate offsets and flow minimising ``||a - Fp q(delta)||`` within bounds, node model fixed.

    Levenberg-Marquardt (steps that do not lower the cost are rejected and the damping
    raised) with the normal equations scaled to unit diagonal, vectorised over pixels,
    from the node (``delta = 0``) and its best flow. A pixel stops once a proposed step
    moves its offsets by less than ``_STEP_TOLERANCE`` grid steps and its flow by less than
    that fraction. ``lo`` and ``hi`` (P, 3) bound the offsets along ``u, a, b``; the flow
    stays within ``FP_RANGE``.

    The Jacobian with respect to (Fp; u, a, b offsets) is the curve and its derivatives
    ``G`` scaled by ``(1, Fp, Fp, Fp)``; that diagonal cancels in the scaled normal
    equations, which are therefore formed from ``G G^T`` and ``G r`` alone.

    Returns the offsets (P, 3), the flow (P,), the cost (P,) and the Jacobian (P, 4, K)
    with respect to (u, a, b offsets; Fp) at the solution.
    """
    n_pix = a.shape[0]
    flo, fhi = FP_RANGE
    delta = np.zeros((n_pix, 3))
    g = np.ascontiguousarray(stencil[:, :4])  # the model at the node: curve and first differences
    c0 = g[:, 0]
    fp = np.einsum("pk,pk->p", a, c0) / np.maximum(np.einsum("pk,pk->p", c0, c0), 1e-30)
    fp = np.clip(fp.astype(np.float64), flo, fhi)
    resid = a - fp[:, None].astype(np.float32) * c0
    cost = np.einsum("pk,pk->p", resid, resid).astype(np.float64)
    lam = np.full(n_pix, 1e-3)
    diag = np.arange(N_FITTED)
    # Working copies of the pixels still iterating; results go back where pixels stop.
    act = np.arange(n_pix)
    w_a, w_st, w_lo, w_hi = a, stencil, lo, hi
    w_delta, w_fp, w_g, w_resid, w_cost, w_lam = delta, fp, g, resid, cost, lam
    delta, fp, g, cost = delta.copy(), fp.copy(), g.copy(), cost.copy()
    w_done = np.zeros(n_pix, dtype=bool)
    for _ in range(iterations):
        if act.size == 0:
            break
        gram = np.matmul(w_g, w_g.transpose(0, 2, 1)).astype(np.float64)  # (P, 4, 4)
        grad = np.einsum("pik,pk->pi", w_g, w_resid).astype(np.float64)  # (P, 4)
        inv_scale = 1.0 / (np.sqrt(np.einsum("pii->pi", gram)) + 1e-30)
        system = gram * inv_scale[:, :, None] * inv_scale[:, None, :]
        system[:, diag, diag] += w_lam[:, None]
        step = _solve_spd(system, grad * inv_scale) * inv_scale
        step[~np.isfinite(step)] = 0.0
        new_fp = np.clip(w_fp + step[:, 0], flo, fhi)
        new_delta = np.clip(w_delta + step[:, 1:] / w_fp[:, None], w_lo, w_hi)
        new_g = _model(w_st, new_delta)
        new_resid = w_a - new_fp[:, None].astype(np.float32) * new_g[:, 0]
        new_cost = np.einsum("pk,pk->p", new_resid, new_resid).astype(np.float64)
        better = new_cost < w_cost
        small = (np.max(np.abs(new_delta - w_delta), axis=1) < _STEP_TOLERANCE) & (
            np.abs(new_fp - w_fp) < _STEP_TOLERANCE * w_fp
        )
        better &= ~w_done
        w_done |= small
        # Rejected steps (usually few) keep the previous state.
        worse = np.nonzero(~better)[0]
        new_delta[worse], new_fp[worse], new_g[worse] = w_delta[worse], w_fp[worse], w_g[worse]
        new_resid[worse], new_cost[worse] = w_resid[worse], w_cost[worse]
        w_delta, w_fp, w_g, w_resid, w_cost = new_delta, new_fp, new_g, new_resid, new_cost
        w_lam = w_lam * np.where(better, 0.3, 5.0)
        # Stopped pixels keep their state; the working set shrinks once enough have stopped.
        if np.count_nonzero(w_done) > _COMPACT_FRACTION * act.size:
            done = act[w_done]
            delta[done], fp[done], g[done], cost[done] = w_delta[w_done], w_fp[w_done], w_g[w_done], w_cost[w_done]
            keep = ~w_done
            w_done = w_done[keep]
            act = act[keep]
            w_a, w_st, w_lo, w_hi = w_a[keep], w_st[keep], w_lo[keep], w_hi[keep]
            w_delta, w_fp, w_g, w_resid, w_cost, w_lam = (
                w_delta[keep],
                w_fp[keep],
                w_g[keep],
                w_resid[keep],
                w_cost[keep],
                w_lam[keep],
            )
    delta[act], fp[act], g[act], cost[act] = w_delta, w_fp, w_g, w_cost
    jd = np.empty_like(g)
    jd[:, :3] = fp[:, None, None].astype(np.float32) * g[:, 1:]
    jd[:, 3] = g[:, 0]
    return delta, fp, cost, jd


def _node_index(search: SearchTable, centre: NDArray[np.intp]) -> NDArray[np.intp]:
    result: NDArray[np.intp] = np.ravel_multi_index(tuple(centre.T), search.shape)
    return result


def _recentred_search(
    search: SearchTable, a: NDArray[np.float32], centre: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.float32]]:
    """Follow the cost down the grid from the nodes ``centre`` (P, 4) at their delay and fit there.

    The local quadratic model is valid near its centre node, so after each solve (steps of
    up to ``_RECENTRE_STEP`` grid steps; the delay stays) the centre moves to the node
    nearest the solution and the solve is repeated there until the centre stays put. This
    follows the long, flat valleys of the cost (flow against transit time and PS) across
    the grid. The solve at the node where a pixel settles, whose offsets round to zero, is
    its fit. A pixel whose solve leads back to the node it came from (the optimum lies
    between two nodes, each model placing it nearer the other) stops there too.

    Returns the grid position (P, 4), flow (P,), squared residual (P,) and Jacobian
    (P, 4, K) as :func:`_levenberg_marquardt` does.
    """
    shape = np.asarray(search.shape)
    inner_lo = np.minimum(1, shape - 1)
    inner_hi = np.maximum(shape - 2, 0)
    inner_lo[0] = 0
    inner_hi[0] = shape[0] - 1
    n_pix = centre.shape[0]
    centre = np.clip(centre, inner_lo, inner_hi)
    pos = centre.astype(np.float64)
    flow = np.zeros(n_pix)
    resid2 = np.zeros(n_pix)
    jd = np.zeros((n_pix, N_FITTED, a.shape[1]), dtype=np.float32)
    active = np.arange(n_pix)
    before = np.full_like(centre, -1)  # the centre before the last move
    for _ in range(_RECENTRE_ITERATIONS):
        if active.size == 0:
            break
        here = centre[active]
        stencil = search.stencil[_node_index(search, here)]
        lo = np.maximum(-_RECENTRE_STEP, -here[:, 1:]).astype(np.float64)
        hi = np.minimum(_RECENTRE_STEP, shape[1:] - 1 - here[:, 1:]).astype(np.float64)
        d, flow[active], resid2[active], jd[active] = _levenberg_marquardt(
            a[active], stencil, lo, hi, _RECENTRE_LM_ITERATIONS
        )
        pos[active, 1:] = here[:, 1:] + d
        new = np.clip(np.rint(pos[active]).astype(np.intp), inner_lo, inner_hi)
        new[:, 0] = here[:, 0]
        moved = np.any(new != here, axis=1)
        moved &= np.any(new != before[active], axis=1)  # back where it came from: a cycle
        before[active] = here
        centre[active] = new
        active = active[moved]
    return pos, flow, resid2, jd


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


def _node_cost(search: SearchTable, a: NDArray[np.float32], node: NDArray[np.intp]) -> NDArray[np.float32]:
    """Cost (squared distance minus ``||a||^2``) of grid nodes (P, 4), flow solved within its bounds."""
    table = search.table
    flat = _node_index(search, node)
    coef = search.stencil[flat, 0]
    norm2 = table.norm2.reshape(-1)[flat]
    dot = np.einsum("pk,pk->p", coef, a)
    scale = np.clip(dot / norm2, table.flow_lo.reshape(-1)[flat], table.flow_hi.reshape(-1)[flat])
    result: NDArray[np.float32] = scale * (scale * norm2 - 2.0 * dot)
    return result


def locate(search: SearchTable, a: NDArray[np.float32]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Best fit per pixel.

    1. Exhaustive search over a coarse sub-grid of the rates for every delay (one matrix
       product per delay, flow within its bounds; :func:`coarse_search`).
    2. At the delay of the best coarse match: Levenberg-Marquardt on a local quadratic
       model of the unit-flow curve (from the neighbours of the current node) with the
       flow as a linear parameter, re-centred on the nearest node until it settles
       (:func:`_recentred_search`).
    3. The same at the other whole-sample delays, outwards from the first, each starting
       from the settled node of its neighbouring delay (the optimum usually moves little
       from one delay to the next) or from its own coarse match, whichever fits better;
       a direction stops once the fit has worsened at ``_PRUNE_AFTER[direction]``
       successive delays.
    4. The best solution, solved to convergence at its node with the rates within one
       grid step.

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
    n_delays = search.shape[0]
    starts, coarse_cost = coarse_search(search, a)
    rows = np.arange(n_pix)
    pos_best = np.full((n_pix, 4), np.nan)
    fp_best = np.full(n_pix, np.nan)
    resid_best = np.full(n_pix, np.inf)
    jd_best = np.zeros((n_pix, N_FITTED, a.shape[1]), dtype=np.float32)
    score_best = np.full(n_pix, np.inf)

    def keep(
        sel: NDArray[np.intp],
        pos: FloatArray,
        fp: FloatArray,
        resid2: FloatArray,
        jd: NDArray[np.float32],
        score: FloatArray,
    ) -> None:
        """Keep the solutions of the pixels ``sel`` (each once) that beat their best."""
        better = score < score_best[sel]
        upd = sel[better]
        score_best[upd] = score[better]
        pos_best[upd] = pos[better]
        fp_best[upd] = fp[better]
        resid_best[upd] = resid2[better]
        jd_best[upd] = jd[better]

    def box_score(pos: FloatArray, fp: FloatArray, resid2: FloatArray) -> FloatArray:
        # Prefer solutions inside the parameter box (10 % tolerance) over equally good
        # ones outside it: outside, the flow trades against volumes the box excludes.
        result: FloatArray = np.where(_inside_box(pos, fp), resid2, resid2 * _OUTSIDE_PENALTY + 1e-30)
        return result

    # The delay of the best coarse match first, then outwards one delay at a time, each
    # search starting from the node where the neighbouring delay settled (or from its own
    # coarse match where that fits better). A direction stops for a pixel once its fit
    # has worsened at _PRUNE_AFTER[direction] successive delays. Both directions are searched in one
    # batch (fewer, larger array operations); a pixel may then appear twice, so the
    # improvements are kept one direction after the other.
    first = np.argmin(coarse_cost, axis=1)
    pos, fp, resid2, jd = _recentred_search(search, a, starts[rows, first])
    score0 = box_score(pos, fp, resid2)
    keep(rows, pos, fp, resid2, jd, score0)
    centre0 = np.rint(pos).astype(np.intp)
    directions = (1, -1)
    previous = {k: centre0 for k in directions}
    last = {k: score0.copy() for k in directions}
    worse = {k: np.zeros(n_pix, dtype=np.intp) for k in directions}
    for step in range(1, n_delays):
        sels, begins = [], []
        for direction in directions:
            delay = first + direction * step
            sel = np.nonzero((delay >= 0) & (delay < n_delays) & (worse[direction] < _PRUNE_AFTER[direction]))[0]
            warm = previous[direction][sel].copy()
            warm[:, 0] = delay[sel]
            cold = starts[sel, delay[sel]]
            use_warm = _node_cost(search, a[sel], warm) <= _node_cost(search, a[sel], cold)
            sels.append(sel)
            begins.append(np.where(use_warm[:, None], warm, cold))
        both = np.concatenate(sels)
        if both.size == 0:
            break
        pos, fp, resid2, jd = _recentred_search(search, a[both], np.concatenate(begins))
        score = box_score(pos, fp, resid2)
        offset = 0
        for direction, sel in zip(directions, sels, strict=True):
            part = slice(offset, offset + sel.size)
            offset += sel.size
            keep(sel, pos[part], fp[part], resid2[part], jd[part], score[part])
            rising = score[part] > last[direction][sel]
            worse[direction][sel] = np.where(rising, worse[direction][sel] + 1, 0)
            last[direction][sel] = score[part]
            updated = previous[direction].copy()
            updated[sel] = np.rint(pos[part]).astype(np.intp)
            previous[direction] = updated
    # The search solves only roughly (few iterations per node); the winner is solved to
    # convergence at its node.
    if _FINAL_LM_ITERATIONS:
        ok = np.nonzero(np.isfinite(fp_best))[0]
        node = np.rint(pos_best[ok]).astype(np.intp)
        shape = np.asarray(search.shape)
        lo = np.maximum(-1.0, -node[:, 1:]).astype(np.float64)
        hi = np.minimum(1.0, shape[1:] - 1 - node[:, 1:]).astype(np.float64)
        d, fp, resid2, jd = _levenberg_marquardt(
            a[ok], search.stencil[_node_index(search, node)], lo, hi, _FINAL_LM_ITERATIONS
        )
        better = resid2 < resid_best[ok]
        upd = ok[better]
        pos_best[upd, 1:] = node[better, 1:] + d[better]
        fp_best[upd] = fp[better]
        resid_best[upd] = resid2[better]
        jd_best[upd] = jd[better]
    jd64 = jd_best.astype(np.float64)
    jtj = np.einsum("pik,pjk->pij", jd64, jd64) + 1e-12 * np.eye(N_FITTED)
    with np.errstate(all="ignore"):
        cov = np.linalg.inv(jtj)
        bad = ~np.all(np.isfinite(cov), axis=(1, 2))
        if bad.any():
            cov[bad] = np.linalg.pinv(jtj[bad])
    return pos_best, fp_best, resid_best, cov
