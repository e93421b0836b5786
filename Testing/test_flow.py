"""Flow mapping: known parameters fitted back through the whole chain, the CLI, bad input,
and the real rest case against its published map."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from qperf import io, kinetics
from qperf.cli import main
from qperf.errors import ValidationError
from qperf.flow import (
    best_delay,
    common_delay,
    compute_flow_maps,
    delay_chi2_profile,
    flow_at_upper_bound,
    map_file_stem,
    mean_curve_delay,
    smooth_within,
)
from qperf.gd import SrSequence, pd_signal, sr_signal
from qperf.kinetics.convolution import exp_convolve
from qperf.types import AifCurve, PerfusionSeries, SliceGeometry

HCT = 0.42
FLASH_META = {
    "readout": "flash",
    "field_strength_t": 3.0,
    "saturation_time_ms": 100.0,
    "flip_angle_deg": 12.0,
    "pd_flip_angle_deg": 5.0,
    "echo_spacing_ms": 2.2,
    "n_pe_to_center": 24,
}


def blood_aif(time_s: np.ndarray, foot_s: float = 8.0, peak: float = 5.0) -> np.ndarray:
    """Whole-blood AIF: gamma-variate first pass plus recirculation, baseline 0 before ``foot_s``."""
    x = np.clip(time_s - foot_s, 0.0, None)
    first = x**2.5 * np.exp(-x / 1.4)
    second = np.clip(x - 8.0, 0.0, None) ** 2 * np.exp(-np.clip(x - 8.0, 0.0, None) / 3.0)
    return peak * first / first.max() + 0.12 * peak * second / max(second.max(), 1e-9) + 0.06 * peak * (x > 14)


def ecg_times(rng: np.random.Generator, n: int, rr_s: float = 0.85) -> np.ndarray:
    return np.cumsum(np.r_[0.0, rr_s + rng.normal(0.0, 0.04, n - 1)])


def simulated_slice(
    rng: np.random.Generator, fp_map: np.ndarray, delay_s: float = 0.5, n_frames: int = 60
) -> tuple[np.ndarray, np.ndarray, AifCurve]:
    """Tissue Gd ``(t, y, x)`` at ECG times from BTEX with known Fp, and the blood AIF curve."""
    fine = np.arange(0.0, 70.0, 0.1)
    plasma_fine = blood_aif(fine) / (1.0 - HCT)
    model = kinetics.get_model("btex")
    curves = model.simulate(plasma_fine, fine, Fp=fp_map, PS=1.2, Vp=0.05, Visf=0.2, delay_s=delay_s)
    times = ecg_times(rng, n_frames)
    tissue = np.stack([np.interp(times, fine, c) for c in curves.reshape(-1, fine.size)], axis=0)
    tissue = tissue.reshape(*fp_map.shape, n_frames)
    aif = AifCurve(blood_aif(times), times, kind="blood")
    return np.moveaxis(tissue, -1, 0), times, aif


@pytest.fixture(scope="module")
def known_slice() -> tuple[PerfusionSeries, AifCurve, np.ndarray]:
    rng = np.random.default_rng(7)
    fp = np.tile(np.array([0.4, 0.7, 1.0, 1.3])[:, None], (1, 5))
    gd, times, aif = simulated_slice(rng, fp)
    geometry = SliceGeometry((10.0, -20.0, 30.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), 8.0)
    series = PerfusionSeries(gd, times, spacing_mm=(1.5, 1.4), geometry=geometry, units="gd_mmol_l", name="known")
    return series, aif, fp


def test_known_flow_is_recovered_from_irregular_frames(known_slice) -> None:
    series, aif, fp = known_slice
    calls: list[float] = []
    result = compute_flow_maps(series, aif, hematocrit=HCT, progress=lambda f, m: calls.append(f))
    assert calls[0] == 0.0 and calls[-1] == 1.0 and calls == sorted(calls)
    assert np.all(result.status == 0)
    mbf = result.maps["mbf_ml_min_g"]
    assert mbf.dtype == np.float32 and mbf.shape == series.shape
    np.testing.assert_allclose(mbf, fp / (1.0 - HCT), rtol=0.08)
    np.testing.assert_allclose(result.maps["fp_ml_min_g"], fp, rtol=0.08)
    # The AIF used: plasma, baseline removed, on a regular 0.5 s grid inside the series' times.
    assert result.aif.kind == "plasma" and np.allclose(np.diff(result.time_s), 0.5)
    assert result.time_s[0] >= series.time_s[0] and result.time_s[-1] <= series.time_s[-1]
    np.testing.assert_allclose(result.aif.values.max(), 5.0 / (1.0 - HCT), rtol=0.05)
    assert abs(result.landmarks.foot_s - 8.0) <= 1.5


def test_regular_frames_give_the_direct_fit() -> None:
    """On frames already at the grid step, the pipeline adds nothing to the model fit."""
    fine = np.arange(0.0, 60.0, 0.1)
    model = kinetics.get_model("btex")
    fp = np.array([[0.5, 1.0], [1.5, 2.0]])
    curves = model.simulate(blood_aif(fine) / (1.0 - HCT), fine, Fp=fp, PS=1.0, Vp=0.06, Visf=0.25, delay_s=1.0)
    times = np.arange(0.0, 50.0, 0.5)
    tissue = np.stack([np.interp(times, fine, c) for c in curves.reshape(-1, fine.size)]).reshape(2, 2, -1)
    series = PerfusionSeries(np.moveaxis(tissue, -1, 0), times, units="gd_mmol_l")
    aif = AifCurve(blood_aif(times), times)
    result = compute_flow_maps(series, aif, hematocrit=HCT, delay="pixel")
    direct = model.bind(blood_aif(times) / (1.0 - HCT), times, HCT).fit(tissue)
    np.testing.assert_allclose(result.maps["fp_ml_min_g"], direct.params["Fp"], rtol=1e-3)
    np.testing.assert_allclose(result.maps["mbf_ml_min_g"], fp / (1.0 - HCT), rtol=0.08)
    # without a mask or delay_mask, each pixel's own delay: the same as the direct fit
    np.testing.assert_array_equal(
        compute_flow_maps(series, aif, hematocrit=HCT).maps["fp_ml_min_g"], result.maps["fp_ml_min_g"]
    )
    shared = compute_flow_maps(series, aif, hematocrit=HCT, mask=np.ones((2, 2), bool))
    assert np.ptp(shared.maps["delay_s"]) == 0.0  # with a mask, one delay
    with pytest.raises(ValidationError, match="delay"):
        compute_flow_maps(series, aif, delay="later")
    with pytest.raises(ValidationError, match="delay_mask"):
        compute_flow_maps(series, aif, delay="pixel", delay_mask=np.ones((2, 2), bool))


def test_mask_and_signal_series(known_slice) -> None:
    series, aif, fp = known_slice
    seq = SrSequence(**FLASH_META)
    coil = np.linspace(200.0, 900.0, series.shape[1])[None, None, :]
    pd = np.broadcast_to(coil * pd_signal(seq, "myocardium"), (3, *series.shape))
    signal = np.concatenate([pd, coil * sr_signal(series.data, seq, "myocardium")])
    times = np.r_[series.time_s[0] - 3.0 + np.arange(3) * 0.8, series.time_s]
    raw = PerfusionSeries(signal, times, units="signal", n_pd_frames=3, metadata=FLASH_META)
    mask = np.zeros(series.shape, dtype=bool)
    mask[1:3, 1:4] = True
    result = compute_flow_maps(raw, aif, hematocrit=HCT, mask=mask)
    assert np.all(result.status[~mask] == 1) and np.all(result.status[mask] == 0)
    assert np.all(np.isnan(result.maps["mbf_ml_min_g"][~mask]))
    np.testing.assert_allclose(result.maps["mbf_ml_min_g"][mask], (fp / (1.0 - HCT))[mask], rtol=0.08)


def aif_images(aif: AifCurve) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AIF images in Gd (t, 40, 36): an LV pool following ``aif``, an RV pool 3 s earlier, blur and noise."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:40, 0:36]
    lv = np.hypot(yy - 20, xx - 22) <= 4.5
    rv = np.hypot(yy - 19, (xx - 9) / 0.7) <= 4.5
    images = np.zeros((aif.n_samples, 40, 36))
    images[:, lv] = aif.values[:, None]
    images[:, rv] = blood_aif(aif.time_s + 3.0, peak=6.0)[:, None]
    return ndi.gaussian_filter(images, (0, 0.7, 0.7)) + rng.normal(0.0, 0.03, images.shape), lv, rv


def test_aif_from_images_feeds_the_fit(known_slice) -> None:
    series, aif, fp = known_slice
    images, lv, rv = aif_images(aif)
    aif_series = PerfusionSeries(images, aif.time_s, units="gd_mmol_l")
    result = compute_flow_maps(series, aif_series, hematocrit=HCT, mask=fp >= 1.0)
    assert result.aif_mask is not None and not np.any(result.aif_mask & rv)
    assert np.count_nonzero(result.aif_mask & lv) >= 0.8 * np.count_nonzero(result.aif_mask)
    np.testing.assert_allclose(result.maps["mbf_ml_min_g"][fp >= 1.0], (fp / (1.0 - HCT))[fp >= 1.0], rtol=0.1)
    with pytest.raises(ValidationError, match="aif_kind"):
        compute_flow_maps(series, aif_series, aif_kind="plasma")


def test_flowmap_command_with_aif_images_and_negative_clock(tmp_path: Path, known_slice) -> None:
    series, aif, fp = known_slice
    shift_s = -40.0  # a clock that starts before zero changes nothing
    images, _, _ = aif_images(aif)
    aif_series = PerfusionSeries(images, aif.time_s + shift_s, units="gd_mmol_l")
    moved = series.replace(time_s=series.time_s + shift_s)
    series_path = io.write_series(moved, tmp_path / "slice.seq.nrrd")
    aif_path = io.write_series(aif_series, tmp_path / "aif_echo1.seq.nrrd")
    out = tmp_path / "maps"
    code = main(["flowmap", "--series", str(series_path), "--aif", str(aif_path), "--out", str(out), "-q"])
    assert code == 0
    mbf = io.read_image(out / "mbf.nrrd").array
    fast = fp >= 1.0
    np.testing.assert_allclose(mbf[fast], (fp / (1.0 - HCT))[fast], rtol=0.1)
    used = io.read_aif_curve(out / "aif.csv")
    assert used.time_s[0] < 0 and used.kind == "plasma"


def test_long_delay_becomes_a_bounded_global_shift() -> None:
    rng = np.random.default_rng(3)
    fp = np.full((2, 3), 1.0)
    gd, times, aif = simulated_slice(rng, fp, delay_s=5.0)
    result = compute_flow_maps(PerfusionSeries(gd, times, units="gd_mmol_l"), aif, hematocrit=HCT, max_delay_s=3.0)
    assert result.delay.measured_s is not None and result.delay.shift_s > 0.5
    assert result.delay.residual_s <= 3.0
    # Without the global shift the per-pixel search stops at 3 s.
    np.testing.assert_allclose(result.maps["delay_s"], 5.0, atol=1.0)
    # Delay and flow trade off in the fit; the bound here is loose on purpose.
    np.testing.assert_allclose(result.maps["mbf_ml_min_g"], 1.0 / (1.0 - HCT), rtol=0.4)


def test_bad_input_is_refused_with_one_line(known_slice) -> None:
    series, aif, _ = known_slice
    short = AifCurve(aif.values[:30], aif.time_s[:30])
    with pytest.raises(ValidationError, match="shorter than the series"):
        compute_flow_maps(series, short)
    flat = AifCurve(np.random.default_rng(0).normal(0.0, 0.01, aif.n_samples), aif.time_s)
    with pytest.raises(ValidationError, match="no bolus"):
        compute_flow_maps(series, flat)
    with pytest.raises(ValidationError, match="mask"):
        compute_flow_maps(series, aif, mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(ValidationError, match="mask"):
        compute_flow_maps(series, aif, mask=np.zeros(series.shape, dtype=bool))
    with pytest.raises(ValidationError, match="hematocrit"):
        compute_flow_maps(series, aif, hematocrit=1.5)
    with pytest.raises(ValidationError, match="dt_s"):
        compute_flow_maps(series, aif, dt_s=0.0)
    with pytest.raises(ValidationError, match="model"):
        compute_flow_maps(series, aif, model="nonexistent")
    with pytest.raises(ValidationError, match="aif.units"):
        compute_flow_maps(series, AifCurve(aif.values, aif.time_s, units="signal"))
    with pytest.raises(ValidationError, match="finite"):
        AifCurve(np.where(np.arange(aif.n_samples) == 5, np.nan, aif.values), aif.time_s)
    with pytest.raises(ValidationError, match="increasing"):
        AifCurve(aif.values, -aif.time_s)
    with pytest.raises(ValidationError, match="finite"):
        PerfusionSeries(np.where(series.data == series.data.max(), np.nan, series.data), series.time_s)


def test_all_zero_tissue_gives_per_pixel_status(known_slice) -> None:
    series, aif, _ = known_slice
    data = np.array(series.data)
    data[:, 0, :] = 0.0
    result = compute_flow_maps(series.replace(data=data), aif, hematocrit=HCT)
    assert np.all(result.status[0] == kinetics.FitStatus.NO_SIGNAL)
    assert np.all(np.isnan(result.maps["mbf_ml_min_g"][0]))
    assert np.all(result.status[1:] == 0)


def test_map_file_names() -> None:
    assert map_file_stem("mbf_ml_min_g") == "mbf"
    assert map_file_stem("vb_ml_g") == "vb"
    assert map_file_stem("delay_s") == "delay"
    assert map_file_stem("nrmse") == "nrmse"
    assert map_file_stem("ps_ml_min_g_sd") == "ps_sd"


def test_flowmap_command(tmp_path: Path, known_slice) -> None:
    series, aif, fp = known_slice
    series_path = io.write_series(series, tmp_path / "slice.seq.nrrd")
    aif_path = io.write_aif_curve(aif, tmp_path / "aif.csv")
    labels = np.zeros(series.shape, dtype=np.uint8)
    labels[:, 1:4] = 2
    labels[0, 0] = 1
    mask_path = io.write_image(labels, tmp_path / "labels.nrrd", spacing_mm=series.spacing_mm, geometry=series.geometry)
    out = tmp_path / "maps"
    args = [
        "flowmap",
        "--series",
        str(series_path),
        "--aif",
        str(aif_path),
        "--mask",
        str(mask_path),
        "--out",
        str(out),
    ]
    assert main(args + ["-q"]) == 0
    for name in ("mbf", "fp", "ps", "vb", "visf", "delay", "nrmse", "status"):
        assert (out / f"{name}.nrrd").is_file(), name
    mbf = io.read_image(out / "mbf.nrrd")
    assert mbf.array.dtype == np.float32 and mbf.array.shape == series.shape
    assert mbf.spacing_mm == pytest.approx(series.spacing_mm)
    assert mbf.geometry is not None and np.allclose(mbf.geometry.origin_mm, series.geometry.origin_mm)
    myo = labels == 2
    assert np.all(np.isnan(mbf.array[~myo]))
    np.testing.assert_allclose(mbf.array[myo], (fp / (1.0 - HCT))[myo], rtol=0.08)
    used = io.read_aif_curve(out / "aif.csv")
    assert np.allclose(np.diff(used.time_s), 0.5) and used.values.max() > aif.values.max()
    # An existing output is not replaced without --overwrite; with it, it is.
    assert main(args + ["-q"]) == 2
    assert main(args + ["-q", "--overwrite", "--model", "btex"]) == 0
    # one delay shared by the pixels of the mask (the default with a mask): the simulated 0.5 s
    assert main(args + ["-q", "--overwrite"]) == 0
    delay = io.read_image(out / "delay.nrrd").array[myo]
    assert np.ptp(delay) == 0.0 and delay[0] == pytest.approx(0.5, abs=0.03)


def test_flowmap_command_errors(tmp_path: Path, known_slice, capsys) -> None:
    series, aif, _ = known_slice
    series_path = io.write_series(series, tmp_path / "slice.seq.nrrd")
    short = io.write_aif_curve(AifCurve(aif.values[:20], aif.time_s[:20]), tmp_path / "short.csv")
    code = main(["flowmap", "--series", str(series_path), "--aif", str(short), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aif.time_s" in err[0]
    assert not (tmp_path / "o").exists()


# -------------------------------------------------------------------------- real rest case


def _decode_published_map(folder: Path, shape: tuple[int, int]) -> np.ndarray:
    """MBF (ml/min/g) from the published JPEG: nearest colour-map entry, display range 0-6."""
    import h5py
    import matplotlib.image as mpimg

    image = mpimg.imread(folder / "MBF.jpg").astype(np.float64) / 255.0
    with h5py.File(folder / "color_perf_flow_map2.mat", "r") as f:
        colours = np.asarray(f["p"]).T
    ny, nx = shape
    rows = ((np.arange(ny) + 0.5) * image.shape[0] / ny).astype(int)
    cols = ((np.arange(nx) + 0.5) * image.shape[1] / nx).astype(int)
    block = np.zeros((ny, nx, 3))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            r = np.clip(rows + dy, 0, image.shape[0] - 1)
            c = np.clip(cols + dx, 0, image.shape[1] - 1)
            block += image[r][:, c, :3]
    block /= 9.0
    index = ((block[:, :, None, :] - colours[None, None]) ** 2).sum(-1).argmin(-1)
    return index / (colours.shape[0] - 1) * 6.0


def myocardium_from_data(gd: np.ndarray, aif_peak: float) -> np.ndarray:
    """A myocardial ring from the data alone: around the later-peaking of the two blood pools."""
    peak = gd.max(axis=0)
    blood = peak > 0.5 * aif_peak
    labels, n = ndi.label(blood)
    sizes = ndi.sum(blood, labels, np.arange(1, n + 1))
    pools = [1 + int(i) for i in np.argsort(sizes)[::-1][:2]]
    ttp = [np.median(gd.argmax(axis=0)[labels == k]) for k in pools]
    lv = labels == pools[int(np.argmax(ttp))]
    lv = ndi.binary_fill_holes(lv)
    square = np.ones((3, 3), dtype=bool)
    ring = ndi.binary_dilation(lv, square, iterations=5) & ~ndi.binary_dilation(lv, square, iterations=2)
    return ring & (peak < 0.25 * aif_peak) & (peak > 0.05)


def test_real_rest_case_matches_the_published_map(shared_data: Path) -> None:
    import scipy.io as sio

    folder = shared_data / "qperf_rest"
    mat = sio.loadmat(folder / "perf_data.mat")
    gd = np.moveaxis(mat["data"], -1, 0)
    dt = float(mat["deltaT"][0, 0])
    times = np.arange(gd.shape[0]) * dt
    series = PerfusionSeries(gd, times, units="gd_mmol_l", name="qperf rest")
    aif = AifCurve(mat["aif"].ravel(), times, kind="blood")
    myo = myocardium_from_data(gd, float(aif.values.max()))
    assert myo.sum() > 150
    result = compute_flow_maps(series, aif, hematocrit=float(mat["HCT"][0, 0]), mask=myo)
    published = _decode_published_map(folder, series.shape)
    ours = result.maps["mbf_ml_min_g"][myo]
    theirs = published[myo]
    ok = np.isfinite(ours)
    assert ok.mean() > 0.95
    assert 0.7 < np.median(theirs) < 1.3  # the decoding works: about 1 ml/min/g
    assert np.median(ours[ok]) == pytest.approx(np.median(theirs[ok]), rel=0.12)
    assert 0.85 < np.median(ours[ok] / np.maximum(theirs[ok], 1e-3)) < 1.15
    assert np.corrcoef(ours[ok], theirs[ok])[0, 1] > 0.3


def test_phantom_signal_and_aif_images_give_the_true_flow() -> None:
    """The whole chain on the digital phantom: SR signal with PD frames, dual-echo AIF images."""
    from qperf import phantom

    ps = phantom.generate_study(
        seed=2, noise=False, motion=False, blur=False, n_slices=1, n_frames=60, condition="rest"
    )
    series, truth = ps.study.slices[0], ps.truth.slices[0]
    myo = ndi.binary_erosion(truth.labels_ref == 2)
    result = compute_flow_maps(series, ps.study.aif_series, hematocrit=ps.truth.hematocrit, mask=myo)
    assert np.all(result.status[myo] == 0)
    # The phantom's truth holds both the plasma flow Fp of its BTEX tissue model and MBF.
    ratio = result.maps["fp_ml_min_g"][myo] / truth.fp_ml_min_g[myo]
    assert np.median(np.abs(ratio - 1.0)) < 0.03
    mbf_ratio = result.maps["mbf_ml_min_g"][myo] / truth.mbf_ml_min_g[myo]
    assert np.median(np.abs(mbf_ratio - 1.0)) < 0.03
    np.testing.assert_allclose(
        result.maps["mbf_ml_min_g"][myo], result.maps["fp_ml_min_g"][myo] / (1.0 - ps.truth.hematocrit), rtol=1e-5
    )


def test_smoothing_within_the_myocardium() -> None:
    """Smoothing stays inside the mask and removes most of the noise bias of a stress flow."""
    rng = np.random.default_rng(3)
    fp = np.full((14, 14), 2.0)
    gd, times, aif = simulated_slice(rng, fp)
    myo = np.zeros((14, 14), bool)
    myo[2:12, 2:12] = True
    clean = gd.copy()
    gd[:, ~myo] = 40.0  # bright "blood" around the tissue
    gd = gd + rng.normal(0.0, 0.1 * gd[:, myo].max(), gd.shape) * myo[None]
    series = PerfusionSeries(gd.astype(np.float32), times, units="gd_mmol_l")
    before = series.data.copy()
    smoothed = smooth_within(series, myo, 0.7)
    np.testing.assert_array_equal(series.data, before)  # the input is not modified
    np.testing.assert_array_equal(smoothed.data[:, ~myo], before[:, ~myo])
    # no blood enters the mask, and the noise inside falls
    assert smoothed.data[:, myo].max() < 0.5 * 40.0
    noise_before = np.std(before[:, myo] - clean[:, myo])
    noise_after = np.std(smoothed.data[:, myo] - clean[:, myo])
    assert noise_after < 0.6 * noise_before
    assert smooth_within(series, myo, 0.0) is series
    with pytest.raises(ValidationError, match="sigma_px"):
        smooth_within(series, myo, -1.0)
    with pytest.raises(ValidationError, match="mask"):
        smooth_within(series, myo[:5], 0.7)
    # the fit at 10 % noise: per-pixel delays send many pixels far along the delay-flow valley
    # (the mean flow is biased high); one shared delay and the smoothing remove most of it
    inner = myo & np.pad(np.ones((8, 8), bool), 3)
    raw = compute_flow_maps(series, aif, hematocrit=HCT, mask=inner, delay="pixel")
    fit = compute_flow_maps(smoothed, aif, hematocrit=HCT, mask=inner, delay_mask=inner)
    bias_raw = abs(np.nanmean(raw.maps["fp_ml_min_g"][inner]) / 2.0 - 1.0)
    bias = abs(np.nanmean(fit.maps["fp_ml_min_g"][inner]) / 2.0 - 1.0)
    assert bias < 0.1 and bias < 0.5 * bias_raw
    # one delay for every pixel: near the simulated 0.5 s
    delays = fit.maps["delay_s"][inner]
    assert np.ptp(delays) == 0.0 and delays[0] == pytest.approx(0.5, abs=0.06)
    with pytest.raises(ValidationError, match="delay_mask"):
        compute_flow_maps(smoothed, aif, hematocrit=HCT, mask=inner, delay_mask=~myo)


def test_flow_at_upper_bound(known_slice) -> None:
    series, aif, _ = known_slice
    result = compute_flow_maps(series, aif, hematocrit=HCT)
    assert not flow_at_upper_bound(result).any()
    upper = kinetics.get_model("btex").parameters[0].upper
    maps = dict(result.maps)
    maps["fp_ml_min_g"] = maps["fp_ml_min_g"].copy()
    maps["fp_ml_min_g"][1, 2] = upper
    at_bound = flow_at_upper_bound(dataclasses.replace(result, maps=maps))
    assert at_bound[1, 2] and at_bound.sum() == 1


def test_best_delay_is_the_earliest_that_fits_as_well() -> None:
    delays = np.arange(6) * 0.125
    # a later delay is taken only when it fits better by more than the 95 % chi-square (3.84);
    # between steps, where the profile crosses that level
    assert best_delay(delays, np.array([20.0, 10.0, 0.0, 5.0, 9.0, 16.0])) == pytest.approx(
        0.125 + 0.125 * (10 - 3.84) / 10
    )
    assert best_delay(delays, np.array([20.0, 3.0, 0.0, 5.0, 9.0, 16.0])) == pytest.approx(0.125 * 16.16 / 17)
    assert best_delay(delays, np.array([0.0, 1.0, 4.0, 9.0, 16.0, 25.0])) == 0.0
    assert best_delay(delays, np.full(6, np.inf)) is None
    # several curves sharing one delay: their chi-squares add up
    flat = (delays, np.full(6, 5.0))
    sharp = (delays, (delays - 0.5) ** 2 * 4000.0)
    assert common_delay([flat, sharp]) == pytest.approx(0.5 - 0.125 * 3.84 / 62.5)
    assert common_delay([(delays, np.full(6, np.inf)), sharp]) == common_delay([sharp])
    assert common_delay([]) is None


def test_delay_profile_of_the_region(known_slice) -> None:
    series, aif, _ = known_slice
    delays, chi2 = delay_chi2_profile(series, aif, np.ones(series.shape, bool), hematocrit=HCT)
    assert delays.shape == chi2.shape == (25,)  # 0 to 3 s in steps of 0.125 s
    np.testing.assert_allclose(np.diff(delays), 0.125)
    # the simulated tissue lags the AIF by 0.5 s
    assert best_delay(delays, chi2) == pytest.approx(0.5, abs=0.03)
    fixed = compute_flow_maps(series, aif, hematocrit=HCT, fixed_delay_s=0.375)
    np.testing.assert_allclose(fixed.maps["delay_s"], 0.375)  # between grid samples too
    with pytest.raises(ValidationError, match="fixed_delay_s"):
        compute_flow_maps(series, aif, hematocrit=HCT, fixed_delay_s=9.0)


@pytest.mark.parametrize("lag_s", [0.7, 1.2])
def test_stress_flow_behind_a_delay_between_grid_samples(lag_s: float) -> None:
    """Stress tissue lagging the AIF between the 0.5 s samples: the shared delay is found to
    0.1 s and the flow to 12 %. The earliest whole-sample delay that fitted within the noise,
    refined only towards earlier delays, read the 1.2 s curves 19 % low (1.0 s): at stress an
    earlier delay fits almost as well with a lower flow."""
    rng = np.random.default_rng(11)
    fine = np.arange(0.0, 70.0, 0.05)
    fp = rng.uniform(1.7, 2.3, (6, 8))  # plasma flow of about 3.5 ml/min/g blood flow
    x = np.clip(fine - 8.0, 0.0, None)
    sharp = x**2.5 * np.exp(-x / 1.1)  # a stress bolus
    blood = 6.0 * sharp / sharp.max() + 0.3 * (x > 12)
    curves = kinetics.get_model("btex").simulate(
        blood / (1.0 - HCT), fine, Fp=fp, PS=1.3, Vp=0.05, Visf=0.2, delay_s=lag_s
    )
    times = np.arange(110) * 0.5
    tissue = np.stack([np.interp(times, fine, c) for c in curves.reshape(-1, fine.size)]).reshape(*fp.shape, -1)
    gd = np.moveaxis(tissue, -1, 0)
    gd = gd + rng.normal(0.0, 0.03 * gd.max(), gd.shape)
    series = PerfusionSeries(gd.astype(np.float32), times, units="gd_mmol_l")
    aif = AifCurve(np.interp(times, fine, blood) + rng.normal(0.0, 0.02, times.size), times, kind="blood")
    everywhere = np.ones(fp.shape, bool)
    result = compute_flow_maps(series, aif, hematocrit=HCT, delay_mask=everywhere)
    assert result.maps["delay_s"][0, 0] == pytest.approx(lag_s, abs=0.1)
    assert np.median(result.maps["fp_ml_min_g"] / fp) == pytest.approx(1.0, abs=0.12)


@pytest.mark.parametrize("lag_s", [0.25, 0.75])
def test_delay_between_grid_samples(lag_s: float) -> None:
    """A lag between grid samples: whole-sample delays read it as flow; the refined delay does not."""
    rng = np.random.default_rng(7)
    fp = np.full((4, 5), 1.0)
    gd, times, aif = simulated_slice(rng, fp, delay_s=lag_s)
    series = PerfusionSeries(gd, times, units="gd_mmol_l")
    refined = compute_flow_maps(series, aif, hematocrit=HCT, delay_mask=np.ones(fp.shape, bool))
    np.testing.assert_allclose(refined.maps["delay_s"], lag_s, atol=0.02)
    np.testing.assert_allclose(refined.maps["fp_ml_min_g"], fp, rtol=0.03)
    whole = compute_flow_maps(series, aif, hematocrit=HCT, delay="pixel")  # whole-sample delays
    assert np.nanmean(whole.maps["fp_ml_min_g"]) > 1.1
    assert mean_curve_delay(series, aif, np.ones(fp.shape, bool), hematocrit=HCT) == pytest.approx(lag_s, abs=0.02)


def test_robust_baseline_ignores_frames_of_other_tissue() -> None:
    """A frame or two of another tissue (a breath not followed) does not shift the baseline."""
    from qperf.flow import robust_baseline

    rng = np.random.default_rng(4)
    frames = rng.normal(0.0, 0.01, (12, 50))
    np.testing.assert_allclose(robust_baseline(frames), frames.mean(axis=0), atol=0.004)
    frames[3:5] += 0.3  # fat under every pixel for two frames
    assert np.all(np.abs(robust_baseline(frames)) < 0.015)
    assert np.all(frames.mean(axis=0) > 0.04)  # where the mean would read 0.05


def test_outlying_frames_are_the_frames_of_a_gasp() -> None:
    """Smooth tissue curves with noise keep every frame, sharp stress peaks included; two frames
    showing other tissue (a gasp the registration could not follow) are found, and only they."""
    from qperf.flow import outlying_frames

    rng = np.random.default_rng(5)
    t = np.arange(60) * 0.9
    for rise_s in (3.0, 8.0):  # a fast (stress) and a slow (rest) myocardial curve
        curve = np.where(t > 15, ((t - 15) / rise_s) ** 2 * np.exp(-(t - 15) / rise_s), 0.0)
        curves = curve[:, None] * rng.uniform(0.8, 1.2, 200)[None] + rng.normal(0.0, 0.03, (60, 200))
        assert not outlying_frames(curves).any()
        assert not outlying_frames(curve).any()  # noise-free, one curve
        gasp = curves.copy()
        gasp[31:33] = rng.uniform(0.0, 2.0, (2, 200))  # blood and fat under the pixels
        np.testing.assert_array_equal(np.nonzero(outlying_frames(gasp))[0], [31, 32])
    assert not outlying_frames(np.zeros((60, 10))).any()
    assert not outlying_frames(np.ones((5, 10))).any()  # too few frames to judge


class KetyModel(kinetics.LeastSquaresModel):
    """One well-mixed compartment, ``C = Fp Cp (x) exp(-Fp t / V)``: a model QPerf does not ship."""

    name = "kety"
    parameters = (
        kinetics.ParameterInfo("Fp", "ml/min/g", "fp_ml_min_g", 1e-3, 8.0),
        kinetics.ParameterInfo("V", "ml/g", "v_ml_g", 1e-3, 1.0),
    )

    def curves(self, aif: np.ndarray, dt_s: float, params: np.ndarray) -> np.ndarray:
        flow = params[:, 0] / 60.0
        return flow[:, None] * exp_convolve(aif, dt_s, flow / np.maximum(params[:, 1], 1e-9))

    def start_grid(self) -> np.ndarray:
        axes = np.meshgrid(np.geomspace(0.1, 6.0, 12), np.geomspace(0.05, 0.8, 8), indexing="ij")
        return np.stack([a.reshape(-1) for a in axes], axis=1)


def test_a_new_model_plugs_into_the_flow_maps() -> None:
    """A model written outside QPerf is fitted by the same workflow, its flow read as MBF."""
    model = KetyModel()
    fine = np.arange(0.0, 60.0, 0.1)
    fp = np.array([[0.6, 1.2], [2.0, 3.0]])
    curves = model.simulate(blood_aif(fine) / (1.0 - HCT), fine, Fp=fp, V=0.3, delay_s=1.0)
    times = np.arange(0.0, 50.0, 0.5)
    tissue = np.stack([np.interp(times, fine, c) for c in curves.reshape(-1, fine.size)]).reshape(2, 2, -1)
    series = PerfusionSeries(np.moveaxis(tissue, -1, 0), times, units="gd_mmol_l")
    aif = AifCurve(blood_aif(times), times)
    result = compute_flow_maps(series, aif, model=model, hematocrit=HCT, delay_mask=np.ones(fp.shape, bool))
    assert result.model == "kety" and np.all(result.status == 0)
    assert {"fp_ml_min_g", "mbf_ml_min_g", "v_ml_g", "delay_s", "nrmse"} <= set(result.maps)
    np.testing.assert_allclose(result.maps["fp_ml_min_g"], fp, rtol=0.08)
    np.testing.assert_allclose(result.maps["mbf_ml_min_g"], fp / (1.0 - HCT), rtol=0.08)
    np.testing.assert_allclose(result.maps["v_ml_g"], 0.3, rtol=0.08)
    assert not flow_at_upper_bound(result, model=model).any()
    delay_s = mean_curve_delay(series, aif, np.ones(fp.shape, bool), model=model, hematocrit=HCT)
    assert delay_s is not None and abs(delay_s - 1.0) <= 0.5  # simulated 1 s behind the AIF
    np.testing.assert_allclose(result.maps["delay_s"], delay_s + result.delay.shift_s)
