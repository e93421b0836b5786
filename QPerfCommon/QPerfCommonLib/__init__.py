"""The MRML glue that QPerf Seg and QPerf Flow share: studies, labels and segmentations as Slicer nodes.

Where shared code lives
-----------------------
Computation shared by the modules lives in the core library ``qperf`` (the study workflow
``qperf.workflow``, cancellation ``qperf.progress.CancelToken``, pixel <-> RAS conversion
``qperf.types.yx_to_ras``); the modules never re-implement it. What both need from the scene
lives here, in the hidden module QPerfCommon, which both declare as a dependency and import:

- :mod:`.scene`: the scene to work in, node removal, time-indexed sequences, saving and opening;
- :mod:`.sequences`, :mod:`.study`: series <-> volume sequences, a study <-> its sequence browser;
- :mod:`.labels`, :mod:`.markups`, :mod:`.sectors`: label maps <-> segmentations, insertion
  points <-> point lists, AHA segments as contours;
- :mod:`.outputs`: the reference roles under which outputs are recorded on the study browser;
- :mod:`.segmentation`, :mod:`.motionfields`: the core's ``Segmentation`` <-> those outputs;
- :mod:`.resources`, :mod:`.dependencies`: the extension's resources, its Python packages.

So QPerf Flow depends on QPerf Seg only through the scene (the outputs it records) and through
this package; it imports nothing from ``QPerfSegLib``. Imports here flow one way (scene ->
sequences -> study; scene -> labels, markups -> segmentation), without cycles. Everything
imports ``slicer`` (the MRML scene and nodes) but never ``qt``, so it runs inside the Slicer
application and headless with the ``slicer-core`` wheel. Functions take the scene as an
argument; ``None`` means ``slicer.mrmlScene`` (inside the application only).
"""

from .labels import (
    SEGMENTS,
    labelsFromSegmentationNode,
    labelsFromSegmentationSequence,
    segmentationNodeFromLabels,
    segmentationSequenceFromLabels,
)
from .markups import namedPoint, pointsFromNode, setPoints
from .outputs import outputNodes, removeOutputs
from .scene import getScene, openScene, removeNode, saveScene, updateProxyNodes
from .segmentation import addSegmentationOutputs, hasSegmentationOutputs, segmentationFromScene
from .sequences import (
    addSequenceToBrowser,
    createBrowserNode,
    loadSeries,
    referencedSequenceNodes,
    sequenceNodeFromSeries,
    seriesFromSequenceNode,
)
from .study import StudyNodes, aifCurveFromTableNode, aifTableNodeFromCurve, loadStudy, studyFromBrowserNode

__all__ = [
    "SEGMENTS",
    "StudyNodes",
    "addSegmentationOutputs",
    "addSequenceToBrowser",
    "aifCurveFromTableNode",
    "aifTableNodeFromCurve",
    "createBrowserNode",
    "getScene",
    "hasSegmentationOutputs",
    "labelsFromSegmentationNode",
    "labelsFromSegmentationSequence",
    "loadSeries",
    "loadStudy",
    "namedPoint",
    "openScene",
    "outputNodes",
    "pointsFromNode",
    "referencedSequenceNodes",
    "removeNode",
    "removeOutputs",
    "saveScene",
    "segmentationFromScene",
    "segmentationNodeFromLabels",
    "segmentationSequenceFromLabels",
    "sequenceNodeFromSeries",
    "seriesFromSequenceNode",
    "setPoints",
    "studyFromBrowserNode",
    "updateProxyNodes",
]
