"""MRML glue of the QPerfSeg module: perfusion series, studies and their segmentation as Slicer nodes.

Everything here imports ``slicer`` (the MRML scene and nodes) but never ``qt``, so it runs
both inside the Slicer application and headless with the ``slicer-core`` wheel. Functions take
the scene as an argument; ``None`` means ``slicer.mrmlScene`` (inside the application only).

- :mod:`.sequences`, :mod:`.study`: series and studies as sequences under one browser;
- :mod:`.segment`: motion correction and segmentation with progress and cancel;
- :mod:`.labels`, :mod:`.outputs`, :mod:`.sectors`: labels, markups and AHA segments as nodes;
- :mod:`.session`, :mod:`.frames`: manual correction propagated over frames;
- :mod:`.groundtruth`: training cases for ``qperf train --real``.
"""

from .groundtruth import exportGroundTruth
from .labels import SEGMENTS, labelsFromSegmentationNode, segmentationNodeFromLabels, segmentationSequenceFromLabels
from .logic import SegmentationLogic
from .segment import AnalysisCancelled, CancelToken, SliceSegmentation, segmentStudy
from .sequences import (
    addSequenceToBrowser,
    createBrowserNode,
    getScene,
    loadSeries,
    referencedSequenceNodes,
    sequenceNodeFromSeries,
    seriesFromSequenceNode,
    updateProxyNodes,
)
from .session import (
    SegmentationSession,
    applyCurrentFrameEdits,
    applyFrameEdit,
    applyReferenceEdit,
    createSession,
    moveInsertionPoint,
    recomputeSectors,
)
from .study import StudyNodes, aifCurveFromTableNode, aifTableNodeFromCurve, loadStudy, studyFromBrowserNode

__all__ = [
    "SEGMENTS",
    "AnalysisCancelled",
    "CancelToken",
    "SegmentationLogic",
    "SegmentationSession",
    "SliceSegmentation",
    "StudyNodes",
    "addSequenceToBrowser",
    "aifCurveFromTableNode",
    "aifTableNodeFromCurve",
    "applyCurrentFrameEdits",
    "applyFrameEdit",
    "applyReferenceEdit",
    "createBrowserNode",
    "createSession",
    "exportGroundTruth",
    "getScene",
    "labelsFromSegmentationNode",
    "loadSeries",
    "loadStudy",
    "moveInsertionPoint",
    "recomputeSectors",
    "referencedSequenceNodes",
    "segmentStudy",
    "segmentationNodeFromLabels",
    "segmentationSequenceFromLabels",
    "sequenceNodeFromSeries",
    "seriesFromSequenceNode",
    "studyFromBrowserNode",
    "updateProxyNodes",
]
