"""The modules' self-tests (the bodies of their ScriptedLoadableModuleTest), run headless with slicer-core."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

from QPerfCommonLib import selftest as commonSelfTest  # noqa: E402
from QPerfFlowLib import selftest as flowSelfTest  # noqa: E402
from QPerfSegLib import selftest as segSelfTest  # noqa: E402


@pytest.mark.slow
def test_qperfseg_self_test_passes_in_a_fresh_scene(scene):
    messages = []
    result = segSelfTest.runSelfTest(scene, log=messages.append)
    assert result["checks"] == 12
    assert messages[-1].startswith("QPerfSeg self-test passed")
    # two slices of the loaded study; the phantom's slice, two AIF echoes, and the outputs
    # (corrected, labels, insertion points and vector) of its one slice
    assert scene.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems() == 2 + 3 + 4
    workflow = result["workflow"]
    assert workflow["myoDiceMean"] > workflow["myoDiceStaticMean"] and workflow["sectorAgreement"] > 0.85


@pytest.mark.slow
def test_qperfcommon_self_test_passes_in_a_fresh_scene(scene):
    messages = []
    result = commonSelfTest.runSelfTest(scene, log=messages.append)
    assert result["checks"] == 4
    assert messages[-1].startswith("QPerfCommon self-test passed")
    # two slices of the loaded study, and the corrected series, labels, insertion points and
    # vector of each of them
    assert scene.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems() == 2 + 2 * 4


@pytest.mark.slow
def test_qperfflow_self_test_passes_in_a_fresh_scene(scene):
    messages = []
    result = flowSelfTest.runSelfTest(scene, log=messages.append)
    assert result["inputs"].condition == "stress" and result["colorNode"].GetNumberOfColors() == 256
    assert messages[-1] == "QPerfFlow self-test passed"


def test_self_test_checks_fail_on_a_corrupted_round_trip():
    study = commonSelfTest.makeTestStudy()
    series = study.slices[0]
    shifted = series.replace(time_s=series.time_s + 0.001)
    with pytest.raises(AssertionError, match="frame times differ"):
        commonSelfTest.checkSeriesEqual(series, shifted, "slice 1")
    changed = series.data.copy()
    changed[3, 2, 2] += 1.0
    with pytest.raises(AssertionError, match="voxel values differ"):
        commonSelfTest.checkSeriesEqual(series, series.replace(data=changed), "slice 1")
    with pytest.raises(AssertionError, match="IJK-to-RAS geometry differs"):
        commonSelfTest.checkSeriesEqual(series, series.replace(geometry=None), "slice 1")
