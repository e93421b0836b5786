"""Laplace-domain solution of the two-region axially distributed BTEX model.

The model (Bassingthwaighte's blood-tissue exchange, two regions: plasma and interstitium)
along a capillary of length ``L``, in the dimensionless position ``xi = x / L``::

    dCp/dt   = -u dCp/dxi - a (Cp - Cisf) + dp d2Cp/dxi2
    dCisf/dt =  b (Cp - Cisf)             + di d2Cisf/dxi2

with ``u = Fp / (60 Vp)``, ``a = PS / (60 Vp)``, ``b = PS / (60 Visf)`` (1/s; Fp and PS in
ml/min/g, Vp and Visf in ml/g), ``dp = Dp / L**2``, ``di = Disf / L**2`` (1/s).
Boundary conditions: ``Cp(0, t) = Cin(t)``, zero gradient of ``Cp`` at the outlet and of
``Cisf`` at both ends, zero initial concentrations.

The system is linear and time-invariant, so its Laplace transform in ``t`` is a linear
ODE system in ``xi`` with constant coefficients. Its characteristic polynomial is the
quartic ``(dp k^2 - u k - A)(di k^2 - B) = a b`` with ``A = s + a``, ``B = s + b``. The four
roots (found by Newton's method from the uncoupled roots, with an eigenvalue fallback)
give the general solution; the four boundary conditions give a 4 x 4 linear system,
solved by cofactors. Growing modes are written relative to the outlet so that nothing
overflows at high Peclet numbers. The result is the outflow transfer function
``H(s) = Cp(L, s) / Cin(s)``.

References
----------
Bassingthwaighte JB, Wang CY, Chan IS. Blood-tissue exchange via transport and
transformation by capillary endothelial cells. Circ Res 1989;65:997-1020.
Xue H et al. Automatic in-line quantitative myocardial perfusion mapping: processing
algorithm and implementation. Magn Reson Med 2020;83:712-730.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Capillary length (cm), plasma and interstitial axial diffusion coefficients (cm^2/s).
CAPILLARY_LENGTH_CM = 0.1
DIFFUSION_PLASMA_CM2_S = 1e-5
DIFFUSION_ISF_CM2_S = 1e-6

_NEWTON_ITERATIONS = 4


def _quartic_coefficients(
    u: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    s: NDArray[np.complex128],
    dp: float,
    di: float,
) -> tuple[NDArray[np.complex128], ...]:
    """Monic coefficients ``k^4 + c3 k^3 + c2 k^2 + c1 k + c0`` of the characteristic polynomial."""
    big_a = s + a
    big_b = s + b
    c3 = (-u / dp) + 0j * s
    c2 = -(big_b / di + big_a / dp)
    c1 = u * big_b / (dp * di)
    c0 = (big_a * big_b - a * b) / (dp * di)
    return c3, c2, c1, c0


def _roots(
    u: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    s: NDArray[np.complex128],
    dp: float,
    di: float,
) -> NDArray[np.complex128]:
    """The four roots of the characteristic quartic, shape ``(4, ...)``."""
    big_a = s + a
    big_b = s + b
    # Seeds: plasma roots with the interstitium in local equilibrium (no axial diffusion in
    # it), interstitial roots with the plasma factor evaluated at the uncoupled root.
    a_eff = big_a - a * b / big_b
    root = np.sqrt(u * u + 4.0 * dp * a_eff)
    k_fast = (u + root) / (2.0 * dp)
    k_slow = -2.0 * a_eff / (u + root)
    mu = np.sqrt(big_b / di)
    seeds = [k_fast, k_slow]
    for sign in (1.0, -1.0):
        k = sign * mu
        for _ in range(2):
            plasma = dp * k * k - u * k - big_a
            k = sign * np.sqrt((big_b + a * b / plasma) / di)
        seeds.append(k)
    ks = np.stack(np.broadcast_arrays(*seeds)).astype(np.complex128)
    c3, c2, c1, c0 = _quartic_coefficients(u, a, b, s, dp, di)
    step = np.zeros_like(ks)
    for _ in range(_NEWTON_ITERATIONS):
        p = (((ks + c3) * ks + c2) * ks + c1) * ks + c0
        dpk = ((4.0 * ks + 3.0 * c3) * ks + 2.0 * c2) * ks + c1
        with np.errstate(divide="ignore", invalid="ignore"):
            step = p / dpk
        ks = ks - step
    # Accept when converged and the four roots are distinct; otherwise use eigenvalues.
    scale = np.abs(ks).max(axis=0) + 1.0
    converged = np.all(np.abs(step) <= 1e-9 * (np.abs(ks) + 1.0), axis=0)
    gaps = [np.abs(ks[i] - ks[j]) for i in range(4) for j in range(i + 1, 4)]
    distinct = np.min(np.stack(gaps), axis=0) > 1e-7 * scale
    bad = ~(converged & distinct & np.all(np.isfinite(ks), axis=0))
    if np.any(bad):
        ks = ks.copy()
        idx = np.nonzero(bad)
        coeffs = [np.broadcast_to(c, bad.shape)[idx] for c in (c3, c2, c1, c0)]
        n = coeffs[0].shape[0]
        companion = np.zeros((n, 4, 4), dtype=np.complex128)
        companion[:, 1, 0] = 1.0
        companion[:, 2, 1] = 1.0
        companion[:, 3, 2] = 1.0
        for j, c in enumerate(reversed(coeffs)):
            companion[:, j, 3] = -c
        eig = np.linalg.eigvals(companion)
        for r in range(4):
            ks[(r,) + idx] = eig[:, r]
    return ks


def outflow_transfer(
    fp_ml_min_g: NDArray[np.float64],
    ps_ml_min_g: NDArray[np.float64],
    vp_ml_g: NDArray[np.float64],
    visf_ml_g: NDArray[np.float64],
    s: NDArray[np.complex128],
    length_cm: float = CAPILLARY_LENGTH_CM,
    dp_cm2_s: float = DIFFUSION_PLASMA_CM2_S,
    disf_cm2_s: float = DIFFUSION_ISF_CM2_S,
) -> NDArray[np.complex128]:
    """Outflow transfer function ``H(s) = Cp(L, s) / Cin(s)`` of the BTEX model.

    Parameters
    ----------
    fp_ml_min_g, ps_ml_min_g, vp_ml_g, visf_ml_g : ndarray of float64
        Model parameters; any shapes that broadcast with ``s``.
    s : ndarray of complex128
        Laplace variable (1/s), ``Re(s) > 0``.
    length_cm, dp_cm2_s, disf_cm2_s : float
        Capillary length and axial diffusion coefficients.

    Returns
    -------
    ndarray of complex128
        ``H(s)`` with the broadcast shape of the inputs.
    """
    u = np.asarray(fp_ml_min_g, dtype=np.float64) / (60.0 * np.asarray(vp_ml_g, dtype=np.float64))
    a = np.asarray(ps_ml_min_g, dtype=np.float64) / (60.0 * np.asarray(vp_ml_g, dtype=np.float64))
    b = np.asarray(ps_ml_min_g, dtype=np.float64) / (60.0 * np.asarray(visf_ml_g, dtype=np.float64))
    dp = dp_cm2_s / length_cm**2
    di = disf_cm2_s / length_cm**2
    u, a, b, s = np.broadcast_arrays(u, a, b, np.asarray(s, dtype=np.complex128))
    ks = _roots(u, a, b, s, dp, di)
    big_b = s + b
    # Mode shapes (P, I) from the interstitial equation: b P + (di k^2 - B) I = 0.
    pk = big_b - di * ks * ks
    ik = np.broadcast_to(b + 0j, ks.shape)
    norm = np.abs(pk) + np.abs(ik)
    pk = pk / norm
    ik = ik / norm
    growing = ks.real > 0
    # phi(0) and phi(1): decaying modes referenced to the inlet, growing ones to the outlet.
    with np.errstate(over="ignore", under="ignore"):
        e_far = np.exp(np.where(growing, -ks, ks))
    e0 = np.where(growing, e_far, 1.0)
    e1 = np.where(growing, 1.0, e_far)
    r1 = pk * e0  # Cp(0) = 1
    r2 = ks * ik * e0  # dCisf/dxi(0) = 0
    r3 = ks * pk * e1  # dCp/dxi(1) = 0
    r4 = ks * ik * e1  # dCisf/dxi(1) = 0
    out = pk * e1  # Cp(1)
    # Cofactors of the first row from rows 2-4 (3 x 3 determinants sharing 2 x 2 minors).
    m = {}
    for i in range(4):
        for j in range(i + 1, 4):
            m[i, j] = r3[i] * r4[j] - r3[j] * r4[i]
    cof = []
    for k in range(4):
        cols = [c for c in range(4) if c != k]
        det3 = r2[cols[0]] * m[cols[1], cols[2]] - r2[cols[1]] * m[cols[0], cols[2]] + r2[cols[2]] * m[cols[0], cols[1]]
        cof.append(det3 if k % 2 == 0 else -det3)
    num = out[0] * cof[0] + out[1] * cof[1] + out[2] * cof[2] + out[3] * cof[3]
    den = r1[0] * cof[0] + r1[1] * cof[1] + r1[2] * cof[2] + r1[3] * cof[3]
    result: NDArray[np.complex128] = num / den
    return result
