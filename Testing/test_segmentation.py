"""Segmentation pre-processing, post-processing and training loop on drawn rings (exact truth)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from qperf import metrics
from qperf.errors import ValidationError
from qperf.segmentation import postprocess as post
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.augment import AugmentConfig, make_sample
from qperf.segmentation.network import NetConfig, ResUNet
from qperf.segmentation.rings import random_ring_slice, ring_labels, ring_series
from qperf.types import PerfusionSeries, SliceGeometry

SHAPE = (120, 130)
CENTRE = (58.0, 66.0)


@pytest.fixture(scope="module")
def ring() -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    return ring_labels(SHAPE, CENTRE, 10.0, 15.0, rv_angle_rad=math.pi)


# Pre-processing ---------------------------------------------------------------------------


def test_temporal_input_ignores_scaling_and_pd_frames(ring) -> None:
    labels, _ = ring
    a = ring_series(labels, noise=0.0, scale=1.0)
    b = ring_series(labels, noise=0.0, scale=3.7e4)
    c = ring_series(labels, noise=0.0, scale=1.0, n_pd_frames=3)
    ta, tb, tc = pre.temporal_input(a), pre.temporal_input(b), pre.temporal_input(c)
    assert ta.enhancement.shape == (pre.N_CHANNELS,) + SHAPE
    np.testing.assert_allclose(ta.enhancement, tb.enhancement, atol=1e-5)
    np.testing.assert_allclose(ta.enhancement, tc.enhancement, atol=1e-5)
    assert ta.foot_time_s == pytest.approx(tc.foot_time_s)


def test_temporal_input_frame_count_invariance(ring) -> None:
    """Twice the frames at half the interval: the same curves on the fixed grid."""
    labels, _ = ring
    a = pre.temporal_input(ring_series(labels, n_frames=50, frame_interval_s=1.0, noise=0.0))
    b = pre.temporal_input(ring_series(labels, n_frames=100, frame_interval_s=0.5, noise=0.0))
    assert abs(a.foot_time_s - b.foot_time_s) <= 0.5
    # Blood-pool and myocardial mean curves agree within a tenth of the peak.
    for k in (1, 2, 3):
        ca = a.enhancement[:, labels == k].mean(axis=1)
        cb = b.enhancement[:, labels == k].mean(axis=1)
        assert np.max(np.abs(ca - cb)) < 0.12, k  # upslopes rise ~0.4 of the peak per second
    # The bolus arrival (RV, at 8 s in the drawn series) falls on the fixed channel.
    assert a.foot_time_s == pytest.approx(8.0 + 1.0, abs=1.5)
    rv_curve = a.enhancement[:, labels == 3].mean(axis=1)
    lv_curve = a.enhancement[:, labels == 1].mean(axis=1)
    assert rv_curve[: pre.FOOT_CHANNEL - 1].max() < 0.05
    assert rv_curve[pre.FOOT_CHANNEL + 1] > 0.1
    assert int(np.argmax(rv_curve)) < int(np.argmax(lv_curve))


def test_timing_factor_brings_the_transit_into_the_known_range() -> None:
    ref, band = pre.REFERENCE_DELAY_S, pre.TIMING_BAND
    assert pre.timing_factor(None) == 1.0 and pre.timing_factor(float("nan")) == 1.0
    assert pre.timing_factor(ref) == 1.0 and pre.timing_factor(ref * band * 0.99) == 1.0
    assert 10.0 * pre.timing_factor(10.0) == pytest.approx(ref * band)
    assert 1.0 * pre.timing_factor(1.0) == pytest.approx(ref / band)
    assert pre.timing_factor(1000.0) == pytest.approx(1.0 / pre.MAX_TIME_SCALE)


def test_normalise_timing_of_a_slow_clock(ring) -> None:
    labels, _ = ring
    s = ring_series(labels, spacing_mm=(1.8, 1.8), noise=0.01, frame_interval_s=1.0)
    delay = pre.transit_delay_s(s)
    assert delay is not None
    slow = s.replace(time_s=s.time_s * 4.0)
    fixed, factor = pre.normalise_timing(slow)
    assert pre.transit_delay_s(slow) == pytest.approx(4.0 * delay, rel=0.02)
    assert 4.0 * delay * factor <= pre.REFERENCE_DELAY_S * pre.TIMING_BAND + 1e-6
    np.testing.assert_allclose(fixed.time_s - fixed.time_s[0], (slow.time_s - slow.time_s[0]) * factor)
    np.testing.assert_array_equal(fixed.data, slow.data)


def test_locate_heart_at_any_spacing(ring) -> None:
    labels, _ = ring
    for spacing in ((1.4, 1.4), (2.6, 2.6), (1.8, 2.2)):
        s = ring_series(labels, spacing_mm=spacing, noise=0.01)
        cy, cx = pre.locate_heart(pre.temporal_input(s).enhancement, s.spacing_mm)
        heart = np.argwhere(np.isin(labels, (1, 2, 3))).mean(axis=0)
        err_mm = math.hypot((cy - heart[0]) * spacing[0], (cx - heart[1]) * spacing[1])
        assert err_mm < 25.0, spacing  # well inside the 168 mm crop; the segmenter re-centres


def test_heart_candidates_include_the_heart_and_a_brighter_vessel(ring) -> None:
    labels, _ = ring
    s = ring_series(labels, spacing_mm=(1.6, 1.6), noise=0.01)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    vessel = np.hypot(yy - 100.0, xx - 110.0) <= 12.0
    data = s.data.copy()
    data[:, vessel] = 2.0 * s.data[:, labels == 1].mean(axis=1)[:, None]
    s = s.replace(data=data)
    enhancement = pre.temporal_input(s).enhancement
    found = pre.heart_candidates(enhancement, s.spacing_mm)
    assert found[0] == pre.locate_heart(enhancement, s.spacing_mm)
    heart = np.argwhere(np.isin(labels, (1, 2, 3))).mean(axis=0)

    def nearest_mm(target: tuple[float, float]) -> float:
        return min(math.hypot((c[0] - target[0]) * 1.6, (c[1] - target[1]) * 1.6) for c in found)

    assert 2 <= len(found) <= 3
    assert nearest_mm((heart[0], heart[1])) < 15.0
    assert nearest_mm((100.0, 110.0)) < 15.0
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert math.hypot((a[0] - b[0]) * 1.6, (a[1] - b[1]) * 1.6) >= pre.CANDIDATE_SEPARATION_MM
    assert pre.heart_candidates(enhancement, s.spacing_mm, max_candidates=1) == found[:1]


def test_crop_transform_round_trip_and_spacing() -> None:
    tf = pre.CropTransform.make((50.0, 40.0), (2.0, 1.0), angle_rad=0.7, scale=1.1, flip=True)
    y = np.array([3.0, 50.0, 77.5])
    x = np.array([10.0, 40.0, -5.0])
    vu = tf.original_to_grid(y, x)
    np.testing.assert_allclose(tf.grid_to_original(vu[0], vu[1]), np.stack([y, x]), atol=1e-9)
    c = (pre.CROP_PX - 1) / 2
    np.testing.assert_allclose(tf.grid_to_original(np.array([c]), np.array([c]))[:, 0], (50.0, 40.0))
    # One network pixel is GRID_SPACING_MM * scale in physical space, whatever the pixel spacing.
    p0 = tf.grid_to_original(np.array([c]), np.array([c]))[:, 0] * (2.0, 1.0)
    p1 = tf.grid_to_original(np.array([c + 1]), np.array([c]))[:, 0] * (2.0, 1.0)
    assert np.hypot(*(p1 - p0)) == pytest.approx(pre.GRID_SPACING_MM * 1.1)


def test_prepare_input_normalised_and_bad_input(ring) -> None:
    labels, _ = ring
    x, tf, _ = pre.prepare_input(ring_series(labels, scale=5e3))
    assert x.shape == (pre.N_CHANNELS, pre.CROP_PX, pre.CROP_PX)
    assert 0.8 < np.percentile(x.max(axis=0), 99.5) < 1.2
    short = PerfusionSeries(np.ones((3, 20, 20)), [0.0, 1.0, 2.0])
    with pytest.raises(ValidationError, match="dynamic frames"):
        pre.temporal_input(short)


def test_make_sample_labels_follow_image(ring) -> None:
    """Augmented crops keep the labels on the anatomy: the LV label covers the brightest late pool."""
    rng = np.random.default_rng(3)
    item = random_ring_slice(rng)
    for _ in range(3):
        x, y, heat, has = make_sample(item, rng, AugmentConfig(noise_max=0.0, p_artefact=0.0), size=64)
        assert x.shape == (pre.N_CHANNELS, 64, 64) and y.shape == (64, 64)
        lv_pos = x[pre.FOOT_CHANNEL + 8][y == 1].mean()
        bg = x[pre.FOOT_CHANNEL + 8][y == 0].mean()
        assert lv_pos > bg + 0.2
        for k in range(2):
            if has[k]:
                assert heat[k].sum() == pytest.approx(1.0, rel=1e-4)


# Post-processing --------------------------------------------------------------------------


def test_clean_labels_removes_islands_and_fills(ring) -> None:
    labels, _ = ring
    noisy = labels.copy()
    noisy[5:8, 5:8] = 1  # a spurious LV island
    noisy[100:103, 10:12] = 2  # a spurious myocardium speck
    noisy[110:113, 100:104] = 3  # a spurious RV island
    noisy[57:60, 65:68] = 2  # a papillary muscle called myocardium inside the pool
    noisy[55, 66] = 0  # a hole in the pool
    clean = post.clean_labels(noisy)
    assert metrics.dice(clean == 1, labels == 1) == 1.0
    assert metrics.dice(clean == 2, labels == 2) == 1.0
    assert metrics.dice(clean == 3, labels == 3) == 1.0


def test_papillary_muscles_attached_to_the_wall_join_the_pool(ring) -> None:
    labels, _ = ring
    notched = labels.copy()
    cy, cx = int(CENTRE[0]), int(CENTRE[1])
    notched[cy - 2 : cy + 3, cx + 6 : cx + 11] = 2  # a papillary muscle growing from the lateral wall
    notched[cy - 9 : cy - 6, cx - 3 : cx + 1] = 2  # a trabecula on the anterior wall
    clean = post.clean_labels(notched)
    assert metrics.dice(clean == 2, labels == 2) < 0.97  # clean-up alone keeps them (attached)
    filled = post.fill_pool_hull(clean)
    assert metrics.dice(filled == 2, labels == 2) > 0.99
    assert metrics.dice(filled == 1, labels == 1) > 0.99
    assert post.ring_is_closed(filled)
    # A ring that is not closed is left alone, and so is one without a pool.
    opened = clean.copy()
    opened[cy - 2 : cy + 3, cx + 6 :] = np.where(
        opened[cy - 2 : cy + 3, cx + 6 :] == 2, 0, opened[cy - 2 : cy + 3, cx + 6 :]
    )
    np.testing.assert_array_equal(post.fill_pool_hull(opened), opened)
    no_pool = np.where(clean == 1, 0, clean).astype(np.uint8)
    np.testing.assert_array_equal(post.fill_pool_hull(no_pool), no_pool)


def test_convex_hull_mask_of_a_crescent() -> None:
    yy, xx = np.mgrid[0:40, 0:40]
    disc = np.hypot(yy - 20, xx - 20) <= 12
    crescent = disc & (np.hypot(yy - 20, xx - 28) > 10)
    hull = post.convex_hull_mask(crescent)
    assert np.all(hull[crescent])
    assert hull.sum() > crescent.sum()
    assert not np.any(hull & ~ndimage.binary_dilation(disc))


def test_endocardium_refined_by_first_pass_enhancement(ring) -> None:
    labels, _ = ring
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    r = np.hypot(yy - CENTRE[0], xx - CENTRE[1])
    peak = np.where(labels == 1, 1.0, np.where(labels == 2, 0.1, 0.05))
    peak = np.where(labels == 3, 1.4, peak)
    # The network called the pool's outer layer myocardium; its pixels enhance like blood.
    thick = labels.copy()
    layer = (labels == 1) & (r > 8.0)
    thick[layer] = 2
    refined = post.refine_endocardium(thick, peak)
    assert metrics.dice(refined == 1, labels == 1) > 0.99
    assert metrics.dice(refined == 2, labels == 2) > 0.99
    # Myocardium that enhances like myocardium stays; so does the epicardial layer, even bright.
    np.testing.assert_array_equal(post.refine_endocardium(labels, peak), labels)
    bright_epi = np.where((labels == 2) & (r > 14.0), 1.0, peak)
    assert np.count_nonzero(post.refine_endocardium(labels, bright_epi) == 2) == np.count_nonzero(labels == 2)
    # Pool and myocardium not clearly apart: nothing changes.
    flat = np.where(labels > 0, 1.0, 0.0)
    np.testing.assert_array_equal(post.refine_endocardium(thick, flat), thick)


def test_ring_topology_and_thickness(ring) -> None:
    labels, _ = ring
    assert post.ring_is_closed(labels)
    opened = labels.copy()
    opened[40:76, 66 + 9 : 66 + 17] = np.where(opened[40:76, 66 + 9 : 66 + 17] == 2, 0, opened[40:76, 66 + 9 : 66 + 17])
    opened[CENTRE[0].__int__() - 2 : CENTRE[0].__int__() + 3, 66 + 9 : 66 + 17] = 1
    assert not post.ring_is_closed(opened)
    q = post.quality(opened, np.ones(SHAPE), (2.0, 2.0))
    assert "myocardium_not_closed_ring" in q.flags
    # Thickness of a 5-pixel ring at 2 mm is 10 mm.
    assert post.wall_thickness_mm(labels, (2.0, 2.0)) == pytest.approx(10.0, rel=0.12)
    q = post.quality(labels, np.full(SHAPE, 0.5), (2.0, 2.0))
    assert q.ring_closed and "low_confidence" in q.flags and "implausible_wall_thickness" not in q.flags
    q = post.quality(labels, np.ones(SHAPE), (5.0, 5.0))
    assert "implausible_wall_thickness" in q.flags


@pytest.mark.parametrize("rv_angle_deg", [180.0, 135.0, 220.0])
def test_arc_ends_find_junctions(rv_angle_deg: float) -> None:
    labels, pts = ring_labels(SHAPE, CENTRE, 11.0, 16.0, rv_angle_rad=math.radians(rv_angle_deg))
    ends = post.arc_ends(labels, (1.8, 1.8))
    assert ends is not None
    named, from_geometry = post.name_junctions(ends[0], ends[1], labels, (1.8, 1.8), None)
    assert not from_geometry
    centre = metrics.lv_centre(labels)
    for name in ("anterior", "inferior"):
        err = metrics.insertion_angle_error(named[name], pts[name], centre, (1.8, 1.8))
        assert err < 12.0, (name, err)


def test_name_junctions_uses_geometry(ring) -> None:
    labels, _ = ring
    up, down = (40.0, 60.0), (76.0, 60.0)
    # Rows towards posterior: the upper point (smaller row) is anterior.
    g = SliceGeometry(x_direction=(1, 0, 0), y_direction=(0, 1, 0))
    named, ok = post.name_junctions(down, up, labels, (1.0, 1.0), g)
    assert ok and named["anterior"] == up
    # Rows towards anterior: the lower point is anterior.
    g = SliceGeometry(x_direction=(1, 0, 0), y_direction=(0, -1, 0))
    named, ok = post.name_junctions(down, up, labels, (1.0, 1.0), g)
    assert ok and named["anterior"] == down


def test_no_rv_gives_no_insertion_points() -> None:
    labels, _ = ring_labels(SHAPE, CENTRE, 10.0, 15.0, rv=False)
    assert post.arc_ends(labels, (1.5, 1.5)) is None
    assert "no_rv" in post.quality(labels, np.ones(SHAPE), (1.5, 1.5)).flags


# Network and training loop ----------------------------------------------------------------


def test_network_shapes_any_size() -> None:
    net = ResUNet(NetConfig(widths=(8, 8, 8, 8), temporal_features=4)).eval()
    with torch.inference_mode():
        out = net(torch.zeros(1, pre.N_CHANNELS, 48, 40))
    assert tuple(out.shape) == (1, 6, 48, 40)


@pytest.mark.slow
def test_training_loop_learns_rings(tmp_path) -> None:
    """A few dozen steps on drawn rings: loss decreases, checkpoints are written and resumable."""
    from qperf.segmentation.train import TrainConfig, train

    rng = np.random.default_rng(0)

    def source():
        while True:
            yield random_ring_slice(rng, shape=(96, 96))

    val = [random_ring_slice(np.random.default_rng(50 + i), shape=(96, 96)) for i in range(2)]
    net = NetConfig(widths=(8, 12, 16, 16), temporal_features=8).to_dict()
    cfg = TrainConfig(
        max_steps=30,
        batch_size=4,
        crop_px=48,
        pool_size=4,
        val_every=15,
        lr=5e-3,
        net=net,
        threads=1,
        checkpoint_minutes=0.0,
    )
    torch.manual_seed(0)
    best = train(cfg, tmp_path, resume=False, phantom_source=source(), val_slices=val, log=lambda s: None)
    assert best.exists() and (tmp_path / "checkpoint.pt").exists()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    import json

    records = [json.loads(x) for x in lines if '"loss"' in x]
    first = np.mean([r["loss"] for r in records[:5]])
    last = np.mean([r["loss"] for r in records[-5:]])
    assert last < 0.8 * first
    cfg.max_steps = 32
    train(cfg, tmp_path, resume=True, phantom_source=source(), val_slices=val, log=lambda s: None)
    records = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 32


def test_grid_sample_matches_scipy_bilinear() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    stack = rng.random((3, 30, 40)).astype(np.float32)
    coords = pre.CropTransform.make((15.0, 20.0), (1.3, 1.1), angle_rad=0.4, size=50).coordinates()
    fast = pre.grid_sample(stack, coords)
    ref = np.stack(
        [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0, prefilter=False) for c in stack]
    )
    np.testing.assert_allclose(fast, ref, atol=1e-5)
    outside = pre.grid_sample(stack, np.full((2, 2, 2), -5.0), outside=np.nan)
    assert np.all(np.isnan(outside))
