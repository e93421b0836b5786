"""QPerf Flow on a study loaded from DICOM: the core's log reaches the logic, the results go back as
DICOM, and the DICOM SEG, placed by its own geometry, is a Slicer segmentation of the labels. Also
QPerf Seg's logic: the core's log forwarded, the device and threads passed to its CLI process.

slicer-core has no DICOM database or DICOMSegmentationPlugin, so the SEG is read with pydicom
(frames, segment numbers and labels, plane position and orientation) and made a segmentation
node with the modules' own functions (``QPerfCommonLib.labels``); read back on the source
slice's grid it must be the labels the flow result used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
pytest.importorskip("highdicom", reason="the dicom extra is not installed")
import pydicom  # noqa: E402
import vtk  # noqa: E402
from QPerfCommonLib.labels import (  # noqa: E402
    SEGMENTS,
    labelsFromSegmentationNode,
    segmentationNodeFromLabels,
)
from QPerfCommonLib.study import ATTR_SOURCE_PATH, loadStudy, studyFromBrowserNode  # noqa: E402
from QPerfFlowLib import FlowLogic  # noqa: E402

from qperf.errors import ValidationError  # noqa: E402
from qperf.io.dicom import write_dicom_study  # noqa: E402
from qperf.types import yx_to_ras as yxToRas  # noqa: E402


@pytest.fixture(scope="module")
def dicomStudy(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from qperf import phantom

    ps = phantom.generate_study(seed=4, n_slices=1, n_frames=30, shape=(48, 48), motion=False)
    return ps, write_dicom_study(ps.study, tmp_path_factory.mktemp("src") / "dicom")


def _segFromDicom(path: Path) -> tuple[np.ndarray, dict, np.ndarray]:
    """Label map (y, x), segment names by number, and IJK-to-RAS of a single-plane DICOM SEG."""
    ds = pydicom.dcmread(path)
    names = {int(item.SegmentNumber): str(item.SegmentLabel) for item in ds.SegmentSequence}
    frames = ds.pixel_array.reshape(-1, int(ds.Rows), int(ds.Columns))
    labels = np.zeros(frames.shape[1:], np.uint8)
    positions = set()
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        labels[frame > 0] = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        positions.add(tuple(float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient))
    assert len(positions) == 1, "expected the SEG of one plane"
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    dy, dx = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    thickness = float(shared.PixelMeasuresSequence[0].SliceThickness)
    rowDir, colDir = orientation[:3], orientation[3:]
    lps = np.eye(4)
    lps[:3, 0] = rowDir * dx  # i: along a row (columns, x)
    lps[:3, 1] = colDir * dy  # j: down a column (rows, y)
    lps[:3, 2] = np.cross(rowDir, colDir) * thickness
    lps[:3, 3] = positions.pop()
    return labels, names, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def test_dicom_study_flow_log_and_dicom_results_that_slicer_loads(scene, dicomStudy, tmp_path):
    ps, folder = dicomStudy
    truth = ps.truth.slices[0]
    nodes = loadStudy(folder, scene)
    assert nodes.browserNode.GetAttribute(ATTR_SOURCE_PATH) == os.path.abspath(folder)
    assert FlowLogic(scene).dicomSource(nodes.browserNode) == os.path.abspath(folder)
    series = studyFromBrowserNode(nodes.browserNode).slices[0]
    assert len(series.metadata["sop_instance_uids"]) == series.n_frames  # kept through the scene
    segmentation = segmentationNodeFromLabels(truth.labels_ref, series.ijk_to_ras(), scene, "drawn")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "points")
    points.AddControlPoint(
        vtk.vtkVector3d(*yxToRas(series.ijk_to_ras(), truth.insertion_points_yx["anterior"])), "anterior"
    )
    lines: list = []
    logic = FlowLogic(scene, log=lines.append)
    with pytest.raises(ValidationError, match="compute it first"):
        logic.exportDicom(nodes.browserNode, tmp_path / "none")
    logic.aifFromRegion(nodes.browserNode, logic.detectAifRegion(nodes.browserNode))
    result = logic.compute(nodes.browserNode, model="fermi", labelsSegmentation=segmentation, insertionPoints=points)
    assert any(line.startswith("flow done in") for line in lines), lines  # the core's log, forwarded

    files = logic.exportDicom(nodes.browserNode, tmp_path / "results")
    assert not (tmp_path / "none").exists()
    assert any(line.startswith("wrote ") and "DICOM" in line for line in lines)
    names = {p.name for p in files}
    assert {"mbf.dcm", "labels.seg.dcm"} <= names
    mbf = pydicom.dcmread(tmp_path / "results" / "slice_1" / "mbf.dcm")
    np.testing.assert_array_equal(mbf.pixel_array, result.slices[0].flow.maps["mbf_ml_min_g"])
    assert mbf.StudyInstanceUID == series.metadata["study_uid"]

    labels, segmentNames, ijkToRas = _segFromDicom(tmp_path / "results" / "slice_1" / "labels.seg.dcm")
    assert segmentNames == {s.label: s.name for s in SEGMENTS}
    node = segmentationNodeFromLabels(labels, ijkToRas, scene, "from DICOM SEG")
    segments = node.GetSegmentation()
    assert [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())] == [
        segmentNames[k] for k in sorted(segmentNames)
    ]
    onSlice = labelsFromSegmentationNode(node, series.shape, series.ijk_to_ras())
    np.testing.assert_array_equal(onSlice, result.slices[0].labels_ref)
    np.testing.assert_array_equal(onSlice, truth.labels_ref)


def test_dicom_export_asks_for_the_source_of_a_study_not_loaded_from_dicom(scene, dicomStudy, tmp_path):
    ps, _ = dicomStudy
    nodes = loadStudy(ps.study, scene)  # in memory: no source folder recorded
    logic = FlowLogic(scene)
    logic.results[nodes.browserNode.GetID()] = object()  # a result, so that the source is what is missing
    assert logic.dicomSource(nodes.browserNode) is None
    with pytest.raises(ValidationError, match="source: expected the DICOM folder .* none recorded"):
        logic.exportDicom(nodes.browserNode, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_segmentation_logic_forwards_the_core_log(scene, dicomStudy):
    from QPerfSegLib import SegmentationLogic

    from qperf.workflow import AnalysisOptions

    ps, _ = dicomStudy
    truth = ps.truth.slices[0]
    lines: list = []
    logic = SegmentationLogic(scene, log=lines.append)
    nodes = logic.loadStudy(ps.study)
    supplied = AnalysisOptions(motion="on", labels=[truth.labels_ref], insertion_points_yx=[truth.insertion_points_yx])
    logic.segment(nodes.browserNode, supplied, segmenter="inprocess")
    assert any(line.startswith("motion correction (torch on cpu)") for line in lines), lines
    logic.log = None
    count = len(lines)
    logic.segment(nodes.browserNode, supplied, segmenter="inprocess")
    assert len(lines) == count  # no callback, nothing forwarded


def test_separate_process_gets_the_device_and_threads():
    from QPerfSegLib.segment import _segmentCommand

    from qperf.workflow import AnalysisOptions

    command = _segmentCommand("python", Path("s.seq.nrrd"), Path("out"), AnalysisOptions(device="cpu", threads=2))
    assert command[command.index("--device") + 1] == "cpu"
    assert command[command.index("--threads") + 1] == "2"
