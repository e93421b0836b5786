"""QPerfSeg: perfusion studies in the scene, motion-corrected, segmented and corrected by hand.

The module file holds the module description, the widget (declared in
``Resources/UI/QPerfSeg.ui`` and bound to a parameter node) and the self-test; every behaviour
lives in ``QPerfSegLib`` (this module's logic), ``QPerfCommonLib`` (the scene glue it shares
with QPerf Flow, from the hidden module QPerfCommon) and the ``qperf`` core library, whose study
workflow (``qperf.workflow.segment_study``) does the segmentation.
"""

import importlib
import logging
import pathlib
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


class QPerfSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "QPerf Seg"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences", "QPerfCommon"]
        self.parent.contributors = ["QPerf developers"]
        self.parent.helpText = (
            "Load a myocardial perfusion MRI study (a QPerf study.json, a DICOM folder or one series file: "
            "NRRD, NIfTI, Analyze, NumPy) as one sequence per slice, played back over time by one sequence "
            "browser. Correct respiratory motion and segment the LV blood pool, myocardium and RV with the CNN "
            "(in a separate process, with progress and cancel); the corrected series, the labels and the RV "
            "insertion points play back with the images. Edit the labels of any frame with the Segment Editor and "
            "drag the insertion point: the edit goes to every frame. Export the result as training cases. See the "
            '<a href="https://github.com/qperf/qperf">QPerf documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "QPerf implements automated quantitative myocardial perfusion mapping (motion correction, CNN "
            "segmentation, pixel-wise flow by tracer-kinetic modelling, AHA report) after the methods of "
            "Kellman, Hansen, Xue et al. (NHLBI)."
        )


@parameterNodeWrapper
class QPerfSegParameterNode:
    """State of the QPerfSeg panel.

    inputPath: the study to load (study.json, DICOM folder or series file).
    studyBrowser: the sequence browser of the loaded study.
    motion: respiratory motion correction before segmenting (auto, on, off), as qperf analyze --motion.
    segmenter: where the CNN runs (auto, subprocess, inprocess).
    modelPath: segmentation model weights or card (empty: the shipped model).
    sliceNumber: the slice (1-based) shown in the Segment Editor.
    groundTruthFolder: folder of training cases for the export.
    """

    inputPath: pathlib.Path
    studyBrowser: slicer.vtkMRMLSequenceBrowserNode
    motion: Annotated[str, Choice(["auto", "on", "off"])] = "auto"
    segmenter: Annotated[str, Choice(["auto", "subprocess", "inprocess"])] = "auto"
    modelPath: pathlib.Path
    sliceNumber: Annotated[int, WithinRange(1, 16)] = 1
    groundTruthFolder: pathlib.Path


def _isSet(path):
    return path is not None and str(path) not in ("", ".")


class QPerfSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._describedBrowser = None
        self._running = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/QPerfSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = QPerfSegLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.applyEditButton.connect("clicked(bool)", self.onApplyEditButton)
        self.ui.recomputeButton.connect("clicked(bool)", self.onRecomputeButton)
        self.ui.exportGroundTruthButton.connect("clicked(bool)", self.onExportGroundTruthButton)
        self.ui.sliceIndexSpinBox.connect("valueChanged(int)", lambda value: self.showEditingNodes())
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
        for name in sorted((n for n in sys.modules if n.split(".")[0] == "QPerfSegLib"), reverse=True):
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
        segmented = browser is not None and self.logic.hasSession(browser)
        self.ui.loadButton.enabled = bool(node) and _isSet(node.inputPath) and not self._running
        self.ui.runButton.enabled = browser is not None and not self._running
        self.ui.cancelButton.enabled = self._running
        for button in (self.ui.applyEditButton, self.ui.recomputeButton):
            button.enabled = segmented and not self._running
        self.ui.exportGroundTruthButton.enabled = segmented and _isSet(node.groundTruthFolder) and not self._running
        if browser is not self._describedBrowser:
            self._describedBrowser = browser
            self.ui.studySummaryText.setPlainText(self.logic.describeStudy(browser) if browser else "No study loaded.")

    def onProgress(self, fraction, message):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()

    def onLog(self, message):
        """A line of the core library's log: shown on the status line."""
        self.ui.statusLabel.text = message
        slicer.app.processEvents()

    def onLoadButton(self):
        with slicer.util.tryWithErrorDisplay("Failed to load the perfusion study.", waitCursor=True):
            self.logic.ensureDependencies(slicer.util.confirmOkCancelDisplay)
            nodes = self.logic.loadStudy(self._parameterNode.inputPath)
            self._parameterNode.studyBrowser = nodes.browserNode
            proxy = nodes.browserNode.GetProxyNode(nodes.sliceSequenceNodes[0])
            slicer.util.setSliceViewerLayers(background=proxy, fit=True)
            slicer.modules.sequences.setToolBarActiveBrowserNode(nodes.browserNode)
            slicer.modules.sequences.showSequenceBrowser(nodes.browserNode)

    def onRunButton(self):
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Motion correction and segmentation failed.", waitCursor=True):
            self.logic.ensureDependencies(slicer.util.confirmOkCancelDisplay)
            self._running = True
            self.updateGui()
            try:
                model = node.modelPath if _isSet(node.modelPath) else None
                done = self.logic.segment(
                    node.studyBrowser, node.motion, node.segmenter, model, self.onProgress, log=self.onLog
                )
            finally:
                self._running = False
                self.updateGui()
            self.ui.statusLabel.text = "Done" if done else "Cancelled"
            self._describedBrowser = None
            self.updateGui()
            self.showEditingNodes()

    def onCancelButton(self):
        self.logic.cancel()

    def showEditingNodes(self):
        node = self._parameterNode
        if node is None or node.studyBrowser is None or not self.logic.hasSession(node.studyBrowser):
            return
        editor = self.ui.segmentEditorWidget
        editor.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        segmentation, volume = self.logic.editingNodes(node.studyBrowser, node.sliceNumber - 1)
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(volume)

    def onApplyEditButton(self):
        with slicer.util.tryWithErrorDisplay("The edit could not be applied.", waitCursor=True):
            node = self._parameterNode
            self.logic.applyCurrentFrameEdits(node.studyBrowser, node.sliceNumber - 1)
            self.showEditingNodes()

    def onRecomputeButton(self):
        with slicer.util.tryWithErrorDisplay("The sectors could not be computed.", waitCursor=True):
            browser = self._parameterNode.studyBrowser
            self.logic.recompute(browser)
            if hasattr(slicer.modules, "qperfflow"):  # flow maps and report downstream, when computed
                flowLogic = slicer.modules.qperfflow.widgetRepresentation().self().logic
                if flowLogic.hasResult(browser):
                    flowLogic.core.recompute(browser, progress=self.onProgress)

    def onExportGroundTruthButton(self):
        with slicer.util.tryWithErrorDisplay("The ground truth could not be exported.", waitCursor=True):
            node = self._parameterNode
            written = self.logic.exportGroundTruth(node.studyBrowser, node.groundTruthFolder)
            self.ui.statusLabel.text = f"Wrote {len(written)} case(s) to {node.groundTruthFolder}"


class QPerfSegLogic(ScriptedLoadableModuleLogic):
    """The module's logic: parameter node, dependencies, and ``QPerfSegLib.SegmentationLogic`` for the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._core = None

    def getParameterNode(self):
        return QPerfSegParameterNode(super().getParameterNode())

    def ensureDependencies(self, confirm):
        """Install missing Python packages after ``confirm(message)`` returns True."""
        from QPerfCommonLib import dependencies

        return dependencies.ensureRequirements(confirm, requester="QPerf")

    @property
    def core(self):
        """The ``QPerfSegLib.SegmentationLogic`` working in ``slicer.mrmlScene`` (made on first use)."""
        if self._core is None or self._core.scene is not slicer.mrmlScene:
            from QPerfSegLib import SegmentationLogic

            self._core = SegmentationLogic(slicer.mrmlScene)
        return self._core

    def loadStudy(self, studyOrPath, scene=None):
        """Add a study (``qperf.PerfusionStudy`` or a path) to the scene; returns ``StudyNodes``."""
        from QPerfCommonLib import loadStudy

        if isinstance(studyOrPath, pathlib.Path):
            studyOrPath = str(studyOrPath)
        return loadStudy(studyOrPath, scene)

    def studyFromBrowser(self, browserNode, **overrides):
        """The ``qperf.PerfusionStudy`` a study browser holds."""
        from QPerfCommonLib import studyFromBrowserNode

        return studyFromBrowserNode(browserNode, **overrides)

    def describeStudy(self, browserNode):
        """A text summary of a study browser's slices, times, geometry and segmentation."""
        try:
            return self.core.describe(browserNode)
        except (ImportError, ValueError) as exc:
            logging.debug("QPerfSeg: cannot describe %s: %s", browserNode.GetName(), exc)
            return f"{browserNode.GetName()}: not a perfusion study ({exc})"

    def hasSession(self, browserNode):
        return self.core.hasSegmentation(browserNode)

    def segment(self, browserNode, motion, segmenter, model, progress, log=None):
        """Run motion correction and segmentation; False when the user cancelled.

        ``log(line)`` receives the core library's log lines while it runs.
        """
        from qperf.progress import AnalysisCancelled
        from qperf.workflow import AnalysisOptions

        options = AnalysisOptions(motion=motion, segmenter=None if model is None else str(model))
        self.core.log = log
        try:
            self.core.segment(browserNode, options, segmenter, progress=progress)
        except AnalysisCancelled:
            return False
        return True

    def cancel(self):
        if self._core is not None:
            self._core.cancel()

    def segmentEditorNode(self):
        return self.core.segmentEditorNode()

    def editingNodes(self, browserNode, sliceIndex):
        return self.core.editingNodes(browserNode, sliceIndex)

    def applyCurrentFrameEdits(self, browserNode, sliceIndex):
        return self.core.applyCurrentFrameEdits(browserNode, sliceIndex)

    def recompute(self, browserNode):
        return self.core.recompute(browserNode)

    def exportGroundTruth(self, browserNode, folder):
        return self.core.exportGroundTruth(browserNode, folder)


class QPerfSegTest(ScriptedLoadableModuleTest):
    """Runs the module's logic on a small generated study and a phantom (see ``QPerfSegLib.selftest``)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LoadSegmentCorrectExport()

    def test_LoadSegmentCorrectExport(self):
        self.delayDisplay("Starting the QPerfSeg self-test")
        QPerfSegLogic().ensureDependencies(lambda message: True)
        from QPerfSegLib.selftest import runSelfTest

        result = runSelfTest(slicer.mrmlScene, log=logging.info)
        self.assertEqual(len(result["nodes"].sliceSequenceNodes), result["study"].n_slices)
        self.assertGreater(result["workflow"]["sectorAgreement"], 0.85)
        self.delayDisplay("QPerfSeg self-test passed")
