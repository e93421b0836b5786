"""QPerfFlow: pixel-wise myocardial blood flow, AHA segments and the report, in the scene.

The module file holds the module description, the widget (declared in
``Resources/UI/QPerfFlow.ui`` and bound to a parameter node) and the self-test; every behaviour
lives in ``QPerfFlowLib`` (this module's logic), ``QPerfCommonLib`` (the scene glue shared with
QPerf Seg, from the hidden module QPerfCommon) and the ``qperf`` core library, whose study
workflow (``qperf.workflow.analyze_study``) computes the flow. QPerf Flow reads QPerf Seg's
results from the scene and needs nothing else from it.
"""

import importlib
import logging
import os
import pathlib
import sys
from typing import Annotated

import qt
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
        self.parent.dependencies = ["QPerfCommon"]
        self.parent.contributors = ["QPerf developers"]
        self.parent.helpText = (
            "Quantify myocardial blood flow pixel by pixel for a study segmented by QPerf Seg (or any series with "
            "a segmentation and an insertion point): the AIF from a table or from the AIF images (LV blood pool "
            "detected automatically, editable), the kinetic model (BTEX by default, Fermi, 2CXM, Tofts) and the "
            "hematocrit. Results: parameter maps with the perfusion colour table, AHA segment contours, a "
            "per-segment table, AIF and myocardial curves, the bull's-eye, the perfusion reserve when stress and "
            "rest are loaded; export the report (JSON, CSV, HTML) and save the scene. See the "
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
    labelsSegmentation: labels of a one-slice study not segmented by QPerf Seg (optional).
    insertionPoints: point list with the anterior RV insertion point, with labelsSegmentation.
    aifTable: the arterial input function (columns time_s and gd_mmol_l or signal).
    aifRegion: the LV blood-pool region of the AIF images (detected, editable).
    hematocrit: blood hematocrit, a fraction.
    condition: rest, stress or unknown.
    model: the tracer-kinetic model (btex, fermi, 2cxm, tofts).
    restBrowser: the rest study, for the perfusion reserve.
    reportFolder, sceneFolder: where the report and the scene are saved.
    """

    studyBrowser: slicer.vtkMRMLSequenceBrowserNode
    labelsSegmentation: slicer.vtkMRMLSegmentationNode
    insertionPoints: slicer.vtkMRMLMarkupsFiducialNode
    aifTable: slicer.vtkMRMLTableNode
    aifRegion: slicer.vtkMRMLSegmentationNode
    hematocrit: Annotated[float, WithinRange(0.2, 0.7)] = 0.42
    condition: Annotated[str, Choice(["unknown", "rest", "stress"])] = "unknown"
    model: Annotated[str, Choice(["btex", "fermi", "2cxm", "tofts"])] = "btex"
    restBrowser: slicer.vtkMRMLSequenceBrowserNode
    reportFolder: pathlib.Path
    sceneFolder: pathlib.Path


def _isSet(path):
    return path is not None and str(path) not in ("", ".")


class QPerfFlowWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._lastBrowser = None
        self._running = False

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
        self.ui.detectAifButton.connect("clicked(bool)", self.onDetectAifButton)
        self.ui.aifFromRegionButton.connect("clicked(bool)", self.onAifFromRegionButton)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.cancelButton.connect("clicked(bool)", lambda: self.logic.cancel())
        self.ui.reserveButton.connect("clicked(bool)", self.onReserveButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.saveSceneButton.connect("clicked(bool)", self.onSaveSceneButton)
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
        idle = not self._running
        hasResult = browser is not None and self.logic.hasResult(browser)
        for button in (self.ui.checkInputsButton, self.ui.detectAifButton, self.ui.computeButton):
            button.enabled = browser is not None and idle
        self.ui.aifFromRegionButton.enabled = bool(node) and node.aifRegion is not None and browser is not None and idle
        self.ui.cancelButton.enabled = self._running
        rest = node.restBrowser if node else None
        self.ui.reserveButton.enabled = hasResult and rest is not None and self.logic.hasResult(rest) and idle
        self.ui.exportReportButton.enabled = hasResult and _isSet(node.reportFolder) and idle
        self.ui.exportDicomButton.enabled = (
            hasResult and _isSet(node.reportFolder) and idle and self.logic.loadedFromDicom(browser)
        )
        self.ui.saveSceneButton.enabled = bool(node) and _isSet(node.sceneFolder) and idle

    def onProgress(self, fraction, message):
        self.ui.progressBar.value = int(round(100 * fraction))
        slicer.app.processEvents()

    def onLog(self, message):
        """A line of the core library's log: added to the summary text below the panel."""
        self.ui.inputSummaryText.appendPlainText(message)
        slicer.app.processEvents()

    def onCheckInputsButton(self):
        with slicer.util.tryWithErrorDisplay("The flow inputs are not valid.", waitCursor=True):
            self.ui.inputSummaryText.setPlainText("")
            self.ui.inputSummaryText.setPlainText(self.logic.describeInputs(self._parameterNode))

    def onDetectAifButton(self):
        with slicer.util.tryWithErrorDisplay("No LV blood pool found in the AIF images.", waitCursor=True):
            self._parameterNode.aifRegion = self.logic.core.detectAifRegion(self._parameterNode.studyBrowser)

    def onAifFromRegionButton(self):
        with slicer.util.tryWithErrorDisplay("The AIF could not be extracted.", waitCursor=True):
            node = self._parameterNode
            node.aifTable = self.logic.core.aifFromRegion(node.studyBrowser, node.aifRegion)

    def onComputeButton(self):
        with slicer.util.tryWithErrorDisplay("Flow quantification failed.", waitCursor=True):
            self._running = True
            self.updateGui()
            try:
                done = self.logic.compute(self._parameterNode, self.onProgress, log=self.onLog)
            finally:
                self._running = False
                self.updateGui()
            if done:
                self.showResult()

    def showResult(self):
        browser = self._parameterNode.studyBrowser
        pixmap = qt.QPixmap()
        pixmap.loadFromData(self.logic.core.bullseyePng(browser), "PNG")
        self.ui.bullseyeLabel.setPixmap(pixmap.scaledToWidth(320, qt.Qt.SmoothTransformation))
        nodes = self.logic.core.nodes[browser.GetID()]
        slicer.util.setSliceViewerLayers(
            foreground=nodes.maps[0]["mbf_ml_min_g"], foregroundOpacity=0.6, label=None, fit=True
        )
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
        slicer.modules.plots.logic().ShowChartInLayout(nodes.chart)
        self.ui.inputSummaryText.setPlainText(self.logic.describeResult(browser))

    def onReserveButton(self):
        with slicer.util.tryWithErrorDisplay("The perfusion reserve could not be computed.", waitCursor=True):
            node = self._parameterNode
            self.logic.core.perfusionReserve(node.studyBrowser, node.restBrowser)

    def onExportReportButton(self):
        with slicer.util.tryWithErrorDisplay("The report could not be written.", waitCursor=True):
            node = self._parameterNode
            self.logic.core.exportReport(node.studyBrowser, node.reportFolder, overwrite=True)

    def onExportDicomButton(self):
        with slicer.util.tryWithErrorDisplay("The DICOM results could not be written.", waitCursor=True):
            node = self._parameterNode
            folder = os.path.join(node.reportFolder, "dicom")
            written = self.logic.core.exportDicom(node.studyBrowser, folder, overwrite=True)
            self.ui.inputSummaryText.appendPlainText(f"Wrote {len(written)} DICOM files to {folder}")

    def onSaveSceneButton(self):
        with slicer.util.tryWithErrorDisplay("The scene could not be saved.", waitCursor=True):
            self.logic.core.saveScene(self._parameterNode.sceneFolder, overwrite=True)


class QPerfFlowLogic(ScriptedLoadableModuleLogic):
    """The module's logic: parameter node and ``QPerfFlowLib.FlowLogic`` for the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._core = None

    def getParameterNode(self):
        return QPerfFlowParameterNode(super().getParameterNode())

    @property
    def core(self):
        """The ``QPerfFlowLib.FlowLogic`` working in ``slicer.mrmlScene`` (made on first use)."""
        if self._core is None or self._core.scene is not slicer.mrmlScene:
            from QPerfFlowLib import FlowLogic

            self._core = FlowLogic(slicer.mrmlScene)
        return self._core

    def applyStudySettings(self, parameterNode, browserNode):
        """Fill the AIF table, hematocrit and condition from what the study browser records."""
        from QPerfFlowLib import studySettings

        settings = studySettings(browserNode)
        if settings["aifTable"] is not None:
            parameterNode.aifTable = settings["aifTable"]
        parameterNode.hematocrit = min(max(settings["hematocrit"], 0.2), 0.7)
        parameterNode.condition = settings["condition"]

    def _inputArguments(self, node):
        return {
            "aifTable": node.aifTable,
            "hematocrit": node.hematocrit,
            "condition": node.condition,
            "labelsSegmentation": node.labelsSegmentation,
            "insertionPoints": node.insertionPoints,
        }

    def describeInputs(self, node):
        from QPerfFlowLib import describeInputs

        inputs = self.core.inputs(node.studyBrowser, **self._inputArguments(node))
        sources = "\n".join(f"{key}: {value}" for key, value in inputs.sources.items())
        return f"{describeInputs(inputs.study)}\n{sources}"

    def compute(self, node, progress, log=None):
        """Compute flow for the panel's study; False when the user cancelled.

        ``log(line)`` receives the core library's log lines while it runs.
        """
        from qperf.progress import AnalysisCancelled

        self.core.log = log
        try:
            self.core.compute(node.studyBrowser, model=node.model, progress=progress, **self._inputArguments(node))
        except AnalysisCancelled:
            return False
        return True

    def cancel(self):
        if self._core is not None:
            self._core.cancel()

    def loadedFromDicom(self, browserNode):
        """Whether the study was loaded from a DICOM folder (its results can go back as DICOM)."""
        return browserNode is not None and self.core.dicomSource(browserNode) is not None

    def hasResult(self, browserNode):
        return self._core is not None and browserNode.GetID() in self._core.results

    def describeResult(self, browserNode):
        report = self.core.result(browserNode).report
        key = "mbf_mean_ml_min_g"
        lines = [
            f"{report['study']['name']} ({report['study']['condition']}): global MBF {report['global'][key]:.2f} ml/min/g"
        ]
        lines += [f"{t}: {v[key]:.2f} ml/min/g" for t, v in report["territories"].items() if v[key] is not None]
        lines += report["qc"].get("warnings", [])
        return "\n".join(lines)

    def perfusionColorNode(self, scene=None):
        """The perfusion colour table node (loaded from the extension on first use)."""
        from QPerfFlowLib import perfusionColorTableNode

        return perfusionColorTableNode(scene)


class QPerfFlowTest(ScriptedLoadableModuleTest):
    """Runs the module's logic on a generated study and on phantom studies (see ``QPerfFlowLib.selftest``)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FlowWorkflow()

    def test_FlowWorkflow(self):
        self.delayDisplay("Starting the QPerfFlow self-test")
        from QPerfCommon import QPerfCommonLogic

        QPerfCommonLogic().ensureDependencies(lambda message: True)
        from QPerfFlowLib.selftest import runSelfTest

        result = runSelfTest(slicer.mrmlScene, log=logging.info)
        self.assertEqual(result["inputs"].condition, "stress")
        self.assertGreater(result["workflow"]["aifCorrelation"], 0.95)
        self.delayDisplay("QPerfFlow self-test passed")
