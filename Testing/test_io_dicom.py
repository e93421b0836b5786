"""DICOM folders: synthetic studies written with pydicom and read back.

Ground truth is the study that was written (:mod:`dicom_cases`): data, per-slice times,
geometry, PD frames and AIF echoes must come back whatever the file names, order or folder
layout. Damaged folders are in ``test_io_dicom_bad_folders.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_cases import (
    AIF_LEAD_S,
    ECHO_TIMES_MS,
    N_FRAMES,
    N_PD,
    SLICE_OFFSET_S,
    assert_same_study,
    dicom_files,
    edit_files,
    first_slice_file,
    is_aif,
    make_study,
    oblique_axes,
)
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from qperf.errors import OutputExistsError, ValidationError
from qperf.io.dicom import read_dicom_folder, write_dicom_study
from qperf.io.dicom_write import quantize_uint16
from qperf.types import PerfusionSeries, PerfusionStudy


@pytest.fixture
def study(rng: np.random.Generator) -> PerfusionStudy:
    return make_study(rng)


@pytest.fixture
def folder(study: PerfusionStudy, tmp_path: Path) -> Path:
    return write_dicom_study(study, tmp_path / "dicom")


# --- round trips ------------------------------------------------------------------------


def test_round_trip_keeps_data_times_geometry_pd_and_echoes(study: PerfusionStudy, folder: Path) -> None:
    assert len(dicom_files(folder)) == 3 * N_FRAMES + 2 * N_FRAMES
    read = read_dicom_folder(folder)
    assert_same_study(read, study)
    assert [s.name for s in read.aif_series] == ["AIF echo 1", "AIF echo 2"]
    assert read.aif_series[0].metadata["echo_times_ms"] == ECHO_TIMES_MS
    assert [s.metadata["echo_time_ms"] for s in read.aif_series] == ECHO_TIMES_MS
    positions = [s.slice_position_mm for s in read.slices]
    assert positions == sorted(positions) and np.allclose(np.diff(positions), 9.5)


def test_round_trip_keeps_acquisition_metadata(study: PerfusionStudy, folder: Path) -> None:
    read = read_dicom_folder(folder)
    meta = read.slices[0].metadata
    assert meta["field_strength_t"] == 1.5
    assert meta["flip_angle_deg"] == 50.0 and meta["pd_flip_angle_deg"] == 5.0
    assert meta["readout"] == "ssfp"
    assert meta["saturation_time_ms"] == 110.0
    assert meta["series_description"] == "perfusion stress"
    assert meta["time_source"] == "acquisition_time"
    assert len(meta["series_uid"]) > 10 and meta["patient_id"]
    assert read.aif_series[0].metadata["flip_angle_deg"] == 12.0
    assert read.condition == "stress" and read.hematocrit == pytest.approx(0.45)
    assert read.name == "synthetic"
    assert all(s.units == "signal" for s in read.slices)


def test_written_files_are_standard_mr_images(folder: Path) -> None:
    ds = pydicom.dcmread(first_slice_file(folder))
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.Modality == "MR" and ds.pixel_array.dtype == np.uint16
    assert len(str(ds.AcquisitionTime).split(".")[1]) == 6  # microseconds
    # DICOM semantics: PixelSpacing is (between rows, between columns) = (dy, dx); the first
    # ImageOrientationPatient triplet is the direction along a row (increasing column index x)
    assert (ds.Rows, ds.Columns) == (18, 16)
    assert [float(v) for v in ds.PixelSpacing] == [1.875, 2.125]
    x, y, _ = oblique_axes()
    np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [*x, *y], atol=1e-12)
    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in dicom_files(folder)}
    assert len(uids) == len(dicom_files(folder))


def test_float_gd_data_round_trip_within_quantisation(rng: np.random.Generator, tmp_path: Path) -> None:
    study = make_study(rng, float_data=True, units="gd_mmol_l", aif=False)
    read = read_dicom_folder(write_dicom_study(study, tmp_path / "gd"))
    assert read.aif_series == ()
    for got, want in zip(read.slices, study.slices, strict=True):
        assert got.units == "gd_mmol_l"
        span = want.data.max(axis=(1, 2)) - want.data.min(axis=(1, 2))
        error = np.abs(got.data.astype(np.float64) - want.data).max(axis=(1, 2))
        assert np.all(error <= span / 130000.0 * 1.01 + 1e-6)
        assert np.all(error > 0)  # non-integer data cannot be stored exactly in uint16


@pytest.mark.parametrize(
    ("values", "exact"),
    [
        (np.array([[-300.0, 12.0], [65000.0, 7.0]]), False),
        (np.array([[-300.0, 12.0], [4000.0, 7.0]]), True),
        (np.array([[70000.0, 70001.0], [130000.0, 70002.0]]), True),
        (np.array([[0.25, 0.25], [0.25, 0.25]]), True),
        (np.array([[1e-6, 3e-6], [2e-6, 7.5e-6]]), False),
    ],
)
def test_quantize_uint16(values: np.ndarray, exact: bool) -> None:
    stored, slope, intercept = quantize_uint16(values)
    assert stored.dtype == np.uint16 and len(slope) <= 16 and len(intercept) <= 16
    back = stored * float(slope) + float(intercept)
    if exact:
        np.testing.assert_array_equal(back, values)
    else:
        span = values.max() - values.min()
        assert np.abs(back - values).max() <= span / 130000.0 * 1.01


# --- layout independence ----------------------------------------------------------------


def test_shuffled_renamed_nested_files_with_strays_read_the_same(
    study: PerfusionStudy, folder: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    messy = tmp_path / "messy"
    files = dicom_files(folder)
    for n, i in enumerate(rng.permutation(len(files))):
        target = messy / f"sub{n % 3}" / ("deep" if n % 2 else "") / f"{rng.integers(1 << 30):x}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], target)
    (messy / "README.txt").write_text("exported from the scanner\n")
    (messy / "DICOMDIR").write_bytes(b"\0" * 200)
    (messy / "sub0" / "notes.json").write_text('{"a": 1}')
    (messy / "sub1" / "empty").write_bytes(b"")
    (messy / "sub2" / "noise.bin").write_bytes(rng.bytes(4000))
    (messy / "sub2" / "fake.dcm").write_bytes(b"\0" * 128 + b"DICX" + rng.bytes(300))
    read = read_dicom_folder(messy)
    assert_same_study(read, study)


def test_duplicate_copies_of_a_file_are_read_once(study: PerfusionStudy, folder: Path) -> None:
    first = first_slice_file(folder)
    shutil.copy(first, folder / "copy_of_first.dcm")
    assert_same_study(read_dicom_folder(folder), study)


def test_files_without_preamble_are_read(study: PerfusionStudy, folder: Path) -> None:
    for path in dicom_files(folder)[::2]:
        path.write_bytes(path.read_bytes()[132:])  # no 128-byte preamble, no "DICM"
    assert_same_study(read_dicom_folder(folder), study)


def test_each_slice_has_its_own_times_on_one_clock(folder: Path) -> None:
    read = read_dicom_folder(folder)
    t = np.stack([s.time_s for s in read.slices])
    np.testing.assert_allclose(np.diff(t, axis=0), SLICE_OFFSET_S, atol=2e-6)
    np.testing.assert_allclose(t[0] - read.aif_series[0].time_s, AIF_LEAD_S, atol=2e-6)
    assert read.aif_series[0].time_s[0] == 0.0  # the earliest frame of the study
    assert np.ptp(np.diff(t[0])) > 0.05  # irregular heart beats are kept, not resampled


# --- AIF identification and echoes -------------------------------------------------------


def test_aif_found_by_resolution_when_not_named(study: PerfusionStudy, folder: Path) -> None:
    def rename(ds: Dataset) -> None:
        ds.SeriesDescription = "perf dual sequence"

    assert edit_files(folder, rename, is_aif) == 2 * N_FRAMES
    edit_files(folder, rename)
    read = read_dicom_folder(folder)
    assert read.n_slices == 3 and len(read.aif_series) == 2
    assert read.aif_series[0].shape == (8, 7)
    assert_same_study(read, study)


def test_aif_echoes_in_separate_series_and_ordered_by_echo_time(rng: np.random.Generator, tmp_path: Path) -> None:
    study = make_study(rng, echo_times_ms=[2.1, 0.9])
    folder = write_dicom_study(study, tmp_path / "dicom")
    uid = generate_uid()

    def split(ds: Dataset) -> None:
        if int(ds.EchoNumbers) == 2:
            ds.SeriesInstanceUID = uid
            del ds.EchoNumbers

    edit_files(folder, split, is_aif)
    read = read_dicom_folder(folder)
    assert [s.metadata["echo_time_ms"] for s in read.aif_series] == [0.9, 2.1]
    np.testing.assert_array_equal(read.aif_series[0].data, study.aif_series[1].data)
    np.testing.assert_array_equal(read.aif_series[1].data, study.aif_series[0].data)
    assert read.aif_series[0].metadata["echo_times_ms"] == [0.9, 2.1]


def test_folder_of_aif_images_only_reads_as_slices(study: PerfusionStudy, folder: Path) -> None:
    edit_files(folder, lambda ds: True, lambda ds: not is_aif(ds))
    read = read_dicom_folder(folder)
    assert read.aif_series == ()
    assert [s.name for s in read.slices] == ["AIF echo 1", "AIF echo 2"]
    np.testing.assert_array_equal(read.slices[1].data, study.aif_series[1].data)


# --- PD frames and time sources -----------------------------------------------------------


def test_pd_frames_not_claimed_when_flip_angles_do_not_tell(folder: Path) -> None:
    def same_flip(ds: Dataset) -> None:
        ds.FlipAngle = 50

    edit_files(folder, same_flip, lambda ds: not is_aif(ds))
    read = read_dicom_folder(folder)
    assert all(s.n_pd_frames == 0 for s in read.slices)
    # the AIF's PD frames are seen, but it keeps no more than the slices so that it covers them
    assert all(s.n_pd_frames == 0 and s.metadata["n_pd_frames_detected"] == N_PD for s in read.aif_series)

    edit_files(folder, same_flip)
    read = read_dicom_folder(folder)
    assert all(s.n_pd_frames == 0 for s in (*read.slices, *read.aif_series))
    assert read.slices[0].metadata["flip_angle_deg"] == 50.0 and "pd_flip_angle_deg" not in read.slices[0].metadata

    def no_flip(ds: Dataset) -> None:
        del ds.FlipAngle

    edit_files(folder, no_flip)
    read = read_dicom_folder(folder)
    assert all(s.n_pd_frames == 0 for s in (*read.slices, *read.aif_series))
    assert "flip_angle_deg" not in read.slices[0].metadata


def _drop_acquisition_times(ds: Dataset) -> None:
    for keyword in ("AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime"):
        delattr(ds, keyword)


def _seconds_from_start(folder: Path) -> dict[str, float]:
    """Acquisition time of every file (by SOP Instance UID) from the study's first frame, in s."""
    tm = {}
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        t = str(ds.AcquisitionTime)
        tm[str(ds.SOPInstanceUID)] = float(t[:2]) * 3600 + float(t[2:4]) * 60 + float(t[4:])
    start = min(tm.values())
    return {uid: t - start for uid, t in tm.items()}


def test_times_from_acquisition_time_alone_across_midnight(study: PerfusionStudy, folder: Path) -> None:
    t0 = min(float(s.time_s[0]) for s in (*study.slices, *study.aif_series))
    seconds = _seconds_from_start(folder)

    def shift(ds: Dataset) -> None:  # starts 4 s before midnight, without dates
        h, rem = divmod((seconds[str(ds.SOPInstanceUID)] + 86396.0) % 86400.0, 3600)
        m, sec = divmod(rem, 60)
        ds.AcquisitionTime = f"{int(h):02d}{int(m):02d}{sec:09.6f}"
        del ds.AcquisitionDateTime, ds.AcquisitionDate

    edit_files(folder, shift)
    read = read_dicom_folder(folder)
    for got, want in zip(read.slices, study.slices, strict=True):
        np.testing.assert_allclose(got.time_s, want.time_s - t0, atol=2e-6)


def test_times_from_trigger_time_then_instance_number(study: PerfusionStudy, folder: Path) -> None:
    t0 = min(float(s.time_s[0]) for s in (*study.slices, *study.aif_series))
    seconds = _seconds_from_start(folder)

    def trigger(ds: Dataset) -> None:  # a scanner that records a running trigger clock in ms
        _drop_acquisition_times(ds)
        ds.TriggerTime = f"{seconds[str(ds.SOPInstanceUID)] * 1000.0 + 40.0:.3f}"

    edit_files(folder, trigger)
    read = read_dicom_folder(folder)
    assert read.metadata["time_source"] == "trigger_time"
    for got, want in zip(read.slices, study.slices, strict=True):
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_allclose(got.time_s, want.time_s - t0, atol=2e-6)

    def no_times(ds: Dataset) -> None:
        del ds.TriggerTime
        ds.NominalInterval = 900

    edit_files(folder, no_times)
    read = read_dicom_folder(folder)
    assert read.slices[0].metadata["time_source"] == "instance_number"
    assert read.slices[0].metadata["time_recorded"] is False
    np.testing.assert_allclose(read.slices[2].time_s, 0.9 * np.arange(N_FRAMES))
    for got, want in zip(read.slices, study.slices, strict=True):
        np.testing.assert_array_equal(got.data, want.data)  # frames still in acquisition order


# --- writer options ----------------------------------------------------------------------


def test_writer_refuses_to_overwrite_unless_asked(study: PerfusionStudy, folder: Path) -> None:
    with pytest.raises(OutputExistsError):
        write_dicom_study(study, folder)
    smaller = study.replace(aif_series=())
    write_dicom_study(smaller, folder, overwrite=True)
    assert len(dicom_files(folder)) == 3 * N_FRAMES
    assert read_dicom_folder(folder).aif_series == ()


def test_writer_places_slices_without_geometry_apart(rng: np.random.Generator, tmp_path: Path) -> None:
    slices = tuple(
        PerfusionSeries(rng.integers(0, 100, (4, 6, 5)).astype(np.float32), time_s=np.arange(4.0) + 0.3 * k)
        for k in range(3)
    )
    read = read_dicom_folder(write_dicom_study(PerfusionStudy(slices=slices), tmp_path / "plain"))
    assert [s.slice_position_mm for s in read.slices] == [0.0, 8.0, 16.0]
    for got, want in zip(read.slices, slices, strict=True):
        np.testing.assert_array_equal(got.data, want.data)
        assert got.n_pd_frames == 0 and "flip_angle_deg" not in got.metadata


def test_writer_rejects_bad_input(study: PerfusionStudy, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="study: expected a PerfusionStudy"):
        write_dicom_study(study.slices[0], tmp_path / "x")  # type: ignore[arg-type]
    same = study.replace(slices=(study.slices[0], study.slices[0].replace(name="copy")), aif_series=())
    with pytest.raises(ValidationError, match="same plane"):
        write_dicom_study(same, tmp_path / "y")
    assert not (tmp_path / "y").exists()
    with pytest.raises(ValidationError, match="does not exist"):
        write_dicom_study(study, tmp_path / "missing" / "z")


def test_progress_is_reported(folder: Path) -> None:
    calls: list[tuple[float, str]] = []
    read_dicom_folder(folder, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) >= 3


# --- real data -------------------------------------------------------------------------------


def test_real_aif_images_round_trip(shared_data: Path, tmp_path: Path) -> None:
    aif = np.load(shared_data / "aif_example1" / "aif_scc.npy").transpose(2, 0, 1)  # (t, y, x)
    time_s = np.cumsum(np.full(aif.shape[0], 0.95))
    echoes = tuple(
        PerfusionSeries(aif * scale, time_s=time_s, spacing_mm=(5.9, 5.9), metadata={"series_description": "AIF"})
        for scale in (1.0, 0.8)
    )
    myo = PerfusionSeries(np.repeat(np.repeat(aif, 3, axis=1), 3, axis=2), time_s=time_s + 0.1, spacing_mm=(1.97, 1.97))
    study = PerfusionStudy(slices=(myo,), aif_series=echoes)
    read = read_dicom_folder(write_dicom_study(study, tmp_path / "real"))
    assert read.n_slices == 1 and len(read.aif_series) == 2
    for got, want in zip((*read.slices, *read.aif_series), (myo, *echoes), strict=True):
        span = np.ptp(want.data, axis=(1, 2))
        assert np.all(np.abs(got.data - want.data).max(axis=(1, 2)) <= span / 130000.0 * 1.01 + 1e-4)


# --- Enhanced MR multi-frame ---------------------------------------------------------------


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _to_enhanced(folder: Path, out: Path) -> None:
    """Rewrite each series of a classic folder as one Enhanced MR multi-frame file."""
    by_series: dict[str, list[Dataset]] = {}
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path)
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    out.mkdir()
    for n, frames in enumerate(by_series.values()):
        frames.sort(key=lambda ds: int(ds.InstanceNumber))
        first = frames[0]
        ds = Dataset()
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription", "StudyDescription", "PatientID"):
            setattr(ds, keyword, getattr(first, keyword))
        ds.SOPClassUID = pydicom.uid.EnhancedMRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "MR"
        ds.ImageComments = first.ImageComments
        ds.MagneticFieldStrength = first.MagneticFieldStrength
        ds.SharedFunctionalGroupsSequence = [
            _item(PixelMeasuresSequence=[_item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)])
        ]
        ds.PerFrameFunctionalGroupsSequence = [
            _item(
                PlanePositionSequence=[_item(ImagePositionPatient=f.ImagePositionPatient)],
                PlaneOrientationSequence=[_item(ImageOrientationPatient=f.ImageOrientationPatient)],
                FrameContentSequence=[_item(FrameAcquisitionDateTime=f.AcquisitionDateTime)],
                MRTimingAndRelatedParametersSequence=[_item(FlipAngle=f.FlipAngle)],
                MREchoSequence=[_item(EffectiveEchoTime=f.EchoTime)],
                PixelValueTransformationSequence=[
                    _item(RescaleSlope=f.RescaleSlope, RescaleIntercept=f.RescaleIntercept, RescaleType="US")
                ],
            )
            for f in frames
        ]
        ds.set_pixel_data(np.stack([f.pixel_array for f in frames]), "MONOCHROME2", 16, generate_instance_uid=False)
        ds.save_as(out / f"enhanced_{n}.dcm", enforce_file_format=True)


def test_enhanced_multiframe_files_read_like_classic(study: PerfusionStudy, folder: Path, tmp_path: Path) -> None:
    enhanced = tmp_path / "enhanced"
    _to_enhanced(folder, enhanced)
    assert len(list(enhanced.iterdir())) == 2
    read = read_dicom_folder(enhanced)
    assert_same_study(read, study)
    assert [s.metadata["echo_time_ms"] for s in read.aif_series] == ECHO_TIMES_MS
    assert read.condition == "stress"
