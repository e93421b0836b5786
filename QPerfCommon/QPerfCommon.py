"""QPerfCommon: the scene glue QPerf Seg and QPerf Flow share (hidden; no panel of its own).

Both modules declare QPerfCommon as a dependency and import ``QPerfCommonLib`` (studies,
labels, segmentations and markups as MRML nodes; the extension's resources and Python
dependencies); computation they share lives in the core library ``qperf``. So QPerf Flow needs
nothing from QPerf Seg but the nodes QPerf Seg leaves in the scene. The module file holds the
module description, the logic that installs the Python dependencies and the self-test.
"""

import logging

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)


class QPerfCommon(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "QPerf Common"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["QPerf developers"]
        self.parent.helpText = (
            "Scene glue shared by QPerf Seg and QPerf Flow: perfusion studies as sequences under one browser, "
            "labels as segmentations, RV insertion points as point lists, and the segmentation outputs both "
            'modules read. See the <a href="https://github.com/qperf/qperf">QPerf documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "QPerf implements automated quantitative myocardial perfusion mapping (motion correction, CNN "
            "segmentation, pixel-wise flow by tracer-kinetic modelling, AHA report) after the methods of "
            "Kellman, Hansen, Xue et al. (NHLBI)."
        )
        self.parent.hidden = True


class QPerfCommonLogic(ScriptedLoadableModuleLogic):
    """What every QPerf module needs before it works: the Python packages of ``Resources/requirements.txt``."""

    def ensureDependencies(self, confirm):
        """Install missing Python packages after ``confirm(message)`` returns True."""
        from QPerfCommonLib import dependencies

        return dependencies.ensureRequirements(confirm, requester="QPerf")


class QPerfCommonTest(ScriptedLoadableModuleTest):
    """Runs a study and a segmentation through the scene and back (see ``QPerfCommonLib.selftest``)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_StudyAndSegmentationRoundTrip()

    def test_StudyAndSegmentationRoundTrip(self):
        self.delayDisplay("Starting the QPerfCommon self-test")
        QPerfCommonLogic().ensureDependencies(lambda message: True)
        from QPerfCommonLib.selftest import runSelfTest

        result = runSelfTest(slicer.mrmlScene, log=logging.info)
        self.assertEqual(len(result["nodes"].sliceSequenceNodes), result["study"].n_slices)
        self.delayDisplay("QPerfCommon self-test passed")
