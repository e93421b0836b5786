"""Linear least-squares solutions of the compartment models, vectorised over pixels.

Integrating a compartment model's differential equations turns the tissue curve into a
linear combination of integrals of itself and of the AIF, so its parameters follow from one
small linear least-squares problem per pixel, without iterations or start values:

- Tofts (Murase 2004): ``C = Ktrans int(Ca) - kep int(C)``;
- extended Tofts (Murase 2004): ``C = vp Ca + (Ktrans + kep vp) int(Ca) - kep int(C)``;
- 2CXM (Flouri et al. 2016): ``C = -T int(C) - D int2(C) + Fp int(Ca) + Fp (PS/ve + PS/vp) int2(Ca)``
  with ``T = (Fp + PS)/vp + PS/ve`` and ``D = Fp PS / (vp ve)``, ``int2`` the double integral.

The integrals are cumulative trapezoids from the first sample (the curves are taken as zero
before it). The solutions are slightly biased by the integration error (a few per cent at
0.5 s sampling) and by noise entering the regressors, so they serve as the fast path
(``method="linear"``) and as start values of the nonlinear fit, which removes both.
Every function takes tissue curves ``(P, t)`` and a plasma AIF ``(t,)`` or one per pixel
``(P, t)`` (a per-pixel delay), and returns parameters in the models' units (flows ml/min/g,
``Ktrans`` /min, volumes ml/g), NaN where the solution is not physical (non-finite, or
negative rates that the model cannot produce).

References
----------
Murase K. Efficient method for calculating kinetic parameters using T1-weighted dynamic
contrast-enhanced magnetic resonance imaging. Magn Reson Med 2004;51:858-862.
Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI by linear
inversion. Magn Reson Med 2016;76:998-1006.
"""

from __future__ import annotations

import numpy as np

from qperf.kinetics.base import FloatArray


def cumulative_integral(y: FloatArray, dt_s: float) -> FloatArray:
    """Cumulative trapezoidal integral along the last axis, zero at the first sample."""
    out = np.zeros_like(y, dtype=np.float64)
    np.cumsum(0.5 * dt_s * (y[..., 1:] + y[..., :-1]), axis=-1, out=out[..., 1:])
    return out


def solve_least_squares(columns: list[FloatArray], y: FloatArray) -> FloatArray:
    """Per-pixel least squares ``y ~ sum_j b_j columns[j]``, by scaled normal equations.

    The Gram matrix is assembled from dot products: a column shared by every pixel meets the
    curves in one matrix product, so no per-pixel design matrix is built.

    Parameters
    ----------
    columns : list of ndarray of float64, each of shape ``(t,)`` or ``(P, t)``
        The regressors (shared by all pixels or per pixel).
    y : ndarray of float64, shape ``(P, t)``

    Returns
    -------
    ndarray of float64, shape ``(P, k)``; NaN rows where the system is singular.
    """
    n_pix, k = y.shape[0], len(columns)

    def dot(a: FloatArray, b: FloatArray) -> FloatArray:
        if a.ndim == 1 and b.ndim == 1:
            return np.full(n_pix, float(a @ b))
        if a.ndim == 1:
            return np.asarray(b @ a)
        if b.ndim == 1:
            return np.asarray(a @ b)
        return np.einsum("pt,pt->p", a, b)

    gram = np.empty((n_pix, k, k))
    rhs = np.empty((n_pix, k))
    for i in range(k):
        rhs[:, i] = dot(columns[i], y)
        for j in range(i, k):
            gram[:, i, j] = gram[:, j, i] = dot(columns[i], columns[j])
    scale = np.sqrt(np.maximum(np.einsum("pii->pi", gram), 0.0)) + 1e-300
    gram /= scale[:, :, None] * scale[:, None, :]
    rhs /= scale
    # A ridge far below the noise floor keeps exactly collinear columns solvable.
    gram += 1e-12 * np.eye(k)
    with np.errstate(all="ignore"):
        try:
            b = np.linalg.solve(gram, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            b = np.einsum("pjk,pk->pj", np.linalg.pinv(gram), rhs)
    out: FloatArray = b / scale
    return out


def tofts_linear(tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
    """Tofts ``(Ktrans /min, Ve ml/g)`` per pixel, shape ``(P, 2)`` (Murase 2004)."""
    b = solve_least_squares([cumulative_integral(aif, dt_s), -cumulative_integral(tissue, dt_s)], tissue)
    ktrans, kep = b[:, 0], b[:, 1]
    with np.errstate(all="ignore"):
        ve = ktrans / kep
    ok = (ktrans > 0) & (kep > 0)
    out: FloatArray = np.where(ok[:, None], np.stack([60.0 * ktrans, ve], axis=1), np.nan)
    return out


def extended_tofts_linear(tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
    """Extended Tofts ``(Ktrans /min, Ve ml/g, Vp ml/g)`` per pixel, shape ``(P, 3)`` (Murase 2004)."""
    b = solve_least_squares([aif, cumulative_integral(aif, dt_s), -cumulative_integral(tissue, dt_s)], tissue)
    vp, kep = b[:, 0], b[:, 2]
    ktrans = b[:, 1] - kep * vp
    with np.errstate(all="ignore"):
        ve = ktrans / kep
    ok = (ktrans > 0) & (kep > 0) & (vp >= 0)
    out: FloatArray = np.where(ok[:, None], np.stack([60.0 * ktrans, ve, vp], axis=1), np.nan)
    return out


def two_compartment_linear(tissue: FloatArray, aif: FloatArray, dt_s: float) -> FloatArray:
    """2CXM ``(Fp ml/min/g, PS ml/min/g, Vp ml/g, Ve ml/g)`` per pixel, shape ``(P, 4)`` (Flouri 2016).

    From ``b = (-T, -D, Fp, Fp c)`` with ``c = PS/ve + PS/vp``: ``Fp/vp = T - c``,
    ``PS/ve = D / (T - c)``, ``PS/vp = c - PS/ve``.
    """
    int_c = cumulative_integral(tissue, dt_s)
    int_a = cumulative_integral(aif, dt_s)
    b = solve_least_squares([int_c, cumulative_integral(int_c, dt_s), int_a, cumulative_integral(int_a, dt_s)], tissue)
    with np.errstate(all="ignore"):
        trace, det, fp = -b[:, 0], -b[:, 1], b[:, 2]
        c = b[:, 3] / fp
        fp_over_vp = trace - c
        ps_over_ve = det / fp_over_vp
        ps_over_vp = c - ps_over_ve
        vp = fp / fp_over_vp
        ps = vp * ps_over_vp
        ve = ps / ps_over_ve
    ok = (fp > 0) & (fp_over_vp > 0) & (ps_over_ve > 0) & (ps_over_vp > 0)
    out: FloatArray = np.where(ok[:, None], np.stack([60.0 * fp, 60.0 * ps, vp, ve], axis=1), np.nan)
    return out
