"""Perfusion series <-> Slicer sequence nodes, against the real MRML of slicer-core."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
vtk = pytest.importorskip("vtk")

from QPerfCommonLib import loadSeries, sequenceNodeFromSeries, seriesFromSequenceNode, updateProxyNodes  # noqa: E402
from QPerfCommonLib.scene import getScene  # noqa: E402

from qperf import PerfusionSeries, SliceGeometry, ValidationError, io  # noqa: E402


def obliqueSeries(rng: np.random.Generator, geometry: SliceGeometry | None = None, **changes) -> PerfusionSeries:
    """An oblique slice with unevenly spaced frames, PD frames, units and metadata."""
    if geometry is None:
        x_direction = np.array([0.6, 0.64, -0.48])
        y_direction = np.cross(x_direction, [0.3, -0.2, 0.9])
        geometry = SliceGeometry(
            origin_mm=(12.5, -31.0, 47.25),
            x_direction=tuple(x_direction),
            y_direction=tuple(y_direction / np.linalg.norm(y_direction)),
            slice_thickness_mm=6.5,
        )
    n_frames = 17
    time_s = 3.0 + np.cumsum(rng.uniform(0.55, 1.45, n_frames))
    kwargs = dict(
        data=(rng.random((n_frames, 9, 13)) * 1000.0).astype(np.float32),
        time_s=time_s,
        spacing_mm=(1.85, 2.2),
        geometry=geometry,
        units="gd_mmol_l",
        n_pd_frames=3,
        slice_position_mm=-12.5,
        name="mid",
        metadata={"field_strength_t": 1.5, "readout": "ssfp", "echo_times_ms": [0.76, 1.9]},
    )
    kwargs.update(changes)
    return PerfusionSeries(**kwargs)


def matrixOf(volume) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_series_becomes_a_time_sequence_of_single_slice_volumes(scene, rng):
    series = obliqueSeries(rng)
    node = sequenceNodeFromSeries(series, scene)
    assert node.IsA("vtkMRMLSequenceNode") and node.GetScene() is scene
    assert node.GetName() == "mid"
    assert node.GetIndexName() == "time" and node.GetIndexUnit() == "s"
    assert node.GetIndexType() == slicer.vtkMRMLSequenceNode.NumericIndex
    assert node.GetNumberOfDataNodes() == series.n_frames
    index_values = [float(node.GetNthIndexValue(i)) for i in range(series.n_frames)]
    assert index_values == series.time_s.tolist()  # exact: one time per frame, uneven spacing kept
    for i in (0, 2, 3, 16):
        frame = node.GetNthDataNode(i)
        assert frame.IsA("vtkMRMLScalarVolumeNode")
        voxels = slicer.util.arrayFromVolume(frame)
        assert voxels.shape == (1, 9, 13) and voxels.dtype == np.float32
        np.testing.assert_array_equal(voxels[0], series.data[i])
    assert node.GetAttribute("qperf_n_pd_frames") == "3"
    assert node.GetAttribute("qperf_units") == "gd_mmol_l"
    assert node.GetAttribute("qperf_slice_position_mm") == "-12.5"


def test_frame_geometry_places_pixels_at_their_patient_positions(scene, rng):
    series = obliqueSeries(rng)
    frame = sequenceNodeFromSeries(series, scene).GetNthDataNode(5)
    dy, dx = series.spacing_mm
    assert frame.GetSpacing() == pytest.approx((dx, dy, 6.5))
    ras_origin = np.array(series.geometry.origin_mm) * [-1, -1, 1]
    assert frame.GetOrigin() == pytest.approx(tuple(ras_origin))
    ijk_to_ras = matrixOf(frame)
    for y, x in ((0, 0), (4, 7), (8, 12)):
        lps = (
            np.asarray(series.geometry.origin_mm)
            + x * dx * np.asarray(series.geometry.x_direction)
            + y * dy * np.asarray(series.geometry.y_direction)
        )
        ras = ijk_to_ras @ [x, y, 0, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_loaded_series_plays_in_a_browser_with_a_fixed_display_range(scene, rng):
    series = obliqueSeries(rng)
    node = loadSeries(series, scene)
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    assert browsers.GetNumberOfItems() == 1
    browser = browsers.GetItemAsObject(0)
    assert browser.GetMasterSequenceNode() is node
    assert browser.GetNodeReference("QPerfSlice") is node
    proxy = browser.GetProxyNode(node)
    assert proxy is not None and proxy.IsA("vtkMRMLScalarVolumeNode") and proxy.GetName() == "mid"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(proxy)[0], series.data[0])
    browser.SetSelectedItemNumber(9)
    updateProxyNodes(browser)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(proxy)[0], series.data[9])
    np.testing.assert_allclose(matrixOf(proxy), series.ijk_to_ras(), atol=1e-9)
    display = proxy.GetDisplayNode()
    assert not display.GetAutoWindowLevel()
    low, high = np.percentile(series.data, [0.5, 99.5])
    assert display.GetWindowLevelMin() == pytest.approx(low, rel=1e-4)
    assert display.GetWindowLevelMax() == pytest.approx(high, rel=1e-4)


@pytest.mark.parametrize("with_geometry", [True, False])
def test_series_round_trips_through_a_sequence_node(scene, rng, with_geometry):
    series = obliqueSeries(rng)
    if not with_geometry:
        series = series.replace(geometry=None)
    back = seriesFromSequenceNode(loadSeries(series, scene))
    np.testing.assert_array_equal(back.data, series.data)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(back.time_s, series.time_s)
    assert back.spacing_mm == pytest.approx(series.spacing_mm, abs=1e-12)
    np.testing.assert_allclose(back.ijk_to_ras(), series.ijk_to_ras(), atol=1e-9)
    if with_geometry:
        np.testing.assert_allclose(back.geometry.origin_mm, series.geometry.origin_mm, atol=1e-9)
        np.testing.assert_allclose(back.geometry.x_direction, series.geometry.x_direction, atol=1e-12)
        np.testing.assert_allclose(back.geometry.y_direction, series.geometry.y_direction, atol=1e-12)
        assert back.geometry.slice_thickness_mm == pytest.approx(6.5)
    else:
        assert back.geometry is None
    assert back.n_pd_frames == 3 and back.units == "gd_mmol_l"
    assert back.slice_position_mm == -12.5 and back.name == "mid"
    assert back.metadata == series.metadata


def assertSameSeries(back: PerfusionSeries, series: PerfusionSeries) -> None:
    np.testing.assert_array_equal(back.data, series.data)
    np.testing.assert_array_equal(back.time_s, series.time_s)
    np.testing.assert_allclose(back.ijk_to_ras(), series.ijk_to_ras(), atol=1e-9)
    assert (back.geometry is None) == (series.geometry is None)
    assert (back.units, back.n_pd_frames, back.name) == (series.units, series.n_pd_frames, series.name)
    assert back.slice_position_mm == series.slice_position_mm
    assert {k: v for k, v in back.metadata.items() if k != "source"} == series.metadata


@pytest.mark.parametrize("with_geometry", [True, False])
def test_sequence_saved_by_slicer_reads_completely_with_qperf_io(scene, rng, tmp_path, with_geometry):
    series = obliqueSeries(rng)
    if not with_geometry:
        series = series.replace(geometry=None)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(tmp_path / "saved by Slicer.seq.nrrd"))
    assert storage.WriteData(loadSeries(series, scene))
    assertSameSeries(io.read_series(tmp_path / "saved by Slicer.seq.nrrd"), series)


@pytest.mark.parametrize("with_geometry", [True, False])
def test_qperf_file_opened_by_slicer_reads_completely(scene, rng, tmp_path, with_geometry):
    series = obliqueSeries(rng)
    if not with_geometry:
        series = series.replace(geometry=None)
    io.write_series(series, tmp_path / "written by qperf.seq.nrrd")
    node = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "opened in Slicer")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(tmp_path / "written by qperf.seq.nrrd"))
    assert storage.ReadData(node)
    assertSameSeries(seriesFromSequenceNode(node), series)


def test_unnamed_series_keeps_an_empty_name_and_gets_a_unique_node_name(scene, rng):
    series = obliqueSeries(rng, name="", slice_position_mm=None)
    first, second = loadSeries(series, scene), loadSeries(series, scene)
    assert first.GetName() != second.GetName()
    back = seriesFromSequenceNode(second)
    assert back.name == "" and back.slice_position_mm is None


def handMadeSequence(scene, times, unit="ms", index_name="time", frames=None, dtype=np.int16, text_index=False):
    """A sequence as another module would make it: no QPerf attributes, integer voxels."""
    node = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "from DICOM")
    node.SetIndexName(index_name)
    node.SetIndexUnit(unit)
    node.SetIndexType(slicer.vtkMRMLSequenceNode.TextIndex if text_index else slicer.vtkMRMLSequenceNode.NumericIndex)
    ijk_to_ras = np.diag([-1.4, -1.4, 8.0, 1.0])
    ijk_to_ras[:3, 3] = (100.0, 80.0, -20.0)
    for i, value in enumerate(times):
        volume = slicer.vtkMRMLScalarVolumeNode()
        array = frames[i] if frames is not None else np.full((1, 6, 5), 10 * i, dtype=dtype)
        slicer.util.updateVolumeFromArray(volume, array)
        volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
        node.SetDataNodeAtValue(volume, str(value))
    return node, ijk_to_ras


def test_sequence_made_elsewhere_is_read_with_its_own_geometry_and_ms_times(scene):
    node, ijk_to_ras = handMadeSequence(scene, [0, 850, 1720, 2600])
    series = seriesFromSequenceNode(node)
    np.testing.assert_array_equal(series.time_s, [0.0, 0.85, 1.72, 2.6])
    assert series.data.dtype == np.float32 and series.data.shape == (4, 6, 5)
    np.testing.assert_array_equal(series.data[3], np.full((6, 5), 30.0))
    np.testing.assert_allclose(series.ijk_to_ras(), ijk_to_ras, atol=1e-9)
    assert series.spacing_mm == pytest.approx((1.4, 1.4))
    assert series.units == "signal" and series.n_pd_frames == 0 and series.name == "from DICOM"
    assert series.geometry is not None and series.geometry.describe().startswith("origin LPS (-100.0, -80.0, -20.0)")


def test_bad_sequences_raise_one_clear_validation_error(scene):
    text_index, _ = handMadeSequence(scene, ["a", "b"], text_index=True)
    with pytest.raises(ValidationError, match="numeric time index"):
        seriesFromSequenceNode(text_index)
    wrong_unit, _ = handMadeSequence(scene, [1, 2, 3], unit="mm", index_name="position")
    with pytest.raises(ValidationError, match="time index in s or ms"):
        seriesFromSequenceNode(wrong_unit)
    single, _ = handMadeSequence(scene, [0])
    with pytest.raises(ValidationError, match="at least 2 frames, found 1"):
        seriesFromSequenceNode(single)
    thick = [np.zeros((2, 6, 5), np.int16)] * 3
    multi_slice, _ = handMadeSequence(scene, [0, 1, 2], frames=thick)
    with pytest.raises(ValidationError, match=r"single-slice frames \(1, y, x\)"):
        seriesFromSequenceNode(multi_slice)
    moved, _ = handMadeSequence(scene, [0, 1, 2])
    moved.GetNthDataNode(2).SetOrigin(0.0, 0.0, 0.0)
    with pytest.raises(ValidationError, match="item 2 differs"):
        seriesFromSequenceNode(moved)
    bad_count, _ = handMadeSequence(scene, [0, 1, 2])
    bad_count.SetAttribute("qperf_n_pd_frames", "two")
    with pytest.raises(ValidationError, match="qperf_n_pd_frames is not a count"):
        seriesFromSequenceNode(bad_count)
    bad_count.SetAttribute("qperf_n_pd_frames", "2")
    with pytest.raises(ValidationError, match="n_pd_frames: expected an integer from 0 to 1"):
        seriesFromSequenceNode(bad_count)
    bad_json, _ = handMadeSequence(scene, [0, 1, 2])
    bad_json.SetAttribute("qperf_metadata", "{not json")
    with pytest.raises(ValidationError, match="qperf_metadata is not JSON"):
        seriesFromSequenceNode(bad_json)
    tables = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "tables")
    for value in ("0", "1"):
        tables.SetDataNodeAtValue(slicer.vtkMRMLTableNode(), value)
    with pytest.raises(ValidationError, match="scalar volume frames, found vtkMRMLTableNode"):
        seriesFromSequenceNode(tables)
    with pytest.raises(ValidationError, match="sequenceNode: expected a vtkMRMLSequenceNode, found None"):
        seriesFromSequenceNode(None)


def test_scene_argument_is_required_outside_the_application(rng):
    assert not hasattr(slicer, "mrmlScene")
    with pytest.raises(ValidationError, match="scene: expected a vtkMRMLScene, found None"):
        getScene(None)
    with pytest.raises(ValidationError, match="scene: expected a vtkMRMLScene, found str"):
        getScene("scene")
    with pytest.raises(ValidationError, match="series: expected a qperf.PerfusionSeries"):
        sequenceNodeFromSeries(np.zeros((3, 4, 4)), slicer.vtkMRMLScene())
