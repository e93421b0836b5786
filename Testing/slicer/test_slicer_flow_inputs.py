"""QPerfFlow's MRML glue: flow-quantification inputs and the perfusion colour table, against slicer-core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

from QPerfCommonLib import aifTableNodeFromCurve, loadStudy  # noqa: E402
from QPerfCommonLib.selftest import makeTestStudy  # noqa: E402
from QPerfFlowLib import (  # noqa: E402
    PERFUSION_COLOR_TABLE_NAME,
    describeInputs,
    loadColorTable,
    perfusionColorTableNode,
    studyInputs,
    studySettings,
)

from qperf import AifCurve, FormatError, ValidationError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COLOR_TABLE = REPO / "Resources" / "ColorTables" / "QPerfPerfusion.txt"


@pytest.fixture(scope="module")
def study():
    return makeTestStudy(nFrames=12, shape=(10, 12))


def test_settings_come_from_the_study_browser(scene, study):
    nodes = loadStudy(study, scene)
    settings = studySettings(nodes.browserNode)
    assert settings == {"aifTable": nodes.aifTableNode, "hematocrit": 0.45, "condition": "rest"}
    with pytest.raises(ValidationError, match="browserNode: expected a vtkMRMLSequenceBrowserNode, found None"):
        studySettings(None)


def test_inputs_take_the_chosen_aif_hematocrit_and_condition(scene, study):
    nodes = loadStudy(study, scene)
    other_time_s = np.arange(0.0, 40.0, 0.25)
    other = AifCurve(np.exp(-(((other_time_s - 8.0) / 3.0) ** 2)), other_time_s)
    inputs = studyInputs(nodes.browserNode, aifTableNodeFromCurve(other, scene), hematocrit=0.4, condition="stress")
    np.testing.assert_array_equal(inputs.aif.time_s, other_time_s)
    assert inputs.hematocrit == 0.4 and inputs.condition == "stress"
    text = describeInputs(inputs)
    assert "AIF covers 0.00 to 39.75 s" in text and "condition stress" in text


def test_inputs_need_an_aif_that_covers_the_slices(scene, study):
    bare = loadStudy(study.replace(aif=None), scene)
    with pytest.raises(ValidationError, match="aif: expected an AIF curve table or AIF image series"):
        studyInputs(bare.browserNode)
    short = AifCurve([0.0, 1.0, 0.5], [0.0, 1.0, 2.0])
    with pytest.raises(ValidationError, match="AIF and series do not match"):
        studyInputs(bare.browserNode, aifTableNodeFromCurve(short, scene))


def test_shipped_perfusion_color_table_loads_once(scene):
    assert COLOR_TABLE.is_file()
    node = perfusionColorTableNode(scene)
    assert node.IsA("vtkMRMLColorTableNode") and node.GetName() == PERFUSION_COLOR_TABLE_NAME
    assert node.GetNumberOfColors() == 256
    assert node.GetStorageNode().GetFileName() == str(COLOR_TABLE)
    first = np.array(node.GetLookupTable().GetTableValue(0))
    last = np.array(node.GetLookupTable().GetTableValue(255))
    assert np.linalg.norm(first[:3] - last[:3]) > 0.5  # a real ramp, not one colour
    assert perfusionColorTableNode(scene) is node
    assert scene.GetNodesByClass("vtkMRMLColorTableNode").GetNumberOfItems() == 1


def test_color_table_files_are_read_by_slicer_and_bad_ones_rejected(scene, tmp_path):
    good = tmp_path / "labels.txt"
    good.write_text("# Color table file\n0 background 0 0 0 0\n1 lv 255 0 0 255\n2 myo 0 255 0 255\n")
    node = loadColorTable(good, scene)
    assert node.GetName() == "labels" and node.GetNumberOfColors() == 3 and node.GetColorName(2) == "myo"
    assert node.GetLookupTable().GetTableValue(1) == pytest.approx((1.0, 0.0, 0.0, 1.0))
    bad = tmp_path / "bad.txt"
    bad.write_text("not a colour table\n")
    before = scene.GetNumberOfNodes()
    with pytest.raises(FormatError, match="bad.txt: not a Slicer colour table"):
        loadColorTable(bad, scene)
    assert scene.GetNumberOfNodes() == before
    with pytest.raises(FormatError, match="no such colour table file"):
        loadColorTable(tmp_path / "missing.txt", scene)
