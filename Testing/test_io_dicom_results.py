"""Results as DICOM: Parametric Maps and a SEG read back with their values, units and references.

Ground truth: maps and labels made here, written against a phantom study written as DICOM and
read back; pydicom and highdicom must find the same pixels, the coded units, the segment
descriptions and references to the source study, series and key-frame instance. A slow test
runs ``qperf analyze --dicom`` and compares the DICOM maps with the NRRD ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qperf import phantom
from qperf.cli import main as cli_main
from qperf.errors import NotAvailableError, ValidationError
from qperf.io.dicom import read_dicom_folder, write_dicom_study
from qperf.io.dicom_results import LABEL_SEGMENTS, SliceResults, map_unit, write_dicom_results
from qperf.types import PerfusionStudy

hd = pytest.importorskip("highdicom", reason="the dicom extra is not installed")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PerfusionStudy]:
    folder = write_dicom_study(
        phantom.generate_study(seed=11, n_frames=10, motion=False).study, tmp_path_factory.mktemp("src") / "dicom"
    )
    return folder, read_dicom_folder(folder)


def _results(study: PerfusionStudy) -> list[SliceResults]:
    rng = np.random.default_rng(5)
    out = []
    for k, s in enumerate(study.slices):
        mbf = rng.uniform(0.2, 4.5, s.shape).astype(np.float32)
        mbf[:3, :3] = np.nan  # outside the myocardium
        labels = np.zeros(s.shape, np.uint8)
        labels[30:60, 30:60] = 1
        labels[60:70, 30:60] = 2
        labels[80:90, 80 + k : 95] = 3
        maps = {"mbf_ml_min_g": mbf, "delay_s": mbf / 3, "vb_ml_g": mbf / 40, "nrmse": mbf / 100}
        out.append(SliceResults(s, maps, labels, key_frame=s.n_pd_frames + k))
    return out


def _source_headers(folder: Path) -> dict[str, pydicom.Dataset]:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.rglob("*.dcm"))]
    return {str(ds.SOPInstanceUID): ds for ds in headers}


def test_maps_and_labels_read_back_with_values_units_and_references(
    source: tuple[Path, PerfusionStudy], tmp_path: Path
) -> None:
    folder, study = source
    results = _results(study)
    files = write_dicom_results(folder, results, tmp_path / "dicom")
    assert {p.relative_to(tmp_path / "dicom").as_posix() for p in files} == {
        f"slice_{k}/{stem}.dcm" for k in (1, 2, 3) for stem in ("mbf", "delay", "vb", "nrmse", "labels.seg")
    }
    headers = _source_headers(folder)
    series_numbers = set()
    for k, sl in enumerate(results):
        key_uid = sl.series.metadata["sop_instance_uids"][sl.key_frame]
        key = headers[key_uid]
        for name, values in sl.maps.items():
            ds = pydicom.dcmread(tmp_path / "dicom" / f"slice_{k + 1}" / f"{name.split('_')[0]}.dcm")
            assert ds.SOPClassUID == pydicom.uid.ParametricMapStorage
            np.testing.assert_array_equal(ds.pixel_array, values)  # NaN where the fit was masked
            mapping = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
            unit = mapping.MeasurementUnitsCodeSequence[0]
            assert (unit.CodeValue, unit.CodingSchemeDesignator) == (map_unit(name)[0], "UCUM")
            assert ds.StudyInstanceUID == key.StudyInstanceUID == sl.series.metadata["study_uid"]
            assert ds.FrameOfReferenceUID == key.FrameOfReferenceUID and ds.PatientID == key.PatientID
            assert ds.SeriesInstanceUID != key.SeriesInstanceUID
            series_numbers.add(int(ds.SeriesNumber))
            referenced = ds.ReferencedSeriesSequence[0]
            assert referenced.SeriesInstanceUID == sl.series.metadata["series_uid"]
            listed = {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence}
            assert listed == set(sl.series.metadata["sop_instance_uids"])
            derivation = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
            assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == key_uid
            position = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
            np.testing.assert_allclose([float(v) for v in position], [float(v) for v in key.ImagePositionPatient])
        seg = hd.seg.segread(tmp_path / "dicom" / f"slice_{k + 1}" / "labels.seg.dcm")
        assert [(d.SegmentNumber, d.SegmentLabel) for d in seg.SegmentSequence] == [
            (s.label, s.name) for s in LABEL_SEGMENTS
        ]
        myocardium = seg.SegmentSequence[1]
        assert myocardium.SegmentedPropertyTypeCodeSequence[0].CodeValue == "74281007"
        assert myocardium.AnatomicRegionSequence[0].CodeValue == "87878005"
        assert seg.SeriesDescription == "QPerf labels" and seg.StudyInstanceUID == key.StudyInstanceUID
        assert key_uid in {uids[2] for uids in seg.get_source_image_uids()}
        frames = pydicom.dcmread(tmp_path / "dicom" / f"slice_{k + 1}" / "labels.seg.dcm").pixel_array
        for value in (1, 2, 3):
            np.testing.assert_array_equal(frames[value - 1], sl.labels == value)
    assert len(series_numbers) == 12  # every result is its own series


def test_units_of_the_map_names() -> None:
    assert map_unit("mbf_ml_min_g") == ("ml/min/g", "Milliliter/minute/gram")
    assert map_unit("mbf_ml_min_g_sd")[0] == "ml/min/g"
    assert map_unit("vp_ml_g")[0] == "ml/g" and map_unit("delay_s")[0] == "s" and map_unit("nrmse")[0] == "1"


def test_series_not_read_from_dicom_or_with_source_files_gone_are_refused(
    source: tuple[Path, PerfusionStudy], tmp_path: Path
) -> None:
    folder, study = source
    results = _results(study)
    plain = SliceResults(study.slices[0].replace(metadata={}), results[0].maps, results[0].labels)
    with pytest.raises(ValidationError, match="expected a series read from DICOM"):
        write_dicom_results(folder, [plain], tmp_path / "a")
    other = write_dicom_study(study, tmp_path / "rewritten")  # same pixels, new instance UIDs
    with pytest.raises(ValidationError, match=r"missing \(e\.g\. SOP Instance UID"):
        write_dicom_results(other, results, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_missing_highdicom_is_named(
    source: tuple[Path, PerfusionStudy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "highdicom", None)
    folder, study = source
    with pytest.raises(NotAvailableError, match=r"highdicom.*qperf\[dicom\]"):
        write_dicom_results(folder, _results(study), tmp_path / "dicom")


def test_analyze_dicom_refuses_a_study_that_is_not_dicom_before_the_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phantom.write_study(phantom.generate_study(seed=2, n_frames=10, motion=False), tmp_path / "study")
    assert cli_main(["analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"), "--dicom", "-q"]) == 2
    assert "--dicom: expected a DICOM folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_analyze_dicom_writes_the_maps_and_labels_of_the_report(tmp_path: Path) -> None:
    from qperf import io

    folder = write_dicom_study(phantom.generate_study(seed=11, n_frames=30).study, tmp_path / "dicom")
    study = read_dicom_folder(folder)
    out = tmp_path / "out"
    assert cli_main(["analyze", str(folder), "--out", str(out), "--dicom", "-q"]) == 0
    for k in (1, 2, 3):
        mbf = pydicom.dcmread(out / "dicom" / f"slice_{k}" / "mbf.dcm")
        np.testing.assert_array_equal(mbf.pixel_array, io.read_image(out / f"slice_{k}" / "mbf.nrrd").array)
        seg = pydicom.dcmread(out / "dicom" / f"slice_{k}" / "labels.seg.dcm")
        labels = np.asarray(io.read_image(out / f"slice_{k}" / "labels_ref.nrrd").array)
        np.testing.assert_array_equal(seg.pixel_array[1], labels == 2)
        slicerio = pytest.importorskip("slicerio")
        as_segmentation = slicerio.read_segmentation(str(out / f"slice_{k}" / "labels_ref.seg.nrrd"))
        np.testing.assert_array_equal(as_segmentation["voxels"][:, :, 0].T, labels)
        assert mbf.ReferencedSeriesSequence[0].SeriesInstanceUID == study.slices[k - 1].metadata["series_uid"]
    # the report names its source images
    report = json.loads((out / "report.json").read_text())
    assert report["study"]["study_instance_uid"] == study.slices[0].metadata["study_uid"]
    assert [s["source"]["series_instance_uid"] for s in report["slices"]] == [
        s.metadata["series_uid"] for s in study.slices
    ]


def test_a_map_name_cut_at_an_underscore_gives_a_valid_content_label(
    source: tuple[Path, PerfusionStudy], tmp_path: Path
) -> None:
    """Content Label is a code string (no trailing "_"): the Fermi model's amplitude map, cut at 16
    characters, ended with one and could not be written."""
    folder, study = source
    first = _results(study)[0]
    maps = {"fermi_amplitude_ml_min_g": first.maps["mbf_ml_min_g"]}
    write_dicom_results(folder, [SliceResults(first.series, maps, first.labels, first.key_frame)], tmp_path / "d")
    ds = pydicom.dcmread(tmp_path / "d" / "slice_1" / "fermi_amplitude.dcm")
    assert ds.ContentLabel == "FERMI_AMPLITUDE"
    np.testing.assert_array_equal(ds.pixel_array, maps["fermi_amplitude_ml_min_g"])
