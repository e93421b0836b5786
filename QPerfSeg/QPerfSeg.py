"""QPerfSeg: perfusion series in the scene, ready for motion correction and segmentation.

The module file holds the module description, the widget (declared in
``Resources/UI/QPerfSeg.ui`` and bound to a parameter node) and the self-test; every behaviour
lives in ``QPerfSegLib`` (MRML glue) and the ``qperf`` core library.
"""

import importlib
import logging
import pathlib
import sys

import slicer
import vtk
from slicer.parameterNodeWrapper import parameterNodeWrapper
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
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["QPerf developers"]
        self.parent.helpText = (
            "Load a myocardial perfusion MRI study (a QPerf study.json, a DICOM folder or one series file: "
            "NRRD, NIfTI, Analyze, NumPy) as one sequence per slice, played back over time by one sequence "
            "browser. Frame times are the sequence index in seconds; each slice keeps its own times and its "
            "position in the patient. See the "
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
    """

    inputPath: pathlib.Path
    studyBrowser: slicer.vtkMRMLSequenceBrowserNode


class QPerfSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._describedBrowser = None

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
        path = str(node.inputPath) if node else ""
        self.ui.loadButton.enabled = bool(node) and path not in ("", ".")
        browser = node.studyBrowser if node else None
        if browser is not self._describedBrowser:
            self._describedBrowser = browser
            self.ui.studySummaryText.setPlainText(self.logic.describeStudy(browser) if browser else "No study loaded.")

    def onLoadButton(self):
        with slicer.util.tryWithErrorDisplay("Failed to load the perfusion study.", waitCursor=True):
            self.logic.ensureDependencies(slicer.util.confirmOkCancelDisplay)
            nodes = self.logic.loadStudy(self._parameterNode.inputPath)
            self._parameterNode.studyBrowser = nodes.browserNode
            proxy = nodes.browserNode.GetProxyNode(nodes.sliceSequenceNodes[0])
            slicer.util.setSliceViewerLayers(background=proxy, fit=True)
            slicer.modules.sequences.setToolBarActiveBrowserNode(nodes.browserNode)
            slicer.modules.sequences.showSequenceBrowser(nodes.browserNode)


class QPerfSegLogic(ScriptedLoadableModuleLogic):
    """Loads perfusion studies into the scene; a thin layer over ``QPerfSegLib`` and ``qperf``."""

    def getParameterNode(self):
        return QPerfSegParameterNode(super().getParameterNode())

    def ensureDependencies(self, confirm):
        """Install missing Python packages after ``confirm(message)`` returns True."""
        from QPerfSegLib import dependencies

        return dependencies.ensureRequirements(confirm, requester="QPerf")

    def loadStudy(self, studyOrPath, scene=None):
        """Add a study (``qperf.PerfusionStudy`` or a path) to the scene; returns ``StudyNodes``."""
        from QPerfSegLib import loadStudy

        if isinstance(studyOrPath, pathlib.Path):
            studyOrPath = str(studyOrPath)
        return loadStudy(studyOrPath, scene)

    def studyFromBrowser(self, browserNode, **overrides):
        """The ``qperf.PerfusionStudy`` a study browser holds."""
        from QPerfSegLib import studyFromBrowserNode

        return studyFromBrowserNode(browserNode, **overrides)

    def describeStudy(self, browserNode):
        """A text summary of a study browser's slices, times and geometry."""
        try:
            return self.studyFromBrowser(browserNode).summary()
        except (ImportError, ValueError) as exc:
            logging.debug("QPerfSeg: cannot describe %s: %s", browserNode.GetName(), exc)
            return f"{browserNode.GetName()}: not a perfusion study ({exc})"


class QPerfSegTest(ScriptedLoadableModuleTest):
    """Runs the module's logic on a small generated study (see ``QPerfSegLib.selftest``)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LoadStudyRoundTrip()

    def test_LoadStudyRoundTrip(self):
        self.delayDisplay("Starting the QPerfSeg self-test")
        QPerfSegLogic().ensureDependencies(lambda message: True)
        from QPerfSegLib.selftest import runSelfTest

        result = runSelfTest(slicer.mrmlScene, log=logging.info)
        self.assertEqual(len(result["nodes"].sliceSequenceNodes), result["study"].n_slices)
        self.delayDisplay("QPerfSeg self-test passed")
