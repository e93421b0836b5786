"""The QPerfSeg workflow as one object: what the module panel calls and what the Python console uses.

>>> from QPerfSegLib import SegmentationLogic
>>> logic = SegmentationLogic(scene)                   # scene: slicer.mrmlScene inside Slicer
>>> nodes = logic.loadStudy("study.json")              # or a DICOM folder, or a series file
>>> session = logic.segment(nodes.browserNode)         # motion correction + CNN, every slice
>>> logic.labelsArray(nodes.browserNode, 0)            # (t, y, x) labels as the scene holds them
>>> logic.applyCurrentFrameEdits(nodes.browserNode, 0) # after editing the current frame
>>> logic.recompute(nodes.browserNode)                 # AHA sectors from labels and points
>>> logic.exportGroundTruth(nodes.browserNode, "cases/")

Sessions (the per-slice results with their motion fields) are kept per study browser. This
file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from qperf.errors import ValidationError

from .groundtruth import exportGroundTruth
from .labels import labelsFromSegmentationSequence
from .outputs import REFERENCE_CORRECTED, REFERENCE_LABELS, outputNodes
from .persist import sessionFromScene
from .segment import CancelToken, segmentStudy
from .sequences import getScene, referencedSequenceNodes, seriesFromSequenceNode
from .session import (
    SegmentationSession,
    applyCurrentFrameEdits,
    applyFrameEdit,
    createSession,
    moveInsertionPoint,
    recomputeSectors,
)
from .study import loadStudy, studyFromBrowserNode


class SegmentationLogic:
    """Load, correct, segment, edit and export perfusion studies in a scene.

    Parameters
    ----------
    scene : vtkMRMLScene, optional
        Defaults to ``slicer.mrmlScene`` (inside the application).
    """

    def __init__(self, scene: Any | None = None) -> None:
        self.scene = getScene(scene)
        self.sessions: dict = {}
        self.cancelToken: CancelToken | None = None

    def loadStudy(self, studyOrPath: Any, name: str | None = None) -> Any:
        """Add a study (``qperf.PerfusionStudy`` or a path ``qperf.io.read_study`` reads); returns ``StudyNodes``."""
        if isinstance(studyOrPath, os.PathLike):
            studyOrPath = os.fspath(studyOrPath)
        return loadStudy(studyOrPath, self.scene, name=name)

    def segment(
        self,
        browserNode: Any,
        motionCorrection: bool = True,
        segmenter: str = "auto",
        model: str | os.PathLike | None = None,
        labels: list | None = None,
        insertionPoints: list | None = None,
        labelFrames: list | None = None,
        progress: Any | None = None,
    ) -> SegmentationSession:
        """Motion-correct and segment every slice of the study; add the outputs under its browser.

        ``labels`` / ``insertionPoints`` (per slice; drawn on ``labelFrames`` or on the
        reference grid) replace the CNN. :meth:`cancel` stops a run from another callback;
        a cancelled run raises ``AnalysisCancelled`` and adds nothing. See
        :func:`.segment.segmentStudy`.
        """
        study = studyFromBrowserNode(browserNode)
        self.cancelToken = CancelToken()
        slices = segmentStudy(
            study,
            motionCorrection=motionCorrection,
            segmenter=segmenter,
            model=None if model in (None, "", ".") else model,
            labels=labels,
            insertionPoints=insertionPoints,
            labelFrames=labelFrames,
            progress=progress,
            cancel=self.cancelToken,
        )
        session = createSession(browserNode, slices)
        self.sessions[browserNode.GetID()] = session
        return session

    def cancel(self) -> None:
        """Ask the running :meth:`segment` to stop at its next step."""
        if self.cancelToken is not None:
            self.cancelToken.cancel()

    def session(self, browserNode: Any) -> SegmentationSession:
        """The segmentation session of a study browser.

        Rebuilt from the scene (:func:`.persist.sessionFromScene`) when the study was segmented
        before the scene was saved and reopened.

        Raises
        ------
        ValidationError
            When the study has not been segmented.
        """
        if browserNode is None:
            raise ValidationError("browserNode: expected a study browser, found None")
        session = self.sessions.get(browserNode.GetID())
        if session is None:
            session = sessionFromScene(browserNode)
            self.sessions[browserNode.GetID()] = session
        return session

    def hasSegmentation(self, browserNode: Any) -> bool:
        """Whether the study has QPerf Seg outputs (computed now, or in a scene that was reopened)."""
        return browserNode is not None and (
            browserNode.GetID() in self.sessions or bool(outputNodes(browserNode, REFERENCE_LABELS))
        )

    def applyCurrentFrameEdits(self, browserNode: Any, sliceIndex: int = 0) -> Any:
        """Carry the labels and points edited on the current frame to the reference and every frame."""
        return applyCurrentFrameEdits(self.session(browserNode), sliceIndex)

    def applyFrameEdit(self, browserNode: Any, sliceIndex: int, frame: int, labelsFrame: np.ndarray) -> Any:
        return applyFrameEdit(self.session(browserNode), sliceIndex, frame, labelsFrame)

    def moveInsertionPoint(
        self, browserNode: Any, sliceIndex: int, frame: int, pointYx: tuple, name: str = "anterior"
    ) -> Any:
        return moveInsertionPoint(self.session(browserNode), sliceIndex, frame, pointYx, name)

    def recompute(self, browserNode: Any, levels: list | None = None) -> list:
        """AHA sectors of every slice from the current labels and insertion points (shown as contours)."""
        return recomputeSectors(self.session(browserNode), levels)

    def exportGroundTruth(self, browserNode: Any, folder: str | os.PathLike, overwrite: bool = False) -> list:
        """Training cases (one folder per slice) for ``qperf train --real FOLDER``."""
        session = self.session(browserNode)
        studyName = browserNode.GetAttribute("qperf_name") or browserNode.GetName()
        return exportGroundTruth(session.slices, folder, studyName, session.names, overwrite)

    def editingNodes(self, browserNode: Any, sliceIndex: int = 0) -> tuple:
        """``(segmentation, volume)`` proxy nodes of a slice: what the Segment Editor edits, on which image."""
        session = self.session(browserNode)
        i = session.index(sliceIndex)
        labels = outputNodes(browserNode, REFERENCE_LABELS)[i]
        volume = referencedSequenceNodes(browserNode)[i]
        return browserNode.GetProxyNode(labels), browserNode.GetProxyNode(volume)

    def labelsArray(self, browserNode: Any, sliceIndex: int = 0) -> np.ndarray:
        """The labels ``(t, y, x)`` uint8 of a slice, read from its segmentation sequence."""
        sequence = outputNodes(browserNode, REFERENCE_LABELS)[sliceIndex]
        series = seriesFromSequenceNode(referencedSequenceNodes(browserNode)[sliceIndex])
        return labelsFromSegmentationSequence(sequence, series.shape, series.ijk_to_ras())

    def correctedSeries(self, browserNode: Any, sliceIndex: int = 0) -> Any:
        """The motion-corrected ``qperf.PerfusionSeries`` of a slice, read from the scene."""
        return seriesFromSequenceNode(outputNodes(browserNode, REFERENCE_CORRECTED)[sliceIndex])

    def describe(self, browserNode: Any) -> str:
        """A text summary of the study and, when segmented, of its labels and QC."""
        text = studyFromBrowserNode(browserNode).summary()
        if not self.hasSegmentation(browserNode):
            return text
        session = self.session(browserNode)
        lines = [text, "", "Segmentation:"]
        for name, s in zip(session.names, session.slices):
            key = f", key frame {s.motion.key_frame}" if s.motion is not None else ""
            counts = ", ".join(
                f"{label}: {int((s.labelsRef == value).sum())} px"
                for value, label in ((1, "LV"), (2, "myo"), (3, "RV"))
            )
            points = ", ".join(sorted(s.insertionPoints)) or "none"
            lines.append(f"  {name}: {s.source}{key}; {counts}; insertion points: {points}")
        return "\n".join(lines)
