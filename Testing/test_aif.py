"""AIF: bolus landmarks, baseline, resampling, plasma, delay, LV detection and extraction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qperf import aif as qaif
from qperf.errors import NotAvailableError, ValidationError
from qperf.gd import SrSequence, pd_signal, sr_signal
from qperf.types import AifCurve, PerfusionSeries

AIF_SEQ = SrSequence("flash", 1.5, 40.0, 10.0, 5.0, 2.0, 8)


def gamma_bolus(time_s: np.ndarray, t0: float, peak: float = 5.0, alpha: float = 2.5, beta: float = 1.6) -> np.ndarray:
    """Gamma-variate first pass plus a small delayed recirculation, 0 before ``t0``."""

    def gv(t: np.ndarray, start: float, scale: float) -> np.ndarray:
        x = np.clip(t - start, 0.0, None)
        g = x**alpha * np.exp(-x / beta)
        return scale * g / (((alpha * beta) ** alpha) * math.exp(-alpha))

    return (
        gv(time_s, t0, peak)
        + gv(time_s, t0 + 9.0, 0.15 * peak)
        + 0.3 * peak * (time_s > t0 + 14) * (1 - np.exp(-np.clip(time_s - t0 - 14, 0, None) / 5.0))
    )


# ---------------------------------------------------------------------------------- curves


def test_bolus_landmarks_of_a_known_curve(rng: np.random.Generator) -> None:
    t = np.arange(0.0, 60.0, 0.8)
    clean = gamma_bolus(t, 12.0) + 0.2
    values = clean + rng.normal(0, 0.03, t.size)
    marks = qaif.detect_bolus(values, t)
    true_peak = 12.0 + 2.5 * 1.6
    assert abs(marks.peak_s - true_peak) <= 1.6
    assert 12.0 - 2.5 <= marks.foot_s <= 12.0 + 0.01
    after = np.flatnonzero(t > true_peak)
    true_valley = t[after[np.argmax(np.diff(clean[after]) > 0)]]  # first minimum after the peak
    assert abs(marks.valley_s - true_valley) <= 2.5
    assert marks.baseline == pytest.approx(0.2, abs=0.05)
    assert marks.peak_height == pytest.approx(5.0, rel=0.05)


def test_curve_without_bolus_is_refused(rng: np.random.Generator) -> None:
    t = np.arange(60.0)
    with pytest.raises(ValidationError, match="no bolus"):
        qaif.detect_bolus(rng.normal(1.0, 0.1, t.size), t)
    with pytest.raises(ValidationError, match="no bolus"):
        qaif.detect_bolus(np.zeros(t.size), t)
    with pytest.raises(ValidationError, match="still rises"):
        qaif.detect_bolus(np.clip(t - 30.0, 0, None), t)


def test_bad_curves_are_refused() -> None:
    t = np.arange(20.0)
    v = gamma_bolus(t, 5.0)
    with pytest.raises(ValidationError, match="time_s"):
        qaif.detect_bolus(v, t[::-1])
    with pytest.raises(ValidationError, match="finite"):
        qaif.detect_bolus(np.where(t == 3, np.nan, v), t)
    with pytest.raises(ValidationError, match="samples"):
        qaif.detect_bolus(v[:-2], t)


def test_baseline_resample_and_shift() -> None:
    t = np.array([0.0, 0.9, 2.1, 2.9, 4.2, 5.0])
    curves = np.stack([3.0 * t + 1.0, -t + 7.0])
    grid = qaif.regular_grid(0.0, 5.0, 0.5)
    assert grid.size == 11 and grid[-1] == pytest.approx(5.0)
    np.testing.assert_allclose(qaif.resample(curves, t, grid), np.stack([3.0 * grid + 1.0, -grid + 7.0]), atol=1e-12)
    np.testing.assert_allclose(qaif.remove_baseline(curves, 2)[:, :2].mean(axis=1), 0.0, atol=1e-12)
    shifted = qaif.shift(np.array([0.0, 0.0, 1.0, 2.0, 3.0]), np.arange(5.0), 1.0)
    np.testing.assert_allclose(shifted, [0.0, 0.0, 0.0, 1.0, 2.0])
    with pytest.raises(ValidationError, match="dt_s"):
        qaif.regular_grid(0.0, 5.0, -0.5)


def test_blood_to_plasma() -> None:
    blood = AifCurve(np.array([0.0, 2.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    plasma = qaif.blood_to_plasma(blood, 0.42)
    assert plasma.kind == "plasma"
    np.testing.assert_allclose(plasma.values, blood.values / 0.58)
    assert qaif.blood_to_plasma(plasma, 0.3) is plasma
    with pytest.raises(ValidationError, match="hematocrit"):
        qaif.blood_to_plasma(blood, 1.2)


def test_tissue_delay_is_measured_and_bounded(rng: np.random.Generator) -> None:
    t = np.arange(0.0, 50.0, 0.5)
    aif = gamma_bolus(t, 10.0)
    marks = qaif.detect_bolus(aif, t)
    tissue = 0.2 * gamma_bolus(t, 12.0, beta=3.0)[None, :] + rng.normal(0, 0.004, (200, t.size))
    blood = np.repeat(aif[None, :], 50, axis=0)  # blood pixels must not count as tissue
    foot = qaif.tissue_foot_s(np.concatenate([tissue, blood]), t, blood_peak=marks.peak_height)
    assert foot is not None
    measured = foot - marks.foot_s
    assert abs(measured - 2.0) <= 1.0
    assert qaif.bound_delay(10.0, 12.0, 3.0).shift_s == 0.0
    late = qaif.bound_delay(10.0, 17.0, 3.0)
    assert late.shift_s == pytest.approx(4.0) and late.residual_s == pytest.approx(3.0)
    early = qaif.bound_delay(10.0, 8.5, 3.0)
    assert early.shift_s == pytest.approx(-1.5) and early.residual_s == 0.0
    assert qaif.tissue_foot_s(rng.normal(0, 0.01, (30, t.size)), t) is None


# ------------------------------------------------------------------------------ LV detection


def synthetic_aif_images(
    rng: np.random.Generator, lv_centre: tuple[float, float], rv_offset: tuple[float, float], noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blood-pool Gd images ``(t, y, x)``: RV then LV then aorta, a myocardial ring, shading.

    Returns the Gd images, the LV and RV masks and the frame times.
    """
    ny, nx = 48, 40
    t = np.arange(0.0, 60.0, 0.9)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    cy, cx = lv_centre
    r_lv = np.hypot(yy - cy, xx - cx)
    lv = r_lv <= 4.0
    rv_c = (cy + rv_offset[0], cx + rv_offset[1])
    rv = (np.hypot((yy - rv_c[0]) / 1.0, (xx - rv_c[1]) / 0.6) <= 5.0) & (r_lv > 7.0)
    ao = np.hypot(yy - (cy + 12), xx - (cx - 9)) <= 2.0
    myo = (r_lv > 4.0) & (r_lv <= 7.0)
    gd = np.zeros((t.size, ny, nx))
    gd[:, rv] = gamma_bolus(t, 8.0, peak=7.0)[:, None]
    gd[:, lv] = gamma_bolus(t, 12.5, peak=5.0)[:, None]
    gd[:, ao] = gamma_bolus(t, 14.0, peak=4.5)[:, None]
    gd[:, myo] = 0.12 * gamma_bolus(t, 13.5, peak=5.0, beta=3.5)[:, None]
    from scipy import ndimage as ndi

    gd = ndi.gaussian_filter(gd, (0, 0.6, 0.6))
    return gd + rng.normal(0, noise, gd.shape), lv, rv, t


@pytest.mark.parametrize(
    ("seed", "lv_centre", "rv_offset"),
    [(0, (22.0, 20.0), (0.0, -10.0)), (1, (26.0, 24.0), (-5.0, -9.0)), (2, (20.0, 18.0), (4.0, -11.0))],
)
def test_classical_detector_finds_the_lv_of_synthetic_images(seed: int, lv_centre, rv_offset) -> None:
    rng = np.random.default_rng(seed)
    gd, lv, rv, t = synthetic_aif_images(rng, lv_centre, rv_offset)
    coil = np.linspace(0.6, 1.6, gd.shape[2])[None, None, :]
    signal = 100.0 + 300.0 * coil * gd
    series = PerfusionSeries(signal, t, units="signal")
    mask = qaif.detect_lv(series)
    assert not np.any(mask & rv)
    assert qaif.dice(mask, lv) >= 0.75


def test_lv_detection_on_real_aif_images(shared_data: Path) -> None:
    images = np.load(shared_data / "aif_example1" / "aif_scc.npy")
    truth = np.load(shared_data / "aif_example1" / "aif_masks_final.npy")
    series = PerfusionSeries(np.moveaxis(images, -1, 0), np.arange(images.shape[-1]) * 0.9, units="signal")
    mask = qaif.detect_lv(series, method="classical")
    assert not np.any(mask & (truth == 2))
    assert qaif.dice(mask, truth == 1) >= 0.7


def test_images_without_bolus_and_unknown_detectors(rng: np.random.Generator) -> None:
    series = PerfusionSeries(100.0 + rng.normal(0, 1.0, (40, 16, 16)), np.arange(40.0), units="signal")
    with pytest.raises(ValidationError, match="no LV blood pool"):
        qaif.detect_lv(series)
    with pytest.raises(NotAvailableError, match="classical"):
        qaif.detect_lv(series, method="nonexistent")


def test_a_detector_plugs_into_the_registry() -> None:
    class Centre:
        name = "test-centre"

        def detect(self, aif_series: PerfusionSeries) -> np.ndarray:
            mask = np.zeros(aif_series.shape, dtype=bool)
            mask[4:6, 4:6] = True
            return mask

    qaif.register_detector(Centre(), replace=True)
    assert "test-centre" in qaif.available_detectors()
    series = PerfusionSeries(np.ones((10, 9, 9)), np.arange(10.0))
    assert qaif.detect_lv(series, method="test-centre").sum() == 4
    with pytest.raises(ValidationError, match="already registered"):
        qaif.register_detector(Centre())


class _FixedMaskNetwork:
    """Stands in for the network detector: returns a given mask, checked like the real one."""

    name = "cnn"

    def __init__(self, mask: np.ndarray | None) -> None:
        self.mask = mask

    def detect_with_groups(self, aif_series: PerfusionSeries):  # type: ignore[no-untyped-def]
        if self.mask is None:
            raise ValidationError("aif_series: expected an LV blood pool, found none")
        return self.mask, qaif.ClassicalLvDetector().groups(aif_series)

    def detect(self, aif_series: PerfusionSeries) -> np.ndarray:
        return self.detect_with_groups(aif_series)[0]

    @staticmethod
    def check(mask: np.ndarray, groups: qaif.ArrivalGroups | None) -> str | None:
        from qperf.segmentation.aif_lv import CnnLvDetector

        return CnnLvDetector.check(mask, groups)


def test_auto_detector_backs_up_an_implausible_network_mask(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network mask on the right ventricle, or none at all, is replaced by the classical mask."""
    from qperf.aif import detect as detect_mod

    gd, lv, rv, t = synthetic_aif_images(rng, (22.0, 20.0), (0.0, -10.0), noise=0.0)
    series = PerfusionSeries(100.0 + 40.0 * gd, t, units="signal")
    auto = qaif.AutoLvDetector()
    classical = qaif.detect_lv(series, method="classical")
    assert qaif.dice(classical, lv) >= 0.75
    # A plausible network mask that the classical detector confirms: their common pixels.
    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(lv))
    np.testing.assert_array_equal(auto.detect(series), lv & classical)
    assert auto.last_source == "cnn+classical" and auto.last_reason == ""
    # The right ventricle fills first: rejected, the classical mask is used.
    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(rv))
    np.testing.assert_array_equal(auto.detect(series), classical)
    assert auto.last_source == "classical" and "right heart" in auto.last_reason
    # A mask of background pixels does not enhance like blood.
    corner = np.zeros_like(lv)
    corner[:3, :3] = True
    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(corner))
    np.testing.assert_array_equal(auto.detect(series), classical)
    assert "enhances like blood" in auto.last_reason
    # No pool from the network at all.
    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(None))
    np.testing.assert_array_equal(auto.detect(series), classical)
    assert auto.last_source == "classical" and "failed" in auto.last_reason


def test_auto_detector_keeps_a_plausible_network_mask_the_classical_one_contradicts(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qperf.aif import detect as detect_mod

    gd, lv, rv, t = synthetic_aif_images(rng, (22.0, 20.0), (0.0, -10.0), noise=0.0)
    series = PerfusionSeries(100.0 + 40.0 * gd, t, units="signal")

    class WrongClassical:
        name = "classical"

        def detect(self, aif_series: PerfusionSeries) -> np.ndarray:
            return rv

    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(lv))
    monkeypatch.setitem(detect_mod._REGISTRY, "classical", WrongClassical())
    auto = qaif.AutoLvDetector()
    np.testing.assert_array_equal(auto.detect(series), lv)
    assert auto.last_source == "cnn"
    # Neither detector finds anything: one clear error.
    monkeypatch.setitem(detect_mod._REGISTRY, "cnn", _FixedMaskNetwork(None))
    monkeypatch.setitem(detect_mod._REGISTRY, "classical", qaif.ClassicalLvDetector())
    flat = PerfusionSeries(100.0 + rng.normal(0, 1.0, (40, 16, 16)), np.arange(40.0), units="signal")
    with pytest.raises(ValidationError, match="no LV blood pool"):
        auto.detect(flat)


def test_the_network_detector_is_registered_explicitly(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qperf.aif knows no network: "auto" is the classical detector until the layer above,
    qperf.segmentation.aif_lv, registers the network (it does so before it detects)."""
    from qperf.aif import detect as detect_mod
    from qperf.segmentation import aif_lv

    monkeypatch.setattr(detect_mod, "_REGISTRY", {k: v for k, v in detect_mod._REGISTRY.items() if k != "cnn"})
    gd, lv, rv, t = synthetic_aif_images(rng, (22.0, 20.0), (0.0, -10.0), noise=0.0)
    series = PerfusionSeries(100.0 + 40.0 * gd, t, units="signal")
    classical = qaif.detect_lv(series, method="classical")
    with pytest.raises(NotAvailableError, match="aif_lv.register"):
        qaif.get_detector("cnn")
    auto = qaif.AutoLvDetector()
    np.testing.assert_array_equal(auto.detect(series), classical)
    assert auto.last_source == "classical" and "none registered" in auto.last_reason
    # a network detector given to "auto" is used in place of a registered one
    auto = qaif.AutoLvDetector(network=_FixedMaskNetwork(lv))
    np.testing.assert_array_equal(auto.detect(series), lv & classical)
    assert auto.last_source == "cnn+classical"
    # the layer above registers the shipped network (loaded on first use) and keeps one registered
    assert isinstance(aif_lv.lv_detector("cnn"), aif_lv.CnnLvDetector)
    mine = aif_lv.register("elsewhere.pt")
    assert aif_lv.lv_detector("auto") is qaif.get_detector("auto") and qaif.get_detector("cnn") is mine


def test_arrival_groups_measure_the_pulmonary_transit(rng: np.random.Generator) -> None:
    """The RV-to-LV delay is measured on the series' clock: it scales with the time axis."""
    gd, lv, rv, t = synthetic_aif_images(rng, (22.0, 20.0), (0.0, -10.0), noise=0.0)
    series = PerfusionSeries(100.0 + 40.0 * gd, t, units="signal")
    groups = qaif.ClassicalLvDetector().groups(series)
    assert groups.delay_s is not None
    assert np.count_nonzero(groups.early & rv) >= 0.8 * np.count_nonzero(groups.early)
    assert np.count_nonzero(groups.late & lv) >= 0.8 * np.count_nonzero(groups.late)
    slower = qaif.ClassicalLvDetector().groups(series.replace(time_s=t * 2.0))
    assert slower.delay_s == pytest.approx(2.0 * groups.delay_s, rel=0.05)
    # A clock running 3.3 times fast (an assumed interval that is too short): the delay falls
    # under 1.5 s but spans several frames, so the groups still split and the LV is found.
    faster = series.replace(time_s=t * 0.3)
    fast_groups = qaif.ClassicalLvDetector().groups(faster)
    assert fast_groups.delay_s == pytest.approx(0.3 * groups.delay_s, rel=0.05)
    assert qaif.dice(qaif.detect_lv(faster, method="classical"), lv) >= 0.75


# --------------------------------------------------------------------------------- extraction


def _dual_echo_series(
    rng: np.random.Generator, r2star_per_ms: float
) -> tuple[list[PerfusionSeries], np.ndarray, np.ndarray]:
    gd, lv, _, t = synthetic_aif_images(rng, (22.0, 20.0), (0.0, -10.0), noise=0.0)
    gd = np.clip(gd, 0.0, None)
    n_pd = 3
    te = (0.8, 2.0)
    m0 = 1000.0
    echoes = []
    for echo_time in te:
        decay = np.exp(-echo_time * r2star_per_ms * (1.0 + gd))
        dyn = m0 * sr_signal(gd, AIF_SEQ, "blood") * decay
        pd = m0 * pd_signal(AIF_SEQ, "blood") * np.exp(-echo_time * r2star_per_ms) * np.ones((n_pd, *gd.shape[1:]))
        data = np.concatenate([pd, dyn]) + rng.normal(0, 0.5, (n_pd + t.size, *gd.shape[1:]))
        times = np.concatenate([np.arange(n_pd) * 0.9 - 3.0, t])
        meta = dict(AIF_SEQ.__dict__, echo_times_ms=list(te))
        echoes.append(PerfusionSeries(np.abs(data), times, units="signal", n_pd_frames=n_pd, metadata=meta))
    return echoes, gd, lv


def test_aif_from_dual_echo_images_with_t2star_correction(rng: np.random.Generator) -> None:
    echoes, gd, lv = _dual_echo_series(rng, r2star_per_ms=0.02)
    found = qaif.aif_from_images(echoes)
    assert qaif.dice(found.mask, lv) >= 0.75
    assert found.aif.kind == "blood" and found.aif.units == "gd_mmol_l"
    assert found.r2star_per_s is not None and np.all(found.r2star_per_s >= 0)
    assert found.pool_mask.sum() < found.mask.sum() and not np.any(found.pool_mask & ~found.mask)
    core = gd[:, found.pool_mask].mean(axis=1)
    np.testing.assert_allclose(found.aif.values, core, atol=0.03 * core.max())
    # Without the correction the peak is underestimated.
    uncorrected = qaif.aif_from_images(echoes, mask=found.mask, t2star_correction=False)
    assert uncorrected.aif.values.max() < 0.97 * found.aif.values.max()


def test_aif_from_images_needs_echo_times_and_readout(rng: np.random.Generator) -> None:
    echoes, _, lv = _dual_echo_series(rng, r2star_per_ms=0.02)
    meta = {k: v for k, v in echoes[0].metadata.items() if k != "echo_times_ms"}
    with pytest.raises(ValidationError, match="echo_times_ms"):
        qaif.aif_from_images([echoes[0].replace(metadata=meta), echoes[1]], mask=lv)
    meta = {k: v for k, v in echoes[0].metadata.items() if k != "saturation_time_ms"}
    with pytest.raises(ValidationError, match="saturation_time_ms"):
        qaif.aif_from_images(echoes[0].replace(metadata=meta), mask=lv)
    with pytest.raises(ValidationError, match="mask"):
        qaif.aif_from_images(echoes, mask=np.zeros((3, 3), dtype=bool))


def test_aif_images_in_gd_are_averaged() -> None:
    gd, lv, _, t = synthetic_aif_images(np.random.default_rng(5), (22.0, 20.0), (0.0, -10.0), noise=0.0)
    series = PerfusionSeries(gd, t, units="gd_mmol_l")
    found = qaif.aif_from_images(series, mask=lv)
    np.testing.assert_allclose(found.aif.values, gd[:, qaif.pool_core(lv)].mean(axis=1), rtol=1e-5)
    tiny = np.zeros_like(lv)
    tiny[10:12, 10:12] = True  # too small to erode: used whole
    assert np.array_equal(qaif.pool_core(tiny), tiny)
    # a small pool without an eroded core: its most enhancing pixels (not the partial-volume border)
    small = np.zeros_like(lv)
    small[9:12, 9:13] = True  # 3 x 4 pixels: erosion leaves 2
    enhancement = np.where(small, 1.0, 0.0)
    enhancement[9, 9:13] = enhancement[11, 9:13] = 0.5  # border rows share their area with tissue
    core = qaif.pool_core(small, enhancement=enhancement)
    assert core.sum() == 4 and core[10, 9:13].all()
    assert np.array_equal(qaif.pool_core(small), small)  # without enhancement: the whole pool


def test_aif_from_phantom_images_matches_the_true_blood_curve() -> None:
    from qperf import phantom
    from qperf.segmentation import aif_lv

    ps = phantom.generate_study(seed=0, noise=False, motion=False, blur=False, readout="flash", n_slices=1, n_frames=40)
    found = aif_lv.aif_from_images(ps.study.aif_series)
    truth = ps.truth.aif_frames_gd_mmol_l[-found.aif.n_samples :]
    assert found.aif.values.max() == pytest.approx(truth.max(), rel=0.04)
    np.testing.assert_allclose(found.aif.values, truth, atol=0.04 * truth.max())
    marks = qaif.detect_bolus(found.aif.values, found.aif.time_s)
    assert found.aif.time_s[np.argmax(truth)] == pytest.approx(marks.peak_s, abs=1.5)


@pytest.mark.slow
def test_lv_detection_on_noisy_moving_phantom_aif_images() -> None:
    from qperf import phantom
    from qperf.segmentation import aif_lv

    scores = []
    for seed, condition in ((0, "stress"), (3, "rest"), (6, "stress"), (8, "rest"), (10, "stress")):
        ps = phantom.generate_study(seed=seed, n_slices=1, n_frames=50, condition=condition)
        labels = ps.truth.aif_labels_ref
        mask = aif_lv.detect_lv(ps.study.aif_series)
        assert np.count_nonzero(mask & (labels == 3)) <= 0.1 * np.count_nonzero(mask)
        scores.append(qaif.dice(mask, labels == 1))
    assert min(scores) >= 0.6 and np.median(scores) >= 0.85
