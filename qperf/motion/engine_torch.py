"""Batched non-rigid registration in torch: every frame of a series in one batch.

Each frame ``m`` of ``moving`` is registered to the frame ``f`` of ``fixed`` with the same index:
find the pull field ``u`` (pixels, ``(2, y, x)``) such that ``m(p + u(p)) ~ f(p)``.

Model
-----
- Transform: a cubic-spline-interpolated control grid (spacing ``grid_spacing_px`` pixels),
  added to an optional initial field; the grid is refined (halved spacing) on the finest level.
- Similarity: squared local normalised cross-correlation (LNCC, box window ``window_px``),
  insensitive to local affine intensity changes, so residual contrast differences between a
  frame and its synthetic target (or a proton-density frame and a dynamic one) do not pull the
  field; optionally weighted by a spatial weight map (the heart region).
- Regulariser: membrane energy (squared first differences) of the control-grid displacements,
  plus a weak penalty on their Laplacian (bending).
- Optimiser: Adam, a fixed number of iterations per level of a Gaussian image pyramid
  (factors ``levels``), step size decreasing with the level.

All frames share one computation graph: the cost per iteration is a few convolutions and one
``grid_sample`` over the whole ``(t, y, x)`` block, so 60 frames cost little more than a few.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from qperf.motion.fields import warp_t


@dataclass(frozen=True)
class TorchSettings:
    """Parameters of :func:`register_batch`.

    Attributes
    ----------
    levels : tuple of int
        Pyramid down-sampling factors, coarse to fine.
    iterations : tuple of int
        Adam iterations per level.
    learning_rate_px : tuple of float
        Adam step size per level, in full-resolution pixels.
    grid_spacing_px : tuple of float
        Control-point spacing per level, in full-resolution pixels.
    window_px : int
        LNCC box window (pixels of the level; odd).
    smoothness : float
        Weight of the membrane energy of the control grid.
    """

    levels: tuple[int, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (50, 40, 20)
    learning_rate_px: tuple[float, ...] = (0.8, 0.3, 0.1)
    grid_spacing_px: tuple[float, ...] = (16.0, 12.0, 8.0)
    window_px: int = 7
    smoothness: float = 0.3


#: Schedules used by :func:`qperf.motion.correct_series`: the first round starts from no motion
#: (coarse levels), middle rounds refine a warm start at half resolution, the last round adds
#: the full resolution.
FIRST_ROUND = TorchSettings(
    levels=(4, 2), iterations=(50, 30), learning_rate_px=(0.8, 0.3), grid_spacing_px=(16.0, 12.0)
)
MIDDLE_ROUND = TorchSettings(levels=(2,), iterations=(30,), learning_rate_px=(0.3,), grid_spacing_px=(12.0,))
LAST_ROUND = TorchSettings(levels=(2, 1), iterations=(20, 15), learning_rate_px=(0.2, 0.1), grid_spacing_px=(12.0, 8.0))

PD_FRAMES = TorchSettings(
    levels=(4, 2), iterations=(60, 40), learning_rate_px=(0.8, 0.3), grid_spacing_px=(32.0, 24.0), window_px=11
)


def _smooth_resample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Low-pass (two box passes, about a Gaussian of sigma ``0.5 factor``) then resample by ``1/factor``."""
    if factor == 1:
        return x
    x = box_mean(box_mean(x, factor + 1), factor + 1)
    h = max((x.shape[-2] - 1) // factor + 1, 4)
    w = max((x.shape[-1] - 1) // factor + 1, 4)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)


def _bspline(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cubic B-spline kernel."""
    a = np.abs(u)
    return np.where(a < 1, 2.0 / 3.0 - a**2 + 0.5 * a**3, np.where(a < 2, (2.0 - a) ** 3 / 6.0, 0.0))


def spline_matrix(n_out: int, n_full: int, spacing_px: float) -> NDArray[np.float64]:
    """Matrix ``(n_out, g + 2)`` from cubic B-spline coefficients to samples along one axis.

    ``g = round((n_full - 1) / spacing_px) + 1`` control points span the full-resolution axis
    (pixels ``0 .. n_full - 1``), with one more beyond each end; the ``n_out`` samples are spread
    evenly over the same span (a pyramid level).
    """
    g = max(int(round((n_full - 1) / spacing_px)) + 1, 2)
    step = (n_full - 1) / (g - 1)
    pos = np.linspace(0.0, n_full - 1, n_out)
    knots = np.arange(-1, g + 1) * step
    return np.asarray(_bspline((pos[:, None] - knots[None, :]) / step))


def _spline_field(ctrl: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor) -> torch.Tensor:
    """Dense field ``(n, 2, y, x)`` from coefficients ``(n, 2, gy, gx)``: ``ry @ ctrl @ rx.T``."""
    return torch.matmul(torch.matmul(ry, ctrl), rx.transpose(0, 1))


def _box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a ``window x window`` box (zero outside), by cumulative sums (10x faster than pooling)."""
    r = window // 2
    c = F.pad(x, (r + 1, r, 0, 0)).cumsum(-1)
    x = c[..., window:] - c[..., :-window]
    c = F.pad(x, (0, 0, r + 1, r)).cumsum(-2)
    return c[..., window:, :] - c[..., :-window, :]


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window x window`` box, counting only pixels inside the image."""
    count = _box_sum(torch.ones((1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device), window)
    return _box_sum(x, window) / count


def lncc_map(a: torch.Tensor, b: torch.Tensor, window: int, eps: float = 1e-3) -> torch.Tensor:
    """Squared local normalised cross-correlation per pixel, ``(n, 1, y, x)`` in [0, 1]."""
    m = box_mean(torch.cat((a, b, a * a, b * b, a * b), dim=1), window)
    ma, mb = m[:, 0:1], m[:, 1:2]
    va = m[:, 2:3] - ma * ma
    vb = m[:, 3:4] - mb * mb
    cov = m[:, 4:5] - ma * mb
    return cov * cov / (va.clamp_min(0) * vb.clamp_min(0) + eps)


def lncc_and_gradient(
    a: torch.Tensor, b: torch.Tensor, window: int, weight: torch.Tensor, eps: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted sum of squared LNCC and its analytic gradient with respect to ``a``.

    ``S = sum_c weight_c cov_c^2 / (var_a,c var_b,c + eps)`` over window centres ``c``;
    returns ``(S per frame (n,), dS/da (n, 1, y, x))``. Twice as fast as autograd through the
    box filters.
    """
    count = _box_sum(torch.ones((1, 1, *a.shape[-2:]), dtype=a.dtype, device=a.device), window)
    m = _box_sum(torch.cat((a, b, a * a, b * b, a * b), dim=1), window) / count
    ma, mb = m[:, 0:1], m[:, 1:2]
    va = (m[:, 2:3] - ma * ma).clamp_min(0)
    vb = (m[:, 3:4] - mb * mb).clamp_min(0)
    cov = m[:, 4:5] - ma * mb
    den = va * vb + eps
    cc = cov * cov / den
    coef_a = 2.0 * cov / (den * count) * weight
    coef_b = 2.0 * cov * cov * vb / (den * den * count) * weight
    s = _box_sum(torch.cat((coef_a, coef_a * mb, coef_b, coef_b * ma), dim=1), window)
    grad = b * s[:, 0:1] - s[:, 1:2] - a * s[:, 2:3] + s[:, 3:4]
    return (cc * weight).sum(dim=(1, 2, 3)), grad


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Per-frame zero mean, unit standard deviation (so ``eps`` of LNCC has one meaning)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def _central_gradient(x: torch.Tensor) -> torch.Tensor:
    """Central-difference gradient ``(n, 2, y, x)`` (d/dy, d/dx) of ``(n, 1, y, x)`` images."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    return torch.cat((gy, gx), dim=1)


class _Adam:
    """Adam on one tensor, computed as ``torch.optim.Adam`` with its defaults computes it on the CPU.

    Written out because constructing ``torch.optim.Adam`` imports ``torch._dynamo`` (1.5 s, a
    tenth of a one-click analysis); the fields it gives are identical to the bit.

    References
    ----------
    Kingma DP, Ba J. Adam: a method for stochastic optimization. ICLR 2015.
    """

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.eps = param, lr, eps
        self.beta1, self.beta2 = betas
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.n_steps = 0

    def zero_grad(self) -> None:
        self.param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grad = self.param.grad
        assert grad is not None
        self.n_steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = self.lr / (1 - self.beta1**self.n_steps)
        denom = (self.exp_avg_sq.sqrt() / (1 - self.beta2**self.n_steps) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-step_size)


def register_batch(
    moving: NDArray[np.float32],
    fixed: NDArray[np.float32],
    *,
    init_px: NDArray[np.float32] | None = None,
    weight: NDArray[np.float32] | None = None,
    settings: TorchSettings | None = None,
    device: torch.device | str = "cpu",
) -> NDArray[np.float32]:
    """Register ``moving[i]`` to ``fixed[i]`` for every ``i`` at once.

    Parameters
    ----------
    moving, fixed : ndarray, float32, shape (n, y, x)
        Frames to move and their targets (any intensity scale; normalised per frame).
    init_px : ndarray, float32, shape (n, 2, y, x), optional
        Starting pull field (pixels); the optimised field is added to it.
    weight : ndarray, float32, shape (y, x), optional
        Non-negative weight of each pixel in the similarity (e.g. a smoothed heart region).
    settings : TorchSettings, optional
    device : torch.device or str
        Where the registration computes (the fields come back as numpy arrays).

    Returns
    -------
    ndarray, float32, shape (n, 2, y, x)
        Pull fields in pixels (dy, dx): ``moving[i](p + u[i, :, p]) ~ fixed[i](p)``.
    """
    s = settings or TorchSettings()
    n, h, w = moving.shape
    dev = torch.device(device)

    def tensor(a: NDArray[np.floating]) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).to(dev)

    mov = _normalise(tensor(moving)[:, None])
    fix = _normalise(tensor(fixed)[:, None])
    base = torch.zeros((n, 2, h, w), device=dev) if init_px is None else tensor(init_px)
    wt = torch.ones((1, 1, h, w), device=dev) if weight is None else tensor(weight)[None, None]

    ctrl: torch.Tensor | None = None
    prev: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    for factor, n_iter, lr, spacing in zip(s.levels, s.iterations, s.learning_rate_px, s.grid_spacing_px, strict=True):
        mov_l = _smooth_resample(mov, factor)
        fix_l = _smooth_resample(fix, factor)
        hl, wl = mov_l.shape[-2:]
        wt_l = F.interpolate(wt, size=(hl, wl), mode="bilinear", align_corners=True)
        wt_l = wt_l / wt_l.sum().clamp_min(1e-6)
        scale = torch.tensor([(hl - 1) / max(h - 1, 1), (wl - 1) / max(w - 1, 1)], device=dev).view(1, 2, 1, 1)
        base_l = F.interpolate(base, size=(hl, wl), mode="bilinear", align_corners=True) * scale
        full = (spline_matrix(h, h, spacing), spline_matrix(w, w, spacing))
        if ctrl is None:
            ctrl = torch.zeros((n, 2, full[0].shape[1], full[1].shape[1]), device=dev)
        elif prev is not None and (prev[0].shape != full[0].shape or prev[1].shape != full[1].shape):
            # least-squares refit of the current field on the new control grid
            ay = tensor(np.linalg.pinv(full[0]) @ prev[0])
            ax = tensor(np.linalg.pinv(full[1]) @ prev[1])
            ctrl = _spline_field(ctrl.detach(), ay, ax)
        prev = full
        ry = tensor(spline_matrix(hl, h, spacing))
        rx = tensor(spline_matrix(wl, w, spacing))
        ctrl = ctrl.detach().requires_grad_(True)
        opt = _Adam(ctrl, lr=lr)
        window = s.window_px if factor == 1 else max(5, s.window_px - 2)
        lam = s.smoothness * (spacing / 8.0) ** -2
        mov_grad = torch.cat((mov_l, _central_gradient(mov_l)), dim=1)
        for _ in range(n_iter):
            opt.zero_grad()
            disp = base_l + _spline_field(ctrl, ry, rx) * scale
            with torch.no_grad():
                warped_all = warp_t(mov_grad, disp.detach())
                _, g_warped = lncc_and_gradient(warped_all[:, :1], fix_l, window, wt_l)
                # chain rule through the warp: d warped / d disp = grad(moving) at p + disp(p)
                g_disp = -(g_warped / n) * warped_all[:, 1:3]
            dy = ctrl[:, :, 1:, :] - ctrl[:, :, :-1, :]
            dx = ctrl[:, :, :, 1:] - ctrl[:, :, :, :-1]
            reg = (dy.pow(2).mean() + dx.pow(2).mean()) * 2.0
            # One scalar whose gradient is g_disp through disp plus that of the penalty: the same
            # gradient as torch.autograd.backward([disp, lam * reg], [g_disp, 1]), without the
            # import of sympy (0.6 s) that backward with gradient tensors costs.
            ((disp * g_disp).sum() + lam * reg).backward()
            opt.step()
    assert ctrl is not None and prev is not None
    with torch.no_grad():
        out = base + _spline_field(ctrl, tensor(prev[0]), tensor(prev[1]))
    return out.cpu().numpy().astype(np.float32, copy=False)
