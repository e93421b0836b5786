"""Displacement-field utilities and the registration engines against known displacements."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from qperf.errors import ValidationError
from qperf.motion import compose, invert, jacobian_determinant, warp_images, warp_labels
from qperf.motion.engine_sitk import register_batch as register_sitk
from qperf.motion.engine_torch import TorchSettings, lncc_and_gradient, register_batch, spline_matrix
from qperf.motion.fields import sample_field
from qperf.motion.synthetic import low_rank_frames


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _texture(rng: np.random.Generator, shape: tuple[int, int] = (64, 64), sigma: float = 3.0) -> np.ndarray:
    img = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (img / img.std()).astype(np.float32)


def _smooth_field(rng: np.random.Generator, n: int, shape: tuple[int, int], amp: float) -> np.ndarray:
    f = np.stack([[ndimage.gaussian_filter(rng.standard_normal(shape), 10) for _ in range(2)] for _ in range(n)])
    f /= np.abs(f).max()
    return (amp * f).astype(np.float32)


def test_warp_by_constant_shift_matches_scipy(rng: np.random.Generator) -> None:
    img = _texture(rng)
    shift = np.array([0.3, -1.7], np.float32)
    field = np.broadcast_to(shift[:, None, None], (2, 64, 64))
    out = warp_images(img, field)
    expected = ndimage.shift(img.astype(np.float64), -shift, order=1, mode="nearest")
    assert np.allclose(out[5:-5, 5:-5], expected[5:-5, 5:-5], atol=1e-4)


def test_spline_warp_keeps_fine_detail(rng: np.random.Generator) -> None:
    """B-spline resampling is exact at whole pixels and blurs a fine texture less than cubic
    convolution at half a pixel (shifted there and back)."""
    img = _texture(rng, sigma=1.0)
    whole = np.broadcast_to(np.array([2.0, -1.0], np.float32)[:, None, None], (2, 64, 64))
    out = warp_images(img, whole, mode="spline")
    np.testing.assert_allclose(out[:-2, 1:], img[2:, :-1], atol=1e-4)
    half = np.broadcast_to(np.array([0.5, 0.5], np.float32)[:, None, None], (2, 64, 64))
    errors = {}
    for mode in ("bicubic", "spline"):
        back = warp_images(warp_images(img, half, mode=mode), -half, mode=mode)
        errors[mode] = float(np.abs(back - img)[8:-8, 8:-8].mean())
    assert errors["spline"] < 0.7 * errors["bicubic"]  # about 0.53
    single = warp_images(img, half[None], mode="spline")
    assert single.shape == (1, 64, 64) and single.dtype == np.float32


def test_compose_equals_two_warps(rng: np.random.Generator) -> None:
    img = _texture(rng, sigma=5.0)
    a = _smooth_field(rng, 2, (64, 64), 3.0)
    b = _smooth_field(rng, 2, (64, 64), 3.0)
    twice = warp_images(warp_images(np.stack([img, img]), a, mode="bicubic"), b, mode="bicubic")
    once = warp_images(np.stack([img, img]), compose(a, b), mode="bicubic")
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(twice - once)[inner].max() < 0.05 * np.abs(img).max()


def test_inverse_undoes_the_field(rng: np.random.Generator) -> None:
    u = _smooth_field(rng, 3, (64, 64), 4.0)
    w = invert(u)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(compose(u, w))[inner].max() < 0.02
    assert np.abs(compose(w, u))[inner].max() < 0.02
    img = _texture(rng, sigma=5.0)
    back = warp_images(warp_images(np.stack([img] * 3), u, mode="bicubic"), w, mode="bicubic")
    assert np.abs(back - img)[:, 8:-8, 8:-8].max() < 0.05 * np.abs(img).max()


def test_labels_stay_integer_and_move_with_the_field() -> None:
    labels = np.zeros((40, 40), np.int16)
    labels[10:20, 12:22] = 2
    labels[22:30, 5:15] = 3
    field = np.zeros((1, 2, 40, 40), np.float32)
    field[0, 0] = 3.0  # pull from 3 rows below: the square appears 3 rows higher
    out = warp_labels(labels, field)[0]
    assert set(np.unique(out)) <= {0, 2, 3}
    assert np.array_equal(out[7:17, 12:22], labels[10:20, 12:22])


def test_sample_field_and_jacobian() -> None:
    field = np.zeros((2, 2, 30, 30), np.float32)
    field[1, 0] = 1.5
    field[1, 1] = -0.5
    pts = np.array([[3.2, 4.7], [20.0, 11.5]])
    d = sample_field(field, pts)
    assert d.shape == (2, 2, 2)
    assert np.allclose(d[0], 0) and np.allclose(d[1], [[1.5, -0.5], [1.5, -0.5]])
    assert np.allclose(jacobian_determinant(field), 1.0)
    folding = np.zeros((1, 2, 30, 30), np.float32)
    folding[0, 1] = -2.0 * np.arange(30)[None, :]  # x -> x - 2x: orientation reversed
    assert (jacobian_determinant(folding) < 0).all()


def test_field_validation() -> None:
    with pytest.raises(ValidationError, match="disp_px"):
        invert(np.zeros((3, 30, 30)))
    with pytest.raises(ValidationError, match="finite"):
        invert(np.full((1, 2, 8, 8), np.nan))
    with pytest.raises(ValidationError, match="images"):
        warp_images(np.zeros((2, 10, 10)), np.zeros((3, 2, 10, 10)))
    with pytest.raises(ValidationError, match="labels"):
        warp_labels(np.full((10, 10), 0.5), np.zeros((1, 2, 10, 10)))


def test_lncc_gradient_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 1, 14, 11, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, 1, 14, 11, dtype=torch.float64, generator=g)
    w = torch.rand(1, 1, 14, 11, dtype=torch.float64, generator=g)
    s, grad = lncc_and_gradient(a, b, 5, w)
    (auto,) = torch.autograd.grad(s.sum(), a)
    assert torch.allclose(grad, auto, atol=1e-10)


def test_spline_matrix_reproduces_constants() -> None:
    m = spline_matrix(50, 100, 8.0)
    assert np.allclose(m @ np.ones(m.shape[1]), 1.0)


def test_leave_one_out_synthetic_frames() -> None:
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((3, 20, 20))
    coef = rng.standard_normal((12, 3))
    frames = np.einsum("tk,kyx->tyx", coef, basis).astype(np.float32) + 5.0
    # an exactly low-rank series is reproduced by rank 3, frame by frame, without seeing the frame
    assert np.allclose(low_rank_frames(frames, 3), frames, atol=1e-3)
    assert np.allclose(low_rank_frames(frames, 0), (frames.sum(0) - frames) / 11, atol=1e-4)


@pytest.mark.parametrize("engine", ["torch", "sitk"])
def test_known_subpixel_shifts_recovered(engine: str, rng: np.random.Generator) -> None:
    """The standard registration test: known sub-pixel translations of one image, with contrast changes."""
    ref = _texture(rng, (64, 64), 2.5) + 3.0
    shifts = np.array([[0.3, -0.7], [1.4, 0.6], [-2.2, 1.1], [0.0, 0.0], [-0.45, -1.8]], np.float32)
    fields = np.broadcast_to(shifts[:, :, None, None], (5, 2, 64, 64))
    moving = warp_images(np.stack([ref] * 5), fields, mode="bicubic")
    moving *= np.array([1.0, 1.6, 0.7, 1.2, 2.0], np.float32)[:, None, None]  # intensity scale changes
    moving += np.array([0, 0.5, -0.3, 0.1, 0.8], np.float32)[:, None, None]
    if engine == "torch":
        u = register_batch(moving, np.stack([ref] * 5), settings=TorchSettings())
    else:
        u = register_sitk(moving, np.stack([ref] * 5))
    # moving(q) = ref(q + s): the pull field from ref's grid into moving is -s
    est = np.median(u[:, :, 12:-12, 12:-12].reshape(5, 2, -1), axis=2)
    tol = 0.08 if engine == "torch" else 0.15
    assert np.abs(est + shifts).max() < tol, est
