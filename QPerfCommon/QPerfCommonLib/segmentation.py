"""A study's segmentation in the scene, under its sequence browser, and back.

:func:`addSegmentationOutputs` turns the core's ``qperf.workflow.Segmentation`` (one
``SliceSegmentation`` per slice) into nodes recorded on the browser (roles in :mod:`.outputs`):

- ``QPerfCorrected``: the motion-corrected series, a volume sequence on the acquired times;
- ``QPerfLabels``: the labels over every acquired frame, a sequence of segmentations
  (segments "LV blood pool", "Myocardium", "RV blood pool", see :mod:`.labels`);
- ``QPerfInsertionPoints``: the RV insertion points per frame, a sequence of point lists
  (control points "anterior" and "inferior");
- ``QPerfInsertionVector``: the insertion vector per frame (LV centre to the anterior
  insertion point), a sequence of lines;
- ``QPerfLabelsRef`` and ``QPerfInsertionRef``: the reference-frame (motion-corrected) labels
  and points, plain nodes (not played over time), with the labels' source and QC as attributes;
- ``QPerfMotionFields``: the motion fields of each corrected slice (:mod:`.motionfields`).

:func:`segmentationFromScene` reads all of it back into a ``Segmentation`` (after an edit, or
from a scene saved and reopened): QPerf Seg's session and QPerf Flow's analysis both start
from it, so the flow is computed from exactly what the segmentation step produced (voxels and
fields are float32 in the core and in the scene, labels integers, times exact). Every sequence
has the index "time" in "s" with the frame times, so one browser plays images, labels and
markups together; label and markup sequences record edits made on their proxy nodes (the
Segment Editor, dragged points). This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from qperf.errors import ValidationError
from qperf.types import LABEL_LV, LABEL_MYO

from .labels import (
    labelsFromSegmentationNode,
    labelsFromSegmentationSequence,
    segmentationNodeFromLabels,
    segmentationSequenceFromLabels,
    setSegmentationLabels,
)
from .markups import pointsFromNode, setLine, setPoints
from .motionfields import motionFieldsNode, motionFromNode, sliceIndexOf
from .outputs import (
    REFERENCE_CORRECTED,
    REFERENCE_LABELS,
    REFERENCE_LABELS_REF,
    REFERENCE_MOTION,
    REFERENCE_POINTS,
    REFERENCE_POINTS_REF,
    REFERENCE_VECTOR,
    outputNodes,
    removeOutputs,
)
from .scene import (
    ensureMarkupsStorageRegistered,
    formatTime,
    getScene,
    itemsAtTimes,
    newTimeSequence,
    removeNode,
    setFixedWindowLevel,
    updateProxyNodes,
)
from .sequences import (
    addSequenceToBrowser,
    jsonMetadata,
    referencedSequenceNodes,
    sequenceNodeFromSeries,
    seriesFromSequenceNode,
)

ROLE_CORRECTED = "corrected"
ATTR_LABELS_SOURCE = "qperf_labels_source"
ATTR_SEGMENTATION_QC = "qperf_segmentation_qc"
VECTOR_START, VECTOR_END = "LV centre", "anterior"


def lvCentreYx(labels: np.ndarray) -> tuple | None:
    """Centroid ``(y, x)`` of the LV blood pool (of the myocardium when there is no pool); None if neither."""
    for value in (LABEL_LV, LABEL_MYO):
        pixels = np.argwhere(np.asarray(labels) == value)
        if pixels.size:
            centre = pixels.mean(axis=0)
            return (float(centre[0]), float(centre[1]))
    return None


def _fillMarkupsSequences(pointsSequence: Any, vectorSequence: Any, sliceResult: Any, ijkToRas: np.ndarray) -> None:
    scene = pointsSequence.GetScene()
    time_s = sliceResult.series.time_s
    # The nodes being filled live in the scene while the sequences copy them, then go.
    pointsNode = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "QPerf insertion points frame")
    lineNode = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "QPerf insertion vector frame")
    try:
        for t in range(sliceResult.n_frames):
            framePoints = {k: v[t] for k, v in sliceResult.insertion_points_per_frame_yx.items()}
            setPoints(pointsNode, framePoints, ijkToRas)
            centre = lvCentreYx(sliceResult.labels[t])
            setLine(lineNode, centre, framePoints.get("anterior"), ijkToRas, (VECTOR_START, VECTOR_END))
            pointsSequence.SetDataNodeAtValue(pointsNode, formatTime(time_s[t]))
            vectorSequence.SetDataNodeAtValue(lineNode, formatTime(time_s[t]))
    finally:
        removeNode(scene, pointsNode)
        removeNode(scene, lineNode)


def markupsSequences(sliceResult: Any, ijkToRas: np.ndarray, scene: Any, name: str) -> tuple:
    """Point-list and line sequences of the insertion points and vector over every frame."""
    pointsSequence = newTimeSequence(scene, f"{name} insertion points")
    vectorSequence = newTimeSequence(scene, f"{name} insertion vector")
    _fillMarkupsSequences(pointsSequence, vectorSequence, sliceResult, ijkToRas)
    return pointsSequence, vectorSequence


def referencePointsNode(sliceResult: Any, ijkToRas: np.ndarray, scene: Any, name: str) -> Any:
    """A point list of the reference-frame insertion points."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    setPoints(node, sliceResult.insertion_points_yx, ijkToRas)
    return node


def _recordSource(labelsRefNode: Any, sliceResult: Any) -> None:
    labelsRefNode.SetAttribute(ATTR_LABELS_SOURCE, str(sliceResult.source))
    labelsRefNode.SetAttribute(ATTR_SEGMENTATION_QC, jsonMetadata(sliceResult.qc))


def _addPlayed(browserNode: Any, sequenceNode: Any, role: str, saveChanges: bool) -> None:
    addSequenceToBrowser(browserNode, sequenceNode, role)
    browserNode.SetSaveChanges(sequenceNode, saveChanges)


def addSliceOutputs(browserNode: Any, sliceResult: Any, name: str, sliceIndex: int = 0) -> dict:
    """Add one slice's corrected series, labels and markups to the scene under ``browserNode``.

    Parameters
    ----------
    sliceResult : qperf.workflow.SliceSegmentation

    Returns
    -------
    dict
        The new nodes: ``corrected``, ``labels``, ``labelsRef``, ``points``, ``vector``,
        ``pointsRef``.
    """
    scene = browserNode.GetScene()
    ensureMarkupsStorageRegistered(scene)
    ijkToRas = sliceResult.series.ijk_to_ras()
    corrected = sequenceNodeFromSeries(sliceResult.corrected, scene, name=f"{name} corrected", role=ROLE_CORRECTED)
    labels = segmentationSequenceFromLabels(
        sliceResult.labels, sliceResult.series.time_s, ijkToRas, scene, name=f"{name} labels"
    )
    points, vector = markupsSequences(sliceResult, ijkToRas, scene, name)
    _addPlayed(browserNode, corrected, REFERENCE_CORRECTED, False)
    _addPlayed(browserNode, labels, REFERENCE_LABELS, True)
    _addPlayed(browserNode, points, REFERENCE_POINTS, True)
    _addPlayed(browserNode, vector, REFERENCE_VECTOR, False)
    labelsRef = segmentationNodeFromLabels(sliceResult.labels_ref, ijkToRas, scene, name=f"{name} labels (reference)")
    _recordSource(labelsRef, sliceResult)
    pointsRef = referencePointsNode(sliceResult, ijkToRas, scene, f"{name} insertion points (reference)")
    browserNode.AddNodeReferenceID(REFERENCE_LABELS_REF, labelsRef.GetID())
    browserNode.AddNodeReferenceID(REFERENCE_POINTS_REF, pointsRef.GetID())
    if sliceResult.motion is not None:
        fields = motionFieldsNode(sliceResult.motion, ijkToRas, scene, f"{name} motion fields", sliceIndex)
        browserNode.AddNodeReferenceID(REFERENCE_MOTION, fields.GetID())
    return {
        "corrected": corrected,
        "labels": labels,
        "labelsRef": labelsRef,
        "points": points,
        "vector": vector,
        "pointsRef": pointsRef,
    }


def addSegmentationOutputs(browserNode: Any, slices: Any, names: list | None = None) -> list:
    """Replace earlier outputs on ``browserNode`` by those of ``slices``.

    Parameters
    ----------
    slices : qperf.workflow.Segmentation or sequence of qperf.workflow.SliceSegmentation
    names : list of str, optional
        Slice names used in node names (default: the series names).
    """
    getScene(browserNode.GetScene())
    slices = list(getattr(slices, "slices", slices))
    removeOutputs(browserNode)
    names = names or [s.series.name or f"slice {i + 1}" for i, s in enumerate(slices)]
    nodes = [addSliceOutputs(browserNode, s, n, i) for i, (s, n) in enumerate(zip(slices, names))]
    updateProxyNodes(browserNode)
    for s, n in zip(slices, nodes):
        setFixedWindowLevel(browserNode, n["corrected"], s.corrected.data)
    for n in nodes:
        proxy = browserNode.GetProxyNode(n["labels"])
        if proxy is not None and proxy.GetDisplayNode() is None:
            proxy.CreateDefaultDisplayNodes()
    return nodes


def updateSliceOutputs(browserNode: Any, index: int, sliceResult: Any, updateLabels: bool = True) -> None:
    """Rewrite slice ``index``'s label and markup nodes from ``sliceResult`` (after an edit)."""
    scene = browserNode.GetScene()
    ijkToRas = sliceResult.series.ijk_to_ras()
    time_s = sliceResult.series.time_s
    if updateLabels:
        labelsSequence = outputNodes(browserNode, REFERENCE_LABELS)[index]
        frame = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "QPerf labels frame")
        wasModifying = labelsSequence.StartModify()
        try:
            for t in range(sliceResult.n_frames):
                setSegmentationLabels(frame, sliceResult.labels[t], ijkToRas)
                labelsSequence.SetDataNodeAtValue(frame, formatTime(time_s[t]))
        finally:
            labelsSequence.EndModify(wasModifying)
            removeNode(scene, frame)
        setSegmentationLabels(outputNodes(browserNode, REFERENCE_LABELS_REF)[index], sliceResult.labels_ref, ijkToRas)
    _recordSource(outputNodes(browserNode, REFERENCE_LABELS_REF)[index], sliceResult)
    pointsSequence = outputNodes(browserNode, REFERENCE_POINTS)[index]
    vectorSequence = outputNodes(browserNode, REFERENCE_VECTOR)[index]
    _fillMarkupsSequences(pointsSequence, vectorSequence, sliceResult, ijkToRas)
    setPoints(outputNodes(browserNode, REFERENCE_POINTS_REF)[index], sliceResult.insertion_points_yx, ijkToRas)
    updateProxyNodes(browserNode)


def hasSegmentationOutputs(browserNode: Any) -> bool:
    """Whether the browser records a complete segmentation (every per-slice output of every slice)."""
    n = len(referencedSequenceNodes(browserNode))
    roles = (REFERENCE_CORRECTED, REFERENCE_LABELS, REFERENCE_LABELS_REF, REFERENCE_POINTS, REFERENCE_POINTS_REF)
    return n > 0 and all(len(outputNodes(browserNode, role)) == n for role in roles)


def _pointTracks(pointsSequence: Any, ijkToRas: np.ndarray, time_s: Any) -> dict:
    perFrame: dict = {}
    for item in itemsAtTimes(pointsSequence, time_s):
        for name, point in pointsFromNode(pointsSequence.GetNthDataNode(item), ijkToRas).items():
            perFrame.setdefault(name, []).append(point)
    return {k: np.asarray(v, dtype=np.float64) for k, v in perFrame.items()}


def segmentationFromScene(browserNode: Any) -> Any:
    """The ``qperf.workflow.Segmentation`` that the outputs under ``browserNode`` record.

    Raises
    ------
    ValidationError
        When the browser has no complete QPerf Seg outputs.
    """
    from qperf.workflow import Segmentation, SliceSegmentation

    if browserNode is None or not hasSegmentationOutputs(browserNode):
        name = browserNode.GetName() if browserNode is not None else "None"
        raise ValidationError(f"browserNode: {name!r} has not been segmented yet; run the segmentation first")
    fields = {sliceIndexOf(n): n for n in outputNodes(browserNode, REFERENCE_MOTION)}
    slices = []
    for i, sliceNode in enumerate(referencedSequenceNodes(browserNode)):
        series = seriesFromSequenceNode(sliceNode)
        corrected = seriesFromSequenceNode(outputNodes(browserNode, REFERENCE_CORRECTED)[i])
        ijkToRas = series.ijk_to_ras()
        labelsRefNode = outputNodes(browserNode, REFERENCE_LABELS_REF)[i]
        qcText = labelsRefNode.GetAttribute(ATTR_SEGMENTATION_QC)
        labelsSequence = outputNodes(browserNode, REFERENCE_LABELS)[i]
        slices.append(
            SliceSegmentation(
                series=series,
                corrected=corrected,
                motion=motionFromNode(fields[i], corrected) if i in fields else None,
                labels_ref=labelsFromSegmentationNode(labelsRefNode, series.shape, ijkToRas),
                labels=labelsFromSegmentationSequence(labelsSequence, series.shape, ijkToRas, series.time_s),
                insertion_points_yx=pointsFromNode(outputNodes(browserNode, REFERENCE_POINTS_REF)[i], ijkToRas),
                insertion_points_per_frame_yx=_pointTracks(
                    outputNodes(browserNode, REFERENCE_POINTS)[i], ijkToRas, series.time_s
                ),
                source=labelsRefNode.GetAttribute(ATTR_LABELS_SOURCE) or "scene",
                qc=json.loads(qcText) if qcText else {},
            )
        )
    return Segmentation(tuple(slices))
