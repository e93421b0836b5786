"""The QPerfSeg workflow as one object: what the module panel calls and what the Python console uses.

>>> from QPerfSegLib import SegmentationLogic
>>> from qperf.workflow import AnalysisOptions
>>> logic = SegmentationLogic(scene)                   # scene: slicer.mrmlScene inside Slicer
>>> nodes = logic.loadStudy("study.json")              # or a DICOM folder, or a series file
>>> session = logic.segment(nodes.browserNode, AnalysisOptions(motion="auto"))  # as qperf analyze
>>> logic.labelsArray(nodes.browserNode, 0)            # (t, y, x) labels as the scene holds them
>>> logic.applyCurrentFrameEdits(nodes.browserNode, 0) # after editing the current frame
>>> logic.recompute(nodes.browserNode)                 # AHA sectors from labels and points
>>> logic.exportGroundTruth(nodes.browserNode, "cases/")

``segment`` is the core step ``qperf.workflow.segment_study`` with the options of ``qperf
analyze``; sessions (the core's per-slice results, with their motion fields) are kept per study
browser and rebuilt from the scene when it was saved and reopened. This file imports
``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from QPerfCommonLib.labels import labelsFromSegmentationSequence, segmentEditorNode
from QPerfCommonLib.outputs import REFERENCE_CORRECTED, REFERENCE_LABELS, outputNodes
from QPerfCommonLib.scene import getScene
from QPerfCommonLib.segmentation import hasSegmentationOutputs
from QPerfCommonLib.sequences import referencedSequenceNodes, seriesFromSequenceNode
from QPerfCommonLib.study import loadStudy, studyFromBrowserNode

from qperf.errors import ValidationError
from qperf.logs import forward_log
from qperf.progress import CancelToken

from .groundtruth import exportGroundTruth
from .segment import segmentStudy
from .session import (
    SegmentationSession,
    applyCurrentFrameEdits,
    applyFrameEdit,
    createSession,
    moveInsertionPoint,
    recomputeSectors,
    sessionFromScene,
)


class SegmentationLogic:
    """Load, correct, segment, edit and export perfusion studies in a scene.

    Parameters
    ----------
    scene : vtkMRMLScene, optional
        Defaults to ``slicer.mrmlScene`` (inside the application).
    log : callable(str), optional
        Receives the core library's log lines (``qperf.logs.forward_log``: what each step did)
        while :meth:`segment` runs; the module panel shows them on its status line.
    """

    def __init__(self, scene: Any | None = None, log: Callable[[str], None] | None = None) -> None:
        self.scene = getScene(scene)
        self.sessions: dict = {}
        self.cancelToken: CancelToken | None = None
        self.log = log

    def loadStudy(self, studyOrPath: Any, name: str | None = None) -> Any:
        """Add a study (``qperf.PerfusionStudy`` or a path ``qperf.io.read_study`` reads); returns ``StudyNodes``."""
        if isinstance(studyOrPath, os.PathLike):
            studyOrPath = os.fspath(studyOrPath)
        return loadStudy(studyOrPath, self.scene, name=name)

    def segment(
        self, browserNode: Any, options: Any | None = None, segmenter: str = "auto", progress: Any | None = None
    ) -> SegmentationSession:
        """Motion-correct and segment every slice of the study; add the outputs under its browser.

        Parameters
        ----------
        options : qperf.workflow.AnalysisOptions, optional
            As for ``qperf analyze`` (``motion``, ``segmenter`` model file, ``threads``; supplied
            ``labels`` with ``insertion_points_yx`` and ``label_frames`` replace the CNN).
        segmenter : {"auto", "inprocess", "subprocess"}
            Where the CNN runs (see :func:`.segment.segmentStudy`).

        :meth:`cancel` stops a run from another callback; a cancelled run raises
        ``qperf.progress.AnalysisCancelled`` and adds nothing.
        """
        study = studyFromBrowserNode(browserNode)
        self.cancelToken = CancelToken()
        with forward_log(self.log):
            segmentation = segmentStudy(study, options, segmenter=segmenter, progress=progress, cancel=self.cancelToken)
        session = createSession(browserNode, segmentation)
        self.sessions[browserNode.GetID()] = session
        return session

    def cancel(self) -> None:
        """Ask the running :meth:`segment` to stop at its next step."""
        if self.cancelToken is not None:
            self.cancelToken.cancel()

    def session(self, browserNode: Any) -> SegmentationSession:
        """The segmentation session of a study browser.

        Rebuilt from the scene (:func:`.session.sessionFromScene`) when the study was segmented
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

    def segmentation(self, browserNode: Any) -> Any:
        """The study's segmentation as the core's ``qperf.workflow.Segmentation`` (after any edits)."""
        return self.session(browserNode).segmentation

    def hasSegmentation(self, browserNode: Any) -> bool:
        """Whether the study has QPerf Seg outputs (computed now, or in a scene that was reopened)."""
        return browserNode is not None and (browserNode.GetID() in self.sessions or hasSegmentationOutputs(browserNode))

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
        return exportGroundTruth(session.slices, folder, studyName, overwrite)

    def segmentEditorNode(self) -> Any:
        """The scene's Segment Editor node for the module panel (made once)."""
        return segmentEditorNode(self.scene)

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
        return labelsFromSegmentationSequence(sequence, series.shape, series.ijk_to_ras(), series.time_s)

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
                f"{label}: {int((s.labels_ref == value).sum())} px"
                for value, label in ((1, "LV"), (2, "myo"), (3, "RV"))
            )
            points = ", ".join(sorted(s.insertion_points_yx)) or "none"
            lines.append(f"  {name}: {s.source}{key}; {counts}; insertion points: {points}")
        return "\n".join(lines)
