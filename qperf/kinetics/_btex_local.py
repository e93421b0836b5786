"""Local solves on the node models of the BTEX table, vectorised over pixels.

Around every node of the table the unit-flow curve is modelled by a quadratic in the rate
offsets ``delta = (u, a, b)`` (grid steps), from the node, its axis neighbours and three
diagonal neighbours (the ``stencil``, ``(10, K)`` per node; :mod:`qperf.kinetics._btex_search`
builds it). The curve and its derivatives at an offset are one small matrix product with a
row of monomials of the offset; Levenberg-Marquardt fits the offsets with the flow as a
linear parameter and solves its normal equations by an elementwise Cholesky factorisation.
Measured on 49,152 noisy pixels (80 frames, 7 delays): about 40 iterations per pixel at
about 0.5 us each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.kinetics._btex_lut import FP_RANGE, grid_axes
from qperf.kinetics.base import FloatArray

#: Re-centrings of :func:`recentred_search` at most.
RECENTRE_ITERATIONS = 10
#: Largest offset (grid steps) of a solve before it is re-centred.
RECENTRE_STEP = 5.0
#: Iterations of each solve of :func:`recentred_search`: short solves restarted at every new
#: centre found the best fit more often, in fewer steps, than longer or continued ones.
RECENTRE_LM_ITERATIONS = 3
_STEP_TOLERANCE = 1e-3  # grid steps (and flow fraction): a smaller proposed step ends a pixel's solve
_COMPACT_FRACTION = 0.3  # stopped fraction of the working set that triggers its compaction
N_FITTED = 4  # u, a, b offsets and Fp (the delay is searched, not fitted)

PAIRS = ((0, 1), (0, 2), (1, 2))  # (u, a), (u, b), (a, b): mixed second differences
N_TERMS = 1 + 3 + 3 + len(PAIRS)  # node, first and second differences, mixed differences


def _monomial_tables() -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp], NDArray[np.float32]]:
    """Constant, linear and quadratic parts of :func:`_monomials` as index tables."""
    const = np.zeros((4, N_TERMS), dtype=np.float32)
    linear = np.zeros((3, 4, N_TERMS), dtype=np.float32)
    const[0, 0] = 1.0
    for i in range(3):
        linear[i, 0, 1 + i] = 1.0  # curve: delta_i * first difference
        const[1 + i, 1 + i] = 1.0  # derivative: first difference
        linear[i, 1 + i, 4 + i] = 1.0  # derivative: delta_i * second difference
    for j, (i1, i2) in enumerate(PAIRS):
        linear[i2, 1 + i1, 7 + j] = 1.0
        linear[i1, 1 + i2, 7 + j] = 1.0
    pairs = np.array([(0, 0), (1, 1), (2, 2), *PAIRS], dtype=np.intp)  # curve terms 4..9
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


def node_model(stencil: NDArray[np.float32], delta: FloatArray) -> NDArray[np.float32]:
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


def node_index(shape: tuple[int, ...], centre: NDArray[np.intp]) -> NDArray[np.intp]:
    """Flat indices of the grid nodes ``centre`` (P, 4) in a grid of ``shape`` ``(D, U, A, B)``."""
    result: NDArray[np.intp] = np.ravel_multi_index(tuple(centre.T), shape)
    return result


def solve_spd(matrix: FloatArray, rhs: FloatArray) -> FloatArray:
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


def _propose(
    a: NDArray[np.float32],
    stencil: NDArray[np.float32],
    lo: FloatArray,
    hi: FloatArray,
    state: list[NDArray[Any]],
) -> tuple[FloatArray, FloatArray, NDArray[np.float32], NDArray[np.float32], FloatArray]:
    """One damped step from ``state`` = (delta, fp, g, resid, cost, lam): the proposed
    offsets, flow, model, residual and cost.

    The Jacobian with respect to (Fp; u, a, b offsets) is the model ``g`` scaled by
    ``(1, Fp, Fp, Fp)``; that diagonal cancels in the normal equations scaled to unit
    diagonal, which are therefore formed from ``g g^T`` and ``g r`` alone.
    """
    delta, fp, g, resid, _, lam = state
    gram = np.matmul(g, g.transpose(0, 2, 1)).astype(np.float64)  # (P, 4, 4)
    grad = np.einsum("pik,pk->pi", g, resid).astype(np.float64)  # (P, 4)
    inv_scale = 1.0 / (np.sqrt(np.einsum("pii->pi", gram)) + 1e-30)
    system = gram * inv_scale[:, :, None] * inv_scale[:, None, :]
    diag = np.arange(N_FITTED)
    system[:, diag, diag] += lam[:, None]
    step = solve_spd(system, grad * inv_scale) * inv_scale
    step[~np.isfinite(step)] = 0.0
    new_fp = np.clip(fp + step[:, 0], *FP_RANGE)
    new_delta = np.clip(delta + step[:, 1:] / fp[:, None], lo, hi)
    new_g = node_model(stencil, new_delta)
    new_resid = a - new_fp[:, None].astype(np.float32) * new_g[:, 0]
    new_cost = np.einsum("pk,pk->p", new_resid, new_resid).astype(np.float64)
    return new_delta, new_fp, new_g, new_resid, new_cost


def levenberg_marquardt(
    a: NDArray[np.float32],
    stencil: NDArray[np.float32],
    lo: FloatArray,
    hi: FloatArray,
    iterations: int,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.float32]]:
    """Rate offsets and flow minimising ``||a - Fp q(delta)||`` within bounds, node model fixed.

    Steps that do not lower the cost are rejected and the damping raised; vectorised over
    pixels, from the node (``delta = 0``) and its best flow. A pixel stops once a proposed
    step moves its offsets by less than ``_STEP_TOLERANCE`` grid steps and its flow by less
    than that fraction. ``lo`` and ``hi`` (P, 3) bound the offsets along ``u, a, b``; the
    flow stays within ``FP_RANGE``.

    Returns the offsets (P, 3), the flow (P,), the cost (P,) and the Jacobian (P, 4, K)
    with respect to (u, a, b offsets; Fp) at the solution.
    """
    g = np.ascontiguousarray(stencil[:, :4])  # the model at the node: curve and first differences
    c0 = g[:, 0]
    fp = np.einsum("pk,pk->p", a, c0) / np.maximum(np.einsum("pk,pk->p", c0, c0), 1e-30)
    fp = np.clip(fp.astype(np.float64), *FP_RANGE)
    resid = a - fp[:, None].astype(np.float32) * c0
    cost = np.einsum("pk,pk->p", resid, resid).astype(np.float64)
    # Working copies of the pixels still iterating (inputs, then the state delta, fp, g,
    # resid, cost, lam); results go back where pixels stop.
    act = np.arange(a.shape[0])
    inputs: list[NDArray[Any]] = [a, stencil, lo, hi]
    state: list[NDArray[Any]] = [np.zeros((a.shape[0], 3)), fp, g, resid, cost, np.full(a.shape[0], 1e-3)]
    delta, fp, g, cost = state[0].copy(), fp.copy(), g.copy(), cost.copy()
    done = np.zeros(a.shape[0], dtype=bool)
    for _ in range(iterations):
        if act.size == 0:
            break
        new: list[NDArray[Any]] = list(_propose(inputs[0], inputs[1], inputs[2], inputs[3], state))
        better = new[4] < state[4]
        small = (np.max(np.abs(new[0] - state[0]), axis=1) < _STEP_TOLERANCE) & (
            np.abs(new[1] - state[1]) < _STEP_TOLERANCE * state[1]
        )
        better &= ~done
        done |= small
        worse = np.nonzero(~better)[0]  # rejected steps (usually few) keep the previous state
        for proposed, previous in zip(new, state[:5], strict=True):
            proposed[worse] = previous[worse]
        state = [*new, state[5] * np.where(better, 0.3, 5.0)]
        # Stopped pixels keep their state; the working set shrinks once enough have stopped.
        if np.count_nonzero(done) > _COMPACT_FRACTION * act.size:
            stopped = act[done]
            delta[stopped], fp[stopped], g[stopped], cost[stopped] = (state[i][done] for i in (0, 1, 2, 4))
            keep = ~done
            act, done = act[keep], done[keep]
            inputs = [x[keep] for x in inputs]
            state = [x[keep] for x in state]
    delta[act], fp[act], g[act], cost[act] = state[0], state[1], state[2], state[4]
    jd = np.empty_like(g)
    jd[:, :3] = fp[:, None, None].astype(np.float32) * g[:, 1:]
    jd[:, 3] = g[:, 0]
    return delta, fp, cost, jd


def recentred_search(
    stencils: NDArray[np.float32], shape: tuple[int, ...], a: NDArray[np.float32], centre: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.float32]]:
    """Follow the cost down the grid from the nodes ``centre`` (P, 4) at their delay and fit there.

    The local quadratic model is valid near its centre node, so after each solve (steps of
    up to ``RECENTRE_STEP`` grid steps; the delay stays) the centre moves to the node
    nearest the solution and the solve is repeated there until the centre stays put. This
    follows the long, flat valleys of the cost (flow against transit time and PS) across
    the grid. A pixel whose solve leads back to the node it came from (the optimum lies
    between two nodes) stops there too.

    Parameters
    ----------
    stencils : ndarray of float32, shape ``(D * U * A * B, 10, K)``
        The node models of the table.
    shape : tuple of int
        The table's grid ``(D, U, A, B)``.
    a : ndarray of float32, shape ``(P, K)``
        The pixels' coefficients.
    centre : ndarray of intp, shape ``(P, 4)``
        Start nodes (delay, u, a, b).

    Returns
    -------
    The grid position (P, 4), flow (P,), squared residual (P,) and Jacobian (P, 4, K) as
    :func:`levenberg_marquardt` returns them.
    """
    grid = np.asarray(shape)
    inner_lo, inner_hi = np.minimum(1, grid - 1), np.maximum(grid - 2, 0)
    inner_lo[0], inner_hi[0] = 0, grid[0] - 1
    n_pix = centre.shape[0]
    centre = np.clip(centre, inner_lo, inner_hi)
    pos = centre.astype(np.float64)
    flow, resid2 = np.zeros(n_pix), np.zeros(n_pix)
    jd = np.zeros((n_pix, N_FITTED, a.shape[1]), dtype=np.float32)
    active = np.arange(n_pix)
    before = np.full_like(centre, -1)  # the centre before the last move
    for _ in range(RECENTRE_ITERATIONS):
        if active.size == 0:
            break
        here = centre[active]
        lo = np.maximum(-RECENTRE_STEP, -here[:, 1:]).astype(np.float64)
        hi = np.minimum(RECENTRE_STEP, grid[1:] - 1 - here[:, 1:]).astype(np.float64)
        d, flow[active], resid2[active], jd[active] = levenberg_marquardt(
            a[active], stencils[node_index(shape, here)], lo, hi, RECENTRE_LM_ITERATIONS
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
