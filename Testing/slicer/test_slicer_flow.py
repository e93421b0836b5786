"""QPerfFlow logic against the real MRML of slicer-core: inputs from any segmentation, nodes, tables, errors."""

from __future__ import annotations

import collections
import struct

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
import vtk  # noqa: E402
from QPerfCommonLib.labels import segmentationNodeFromLabels, setSegmentationLabels  # noqa: E402
from QPerfCommonLib.scene import saveScene  # noqa: E402
from QPerfCommonLib.study import loadStudy  # noqa: E402
from QPerfFlowLib import FlowLogic  # noqa: E402
from QPerfFlowLib.aifnodes import aifFromRegion, regionSegmentationNode  # noqa: E402
from QPerfFlowLib.compute import computeFlow, flowInputs  # noqa: E402
from QPerfFlowLib.results import imageVolumeNodeFromPng, mapVolumeNode, tableNodeFromRows  # noqa: E402

from qperf.errors import OutputExistsError, ValidationError  # noqa: E402
from qperf.types import yx_to_ras as yxToRas  # noqa: E402

IJK_TO_RAS = np.array([[0.0, 1.5, 0.0, 10.0], [-1.7, 0.0, 0.0, 20.0], [0.0, 0.0, 8.0, -30.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def phantomStudy():
    from qperf import phantom

    return phantom.generate_study(seed=4, n_slices=1, n_frames=30, shape=(48, 48), motion=False)


def _classes(scene):
    return collections.Counter(scene.GetNthNode(i).GetClassName() for i in range(scene.GetNumberOfNodes()))


def test_any_study_with_a_segmentation_and_a_point_list_is_quantified(scene, phantomStudy):
    """The path without QPerf Seg: a study browser, a segmentation drawn elsewhere and a point list."""
    truth = phantomStudy.truth.slices[0]
    nodes = loadStudy(phantomStudy.study, scene)
    series = phantomStudy.study.slices[0]
    segmentation = segmentationNodeFromLabels(truth.labels_ref, series.ijk_to_ras(), scene, "drawn")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "points")
    points.AddControlPoint(vtk.vtkVector3d(*yxToRas(series.ijk_to_ras(), (5.0, 5.0))), "other")
    points.AddControlPoint(
        vtk.vtkVector3d(*yxToRas(series.ijk_to_ras(), truth.insertion_points_yx["anterior"])), "anterior"
    )
    logic = FlowLogic(scene)
    logic.aifFromRegion(nodes.browserNode, logic.detectAifRegion(nodes.browserNode))
    inputs = logic.inputs(nodes.browserNode, labelsSegmentation=segmentation, insertionPoints=points)
    assert inputs.sources["series"] == "acquired"
    np.testing.assert_array_equal(inputs.labels[0], truth.labels_ref)
    assert np.allclose(inputs.insertionPoints[0], truth.insertion_points_yx["anterior"])
    result = logic.compute(nodes.browserNode, model="fermi", labelsSegmentation=segmentation, insertionPoints=points)
    assert result.report["qc"]["model"] == "fermi"
    mbf = logic.mapArray(nodes.browserNode, "mbf_ml_min_g")
    np.testing.assert_array_equal(mbf, result.slices[0].flow.maps["mbf_ml_min_g"])
    assert np.isfinite(mbf[truth.labels_ref == 2]).mean() > 0.9
    rows = logic.segmentRows(nodes.browserNode)
    assert rows[0]["region"] == "1" and {"mbf_mean_ml_min_g", "territory", "layer"} <= set(rows[0])
    assert logic.bullseyePng(nodes.browserNode)[:8] == b"\x89PNG\r\n\x1a\n"
    before = _classes(scene)
    edited = truth.labels_ref.copy()
    edited[edited == 2] = 0  # no myocardium left: the recomputation must see the edit
    setSegmentationLabels(segmentation, edited, series.ijk_to_ras())
    with pytest.raises(ValidationError, match="no myocardium"):
        logic.recompute(nodes.browserNode)
    setSegmentationLabels(segmentation, truth.labels_ref, series.ijk_to_ras())
    again = logic.recompute(nodes.browserNode)
    assert again.report["qc"]["model"] == "fermi" and again is logic.result(nodes.browserNode)
    assert _classes(scene) == before, "a recomputation left nodes behind or lost some"
    with pytest.raises(ValidationError, match="mapName"):
        logic.mapArray(nodes.browserNode, "mbf")


def test_missing_inputs_are_named(scene, phantomStudy):
    nodes = loadStudy(phantomStudy.study.replace(aif_series=()), scene)
    with pytest.raises(ValidationError, match="segmentationNodes: expected one per slice"):
        flowInputs(nodes.browserNode)
    truth = phantomStudy.truth.slices[0]
    segmentation = segmentationNodeFromLabels(truth.labels_ref, phantomStudy.study.slices[0].ijk_to_ras(), scene)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "empty")
    with pytest.raises(ValidationError, match="expected the anterior RV insertion point"):
        flowInputs(nodes.browserNode, segmentationNodes=[segmentation], insertionNodes=[points])
    points.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), "anterior")
    with pytest.raises(ValidationError, match="aif: expected an AIF table or AIF images"):
        flowInputs(nodes.browserNode, segmentationNodes=[segmentation], insertionNodes=[points])
    with pytest.raises(ValidationError, match="AIF image series"):
        aifFromRegion(nodes.browserNode)
    with pytest.raises(ValidationError, match="has no flow result|no flow result"):
        FlowLogic(scene).result(nodes.browserNode)


def test_unknown_model_and_empty_aif_region_are_refused(scene, phantomStudy):
    nodes = loadStudy(phantomStudy.study, scene)
    with pytest.raises(ValidationError, match="model: expected one of btex, fermi, 2cxm, tofts"):
        computeFlow(None, model="patlak")
    series = phantomStudy.study.aif_series[0]
    empty = regionSegmentationNode(np.zeros(series.shape, bool), series.ijk_to_ras(), scene, "empty")
    with pytest.raises(ValidationError, match="is empty"):
        aifFromRegion(nodes.browserNode, empty)


def test_map_volumes_use_the_perfusion_colours_and_the_flow_range(scene):
    from qperf.colormaps import PERFUSION_RANGE_ML_MIN_G

    values = np.linspace(0.0, 4.0, 20 * 24, dtype=np.float32).reshape(20, 24)
    values[0, 0] = np.nan
    node = mapVolumeNode(values, IJK_TO_RAS, scene, "slice 1 mbf", "mbf_ml_min_g")
    assert node.GetDisplayNode().GetColorNode().GetName() == "QPerfPerfusion"
    display = node.GetDisplayNode()
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx(PERFUSION_RANGE_ML_MIN_G)
    delay = mapVolumeNode(values, IJK_TO_RAS, scene, "slice 1 delay", "delay_s")
    assert delay.GetDisplayNode().GetWindowLevelMax() == pytest.approx(np.nanpercentile(values, 99.0), rel=1e-4)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(matrix), IJK_TO_RAS)


def test_rows_become_typed_table_columns(scene):
    rows = [
        {"region": "1", "n_pixels": 10, "mbf": 1.5, "mpr": None},
        {"region": "LAD", "n_pixels": 3, "mbf": None, "mpr": 2.0},
    ]
    table = tableNodeFromRows(rows, scene, "rows")
    assert table.GetTable().GetColumnByName("region").IsA("vtkStringArray")
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "n_pixels"), [10.0, 3.0])
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "mbf"), [1.5, np.nan])


def test_png_becomes_an_rgba_vector_volume(scene):
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure = plt.figure(figsize=(1.6, 1.2), dpi=50)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    png = buffer.getvalue()
    node = imageVolumeNodeFromPng(png, scene, "figure")
    width, height = struct.unpack(">II", png[16:24])
    assert node.GetImageData().GetDimensions()[:2] == (width, height)
    assert node.GetImageData().GetNumberOfScalarComponents() == 4


def test_saving_the_scene_does_not_overwrite_unless_asked(scene, tmp_path):
    segmentationNodeFromLabels(np.eye(8, dtype=np.uint8) * 2, IJK_TO_RAS, scene)
    mrml = saveScene(scene, tmp_path)
    assert mrml.is_file() and any(p.suffix == ".nrrd" or p.name.endswith(".seg.nrrd") for p in tmp_path.iterdir())
    with pytest.raises(OutputExistsError):
        saveScene(scene, tmp_path)
    assert saveScene(scene, tmp_path, overwrite=True) == mrml
