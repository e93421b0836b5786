"""Series, study, AIF and map I/O: round trips and bad input for every reader."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from qperf import AifCurve, PerfusionSeries, PerfusionStudy, SliceGeometry, io
from qperf.errors import FormatError, MissingMetadataError, OutputExistsError, ValidationError

SERIES_SUFFIXES = [".seq.nrrd", ".nrrd", ".nii", ".nii.gz", ".npz"]


def make_series(rng: np.random.Generator, *, n: int = 7, geometry: bool = True, name: str = "slice 1") -> PerfusionSeries:
    t = np.cumsum(rng.uniform(0.7, 1.2, n))  # irregular, ECG-triggered
    g = (
        SliceGeometry(
            origin_mm=(12.5, -40.0, 81.0),
            x_direction=(0.70710678, 0.5, -0.5),
            y_direction=(0.0, 0.70710678, 0.70710678),
            slice_thickness_mm=8.0,
        )
        if geometry
        else None
    )
    return PerfusionSeries(
        rng.uniform(0, 400, (n, 9, 11)).astype(np.float32),
        time_s=t,
        spacing_mm=(2.1, 1.9),
        geometry=g,
        units="signal",
        n_pd_frames=2,
        slice_position_mm=-12.0,
        name=name,
        metadata={"field_strength_t": 1.5, "flip_angle_deg": 12.0, "echo_times_ms": [1.1, 2.3]},
    )


def assert_same_series(a: PerfusionSeries, b: PerfusionSeries, *, exact_time: bool = True) -> None:
    np.testing.assert_array_equal(a.data, b.data)
    if exact_time:
        np.testing.assert_array_equal(a.time_s, b.time_s)
    else:
        np.testing.assert_allclose(a.time_s, b.time_s, atol=1e-6)
    assert a.spacing_mm == pytest.approx(b.spacing_mm)
    assert (a.geometry is None) == (b.geometry is None)
    if a.geometry is not None and b.geometry is not None:
        np.testing.assert_allclose(a.ijk_to_ras(), b.ijk_to_ras(), atol=1e-5)
    assert a.units == b.units
    assert a.n_pd_frames == b.n_pd_frames


@pytest.mark.parametrize("suffix", SERIES_SUFFIXES)
@pytest.mark.parametrize("geometry", [True, False])
def test_series_round_trip(tmp_path: Path, rng: np.random.Generator, suffix: str, geometry: bool) -> None:
    series = make_series(rng, geometry=geometry)
    path = tmp_path / f"s{suffix}"
    io.write_series(series, path)
    back = io.read_series(path)
    assert_same_series(series, back)
    assert back.slice_position_mm == pytest.approx(series.slice_position_mm)
    assert back.metadata["echo_times_ms"] == [1.1, 2.3]
    assert back.name == series.name


def test_analyze_round_trip_keeps_data_and_interval(tmp_path: Path, rng: np.random.Generator) -> None:
    series = make_series(rng, geometry=False).replace(time_s=np.arange(7) * 0.5, n_pd_frames=0)
    path = tmp_path / "s.hdr"
    io.write_series(series, path)
    assert path.exists() and path.with_suffix(".img").exists()
    back = io.read_series(path, frame_interval_s=0.5)
    np.testing.assert_array_equal(back.data, series.data)
    np.testing.assert_allclose(back.time_s, series.time_s)
    assert back.geometry is None
    with pytest.raises(MissingMetadataError, match="frame interval"):
        io.read_series(path)


def test_npy_needs_spacing_and_interval(tmp_path: Path, rng: np.random.Generator) -> None:
    arr = rng.normal(size=(6, 5, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    with pytest.raises(MissingMetadataError, match="frame interval"):
        io.read_series(tmp_path / "a.npy", spacing_mm=(2, 2))
    with pytest.raises(MissingMetadataError, match="spacing"):
        io.read_series(tmp_path / "a.npy", frame_interval_s=1.0)
    s = io.read_series(tmp_path / "a.npy", frame_interval_s=0.8, spacing_mm=(2.0, 1.5))
    np.testing.assert_array_equal(s.data, arr)
    np.testing.assert_allclose(s.time_s, np.arange(6) * 0.8)
    # MATLAB-style rows x columns x time
    np.save(tmp_path / "b.npy", np.moveaxis(arr, 0, -1))
    s2 = io.read_series(tmp_path / "b.npy", frame_interval_s=0.8, spacing_mm=(2.0, 1.5), axes="yxt")
    np.testing.assert_array_equal(s2.data, arr)


def test_nifti_orientation_matches_header(tmp_path: Path, rng: np.random.Generator) -> None:
    """A NIfTI written by another tool: voxel (i, j) lands where its affine says."""
    affine = np.array([[-2.0, 0, 0, 100], [0, 0, 3.0, -50], [0, -2.5, 0, 20], [0, 0, 0, 1]])  # RAS
    data = rng.uniform(size=(8, 6, 1, 5)).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "msec")
    img.header.set_zooms((2.0, 2.5, 3.0, 750.0))
    nib.save(img, tmp_path / "ext.nii.gz")
    s = io.read_series(tmp_path / "ext.nii.gz")
    assert s.data.shape == (5, 6, 8)
    assert s.data[3, 2, 7] == data[7, 2, 0, 3]
    np.testing.assert_allclose(s.time_s, np.arange(5) * 0.75)
    assert s.spacing_mm == pytest.approx((2.5, 2.0))
    np.testing.assert_allclose(s.ijk_to_ras()[:3, :2], affine[:3, :2])
    np.testing.assert_allclose(s.ijk_to_ras()[:3, 3], affine[:3, 3])


def test_map_and_label_images(tmp_path: Path, rng: np.random.Generator) -> None:
    series = make_series(rng)
    mbf = rng.uniform(0, 4, series.shape).astype(np.float32)
    mbf[0, 0] = np.nan
    io.write_image(mbf, tmp_path / "mbf.nrrd", spacing_mm=series.spacing_mm, geometry=series.geometry)
    back = io.read_image(tmp_path / "mbf.nrrd")
    np.testing.assert_array_equal(back.array, mbf)
    np.testing.assert_allclose(back.geometry.ijk_to_lps(back.spacing_mm), series.geometry.ijk_to_lps(series.spacing_mm))
    labels = rng.integers(0, 4, (series.n_frames, *series.shape)).astype(np.uint8)
    io.write_image(labels, tmp_path / "labels.seq.nrrd", spacing_mm=series.spacing_mm, geometry=series.geometry, time_s=series.time_s)
    back = io.read_image(tmp_path / "labels.seq.nrrd")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_array_equal(back.time_s, series.time_s)


def test_study_manifest_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    slices = [make_series(rng, name=f"slice {i}").replace(slice_position_mm=float(10 * i)) for i in range(3)]
    t = np.arange(0, 12, 0.5)
    aif = AifCurve(np.exp(-((t - 4) ** 2)), t, kind="blood")
    echoes = [make_series(rng, name="aif").replace(geometry=None) for _ in range(2)]
    echoes[1] = echoes[1].replace(time_s=echoes[0].time_s)
    study = PerfusionStudy(slices, aif=aif, aif_series=echoes, condition="stress", hematocrit=0.4, name="case")
    manifest = io.write_study(study, tmp_path / "case")
    assert manifest.name == "study.json"
    for target in (tmp_path / "case", manifest):
        back = io.read_study(target)
        assert back.n_slices == 3 and back.condition == "stress" and back.hematocrit == 0.4
        for a, b in zip(study.slices, back.slices, strict=True):
            assert_same_series(a, b)
            assert b.slice_position_mm == a.slice_position_mm
        np.testing.assert_allclose(back.aif.values, aif.values)
        np.testing.assert_allclose(back.aif.time_s, aif.time_s)
        assert len(back.aif_series) == 2


def test_aif_csv(tmp_path: Path) -> None:
    t = np.linspace(0, 30, 61)
    aif = AifCurve(5 * np.exp(-((t - 8) ** 2) / 4), t, kind="plasma")
    io.write_aif_curve(aif, tmp_path / "aif.csv")
    back = io.read_aif_curve(tmp_path / "aif.csv")
    assert back.kind == "plasma" and back.units == "gd_mmol_l"
    np.testing.assert_allclose(back.values, aif.values)
    (tmp_path / "sig.csv").write_text("# comment\ntime_s,signal,other\n0,1,x\n1,2,y\n2,5,z\n")
    sig = io.read_aif_curve(tmp_path / "sig.csv")
    assert sig.units == "signal" and sig.kind == "blood"


# Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".seq.nrrd", ".nii.gz", ".hdr", ".npz", ".npy"])
def test_missing_and_empty_files(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(FormatError, match="no such file"):
        io.read_series(tmp_path / f"missing{suffix}")
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    if suffix == ".hdr":
        empty.with_suffix(".img").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        io.read_series(empty, frame_interval_s=1.0, spacing_mm=(1, 1))


@pytest.mark.parametrize("suffix", [".seq.nrrd", ".nii.gz", ".npz"])
def test_wrong_format(tmp_path: Path, suffix: str) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"this is not an image at all\n" * 20)
    with pytest.raises(FormatError, match="not a readable"):
        io.read_series(bad, frame_interval_s=1.0, spacing_mm=(1, 1))


def test_unknown_suffix(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG")
    with pytest.raises(FormatError, match="unknown series format"):
        io.read_series(p)


def test_2d_image_without_time(tmp_path: Path, rng: np.random.Generator) -> None:
    io.write_image(rng.uniform(size=(5, 6)), tmp_path / "map.nrrd", spacing_mm=(1, 1))
    with pytest.raises(FormatError, match="single 2D image"):
        io.read_series(tmp_path / "map.nrrd")
    nib.save(nib.Nifti1Image(rng.uniform(size=(5, 6)).astype(np.float32), np.eye(4)), tmp_path / "map.nii")
    with pytest.raises(FormatError, match="no time axis"):
        io.read_series(tmp_path / "map.nii")
    np.save(tmp_path / "map.npy", rng.uniform(size=(5, 6)))
    with pytest.raises(FormatError, match="no time axis"):
        io.read_series(tmp_path / "map.npy", frame_interval_s=1, spacing_mm=(1, 1))


def test_nan_and_single_frame(tmp_path: Path, rng: np.random.Generator) -> None:
    arr = rng.uniform(size=(4, 5, 6)).astype(np.float32)
    arr[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", arr)
    with pytest.raises(ValidationError, match="NaN"):
        io.read_series(tmp_path / "nan.npy", frame_interval_s=1, spacing_mm=(1, 1))
    nib.save(nib.Nifti1Image(arr[:1].transpose(2, 1, 0)[:, :, None, :], np.eye(4)), tmp_path / "one.nii")
    with pytest.raises(ValidationError, match="at least 2 frames"):
        io.read_series(tmp_path / "one.nii", frame_interval_s=1)


def test_mismatched_aif(tmp_path: Path, rng: np.random.Generator) -> None:
    series = make_series(rng)
    short = AifCurve(np.ones(3), series.time_s[:3])
    with pytest.raises(ValidationError, match="do not match"):
        PerfusionStudy([series], aif=short)
    folder = tmp_path / "study"
    io.write_study(PerfusionStudy([series]), folder)
    io.write_aif_curve(short, folder / "aif.csv")
    doc = json.loads((folder / "study.json").read_text())
    doc["aif"] = {"path": "aif.csv"}
    (folder / "study.json").write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="study.json: aif.time_s"):
        io.read_study(folder)


def test_bad_manifests(tmp_path: Path) -> None:
    m = tmp_path / "study.json"
    m.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        io.read_study(m)
    m.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(FormatError, match="not a QPerf study manifest"):
        io.read_study(m)
    m.write_text(json.dumps({"format": "qperf.study", "version": 1, "slices": ["nope.seq.nrrd"]}))
    with pytest.raises(FormatError, match="no such file"):
        io.read_study(m)


def test_aif_csv_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("t,value\n0,1\n1,2\n")
    with pytest.raises(FormatError, match="time_s"):
        io.read_aif_curve(p)
    p.write_text("time_s,gd_mmol_l\n0,1\n1,abc\n")
    with pytest.raises(FormatError, match="non-numeric"):
        io.read_aif_curve(p)
    p.write_text("time_s,gd_mmol_l\n0,1\n1,nan\n")
    with pytest.raises(FormatError, match="finite"):
        io.read_aif_curve(p)
    p.write_text("time_s,gd_mmol_l\n0,1\n-1,2\n")
    with pytest.raises(FormatError, match="increasing"):
        io.read_aif_curve(p)


# Safe outputs ----------------------------------------------------------------------------------


def test_no_overwrite_and_no_partial_output(tmp_path: Path, rng: np.random.Generator) -> None:
    series = make_series(rng)
    path = tmp_path / "s.seq.nrrd"
    io.write_series(series, path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        io.write_series(series, path)
    assert path.read_bytes() == before
    io.write_series(series.replace(name="other"), path, overwrite=True)
    assert io.read_series(path).name == "other"
    # a failing write leaves nothing behind
    with pytest.raises(ValidationError):
        io.write_image(np.zeros((2, 3, 4)), tmp_path / "bad.nrrd", spacing_mm=(1, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.seq.nrrd"]


def test_study_folder_is_atomic(tmp_path: Path, rng: np.random.Generator) -> None:
    study = PerfusionStudy([make_series(rng)])
    io.write_study(study, tmp_path / "out")
    with pytest.raises(OutputExistsError):
        io.write_study(study, tmp_path / "out")

    class Boom(Exception):
        pass

    from qperf.io import atomic_dir

    with pytest.raises(Boom), atomic_dir(tmp_path / "half") as tmp:
        (tmp / "a.txt").write_text("x")
        raise Boom
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_real_rest_case_analyze(shared_data: Path) -> None:
    path = shared_data / "qperf_rest" / "data.hdr"
    s = io.read_series(path, frame_interval_s=0.5, units="gd_mmol_l")
    assert s.n_frames == 68 and s.shape == (47, 51)
    assert s.geometry is None
    assert 5.5 < float(s.data.max()) < 6.5  # peak blood-pool Gd in mmol/L
    described = io.read_series(path, allow_missing_time=True)
    assert described.metadata["time_recorded"] is False
    assert "not recorded" in described.summary()
    aif = io.read_aif_curve(shared_data / "qperf_rest" / "aif.hdr", frame_interval_s=0.5)
    assert aif.n_samples == 68 and 4.0 < aif.values.max() < 5.0
