"""Search of the BTEX look-up table, vectorised over pixels.

For every pixel: an exhaustive search over a coarse sub-grid of the rates at every delay,
then Levenberg-Marquardt on a local quadratic model of the unit-flow curve with the flow as
a linear parameter, re-centred on the nearest node until it settles
(:mod:`qperf.kinetics._btex_local`), at the whole-sample delays around the best coarse
match; the best fit wins. See :func:`locate`.

The cost has long, flat valleys (the plasma volume, which moves ``u`` and ``a`` together,
and the delay both trade against the flow), so a single descent from the coarse match often
ends short of the best fit: re-centring follows a valley across the grid, and each delay
near the coarse match gets its own search. The quadratic model of every node is computed
once per table (:func:`prepare_search`, 0.1 s). Measured on 49,152 noisy pixels (80 frames,
7 delays): a coarse search of about 6 us and about 40 local iterations per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qperf.kinetics._btex_local import (
    N_FITTED,
    N_TERMS,
    PAIRS,
    levenberg_marquardt,
    node_index,
    rates_at,
    recentred_search,
)
from qperf.kinetics._btex_lut import PS_RANGE, VISF_RANGE, VP_RANGE, BtexTable, rates_to_params
from qperf.kinetics.base import FloatArray

_FINAL_LM_ITERATIONS = 5
_OUTSIDE_PENALTY = 4.0
# A direction of the delay search stops for a pixel once its fit has worsened at this many
# successive delays. The best coarse match tends to lie one or two samples late (the coarse
# rate grid cannot follow a steep upslope, a later curve makes up for it), so the search
# goes further towards earlier delays.
_PRUNE_AFTER = {1: 1, -1: 2}
_COARSE_BLOCK = 256  # pixels per product of the coarse search


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
    for j, (i1, i2) in enumerate(PAIRS):
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
    flat = node_index(search.shape, node)
    coef = search.stencil[flat, 0]
    norm2 = table.norm2.reshape(-1)[flat]
    dot = np.einsum("pk,pk->p", coef, a)
    scale = np.clip(dot / norm2, table.flow_lo.reshape(-1)[flat], table.flow_hi.reshape(-1)[flat])
    result: NDArray[np.float32] = scale * (scale * norm2 - 2.0 * dot)
    return result


def _box_score(pos: FloatArray, fp: FloatArray, resid2: FloatArray) -> FloatArray:
    """The residual, raised outside the parameter box (10 % tolerance).

    Solutions inside the box are preferred over equally good ones outside it: outside, the
    flow trades against volumes the box excludes.
    """
    result: FloatArray = np.where(_inside_box(pos, fp), resid2, resid2 * _OUTSIDE_PENALTY + 1e-30)
    return result


@dataclass(eq=False)
class _Best:
    """The best solution of every pixel so far: grid position, flow, residual, Jacobian, score."""

    pos: FloatArray
    fp: FloatArray
    resid2: FloatArray
    jd: NDArray[np.float32]
    score: FloatArray

    @classmethod
    def empty(cls, n_pix: int, n_coef: int) -> _Best:
        return cls(
            pos=np.full((n_pix, 4), np.nan),
            fp=np.full(n_pix, np.nan),
            resid2=np.full(n_pix, np.inf),
            jd=np.zeros((n_pix, N_FITTED, n_coef), dtype=np.float32),
            score=np.full(n_pix, np.inf),
        )

    def keep(
        self, sel: NDArray[np.intp], pos: FloatArray, fp: FloatArray, resid2: FloatArray, jd: NDArray[np.float32]
    ) -> FloatArray:
        """Keep the solutions of the pixels ``sel`` (each once) that beat their best; returns their scores."""
        score = _box_score(pos, fp, resid2)
        better = score < self.score[sel]
        upd = sel[better]
        self.score[upd] = score[better]
        self.pos[upd] = pos[better]
        self.fp[upd] = fp[better]
        self.resid2[upd] = resid2[better]
        self.jd[upd] = jd[better]
        return score


@dataclass(eq=False)
class _Sweep:
    """The delay search in one direction (``sign`` +1: later delays, -1: earlier).

    Attributes: the node where each pixel settled at the last delay searched, its score there,
    and the number of successive delays at which its fit has worsened.
    """

    sign: int
    previous: NDArray[np.intp]
    last: FloatArray
    worse: NDArray[np.intp]

    def begin(
        self, search: SearchTable, a: NDArray[np.float32], starts: NDArray[np.intp], first: NDArray[np.intp], step: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """The pixels searched at ``step`` delays from ``first`` and their start nodes (P, 4).

        A pixel starts from the node where the neighbouring delay settled (the optimum
        usually moves little from one delay to the next) or from its own coarse match,
        whichever fits better.
        """
        delay = first + self.sign * step
        inside = (delay >= 0) & (delay < search.shape[0])
        sel = np.nonzero(inside & (self.worse < _PRUNE_AFTER[self.sign]))[0]
        warm = self.previous[sel].copy()
        warm[:, 0] = delay[sel]
        cold = starts[sel, delay[sel]]
        use_warm = _node_cost(search, a[sel], warm) <= _node_cost(search, a[sel], cold)
        return sel, np.where(use_warm[:, None], warm, cold)

    def advance(self, sel: NDArray[np.intp], pos: FloatArray, score: FloatArray) -> None:
        """Record where the pixels ``sel`` settled and whether their fit worsened."""
        rising = score > self.last[sel]
        self.worse[sel] = np.where(rising, self.worse[sel] + 1, 0)
        self.last[sel] = score
        updated = self.previous.copy()
        updated[sel] = np.rint(pos).astype(np.intp)
        self.previous = updated


def _sweep_delays(
    search: SearchTable,
    a: NDArray[np.float32],
    starts: NDArray[np.intp],
    first: NDArray[np.intp],
    best: _Best,
    settled: FloatArray,
    score: FloatArray,
) -> None:
    """Search the delays outwards from ``first``, one delay at a time, keeping the best fits.

    Both directions are searched in one batch (fewer, larger array operations); a pixel may
    then appear twice, so the improvements are kept one direction after the other.
    """
    centre = np.rint(settled).astype(np.intp)
    sweeps = [_Sweep(sign, centre, score.copy(), np.zeros(a.shape[0], dtype=np.intp)) for sign in (1, -1)]
    for step in range(1, search.shape[0]):
        picked = [sweep.begin(search, a, starts, first, step) for sweep in sweeps]
        both = np.concatenate([sel for sel, _ in picked])
        if both.size == 0:
            break
        begins = np.concatenate([begin for _, begin in picked])
        pos, fp, resid2, jd = recentred_search(search.stencil, search.shape, a[both], begins)
        offset = 0
        for sweep, (sel, _) in zip(sweeps, picked, strict=True):
            part = slice(offset, offset + sel.size)
            offset += sel.size
            sweep.advance(sel, pos[part], best.keep(sel, pos[part], fp[part], resid2[part], jd[part]))


def _polish(search: SearchTable, a: NDArray[np.float32], best: _Best) -> None:
    """Solve the best fits to convergence at their nodes, the rates within one grid step.

    The search solves only roughly (few iterations per node).
    """
    ok = np.nonzero(np.isfinite(best.fp))[0]
    node = np.rint(best.pos[ok]).astype(np.intp)
    grid = np.asarray(search.shape)
    lo = np.maximum(-1.0, -node[:, 1:]).astype(np.float64)
    hi = np.minimum(1.0, grid[1:] - 1 - node[:, 1:]).astype(np.float64)
    stencils = search.stencil[node_index(search.shape, node)]
    d, fp, resid2, jd = levenberg_marquardt(a[ok], stencils, lo, hi, _FINAL_LM_ITERATIONS)
    better = resid2 < best.resid2[ok]
    upd = ok[better]
    best.pos[upd, 1:] = node[better, 1:] + d[better]
    best.fp[upd] = fp[better]
    best.resid2[upd] = resid2[better]
    best.jd[upd] = jd[better]


def _covariance(jd: NDArray[np.float32]) -> FloatArray:
    """Inverse normal matrices (P, 4, 4) of the Jacobians (P, 4, K), by pseudo-inverse where singular."""
    jd64 = jd.astype(np.float64)
    jtj = np.einsum("pik,pjk->pij", jd64, jd64) + 1e-12 * np.eye(N_FITTED)
    with np.errstate(all="ignore"):
        cov = np.linalg.inv(jtj)
        bad = ~np.all(np.isfinite(cov), axis=(1, 2))
        if bad.any():
            cov[bad] = np.linalg.pinv(jtj[bad])
    result: FloatArray = cov
    return result


def locate(search: SearchTable, a: NDArray[np.float32]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Best fit per pixel.

    1. Exhaustive search over a coarse sub-grid of the rates for every delay (one matrix
       product per delay, flow within its bounds; :func:`coarse_search`).
    2. At the delay of the best coarse match: the re-centred local search
       (:func:`qperf.kinetics._btex_local.recentred_search`).
    3. The same at the other whole-sample delays, outwards from the first (:class:`_Sweep`);
       a direction stops once the fit has worsened at ``_PRUNE_AFTER[direction]``
       successive delays.
    4. The best solution solved to convergence at its node (:func:`_polish`).

    The delay with the smallest residual wins: the cost is nearly flat along a valley where
    a later delay trades against a higher flow, so delays are fitted one by one rather than
    chosen from the coarse search.

    Returns
    -------
    pos : (P, 4) grid position (whole-sample delay; fractional u, a, b)
    fp : (P,) flow (ml/min/g)
    resid2 : (P,) squared distance in coefficient space at the solution
    cov : (P, 4, 4) inverse normal matrix in (u, a, b grid units; flow) for uncertainties
    """
    starts, coarse_cost = coarse_search(search, a)
    rows = np.arange(a.shape[0])
    best = _Best.empty(a.shape[0], a.shape[1])
    first = np.argmin(coarse_cost, axis=1)
    pos, fp, resid2, jd = recentred_search(search.stencil, search.shape, a, starts[rows, first])
    score = best.keep(rows, pos, fp, resid2, jd)
    _sweep_delays(search, a, starts, first, best, pos, score)
    if _FINAL_LM_ITERATIONS:
        _polish(search, a, best)
    return best.pos, best.fp, best.resid2, _covariance(best.jd)
