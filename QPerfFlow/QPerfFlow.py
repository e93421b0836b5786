"""QPerfFlow: the inputs of pixel-wise myocardial blood flow quantification.

The module file holds the module description, the widget (declared in
``Resources/UI/QPerfFlow.ui`` and bound to a parameter node) and the self-test; every behaviour
lives in ``QPerfFlowLib`` (MRML glue) and the ``qperf`` core library.
"""

import importlib
import logging
import sys
from typing import Annotated

import slicer
import vtk
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class QPerfFlow(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "QPerf Flow"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["QPerfSeg"]
        self.parent.contributors = ["QPerf developers"]
        self.parent.helpText = (
            "Gather the inputs of pixel-wise myocardial blood flow quantification: a perfusion study loaded "
            "by QPerf Seg (one sequence per slice), the arterial input function as a table (time_s and "
            "gd_mmol_l), the hematocrit and the condition (rest or stress). See the "
            '<a href="https://github.com/qperf/qperf">QPerf documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "QPerf implements automated quantitative myocardial perfusion mapping (motion correction, CNN "
            "segmentation, pixel-wise flow by tracer-kinetic modelling, AHA report) after the methods of "
            "Kellman, Hansen, Xue et al. (NHLBI)."
        )


@parameterNodeWrapper
class QPerfFlowParameterNode:
    """State of the QPerfFlow panel.

    studyBrowser: the sequence browser of the study (from QPerf Seg).
    aifTable: the arterial input function (columns time_s and gd_mmol_l or signal).
    hematocrit: blood hematocrit, a fraction.
    condition: rest, stress or unknown.
    """

    studyBrowser: slicer.vtkMRMLSequenceBrowserNode
    aifTable: slicer.vtkMRMLTableNode
    hematocrit: Annotated[float, WithinRange(0.2, 0.7)] = 0.42
    condition: Annotated[str, Choice(["unknown", "rest", "stress"])] = "unknown"


class QPerfFlowWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._lastBrowser = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/QPerfFlow.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = QPerfFlowLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.checkInputsButton.connect("clicked(bool)", self.onCheckInputsButton)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onReload(self):
        for name in sorted((n for n in sys.modules if n.split(".")[0] == "QPerfFlowLib"), reverse=True):
            importlib.reload(sys.modules[name])
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self.updateGui()

    def updateGui(self, caller=None, event=None):
        node = self._parameterNode
        browser = node.studyBrowser if node else None
        if browser is not None and browser is not self._lastBrowser:
            self._lastBrowser = browser
            self.logic.applyStudySettings(node, browser)
        self.ui.checkInputsButton.enabled = browser is not None

    def onCheckInputsButton(self):
        with slicer.util.tryWithErrorDisplay("The flow inputs are not valid.", waitCursor=True):
            node = self._parameterNode
            self.ui.inputSummaryText.setPlainText("")
            study = self.logic.studyInputs(node.studyBrowser, node.aifTable, node.hematocrit, node.condition)
            self.ui.inputSummaryText.setPlainText(self.logic.describeInputs(study))


class QPerfFlowLogic(ScriptedLoadableModuleLogic):
    """Flow-quantification inputs from the scene; a thin layer over ``QPerfFlowLib`` and ``qperf``."""

    def getParameterNode(self):
        return QPerfFlowParameterNode(super().getParameterNode())

    def applyStudySettings(self, parameterNode, browserNode):
        """Fill the AIF table, hematocrit and condition from what the study browser records."""
        from QPerfFlowLib import studySettings

        settings = studySettings(browserNode)
        if settings["aifTable"] is not None:
            parameterNode.aifTable = settings["aifTable"]
        parameterNode.hematocrit = min(max(settings["hematocrit"], 0.2), 0.7)
        parameterNode.condition = settings["condition"]

    def studyInputs(self, browserNode, aifTableNode=None, hematocrit=None, condition=None):
        """The validated ``qperf.PerfusionStudy`` to quantify."""
        from QPerfFlowLib import studyInputs

        return studyInputs(browserNode, aifTableNode, hematocrit, condition)

    def describeInputs(self, study):
        from QPerfFlowLib import describeInputs

        return describeInputs(study)

    def perfusionColorNode(self, scene=None):
        """The perfusion colour table node (loaded from the extension on first use)."""
        from QPerfFlowLib import perfusionColorTableNode

        return perfusionColorTableNode(scene)


class QPerfFlowTest(ScriptedLoadableModuleTest):
    """Runs the module's logic on a small generated study (see ``QPerfFlowLib.selftest``)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FlowInputs()

    def test_FlowInputs(self):
        self.delayDisplay("Starting the QPerfFlow self-test")
        from QPerfSeg import QPerfSegLogic

        QPerfSegLogic().ensureDependencies(lambda message: True)
        from QPerfFlowLib.selftest import runSelfTest

        result = runSelfTest(slicer.mrmlScene, log=logging.info)
        self.assertEqual(result["inputs"].condition, "stress")
        self.delayDisplay("QPerfFlow self-test passed")
