"""The QPerfSeg module's library: segmentation of studies in the scene and its manual correction.

Thin by design: widgets -> :class:`SegmentationLogic` -> the core step
``qperf.workflow.segment_study`` -> MRML nodes. The segmentation itself (motion correction,
CNN, labels over the frames, insertion points) and the mappings between the acquired frames and
the reference grid are the core's; the nodes that show a study and its segmentation, which QPerf
Flow reads too, are ``QPerfCommonLib``'s (the hidden module QPerfCommon). What is left here:

- :mod:`.segment`: the core step with progress and cancel, in this process or, so the GUI
  stays responsive, in a separate one (``qperf segment --reference``) with the same result;
- :mod:`.session`: the segmented study under its browser, manual correction carried over frames;
- :mod:`.groundtruth`: training cases for ``qperf train --real``;
- :mod:`.logic`: all of it as one object, for the panel and the Python console.

Everything imports ``slicer`` (through ``QPerfCommonLib``) but never ``qt``.
"""

from .groundtruth import exportGroundTruth
from .logic import SegmentationLogic
from .segment import runSegmentCommand, segmentStudy
from .session import (
    SegmentationSession,
    applyCurrentFrameEdits,
    applyFrameEdit,
    applyReferenceEdit,
    createSession,
    moveInsertionPoint,
    recomputeSectors,
    sessionFromScene,
)

__all__ = [
    "SegmentationLogic",
    "SegmentationSession",
    "applyCurrentFrameEdits",
    "applyFrameEdit",
    "applyReferenceEdit",
    "createSession",
    "exportGroundTruth",
    "moveInsertionPoint",
    "recomputeSectors",
    "runSegmentCommand",
    "segmentStudy",
    "sessionFromScene",
]
