"""Tests of the digital perfusion phantom: structure, truth consistency, determinism, physics."""

from __future__ import annotations

import numpy as np
import pytest

from qperf import phantom
from qperf.errors import ValidationError
from qperf.phantom.motion import bilinear
from qperf.phantom.physiology import TERRITORY, Perfusion
from qperf.types import LABELS

SMALL = {"shape": (112, 112), "spacing_mm": 2.4, "n_frames": 30}


@pytest.fixture(scope="module")
def moving() -> phantom.PhantomStudy:
    return phantom.generate_study(seed=3, condition="stress", **SMALL)


@pytest.fixture(scope="module")
def static_clean() -> phantom.PhantomStudy:
    return phantom.generate_study(seed=3, condition="stress", motion=False, noise=False, blur=False, **SMALL)


def _defect_seed() -> int:
    for seed in range(100):
        if Perfusion.draw(np.random.default_rng([seed, 2])).defect != "none":
            return seed
    raise AssertionError("no seed with a defect in 100")


# --- structure -------------------------------------------------------------------------------


def test_study_structure(moving: phantom.PhantomStudy) -> None:
    study = moving.study
    assert study.n_slices == 3 and study.condition == "stress" and study.aif is None
    assert [t.level for t in moving.truth.slices] == ["basal", "mid", "apical"]
    positions = [s.slice_position_mm for s in study.slices]
    assert positions[0] > positions[1] > positions[2]
    for s in study.slices:
        assert s.units == "signal" and s.n_pd_frames == 3 and s.data.shape == (30, 112, 112)
        for key in (
            "field_strength_t",
            "readout",
            "saturation_time_ms",
            "flip_angle_deg",
            "pd_flip_angle_deg",
            "echo_spacing_ms",
            "n_pe_to_center",
        ):
            assert key in s.metadata
        assert s.metadata["pd_flip_angle_deg"] == 5.0
        assert s.geometry is not None
        assert np.ptp(np.diff(s.dynamic_time_s)) > 0.01  # ECG-triggered: irregular
    # slices acquired one after another within each beat
    assert np.all(study.slices[1].time_s > study.slices[0].time_s)
    assert len(study.aif_series) == 2
    e1, e2 = study.aif_series
    te = e1.metadata["echo_times_ms"]
    assert len(te) == 2 and te[1] > te[0]
    assert e1.shape[1] < study.slices[0].shape[1] // 1.5  # low resolution
    assert e1.metadata["saturation_time_ms"] < study.slices[0].metadata["saturation_time_ms"]
    # T2* decay: the second echo is darker in the blood at peak
    assert e2.data.max() < e1.data.max()


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="condition"):
        phantom.generate_study(condition="exercise")
    with pytest.raises(ValidationError, match="n_frames"):
        phantom.generate_study(n_frames=5)
    with pytest.raises(ValidationError, match="field_t"):
        phantom.generate_study(field_t=7.0)
    with pytest.raises(ValidationError, match="seed"):
        phantom.generate_study(seed=-1)


def test_determinism() -> None:
    kw = {"shape": (96, 96), "spacing_mm": 2.8, "n_frames": 14, "n_slices": 1, "aif_images": False}
    a = phantom.generate_study(seed=11, **kw)
    b = phantom.generate_study(seed=11, **kw)
    c = phantom.generate_study(seed=12, **kw)
    np.testing.assert_array_equal(a.study.slices[0].data, b.study.slices[0].data)
    np.testing.assert_array_equal(a.truth.slices[0].labels_moving, b.truth.slices[0].labels_moving)
    np.testing.assert_array_equal(a.truth.slices[0].mbf_ml_min_g, b.truth.slices[0].mbf_ml_min_g)
    assert not np.array_equal(a.study.slices[0].data, c.study.slices[0].data)


def test_stress_and_rest_share_the_heart(static_clean: phantom.PhantomStudy) -> None:
    rest = phantom.generate_study(
        seed=3, condition="rest", motion=False, noise=False, blur=False, aif_images=False, **SMALL
    )
    for ts, tr in zip(static_clean.truth.slices, rest.truth.slices, strict=True):
        np.testing.assert_array_equal(ts.labels_ref, tr.labels_ref)
        np.testing.assert_array_equal(ts.aha_segments, tr.aha_segments)
        m = ts.labels_ref == 2
        assert np.all(ts.mbf_ml_min_g[m] > tr.mbf_ml_min_g[m])
    for seg, row in static_clean.truth.segments.items():
        other = rest.truth.segments[seg]
        assert row["nominal_rest_mbf_ml_min_g"] == pytest.approx(other["nominal_rest_mbf_ml_min_g"])
        assert 0.5 <= other["nominal_rest_mbf_ml_min_g"] <= 1.5
        assert row["mbf_ml_min_g"] / other["mbf_ml_min_g"] == pytest.approx(row["nominal_mpr"], rel=0.15)


def test_mbf_is_whole_blood_flow(static_clean: phantom.PhantomStudy) -> None:
    """MBF (as QPerf reports it) is the kinetic model's plasma flow over (1 - Hct)."""
    hct = static_clean.truth.hematocrit
    for t in static_clean.truth.slices:
        m = t.labels_ref == 2
        np.testing.assert_allclose(t.mbf_ml_min_g[m], t.fp_ml_min_g[m] / (1.0 - hct), rtol=1e-5)
        assert np.all(np.isnan(t.fp_ml_min_g[~m]))


@pytest.mark.parametrize("seed", [1, 2, 4, 6, 8])
def test_perfusion_reserve_is_physiological(seed: int) -> None:
    """Normal segments have a reserve of about 2 to 4.5; stress defects have less than normal."""
    from qperf.phantom.physiology import Perfusion

    perf = Perfusion.draw(np.random.default_rng(seed))
    mpr = perf.stress["MBF"].mean(axis=1) / perf.rest["MBF"].mean(axis=1)
    normal = mpr[~perf.ischaemic]
    assert np.all((normal > 1.8) & (normal < 4.6))
    if perf.ischaemic.any():
        assert mpr[perf.ischaemic].max() < normal.min()


# --- truth consistency -----------------------------------------------------------------------


def test_labels_versus_maps(moving: phantom.PhantomStudy) -> None:
    for t in moving.truth.slices:
        myo = t.labels_ref == 2
        assert set(np.unique(t.labels_ref)) == set(LABELS)
        for name in ("mbf_ml_min_g", "ps_ml_min_g", "vp_ml_g", "visf_ml_g"):
            arr = getattr(t, name)
            assert arr.dtype == np.float32 and arr.shape == t.labels_ref.shape
            np.testing.assert_array_equal(np.isfinite(arr), myo)
        assert np.all((t.mbf_ml_min_g[myo] > 0.3) & (t.mbf_ml_min_g[myo] < 5.5))
        assert np.all((t.vp_ml_g[myo] > 0.03) & (t.vp_ml_g[myo] < 0.15))
        assert np.all((t.visf_ml_g[myo] > 0.08) & (t.visf_ml_g[myo] < 0.5))
        np.testing.assert_array_equal(t.aha_segments > 0, myo)
        expected = {"basal": set(range(1, 7)), "mid": set(range(7, 13)), "apical": set(range(13, 17))}[t.level]
        assert set(np.unique(t.aha_segments[myo])) == expected
        assert t.labels_moving.shape == (30, *t.labels_ref.shape) and t.labels_moving.dtype == np.uint8
        assert t.gd_noise_free.shape == (30, *t.labels_ref.shape)
        assert np.abs(t.gd_noise_free[:3]).max() < 1e-3  # no contrast during the PD frames


def test_segment_table_versus_maps() -> None:
    seed = _defect_seed()
    ps = phantom.generate_study(seed=seed, motion=False, noise=False, aif_images=False, **SMALL)
    table = ps.truth.segments
    assert sorted(table) == list(range(1, 17))
    for seg, row in table.items():
        assert row["territory"] == TERRITORY[seg]
        values = np.concatenate([t.mbf_ml_min_g[t.aha_segments == seg] for t in ps.truth.slices])
        assert row["n_pixels"] == values.size > 0
        assert row["mbf_ml_min_g"] == pytest.approx(float(values.mean()), rel=1e-5)
    isch = [row["mbf_ml_min_g"] for row in table.values() if row["ischaemic"]]
    normal = [row["mbf_ml_min_g"] for row in table.values() if not row["ischaemic"]]
    assert isch and normal and max(isch) < min(normal)
    territories = {row["territory"] for row in table.values() if row["ischaemic"]}
    assert territories == set(ps.truth.parameters["perfusion"]["territories"])


def test_motion_fields_versus_moving_labels(moving: phantom.PhantomStudy) -> None:
    for t in moving.truth.slices:
        ny, nx = t.labels_ref.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        heart = t.labels_ref > 0
        assert np.abs(t.ref_to_moving_px).max() > 1.0  # it does move
        n_diff = 0
        agreements = []
        for f in range(t.labels_moving.shape[0]):
            d = t.ref_to_moving_px[f]
            # warping the reference labels by ref_to_moving reproduces the moving labels (up to
            # the pixel discretisation of partial-volume boundaries)
            ty = np.clip(np.rint(yy + d[0]), 0, ny - 1).astype(int)
            tx = np.clip(np.rint(xx + d[1]), 0, nx - 1).astype(int)
            agree = t.labels_moving[f][ty, tx] == t.labels_ref
            agreements.append(agree[heart].mean())
            # each structure moves with its displacement field: the centroid of the moved region is
            # the area-weighted (Jacobian) mean of p + d(p) over the reference region
            gy_y, gy_x = np.gradient(d[0])
            gx_y, gx_x = np.gradient(d[1])
            jac = (1 + gy_y) * (1 + gx_x) - gy_x * gx_y
            for label in (1, 2, 3):
                ref = t.labels_ref == label
                mov = t.labels_moving[f] == label
                w = jac[ref] / jac[ref].sum()
                expected = np.array([((yy + d[0])[ref] * w).sum(), ((xx + d[1])[ref] * w).sum()])
                found = np.array([yy[mov].mean(), xx[mov].mean()])
                assert np.abs(found - expected).max() < 0.5
            n_diff += int((t.labels_moving[f] != t.labels_ref).sum())
            # moving_to_ref is the inverse: m(q) + d(q + m(q)) = 0
            m = t.moving_to_ref_px[f]
            back = bilinear(d.reshape(2, -1), (ny, nx), (yy + m[0]).ravel(), (xx + m[1]).ravel())
            inner = (slice(8, ny - 8), slice(8, nx - 8))
            err = (m.reshape(2, -1) + back).reshape(2, ny, nx)[:, inner[0], inner[1]]
            assert np.abs(err).max() < 0.05
        assert min(agreements) > 0.85 and np.mean(agreements) > 0.93
        assert n_diff > 0


def test_static_phantom_has_no_motion(static_clean: phantom.PhantomStudy) -> None:
    for t in static_clean.truth.slices:
        assert not np.any(t.ref_to_moving_px) and not np.any(t.moving_to_ref_px)
        assert np.all(t.labels_moving == t.labels_ref[None])


def test_geometry_points_to_anatomy(moving: phantom.PhantomStudy) -> None:
    """The in-plane projection of LPS anterior points to the anterior wall; the RV is septal."""
    dy, dx = moving.study.slices[0].spacing_mm
    for s, t in zip(moving.study.slices, moving.truth.slices, strict=True):
        g = s.geometry
        assert g is not None
        ant = np.array([float(np.dot(g.y_direction, (0, -1, 0))), float(np.dot(g.x_direction, (0, -1, 0)))])
        ant /= np.linalg.norm(ant)
        right = np.array([float(np.dot(g.y_direction, (-1, 0, 0))), float(np.dot(g.x_direction, (-1, 0, 0)))])
        yy, xx = np.mgrid[0 : t.labels_ref.shape[0], 0 : t.labels_ref.shape[1]]
        lv = np.array([yy[t.labels_ref == 1].mean() * dy, xx[t.labels_ref == 1].mean() * dx])

        def direction(mask: np.ndarray, yy: np.ndarray = yy, xx: np.ndarray = xx, lv: np.ndarray = lv) -> np.ndarray:
            v = np.array([yy[mask].mean() * dy, xx[mask].mean() * dx]) - lv
            return v / np.linalg.norm(v)

        anterior_segments = {"basal": 1, "mid": 7, "apical": 13}[t.level]
        septal_segments = {"basal": (2, 3), "mid": (8, 9), "apical": (14,)}[t.level]
        assert np.dot(direction(t.aha_segments == anterior_segments), ant) > 0.5
        sept = direction(np.isin(t.aha_segments, septal_segments))
        assert np.dot(sept, direction(t.labels_ref == 3)) > 0.6
        assert np.dot(sept, right) > 0.0  # the septum faces the patient's right
        # insertion points lie where the RV meets the myocardium
        for p in t.insertion_points_yx.values():
            for label in (2, 3):
                dist = np.hypot(yy[t.labels_ref == label] - p[0], xx[t.labels_ref == label] - p[1]).min()
                assert dist < 2.5


def test_aha_truth_matches_the_project_aha_module(moving: phantom.PhantomStudy) -> None:
    """qperf.aha, given only the truth labels, insertion point and geometry, reproduces the AHA truth."""
    from qperf import aha

    for s, t in zip(moving.study.slices, moving.truth.slices, strict=True):
        result = aha.analyse_slice(
            t.labels_ref, t.insertion_points_yx["anterior"], t.level, spacing_mm=s.spacing_mm, geometry=s.geometry
        )
        myo = t.labels_ref == 2
        assert (result.segments == t.aha_segments)[myo].mean() > 0.999


# --- physics ---------------------------------------------------------------------------------


def test_enhancement_ranges(moving: phantom.PhantomStudy) -> None:
    truth = moving.truth
    assert 3.0 <= truth.aif_blood_gd_mmol_l.max() <= 9.0
    t = truth.slices[1]
    inner = (t.labels_ref == 1) & (t.mbf_ml_min_g != t.mbf_ml_min_g)  # LV label (not myocardium)
    lv_peak = t.gd_noise_free[:, inner].max(axis=1).max()
    assert 0.8 * truth.aif_blood_gd_mmol_l.max() < lv_peak <= truth.aif_blood_gd_mmol_l.max() * 1.05
    myo_peak = t.gd_noise_free[:, t.labels_ref == 2].mean(axis=1).max()
    assert 0.4 < myo_peak < 2.0
    # the RV enhances before the LV, the LV before the myocardium
    rv = t.gd_noise_free[:, t.labels_ref == 3].mean(axis=1)
    lv = t.gd_noise_free[:, t.labels_ref == 1].mean(axis=1)
    myo = t.gd_noise_free[:, t.labels_ref == 2].mean(axis=1)
    assert np.argmax(rv) < np.argmax(lv) < np.argmax(myo)
    # blood saturates: at peak the blood signal is far below linear in Gd
    s = moving.study.slices[1]
    base = s.dynamic[:3].mean(axis=0)
    assert (s.dynamic[:, inner].mean(axis=1).max() / base[inner].mean()) < 0.5 * (1 + 5.565 * 1.7 * lv_peak)


def test_signal_inverts_to_gd(static_clean: phantom.PhantomStudy) -> None:
    """The project's look-up table turns the noise-free phantom back into the true Gd."""
    from qperf import gd

    for s, t in zip(static_clean.study.slices, static_clean.truth.slices, strict=True):
        conv = gd.series_to_gd(s, tissue="myocardium")
        from scipy.ndimage import binary_erosion

        core = binary_erosion(t.labels_ref == 2, iterations=1)
        if core.sum() < 10:
            continue
        est = conv.data[:, core].mean(axis=1)
        ref = t.gd_noise_free[3:, core].mean(axis=1)
        np.testing.assert_allclose(est, ref, atol=0.02 * ref.max() + 1e-3)


def test_two_compartment_stand_in_matches_ode() -> None:
    from scipy.integrate import solve_ivp

    from qperf.phantom.kinetics import TwoCompartmentExchange

    t = np.arange(0.0, 40.0, 0.5)
    aif = 6.0 * np.clip((t - 5) / 3, 0, None) ** 2 * np.exp(-np.clip(t - 5, 0, None) / 2.0)
    fp, ps, vp, ve = 2.5, 1.2, 0.08, 0.2
    curve = TwoCompartmentExchange().simulate(aif, t, Fp=fp, PS=ps, Vp=vp, Visf=ve)

    def rhs(tt: float, y: np.ndarray) -> list[float]:
        ca = np.interp(tt, t, aif)
        return [(fp / 60 * (ca - y[0]) - ps / 60 * (y[0] - y[1])) / vp, ps / 60 * (y[0] - y[1]) / ve]

    sol = solve_ivp(rhs, (0, t[-1]), [0.0, 0.0], t_eval=t, max_step=0.05, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(curve, vp * sol.y[0] + ve * sol.y[1], atol=1e-4)


def test_flash_closed_form_matches_pulse_loop() -> None:
    from qperf.phantom.signal import Readout, sr_signal

    ro = Readout(1.5, "flash", 95.0, 12.0, 5.0, 2.5, 30)
    gd = np.array([0.0, 1.0, 5.0])
    r1 = 1 / 1100.0 + 5.565e-3 * gd
    mz = 1 - np.exp(-(95.0 - 75.0) * r1)
    e1 = np.exp(-2.5 * r1)
    for _ in range(30):
        mz = mz * np.cos(np.deg2rad(12)) * e1 + 1 - e1
    np.testing.assert_allclose(sr_signal(gd, 1100.0, 50.0, ro), mz * np.sin(np.deg2rad(12)), rtol=1e-12)


# --- files and command line ------------------------------------------------------------------


def test_write_study_and_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from qperf import io
    from qperf.cli import main
    from qperf.errors import OutputExistsError

    out = tmp_path / "ph"
    assert (
        main(["phantom", str(out), "--slices", "1", "--frames", "16", "--seed", "4", "--condition", "rest", "-q"]) == 0
    )
    study = io.read_study(out)
    assert study.n_slices == 1 and study.condition == "rest" and len(study.aif_series) == 2
    doc = json.loads((out / "truth" / "truth.json").read_text())
    assert doc["condition"] == "rest" and len(doc["segments"]) == 16
    labels = io.read_image(out / "truth" / doc["slices"][0]["files"]["labels_ref"])
    assert labels.array.shape == study.slices[0].shape
    moving = io.read_image(out / "truth" / doc["slices"][0]["files"]["labels_moving"])
    assert moving.array.shape == study.slices[0].data.shape
    aif = io.read_aif_curve(out / "truth" / "aif_blood.csv")
    assert aif.values.max() > 2.0
    ps = phantom.generate_study(seed=4, n_slices=1, n_frames=16, condition="rest")
    np.testing.assert_allclose(study.slices[0].data, ps.study.slices[0].data, rtol=1e-6)
    np.testing.assert_array_equal(labels.array, ps.truth.slices[0].labels_ref)
    with pytest.raises(OutputExistsError):
        phantom.write_study(ps, out)
    for bad in (["--slices", "0"], ["--model", "nonsense"]):  # option values refused by argparse
        with pytest.raises(SystemExit) as refused:
            main(["phantom", str(tmp_path / "bad"), *bad, "-q"])
        assert refused.value.code == 2
    assert not (tmp_path / "bad").exists()
    out2 = tmp_path / "preview"
    assert main(["phantom", str(out2), "--slices", "1", "--frames", "16", "--no-motion", "--preview", "-q"]) == 0
    assert (out2 / "preview.png").stat().st_size > 10_000


# --- against the real reference data ---------------------------------------------------------


def test_phantom_ranges_cover_the_real_rest_scan(shared_data) -> None:  # type: ignore[no-untyped-def]
    """The real rest case (Gd units) lies inside the phantom's ranges of AIF peak, myocardial
    enhancement relative to the AIF, and baseline noise after Gd conversion."""
    import scipy.io
    from scipy import ndimage

    from qperf import gd

    real = scipy.io.loadmat(shared_data / "qperf_rest" / "perf_data.mat")
    aif = np.asarray(real["aif"], dtype=float).ravel()
    aif_peak = float(aif.max())
    data = np.asarray(real["data"], dtype=float)  # (y, x, t), mmol/L
    # myocardial ring: around the LV blood pool (bright at the AIF peak), away from the RV
    i_lv = int(np.argmax(aif))
    pool, n = ndimage.label(data[:, :, i_lv] > 0.5 * aif_peak)
    lv = ndimage.binary_fill_holes(pool == 1 + int(np.argmax(ndimage.sum(pool > 0, pool, range(1, n + 1)))))
    rv = data[:, :, max(i_lv - 9, 0)] > 0.5 * aif_peak
    ring = ndimage.binary_dilation(lv, iterations=5) & ~ndimage.binary_dilation(lv, iterations=1)
    ring &= ~ndimage.binary_dilation(rv, iterations=2)
    myo_ratio = float(data[ring].mean(axis=0).max()) / aif_peak
    noise = float(np.median(data[:, :, : max(i_lv - 12, 5)].std(axis=2)[ring]))
    peaks, ratios, noises = [], [], []
    for seed in range(6):
        ps = phantom.generate_study(
            seed=seed, condition="rest", motion=False, n_frames=50, n_slices=1, aif_images=False, readout="flash"
        )
        s, t = ps.study.slices[0], ps.truth.slices[0]
        myo = t.labels_ref == 2
        peaks.append(ps.truth.aif_blood_gd_mmol_l.max())
        ratios.append(t.gd_noise_free[:, myo].mean(axis=1).max() / peaks[-1])
        conv = gd.series_to_gd(s, tissue="myocardium").data
        noises.append(float(np.median(conv[:6][:, myo].std(axis=0))))
    assert 0.02 < myo_ratio < 0.3 and 0.003 < noise < 0.1  # the reference case itself is sensible
    assert min(peaks) < aif_peak < max(peaks)
    assert 0.75 * min(ratios) < myo_ratio < 1.25 * max(ratios)
    assert 0.5 * min(noises) < noise < 2.0 * max(noises)


def test_aif_images_invert_to_the_true_aif() -> None:
    """Two-echo T2* correction plus the project's blood look-up table recovers the true AIF."""
    from scipy.ndimage import binary_erosion

    from qperf import gd

    ps = phantom.generate_study(
        seed=8, n_slices=1, n_frames=40, motion=False, noise=False, blur=False, shape=(128, 128), spacing_mm=2.2
    )
    e1, e2 = ps.study.aif_series
    te1, te2 = e1.metadata["echo_times_ms"]
    assert ps.truth.aif_labels_ref is not None
    core = binary_erosion(ps.truth.aif_labels_ref == 1, iterations=1)
    assert core.sum() >= 3
    s1 = e1.data[:, core].astype(float)
    s2 = e2.data[:, core].astype(float)
    # mono-exponential extrapolation to TE = 0
    s0 = s1 * (s1 / s2) ** (te1 / (te2 - te1))
    pd = s0[: e1.n_pd_frames].mean(axis=0)
    seq = gd.SrSequence.from_metadata(e1.metadata)
    est = gd.ratio_to_gd(s0[e1.n_pd_frames :] / pd, seq, "blood").mean(axis=1)
    true = ps.truth.aif_frames_gd_mmol_l[e1.n_pd_frames :]
    np.testing.assert_allclose(est, true, atol=0.03 * true.max())
    # without the T2* correction the peak is under-estimated
    raw = gd.ratio_to_gd(s1[e1.n_pd_frames :] / s1[: e1.n_pd_frames].mean(axis=0), seq, "blood").mean(axis=1)
    assert raw.max() < 0.97 * true.max()


def test_noise_free_curves_follow_the_parameter_maps(static_clean: phantom.PhantomStudy) -> None:
    """Inside the myocardium, the true Gd curves are the kinetic model's curves for the true maps."""
    from scipy.ndimage import binary_erosion

    from qperf.phantom.kinetics import get_tissue_model

    truth = static_clean.truth
    model, name = get_tissue_model(truth.kinetic_model)
    assert name == truth.kinetic_model
    grid = truth.aif_time_s
    plasma = truth.aif_blood_gd_mmol_l / (1.0 - truth.hematocrit)
    for t in truth.slices:
        core = binary_erosion(t.labels_ref == 2, iterations=1)
        params = {
            "Fp": t.fp_ml_min_g[core],
            "PS": t.ps_ml_min_g[core],
            "Vp": t.vp_ml_g[core],
            "Visf": t.visf_ml_g[core],
        }
        sim = np.asarray(model.simulate(plasma, grid, **params))
        expected = np.array([np.interp(t.time_s, grid, c) for c in sim])
        found = t.gd_noise_free[:, core].T
        err = np.abs(found - expected).max(axis=1) / expected.max(axis=1)
        assert np.median(err) < 0.003 and np.percentile(err, 90) < 0.01


def test_moving_frames_are_fresh_snapshots() -> None:
    """Moving frames re-rasterise the sub-pixel anatomy: no displacement leaves the classes as
    they are, a whole-pixel displacement moves them by whole pixels, and a frame is the mean of
    its sub-pixels' signals (no resampling blur)."""
    from qperf.phantom.render import _snapshots, moving_subpixel_classes

    s = 3
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 5, (8 * s, 10 * s)).astype(np.int16)
    fields = np.zeros((3, 2, 8, 10), np.float32)
    fields[1, 0] = 1.0  # frame 1 shows the anatomy one pixel further down: q + (1, 0)
    fields[2, 1] = -2.0
    moved = moving_subpixel_classes(classes, s, fields)
    np.testing.assert_array_equal(moved[0], classes)
    np.testing.assert_array_equal(moved[1][:-s], classes[s:])
    np.testing.assert_array_equal(moved[2][:, 2 * s :], classes[:, : -2 * s])
    signal = rng.uniform(0.0, 1.0, (5, 3)).astype(np.float32)
    frames = _snapshots(moved, signal, s, (8, 10))
    expected = signal[classes, 0].reshape(8, s, 10, s).mean(axis=(1, 3))
    np.testing.assert_allclose(frames[0], expected, rtol=1e-6)
    np.testing.assert_allclose(frames[1][:-1], signal[classes, 1].reshape(8, s, 10, s).mean(axis=(1, 3))[1:], rtol=1e-6)
