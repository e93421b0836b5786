"""Motion correction of 2D+T series against known motion, a real still series and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import io as sio
from scipy import ndimage

from qperf import io, motion
from qperf.cli import main
from qperf.errors import ValidationError
from qperf.motion.fields import compose, warp_images
from qperf.motion.quality import temporal_roughness
from qperf.types import LABEL_MYO, PerfusionSeries


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def residual_px(truth_pull: np.ndarray, forward: np.ndarray, key: int) -> np.ndarray:
    """|misalignment| (t, y, x) of each corrected frame with the key frame, from the true pull fields.

    Frame t shows the anatomy at ``q + m_t(q)``; after correction pixel p shows
    ``p + f_t(p) + m_t(p + f_t(p))``, which should equal the key frame's ``p + m_key(p)``.
    """
    r = compose(truth_pull, forward) - truth_pull[key][None]
    return np.hypot(r[:, 0], r[:, 1])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def moving_case() -> tuple[PerfusionSeries, motion.MovingSeriesTruth, motion.MotionResult]:
    torch.set_num_threads(1)
    series, truth = motion.simulate_moving_series(0, n_frames=32, shape=(96, 96), shift_px=5.0, deform_px=1.5)
    return series, truth, motion.correct_series(series)


def test_nonrigid_motion_with_contrast_change_recovered(moving_case) -> None:
    series, truth, result = moving_case
    key = result.key_frame
    n_pd = series.n_pd_frames
    hm = truth.heart_mask
    before = residual_px(truth.ref_to_frame_px, np.zeros_like(result.forward_px), key)[:, hm]
    after = residual_px(truth.ref_to_frame_px, result.forward_px, key)[:, hm]
    assert np.median(before) > 2.0
    assert np.median(after[n_pd:]) < 0.5
    assert np.percentile(np.median(after[n_pd:], axis=1), 90) < 1.0
    # PD frames (other contrast) move towards alignment too
    assert np.median(after[:n_pd]) < 0.6 * np.median(before[:n_pd])
    # the key frame is a dynamic frame and stays as acquired
    assert n_pd <= key < series.n_frames
    assert np.array_equal(result.forward_px[key], np.zeros_like(result.forward_px[key]))
    assert np.allclose(result.corrected.data[key], series.data[key], atol=1e-4)
    # true myocardium of every corrected dynamic frame overlaps the key frame's
    labels = motion.warp_labels(truth.labels_moving, result.forward_px)
    myo = labels == LABEL_MYO
    scores = [dice(myo[t], myo[key]) for t in range(n_pd, series.n_frames)]
    assert np.median(scores) > 0.9 and min(scores) > 0.75
    q = result.quality
    assert q["score"] > q["score_before"] + 0.1
    assert q["folding_fraction"] == 0.0


def test_result_keeps_the_series_description(moving_case) -> None:
    series, _, result = moving_case
    c = result.corrected
    assert c.data.shape == series.data.shape and c.data.dtype == np.float32
    assert np.array_equal(c.time_s, series.time_s)
    assert c.spacing_mm == series.spacing_mm and c.units == series.units and c.n_pd_frames == series.n_pd_frames
    assert result.forward_px.shape == (series.n_frames, 2, *series.shape) == result.inverse_px.shape
    assert result.forward_px.dtype == np.float32 and result.inverse_px.dtype == np.float32
    # the two fields are inverses of each other
    assert np.abs(compose(result.forward_px, result.inverse_px))[:, :, 10:-10, 10:-10].max() < 0.05
    assert set(result.timings_s) >= {"synthetic", "registration", "inverse", "total"}


def test_labels_and_points_propagate_both_ways(moving_case) -> None:
    series, truth, result = moving_case
    key = result.key_frame
    labels_key = truth.labels_moving[key]
    # labels drawn on the corrected series (= key geometry) land on the true labels of every frame
    mapped = motion.labels_to_original(labels_key, result)
    assert mapped.shape == truth.labels_moving.shape
    scores = [dice(mapped[t] == LABEL_MYO, truth.labels_moving[t] == LABEL_MYO) for t in range(series.n_frames)]
    assert np.median(scores) > 0.9
    # labels drawn on an acquired frame map into the corrected geometry
    t = series.n_pd_frames + 4
    back = motion.labels_to_corrected(truth.labels_moving[t], t, result)
    assert dice(back == LABEL_MYO, labels_key == LABEL_MYO) > 0.85
    # a point follows the true motion of the anatomy
    lv = np.argwhere(labels_key == 1).mean(axis=0)
    pts = motion.points_to_original(lv[None], result)
    assert pts.shape == (series.n_frames, 1, 2)
    assert np.allclose(pts[key, 0], lv, atol=1e-4)
    true_lv = np.array([np.argwhere(truth.labels_moving[i] == 1).mean(axis=0) for i in range(series.n_frames)])
    assert np.median(np.hypot(*(pts[:, 0] - true_lv).T)) < 0.75
    with pytest.raises(ValidationError, match="labels_corrected"):
        motion.labels_to_original(np.zeros((5, 5), int), result)
    with pytest.raises(ValidationError, match="frame_index"):
        motion.labels_to_corrected(labels_key, series.n_frames, result)


def test_still_series_stays_unchanged() -> None:
    series, _ = motion.simulate_moving_series(1, n_frames=24, shape=(64, 64), moving=False, noise=0.01)
    result = motion.correct_series(series, n_rounds=2)
    mag = np.hypot(result.forward_px[:, 0], result.forward_px[:, 1])
    n_pd = series.n_pd_frames
    assert np.percentile(mag[n_pd:], 95) < 0.25
    dyn_change = np.abs(result.corrected.data[n_pd:] - series.data[n_pd:]).mean()
    assert dyn_change < 0.1 * np.abs(series.data[n_pd:]).mean()


def test_global_subpixel_shift_of_a_still_series_recovered() -> None:
    series, _ = motion.simulate_moving_series(2, n_frames=24, shape=(64, 64), n_pd_frames=0, moving=False)
    rng = np.random.default_rng(5)
    shifts = rng.uniform(-1.5, 1.5, (24, 2)).astype(np.float32)
    fields = np.ascontiguousarray(np.broadcast_to(shifts[:, :, None, None], (24, 2, 64, 64)))
    moved = series.replace(data=warp_images(series.data, fields, mode="bicubic"))
    result = motion.correct_series(moved)
    r = residual_px(fields, result.forward_px, result.key_frame)[:, 16:-16, 16:-16]
    assert np.median(r) < 0.25


def test_heart_mask_restricts_the_region(moving_case) -> None:
    series, truth, _ = moving_case
    mask = ndimage.binary_dilation(truth.heart_mask, iterations=3)
    result = motion.correct_series(series, heart_mask=mask, margin_px=12)
    y0, y1, x0, x1 = result.region
    assert (y1 - y0) < series.shape[0] and (x1 - x0) < series.shape[1]
    after = residual_px(truth.ref_to_frame_px, result.forward_px, result.key_frame)[
        series.n_pd_frames :, truth.heart_mask
    ]
    assert np.median(after) < 0.5
    with pytest.raises(ValidationError, match="heart_mask"):
        motion.correct_series(series, heart_mask=np.ones((5, 5), bool))
    with pytest.raises(ValidationError, match="heart_mask"):
        motion.correct_series(series, heart_mask=np.zeros(series.shape, bool))


def test_sitk_engine_reduces_motion() -> None:
    series, truth = motion.simulate_moving_series(4, n_frames=16, shape=(64, 64), n_pd_frames=0, shift_px=3.0)
    result = motion.correct_series(series, engine="sitk", n_rounds=2)
    assert result.engine == "sitk"
    before = residual_px(truth.ref_to_frame_px, np.zeros_like(result.forward_px), result.key_frame)
    after = residual_px(truth.ref_to_frame_px, result.forward_px, result.key_frame)
    assert np.median(after[:, truth.heart_mask]) < 0.6 * np.median(before[:, truth.heart_mask])


def _rest_myocardium(data_tyx: np.ndarray) -> np.ndarray:
    """A rough myocardial ring of the real rest slice (no mask is distributed with it).

    LV blood pool: the connected region of pixels whose peak exceeds half the highest peak,
    nearest the image centre; myocardium: a 2-7 pixel ring around it, without pixels whose
    peak exceeds a third of the highest (RV blood and partial-volume blood).
    """
    peak = data_tyx.max(axis=0)
    bright = peak > 0.5 * peak.max()
    lab, n = ndimage.label(bright)
    centre = np.array(peak.shape) / 2
    best = min(range(1, n + 1), key=lambda i: np.hypot(*(np.argwhere(lab == i).mean(axis=0) - centre)))
    pool = ndimage.binary_fill_holes(lab == best)
    ring = ndimage.binary_dilation(pool, iterations=7) & ~ndimage.binary_dilation(pool, iterations=2)
    return ring & (peak < peak.max() / 3)


def test_real_rest_case_is_not_degraded(shared_data: Path) -> None:
    """The distributed rest slice is already motion corrected: correcting it again must not
    make its myocardial curves rougher or change the mean myocardial curve materially."""
    mat = sio.loadmat(str(shared_data / "qperf_rest" / "perf_data.mat"))
    data = np.transpose(mat["data"], (2, 0, 1)).astype(np.float32)  # rows x cols x time -> (t, y, x)
    dt = float(np.squeeze(mat["deltaT"]))
    series = PerfusionSeries(data, np.arange(data.shape[0]) * dt, units="gd_mmol_l")
    result = motion.correct_series(series)
    myo = _rest_myocardium(data)
    assert 30 < myo.sum() < 600
    before = temporal_roughness(series.data, myo.astype(np.float32))
    after = temporal_roughness(result.corrected.data, myo.astype(np.float32))
    # measured: roughness 0.136 -> 0.116, curve correlation 0.996, peak 0.269 -> 0.296 mmol/L
    assert after <= 1.05 * before
    curve_before = series.data[:, myo].mean(axis=1)
    curve_after = result.corrected.data[:, myo].mean(axis=1)
    assert np.corrcoef(curve_before, curve_after)[0, 1] > 0.99
    assert abs(curve_after.max() - curve_before.max()) < 0.12 * curve_before.max()
    assert result.quality["score"] >= result.quality["score_before"] - 0.005


def test_bad_input_gives_clear_errors() -> None:
    good, _ = motion.simulate_moving_series(0, n_frames=8, shape=(32, 32), n_pd_frames=0, moving=False)
    with pytest.raises(ValidationError, match="PerfusionSeries"):
        motion.correct_series(good.data)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 2 frames"):
        PerfusionSeries(good.data[:1], [0.0])
    with pytest.raises(ValidationError, match="at least 3 dynamic"):
        motion.correct_series(good.replace(data=good.data[:2], time_s=good.time_s[:2]))
    with pytest.raises(ValidationError, match="constant frame"):
        motion.correct_series(good.replace(data=np.ones_like(good.data)))
    bad = good.data.copy()
    bad[3, 5, 5] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        PerfusionSeries(bad, good.time_s)
    series_nan = PerfusionSeries(good.data, good.time_s)
    if series_nan.data.flags.writeable:
        series_nan.data[3, 5, 5] = np.nan
        with pytest.raises(ValidationError, match="NaN"):
            motion.correct_series(series_nan)
    with pytest.raises(ValidationError, match="n_rounds"):
        motion.correct_series(good, n_rounds=0)
    with pytest.raises(ValidationError, match="key_frame"):
        motion.correct_series(good, key_frame=99)
    with pytest.raises(ValidationError, match="resample"):
        motion.correct_series(good, resample="lanczos")  # type: ignore[arg-type]


def test_moco_command_writes_series_fields_and_report(tmp_path: Path) -> None:
    series, _ = motion.simulate_moving_series(6, n_frames=12, shape=(48, 48), shift_px=2.0)
    src = tmp_path / "slice.nii.gz"
    io.write_series(series, src)
    out = tmp_path / "moco"
    assert main(["moco", str(src), "--out", str(out), "--rounds", "2", "-q"]) == 0
    report = json.loads((out / "moco.json").read_text())
    assert report["corrected"] == "corrected.nii.gz"
    corrected = io.read_series(out / "corrected.nii.gz")
    assert corrected.data.shape == series.data.shape and corrected.n_pd_frames == series.n_pd_frames
    import nrrd

    fwd, header = nrrd.read(str(out / "forward_px.nrrd"), index_order="C")
    assert fwd.shape == (12, 2, 48, 48) and "dy" in header["qperf_layout"]
    inv, _ = nrrd.read(str(out / "inverse_px.nrrd"), index_order="C")
    assert np.abs(compose(fwd, inv))[:, :, 8:-8, 8:-8].max() < 0.05
    assert 0 <= report["quality"]["score"] <= 1 and report["timings_s"]["total"] > 0
    assert report["key_frame"] >= series.n_pd_frames
    # no silent overwrite; input untouched
    assert main(["moco", str(src), "--out", str(out), "-q"]) == 2
    assert io.read_series(src).data.shape == series.data.shape


def test_phantom_motion_recovered() -> None:
    """The study phantom with amplified breathing motion (several pixels) and its true fields.

    Figures on this case (seed 0, 40 frames, motion_scale 2.5, heart mask given): median
    residual 0.51 pixel from 2.58 before; myocardium Dice with the key frame median 0.94,
    lowest 0.88 (pre-contrast frames, where the heart has little contrast of its own).
    """
    from qperf import phantom

    ps = phantom.generate_study(seed=0, n_slices=1, n_frames=40, motion=True, aif_images=False, motion_scale=2.5)
    series, truth = ps.study.slices[0], ps.truth.slices[0]
    heart = truth.labels_ref > 0
    result = motion.correct_series(series, heart_mask=heart)
    key, n_pd = result.key_frame, series.n_pd_frames
    pull = truth.moving_to_ref_px
    before = residual_px(pull, np.zeros_like(pull), key)[:, heart]
    after = residual_px(pull, result.forward_px, key)[:, heart]
    assert np.median(before) > 2.0
    assert np.median(after) < 0.8
    assert np.median(after) < 0.35 * np.median(before)
    labels = motion.warp_labels(truth.labels_moving, result.forward_px)
    myo = labels == LABEL_MYO
    scores = np.array([dice(myo[t], myo[key]) for t in range(series.n_frames)])
    assert np.median(scores[n_pd:]) >= 0.9
    assert scores.min() >= 0.8


def test_motion_detection_tells_a_breathing_slice_from_a_still_one() -> None:
    from qperf.motion.detect import MOVING_MM, heart_shifts_mm, motion_extent_mm

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    t = np.arange(40) * 0.8
    enh = np.exp(-0.5 * ((t - 12.0) / 3.0) ** 2)
    shifts = 3.0 * np.sin(2 * np.pi * t / 6.0)  # pixels, along y

    def frame(k: int, dy: float) -> np.ndarray:
        r = np.hypot(yy - 48 - dy, xx - 50)
        return 100 + 80 * enh[k] * (r < 12) + 40 * (r < 20)

    still = np.stack([frame(k, 0.0) for k in range(t.size)])
    moved = np.stack([frame(k, shifts[k]) for k in range(t.size)])
    for data, expect_moving in ((still, False), (moved, True)):
        noisy = data + rng.normal(0, 2.0, data.shape)
        series = PerfusionSeries(noisy, t, spacing_mm=(2.0, 2.0))
        extent = motion_extent_mm(heart_shifts_mm(series, (48.0, 50.0)))
        assert (extent >= MOVING_MM) == expect_moving, extent
    measured = heart_shifts_mm(PerfusionSeries(moved, t, spacing_mm=(2.0, 2.0)), (48.0, 50.0))
    # the measured shifts follow the true ones along y (mm, about the mean position)
    assert abs(np.corrcoef(measured[:, 0], shifts)[0, 1]) > 0.9
