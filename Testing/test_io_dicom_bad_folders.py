"""DICOM folders that are damaged or mixed: each gives a one-line error of the right class.

The folders start as the synthetic study of :mod:`dicom_cases`, written with pydicom, then
lose a tag, a frame or pixel data, or gain a second acquisition, localizers or a second AIF.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_cases import (
    N_FRAMES,
    assert_same_study,
    dicom_files,
    edit_files,
    first_slice_file,
    is_aif,
    make_study,
)
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from qperf.errors import FormatError, MissingMetadataError, QPerfError
from qperf.io.dicom import read_dicom_folder, write_dicom_study
from qperf.types import PerfusionStudy


@pytest.fixture
def study(rng: np.random.Generator) -> PerfusionStudy:
    return make_study(rng)


@pytest.fixture
def folder(study: PerfusionStudy, tmp_path: Path) -> Path:
    return write_dicom_study(study, tmp_path / "dicom")


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def test_missing_folder_or_file_or_no_dicom(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(FormatError, match="no such folder") as e:
        read_dicom_folder(tmp_path / "nope")
    _one_line(e.value)
    with pytest.raises(FormatError, match="expected a folder"):
        read_dicom_folder(dicom_files(folder)[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("not dicom")
    with pytest.raises(FormatError, match="no DICOM images found") as e:
        read_dicom_folder(empty)
    _one_line(e.value)


@pytest.mark.parametrize("keyword", ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])
def test_missing_geometry_tag_is_named(folder: Path, keyword: str) -> None:
    path = first_slice_file(folder)
    ds = pydicom.dcmread(path)
    delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MissingMetadataError) as e:
        read_dicom_folder(folder)
    assert keyword in _one_line(e.value) and e.value.field == keyword and path.name in str(e.value)


def test_differing_matrix_within_a_slice(folder: Path) -> None:
    path = first_slice_file(folder)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 10, 9
    ds.PixelData = np.zeros((10, 9), dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(FormatError, match="differing matrix") as e:
        read_dicom_folder(folder)
    assert "10 x 9" in _one_line(e.value)


def test_slice_with_a_single_frame(folder: Path) -> None:
    keep = pydicom.dcmread(first_slice_file(folder))
    position, uid = list(keep.ImagePositionPatient), keep.SOPInstanceUID
    removed = edit_files(
        folder, lambda ds: True, lambda ds: ds.ImagePositionPatient == position and ds.SOPInstanceUID != uid
    )
    assert removed == N_FRAMES - 1
    with pytest.raises(FormatError, match="a single frame") as e:
        read_dicom_folder(folder)
    _one_line(e.value)


def test_unreadable_pixel_data(folder: Path) -> None:
    path = first_slice_file(folder)
    ds = pydicom.dcmread(path)
    ds.PixelData = b"\x01\x02\x03\x04"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(FormatError, match="unreadable pixel data") as e:
        read_dicom_folder(folder)
    assert path.name in _one_line(e.value)


def test_truncated_dicom_file(folder: Path) -> None:
    path = first_slice_file(folder)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(QPerfError) as e:
        read_dicom_folder(folder)
    assert path.name in _one_line(e.value)


def test_two_acquisitions_in_one_folder(study: PerfusionStudy, folder: Path, tmp_path: Path) -> None:
    second = write_dicom_study(study, tmp_path / "second")
    shutil.move(str(second), str(folder / "second"))
    with pytest.raises(FormatError, match="one acquisition per folder") as e:
        read_dicom_folder(folder)
    _one_line(e.value)


def _copy_as_new_series(paths: list[Path], out: Path, change: Callable[[Dataset, int], None]) -> None:
    uid = generate_uid()
    out.mkdir()
    for n, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        change(ds, n)
        ds.save_as(out / f"{n}.dcm", enforce_file_format=True)


def test_series_of_single_images_are_left_out(study: PerfusionStudy, folder: Path) -> None:
    def localizer(ds: Dataset, n: int) -> None:
        ds.SeriesDescription = "localizer"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 20.0 * n]

    _copy_as_new_series(dicom_files(folder)[:3], folder / "loc", localizer)
    read = read_dicom_folder(folder)
    assert read.metadata["ignored_series"] == ["localizer"]
    assert_same_study(read, study)


def test_two_aif_series_with_the_same_echoes(folder: Path) -> None:
    aif_files = [p for p in dicom_files(folder) if is_aif(pydicom.dcmread(p, stop_before_pixels=True))]
    _copy_as_new_series(aif_files, folder / "aif_moco", lambda ds, n: None)
    with pytest.raises(FormatError, match="same echo") as e:
        read_dicom_folder(folder)
    _one_line(e.value)
