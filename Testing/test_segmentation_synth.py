"""Training data for real scans: label maps, label-driven synthesis, partial labels, real cine anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.nn import functional as F

from qperf.phantom.cine import CineFrame, derive_rv, load_cine_frames
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.augment import make_sample
from qperf.segmentation.labelmaps import FIRST_BACKGROUND, cine_label_map, phantom_label_map
from qperf.segmentation.synth import SynthConfig, synthesize
from qperf.segmentation.train import drawn_mask, partial_cross_entropy, soft_dice_loss


def _region_curve(item, label: int) -> np.ndarray:
    data = item.series.dynamic
    return data[:, item.labels == label].mean(axis=1)


def test_phantom_label_map_has_the_heart_and_many_background_classes() -> None:
    lm = phantom_label_map(3)
    present = set(np.unique(lm.classes).tolist())
    assert {1, 2, 3} <= present
    background = [c for c in present if c >= FIRST_BACKGROUND]
    assert len(background) >= 4 and all(lm.kinds[c] for c in background)
    assert set(lm.points_yx) == {"anterior", "inferior"}
    labels = lm.labels()
    for y, x in lm.points_yx.values():
        # the insertion points lie where the RV meets the LV myocardium
        iy, ix = int(round(y)), int(round(x))
        window = labels[iy - 4 : iy + 5, ix - 4 : ix + 5]
        assert (window == 2).any() and (window == 3).any()


def test_synthesised_series_put_the_labels_on_the_anatomy() -> None:
    lm = phantom_label_map(5)
    for seed in range(6):
        item = synthesize(lm, np.random.default_rng(seed))
        series = item.series
        assert item.labels.shape == series.shape
        assert {1, 2} <= set(np.unique(item.labels).tolist())
        lv = _region_curve(item, 1)
        myo = _region_curve(item, 2)
        # the LV pool enhances, and before the myocardium peaks
        assert lv.max() - lv[:2].mean() > 0.5 * (myo.max() - myo[:2].mean())
        assert np.argmax(lv) <= np.argmax(ndimage.uniform_filter1d(myo, 3)) + 1
        assert 1.2 - 1e-6 <= series.spacing_mm[0] <= 3.0 + 1e-6
        assert 30 <= series.n_frames - series.n_pd_frames <= 120


@pytest.mark.slow
def test_synthesis_covers_the_contrast_of_real_scans_with_margin() -> None:
    """Ranges measured on real series (LV peak / baseline 2.8-25, LV / myocardium baseline
    0.47-1.40, bright background / myocardium 2.0-7.1) lie inside what the synthesis draws."""
    lm = phantom_label_map(8)
    cfg = SynthConfig(p_gd_units=0.0, p_breathing=0.0, noise=(0.02, 0.021), p_pd=0.0)
    lv_ratio, base_ratio, bright = [], [], []
    for seed in range(60):
        item = synthesize(lm, np.random.default_rng(100 + seed), cfg)
        lv, myo = _region_curve(item, 1), _region_curve(item, 2)
        lv_ratio.append(lv.max() / lv[:2].mean())
        base_ratio.append(lv[:2].mean() / myo[:2].mean())
        first = item.series.dynamic[0]
        bright.append(np.percentile(first[item.labels == 0], 90) / myo[:2].mean())
    assert min(lv_ratio) < 2.8 and max(lv_ratio) > 25
    assert min(base_ratio) < 0.47 and max(base_ratio) > 1.4
    assert max(bright) > 7.1


def test_synthesis_is_reproducible() -> None:
    lm = phantom_label_map(1)
    a = synthesize(lm, np.random.default_rng(7))
    b = synthesize(lm, np.random.default_rng(7))
    np.testing.assert_array_equal(a.series.data, b.series.data)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_synthetic_slices_make_network_samples() -> None:
    item = synthesize(phantom_label_map(2), np.random.default_rng(3))
    x, y, heat, has = make_sample(item, np.random.default_rng(4), size=64)
    assert x.shape == (pre.N_CHANNELS, 64, 64) and y.shape == (64, 64)
    assert np.all(np.isfinite(x))


def test_partial_cross_entropy_leaves_undrawn_classes_out() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, generator=gen)
    target = torch.randint(0, 3, (2, 8, 8), generator=gen)  # no RV drawn anywhere
    everything = drawn_mask([frozenset({1, 2, 3})] * 2, 4)
    assert float(partial_cross_entropy(logits, target, everything)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-5
    )
    no_rv = drawn_mask([frozenset({1, 2})] * 2, 4)
    swapped = logits[:, [3, 1, 2, 0]]  # background and RV exchanged
    # with the RV not drawn, background pixels may be either: exchanging them changes nothing
    assert float(partial_cross_entropy(swapped, target, no_rv)) == pytest.approx(
        float(partial_cross_entropy(logits, target, no_rv)), rel=1e-6
    )
    # with it drawn, it does
    assert float(partial_cross_entropy(swapped, target, everything)) != pytest.approx(
        float(partial_cross_entropy(logits, target, everything)), rel=1e-3
    )
    # the soft Dice of a class no sample drew does not enter the loss
    only_lv = drawn_mask([frozenset({1})] * 2, 4)
    perfect = F.one_hot(target, 4).permute(0, 3, 1, 2).float() * 50.0
    assert float(soft_dice_loss(perfect, target, 4, only_lv)) < 0.05


def test_partial_labels_match_the_marginal_probability() -> None:
    logits = torch.tensor([[[[0.0]], [[1.0]], [[2.0]], [[3.0]]]])  # one pixel, four classes
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    p = torch.softmax(logits, dim=1)[0, :, 0, 0]
    loss = float(partial_cross_entropy(logits, target, drawn_mask([frozenset({1, 2})], 4)))
    assert loss == pytest.approx(-float(torch.log(p[0] + p[3])), rel=1e-6)


def _drawn_heart(shape: tuple[int, int] = (120, 120)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r = np.hypot(yy - 60, xx - 64)
    lv = r < 14
    myo = (r >= 14) & (r < 22)
    rv = (np.hypot(yy - 60, xx - 40) < 20) & (r >= 23)
    image = np.full(shape, 30.0)
    image[lv | rv] = 200.0
    image[myo] = 60.0
    return image, lv, myo, rv


def test_rv_derived_from_bright_blood_beside_the_septum() -> None:
    image, lv, myo, rv = _drawn_heart()
    found = derive_rv(image, lv, myo, (1.3, 1.3))
    assert found is not None
    inter = np.count_nonzero(found & rv)
    assert 2 * inter / (found.sum() + rv.sum()) > 0.85
    # a thin bright strip of fat along the wall is not an RV
    strip = image.copy()
    strip[rv] = 30.0
    yy, xx = np.mgrid[0:120, 0:120]
    strip[(np.abs(np.hypot(yy - 60, xx - 64) - 24) < 1.2)] = 200.0
    assert derive_rv(strip, lv, myo, (1.3, 1.3)) is None


def test_cine_label_map_marks_what_was_drawn() -> None:
    image, lv, myo, rv = _drawn_heart()
    with_all = cine_label_map(CineFrame(image.astype(np.float32), lv, myo, rv, (1.3, 1.3), "x", 0))
    assert with_all.drawn == frozenset({1, 2, 3})
    assert (with_all.classes >= FIRST_BACKGROUND).any()
    lv_only = cine_label_map(CineFrame(image.astype(np.float32), lv, None, None, (1.3, 1.3), "x", 1))
    assert lv_only.drawn == frozenset({1})
    assert not (lv_only.labels() == 2).any()
    item = synthesize(lv_only, np.random.default_rng(0))
    assert item.drawn == frozenset({1}) and not item.points_yx


def test_real_cine_anatomy_and_rv(shared_data: Path) -> None:
    path = shared_data / "sunnybrook_cine" / "sunnybrook_cine_labelled.npz"
    frames = load_cine_frames(path, ("SC-HF-I-5",), with_myocardium=True)
    assert len(frames) == 9
    with_rv = [f for f in frames if f.rv is not None]
    assert len(with_rv) >= 6
    for f in with_rv:
        # the RV touches the myocardium and never overlaps the LV labels
        assert not (f.rv & (f.lv | f.myocardium)).any()
        assert (ndimage.binary_dilation(f.myocardium, iterations=4) & f.rv).any()


def test_crops_away_from_the_heart_hold_little_or_no_heart() -> None:
    item = synthesize(phantom_label_map(4), np.random.default_rng(5))
    from qperf.segmentation.augment import AugmentConfig

    near = make_sample(item, np.random.default_rng(1), AugmentConfig(), size=64)[1]
    away = [make_sample(item, np.random.default_rng(k), AugmentConfig(p_away=1.0), size=64)[1] for k in range(4)]
    heart = np.isin(near, (1, 2, 3)).mean()
    assert heart > 0.05
    assert all(np.isin(y, (1, 2, 3)).mean() < 0.5 * heart for y in away)
