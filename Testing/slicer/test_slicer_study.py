"""Whole perfusion studies in the scene (one sequence per slice, AIF table), against slicer-core."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

from QPerfCommonLib import (  # noqa: E402
    aifCurveFromTableNode,
    aifTableNodeFromCurve,
    createBrowserNode,
    loadStudy,
    studyFromBrowserNode,
)
from QPerfCommonLib.selftest import checkSeriesEqual, makeTestStudy  # noqa: E402
from QPerfCommonLib.sequences import addSequenceToBrowser, sequenceNodeFromSeries  # noqa: E402

from qperf import AifCurve, PerfusionSeries, ValidationError, io  # noqa: E402


@pytest.fixture(scope="module")
def study():
    return makeTestStudy(nFrames=14, shape=(12, 16))


def assertStudiesEqual(back, study):
    assert back.n_slices == study.n_slices
    for i, (original, restored) in enumerate(zip(study.slices, back.slices, strict=True)):
        checkSeriesEqual(original, restored, f"slice {i + 1}")
        assert restored.name == original.name
        restored_metadata = {k: v for k, v in restored.metadata.items() if k != "source"}  # added by file readers
        assert restored_metadata == original.metadata
    np.testing.assert_array_equal(back.aif.time_s, study.aif.time_s)
    np.testing.assert_allclose(back.aif.values, study.aif.values, rtol=1e-12)
    assert (back.aif.units, back.aif.kind) == (study.aif.units, study.aif.kind)
    assert back.condition == study.condition and back.hematocrit == study.hematocrit
    assert back.name == study.name


def test_study_loads_as_one_sequence_per_slice_under_one_browser(scene, study):
    nodes = loadStudy(study, scene)
    browser = nodes.browserNode
    assert browser.IsA("vtkMRMLSequenceBrowserNode") and browser.GetName() == "QPerf self-test"
    assert [n.GetName() for n in nodes.sliceSequenceNodes] == ["slice 1", "slice 2"]
    assert browser.GetMasterSequenceNode() is nodes.sliceSequenceNodes[0]
    for node, series in zip(nodes.sliceSequenceNodes, study.slices, strict=True):
        assert browser.IsSynchronizedSequenceNode(node, True)
        assert node.GetAttribute("qperf_role") == "slice"
        # each slice keeps its own acquisition times
        assert [float(node.GetNthIndexValue(i)) for i in range(series.n_frames)] == series.time_s.tolist()
        assert browser.GetProxyNode(node).IsA("vtkMRMLScalarVolumeNode")
    assert nodes.sliceSequenceNodes[0].GetNthIndexValue(0) != nodes.sliceSequenceNodes[1].GetNthIndexValue(0)
    assert browser.GetAttribute("qperf_condition") == "rest"
    assert browser.GetAttribute("qperf_hematocrit") == "0.45"
    assert nodes.aifSequenceNodes == []


def test_aif_curve_is_a_table_with_time_and_concentration_columns(scene, study):
    nodes = loadStudy(study, scene)
    table = nodes.aifTableNode
    assert table.IsA("vtkMRMLTableNode") and table.GetName() == "QPerf self-test AIF"
    assert nodes.browserNode.GetNodeReference("QPerfAifTable") is table
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == ["time_s", "gd_mmol_l"]
    assert table.GetNumberOfRows() == study.aif.n_samples
    assert table.GetColumnUnitLabel("time_s") == "s" and table.GetColumnUnitLabel("gd_mmol_l") == "mmol/L"
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "time_s"), study.aif.time_s)
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "gd_mmol_l"), study.aif.values)


def test_study_round_trips_through_the_scene(scene, study):
    back = studyFromBrowserNode(loadStudy(study, scene).browserNode)
    assertStudiesEqual(back, study)
    assert back.metadata == study.metadata


def test_study_read_from_disk_round_trips_through_the_scene(scene, study, tmp_path):
    manifest = io.write_study(study, tmp_path / "study")
    nodes = loadStudy(manifest, scene)
    assertStudiesEqual(studyFromBrowserNode(nodes.browserNode), study)
    single = loadStudy(str(tmp_path / "study" / "slice_2.seq.nrrd"), scene)
    assert len(single.sliceSequenceNodes) == 1 and single.aifTableNode is None
    checkSeriesEqual(study.slices[1], studyFromBrowserNode(single.browserNode).slices[0], "single series file")


def test_aif_image_series_become_sequences_of_their_own(scene, study):
    echo = study.slices[0].replace(name="AIF echo 1", units="signal", metadata={"echo_times_ms": [0.8, 2.0]})
    with_aif_images = study.replace(aif_series=(echo, echo.replace(name="AIF echo 2")))
    nodes = loadStudy(with_aif_images, scene)
    assert [n.GetName() for n in nodes.aifSequenceNodes] == ["AIF echo 1", "AIF echo 2"]
    assert all(n.GetAttribute("qperf_role") == "aifSeries" for n in nodes.aifSequenceNodes)
    back = studyFromBrowserNode(nodes.browserNode)
    assert back.n_slices == 2 and len(back.aif_series) == 2
    checkSeriesEqual(echo, back.aif_series[0], "AIF echo 1")
    assert back.aif_series[0].metadata == {"echo_times_ms": [0.8, 2.0]}


def test_overrides_and_a_browser_made_elsewhere(scene, study):
    browser = createBrowserNode(scene, name="made by hand")
    for series in study.slices:
        addSequenceToBrowser(browser, sequenceNodeFromSeries(series, scene), referenceRole=None)
    table = aifTableNodeFromCurve(study.aif, scene)
    back = studyFromBrowserNode(browser, aifTableNode=table, hematocrit=0.38, condition="stress")
    assert back.n_slices == 2 and back.hematocrit == 0.38 and back.condition == "stress"
    checkSeriesEqual(study.slices[1], back.slices[1], "slice 2")
    plain = studyFromBrowserNode(browser)
    assert plain.aif is None and plain.hematocrit == 0.42 and plain.condition == "unknown"
    assert plain.name == "made by hand"


def test_aif_table_made_elsewhere_uses_its_first_two_columns(scene):
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "curve")
    slicer.util.updateTableFromArray(table, np.array([[0.0, 0.1], [1.5, 2.5], [3.0, 1.0]]), ["t", "aif"])
    curve = aifCurveFromTableNode(table)
    np.testing.assert_array_equal(curve.time_s, [0.0, 1.5, 3.0])
    np.testing.assert_array_equal(curve.values, [0.1, 2.5, 1.0])
    assert curve.units == "gd_mmol_l" and curve.kind == "blood"
    signal = aifTableNodeFromCurve(AifCurve([5.0, 9.0, 7.0], [0.0, 1.0, 2.0], units="signal", kind="plasma"), scene)
    back = aifCurveFromTableNode(signal)
    assert (back.units, back.kind) == ("signal", "plasma")


def test_bad_study_inputs_raise_validation_errors(scene, study):
    one_column = scene.AddNewNodeByClass("vtkMRMLTableNode", "one column")
    slicer.util.updateTableFromArray(one_column, np.array([[0.0], [1.0]]), ["time_s"])
    with pytest.raises(ValidationError, match="expected columns time_s and gd_mmol_l"):
        aifCurveFromTableNode(one_column)
    text = scene.AddNewNodeByClass("vtkMRMLTableNode", "text")
    text.AddColumn().SetName("time_s")
    column = text.AddColumn()
    column.SetName("gd_mmol_l")
    assert text.GetTable().GetColumnByName("time_s").IsA("vtkStringArray")
    with pytest.raises(ValidationError, match="column 'time_s' is not numeric"):
        aifCurveFromTableNode(text)
    decreasing = scene.AddNewNodeByClass("vtkMRMLTableNode", "decreasing")
    slicer.util.updateTableFromArray(decreasing, np.array([[2.0, 0.1], [1.0, 0.2]]), ["time_s", "gd_mmol_l"])
    with pytest.raises(ValidationError, match="strictly increasing"):
        aifCurveFromTableNode(decreasing)
    short = AifCurve(study.aif.values[:5], study.aif.time_s[:5])
    browser = loadStudy(study.replace(aif=None), scene).browserNode
    with pytest.raises(ValidationError, match="AIF and series do not match"):
        studyFromBrowserNode(browser, aifTableNode=aifTableNodeFromCurve(short, scene))
    with pytest.raises(ValidationError, match="hematocrit"):
        studyFromBrowserNode(browser, hematocrit=1.5)
    with pytest.raises(
        ValidationError, match="browserNode: expected a vtkMRMLSequenceBrowserNode, found vtkMRMLTableNode"
    ):
        studyFromBrowserNode(one_column)
    with pytest.raises(ValidationError, match="expected sequences of slices, found none"):
        studyFromBrowserNode(createBrowserNode(scene))
    with pytest.raises(ValidationError, match="study: expected a qperf.PerfusionStudy or a path"):
        loadStudy(study.slices[0], scene)
    assert isinstance(study.slices[0], PerfusionSeries)


def test_study_survives_saving_and_reopening_the_scene(scene, study, tmp_path):
    loadStudy(study, scene)
    # What Slicer's "Save" does: every storable node writes its file, then the scene its XML.
    storables = scene.GetNodesByClass("vtkMRMLStorableNode")
    for i in range(storables.GetNumberOfItems()):
        node = storables.GetItemAsObject(i)
        node.AddDefaultStorageNode()
        storage = node.GetStorageNode()
        storage.SetFileName(str(tmp_path / f"{node.GetID()}.{storage.GetDefaultWriteFileExtension()}"))
        assert storage.WriteData(node), node.GetName()
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "study.mrml"))
    assert scene.Commit()

    reopened = slicer.vtkMRMLScene()
    reopened.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())
    reopened.SetURL(str(tmp_path / "study.mrml"))
    assert reopened.Connect()
    browser = reopened.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")
    back = studyFromBrowserNode(browser)
    for i, (original, restored) in enumerate(zip(study.slices, back.slices, strict=True)):
        checkSeriesEqual(original, restored, f"slice {i + 1}")
    np.testing.assert_array_equal(back.aif.time_s, study.aif.time_s)
    # Slicer's table files keep 6 significant digits
    np.testing.assert_allclose(back.aif.values, study.aif.values, rtol=1e-5, atol=1e-9)
    assert (back.condition, back.hematocrit, back.name) == (study.condition, study.hematocrit, study.name)
