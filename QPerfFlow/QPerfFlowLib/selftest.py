"""The QPerfFlow self-test: flow inputs from the scene, then flow quantification of phantom studies.

:func:`runSelfTest` is what the module's ``ScriptedLoadableModuleTest`` runs inside Slicer and
what the test suite runs headless with ``slicer-core``: the inputs gathered from a generated
study (AIF table, hematocrit, condition, colour table), then
:func:`~.flowtest.runFlowWorkflowSelfTest` (AIF region, maps, contours, tables, curves,
bull's-eye, perfusion reserve, report and scene saving on phantom stress and rest studies).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from QPerfCommonLib.scene import getScene
from QPerfCommonLib.selftest import checkSeriesEqual, makeTestStudy
from QPerfCommonLib.study import loadStudy

from qperf.errors import ValidationError

from .colors import PERFUSION_COLOR_TABLE_NAME, perfusionColorTableNode
from .inputs import describeInputs, studyInputs, studySettings

LogCallback = Callable[[str], None]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def runSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Run the QPerfFlow self-test in ``scene`` (default ``slicer.mrmlScene``).

    Returns
    -------
    dict
        ``{"study": PerfusionStudy, "inputs": PerfusionStudy, "colorNode": vtkMRMLColorTableNode,
        "workflow": dict}`` (``workflow``: the result of ``runFlowWorkflowSelfTest``).

    Raises
    ------
    AssertionError
        On the first check that fails, naming it.
    """
    scene = getScene(scene)
    log = log or (lambda message: None)
    study = makeTestStudy()
    nodes = loadStudy(study, scene)
    settings = studySettings(nodes.browserNode)
    _check(settings["aifTable"] is nodes.aifTableNode, "the browser does not reference its AIF table")
    _check(settings["hematocrit"] == study.hematocrit and settings["condition"] == study.condition, "study settings")

    inputs = studyInputs(nodes.browserNode, settings["aifTable"], hematocrit=0.40, condition="stress")
    _check(inputs.hematocrit == 0.40 and inputs.condition == "stress", "hematocrit and condition overrides")
    for i, (original, restored) in enumerate(zip(study.slices, inputs.slices)):
        checkSeriesEqual(original, restored, f"slice {i + 1}")
    _check(inputs.aif is not None and study.aif is not None, "the AIF curve is missing")
    assert inputs.aif is not None and study.aif is not None
    _check(np.array_equal(inputs.aif.time_s, study.aif.time_s), "AIF times")
    _check(np.array_equal(inputs.aif.values, study.aif.values), "AIF values")
    _check("AIF covers" in describeInputs(inputs), "input summary")
    log("Flow inputs gathered from the scene match the generated study")

    withoutAif = loadStudy(study.replace(aif=None), scene)
    try:
        studyInputs(withoutAif.browserNode)
    except ValidationError as exc:
        _check("aif" in str(exc), f"missing-AIF error does not name the AIF: {exc}")
    else:
        raise AssertionError("a study without AIF was accepted for flow quantification")

    colorNode = perfusionColorTableNode(scene)
    _check(colorNode.GetName() == PERFUSION_COLOR_TABLE_NAME, "perfusion colour table name")
    _check(colorNode.GetNumberOfColors() >= 64, f"perfusion colour table has {colorNode.GetNumberOfColors()} colours")
    _check(perfusionColorTableNode(scene) is colorNode, "the perfusion colour table was loaded twice")
    log(f"Perfusion colour table loaded ({colorNode.GetNumberOfColors()} colours)")
    from .flowtest import runFlowWorkflowSelfTest

    workflow = runFlowWorkflowSelfTest(scene, log)
    log("QPerfFlow self-test passed")
    return {"study": study, "inputs": inputs, "colorNode": colorNode, "workflow": workflow}
