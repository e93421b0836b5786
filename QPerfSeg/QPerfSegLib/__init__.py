"""MRML glue of the QPerfSeg module: perfusion series and studies as Slicer nodes.

Everything here imports ``slicer`` (the MRML scene and nodes) but never ``qt``, so it runs
both inside the Slicer application and headless with the ``slicer-core`` wheel. Functions take
the scene as an argument; ``None`` means ``slicer.mrmlScene`` (inside the application only).
"""

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
from .study import StudyNodes, aifCurveFromTableNode, aifTableNodeFromCurve, loadStudy, studyFromBrowserNode

__all__ = [
    "StudyNodes",
    "addSequenceToBrowser",
    "aifCurveFromTableNode",
    "aifTableNodeFromCurve",
    "createBrowserNode",
    "getScene",
    "loadSeries",
    "loadStudy",
    "referencedSequenceNodes",
    "sequenceNodeFromSeries",
    "seriesFromSequenceNode",
    "studyFromBrowserNode",
    "updateProxyNodes",
]
