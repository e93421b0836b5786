"""Segmentation results in the scene, under the study's sequence browser.

For every slice, :func:`addSliceOutputs` adds and records on the browser (ordered node
references, one entry per slice):

- ``QPerfCorrected``: the motion-corrected series, a volume sequence on the acquired times;
- ``QPerfLabels``: the labels over every acquired frame, a sequence of segmentations
  (segments "LV blood pool", "Myocardium", "RV blood pool", see :mod:`.labels`);
- ``QPerfInsertionPoints``: the RV insertion points per frame, a sequence of point lists
  (control points "anterior" and "inferior");
- ``QPerfInsertionVector``: the insertion vector per frame (LV centre to the anterior
  insertion point), a sequence of lines;
- ``QPerfLabelsRef`` and ``QPerfInsertionRef``: the reference-frame (motion-corrected) labels
  and points, plain nodes (not played over time), the input of flow quantification;
- ``QPerfSectors``: the AHA segments of each slice, a segmentation shown as contours;
- ``QPerfMotionFields``: the motion fields of each motion-corrected slice (a hidden volume, see
  :mod:`.persist`), so a saved scene can be corrected by hand again after it is reopened.

Every sequence has the index "time" in "s" with the frame times, so one browser plays images,
labels and markups together; label and markup sequences record edits made on their proxy
nodes (the Segment Editor, dragged points). This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import slicer
import vtk

from qperf.types import LABEL_LV, LABEL_MYO

from .labels import (
    segmentationNodeFromLabels,
    segmentationSequenceFromLabels,
    segmentationsLogic,
    setSegmentationLabels,
)
from .sequences import (
    TIME_INDEX_NAME,
    TIME_INDEX_UNIT,
    _formatTime,
    addSequenceToBrowser,
    ensureMarkupsStorageRegistered,
    getScene,
    referencedSequenceNodes,
    removeNode,
    sequenceNodeFromSeries,
    setFixedWindowLevel,
    updateProxyNodes,
)

REFERENCE_CORRECTED = "QPerfCorrected"
REFERENCE_LABELS = "QPerfLabels"
REFERENCE_LABELS_REF = "QPerfLabelsRef"
REFERENCE_POINTS = "QPerfInsertionPoints"
REFERENCE_VECTOR = "QPerfInsertionVector"
REFERENCE_POINTS_REF = "QPerfInsertionRef"
REFERENCE_SECTORS = "QPerfSectors"
REFERENCE_MOTION = "QPerfMotionFields"
#: The references with exactly one node per slice.
PER_SLICE_REFERENCES = (
    REFERENCE_CORRECTED,
    REFERENCE_LABELS,
    REFERENCE_LABELS_REF,
    REFERENCE_POINTS,
    REFERENCE_VECTOR,
    REFERENCE_POINTS_REF,
)
OUTPUT_REFERENCES = (*PER_SLICE_REFERENCES, REFERENCE_SECTORS, REFERENCE_MOTION)
ROLE_CORRECTED = "corrected"
POINT_NAMES = ("anterior", "inferior")
VECTOR_START, VECTOR_END = "LV centre", "anterior"


def yxToRas(ijkToRas: np.ndarray, pointYx: Any) -> np.ndarray:
    """RAS position (mm) of pixel ``(y, x)`` of a slice (k = 0)."""
    y, x = float(pointYx[0]), float(pointYx[1])
    return (np.asarray(ijkToRas, dtype=float) @ np.array([x, y, 0.0, 1.0]))[:3]


def rasToYx(ijkToRas: np.ndarray, ras: Any) -> tuple:
    """Pixel ``(y, x)`` of a RAS position (mm), projected onto the slice plane."""
    ijk = np.linalg.inv(np.asarray(ijkToRas, dtype=float)) @ np.array([*map(float, ras[:3]), 1.0])
    return (float(ijk[1]), float(ijk[0]))


def lvCentreYx(labels: np.ndarray) -> tuple | None:
    """Centroid ``(y, x)`` of the LV blood pool (of the myocardium when there is no pool); None if neither."""
    for value in (LABEL_LV, LABEL_MYO):
        pixels = np.argwhere(np.asarray(labels) == value)
        if pixels.size:
            centre = pixels.mean(axis=0)
            return (float(centre[0]), float(centre[1]))
    return None


def _newSequence(scene: Any, name: str) -> Any:
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", scene.GenerateUniqueName(name))
    sequenceNode.SetIndexName(TIME_INDEX_NAME)
    sequenceNode.SetIndexUnit(TIME_INDEX_UNIT)
    sequenceNode.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    sequenceNode.SetNumericIndexValueTolerance(1e-9)
    return sequenceNode


def _setPoints(pointsNode: Any, points: dict, ijkToRas: np.ndarray) -> None:
    pointsNode.RemoveAllControlPoints()
    for name in [n for n in POINT_NAMES if n in points] + [n for n in points if n not in POINT_NAMES]:
        ras = yxToRas(ijkToRas, points[name])
        pointsNode.AddControlPoint(vtk.vtkVector3d(*ras), name)


def _setVector(lineNode: Any, centreYx: tuple | None, pointYx: Any | None, ijkToRas: np.ndarray) -> None:
    lineNode.RemoveAllControlPoints()
    if centreYx is None or pointYx is None:
        return
    lineNode.AddControlPoint(vtk.vtkVector3d(*yxToRas(ijkToRas, centreYx)), VECTOR_START)
    lineNode.AddControlPoint(vtk.vtkVector3d(*yxToRas(ijkToRas, pointYx)), VECTOR_END)


def _fillMarkupsSequences(pointsSequence: Any, vectorSequence: Any, sliceResult: Any, ijkToRas: np.ndarray) -> None:
    scene = pointsSequence.GetScene()
    time_s = sliceResult.series.time_s
    # The nodes being filled live in the scene while the sequences copy them, then go.
    pointsNode = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "QPerf insertion points frame")
    lineNode = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "QPerf insertion vector frame")
    try:
        for t in range(sliceResult.nFrames):
            framePoints = {k: v[t] for k, v in sliceResult.insertionPointsPerFrame.items()}
            _setPoints(pointsNode, framePoints, ijkToRas)
            _setVector(lineNode, lvCentreYx(sliceResult.labels[t]), framePoints.get("anterior"), ijkToRas)
            pointsSequence.SetDataNodeAtValue(pointsNode, _formatTime(time_s[t]))
            vectorSequence.SetDataNodeAtValue(lineNode, _formatTime(time_s[t]))
    finally:
        removeNode(scene, pointsNode)
        removeNode(scene, lineNode)


def markupsSequences(sliceResult: Any, ijkToRas: np.ndarray, scene: Any, name: str) -> tuple:
    """Point-list and line sequences of the insertion points and vector over every frame."""
    pointsSequence = _newSequence(scene, f"{name} insertion points")
    vectorSequence = _newSequence(scene, f"{name} insertion vector")
    _fillMarkupsSequences(pointsSequence, vectorSequence, sliceResult, ijkToRas)
    return pointsSequence, vectorSequence


def referencePointsNode(sliceResult: Any, ijkToRas: np.ndarray, scene: Any, name: str) -> Any:
    """A point list of the reference-frame insertion points."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    _setPoints(node, sliceResult.insertionPoints, ijkToRas)
    return node


def removeOutputs(browserNode: Any, references: tuple = OUTPUT_REFERENCES) -> None:
    """Remove the nodes that earlier results recorded on the browser (and their references)."""
    scene = browserNode.GetScene()
    for role in references:
        nodes = [browserNode.GetNthNodeReference(role, i) for i in range(browserNode.GetNumberOfNodeReferences(role))]
        browserNode.RemoveNodeReferenceIDs(role)
        for node in nodes:
            if node is None:
                continue
            if node.IsA("vtkMRMLSequenceNode") and browserNode.IsSynchronizedSequenceNode(node, True):
                proxy = browserNode.GetProxyNode(node)
                browserNode.RemoveSynchronizedSequenceNode(node.GetID())
                if proxy is not None:
                    removeNode(scene, proxy)
            removeNode(scene, node)


def _addPlayed(browserNode: Any, sequenceNode: Any, role: str, saveChanges: bool) -> None:
    addSequenceToBrowser(browserNode, sequenceNode, role)
    browserNode.SetSaveChanges(sequenceNode, saveChanges)


def addSliceOutputs(browserNode: Any, sliceResult: Any, name: str, sliceIndex: int = 0) -> dict:
    """Add one slice's corrected series, labels and markups to the scene under ``browserNode``.

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
    labelsRef = segmentationNodeFromLabels(sliceResult.labelsRef, ijkToRas, scene, name=f"{name} labels (reference)")
    pointsRef = referencePointsNode(sliceResult, ijkToRas, scene, f"{name} insertion points (reference)")
    browserNode.AddNodeReferenceID(REFERENCE_LABELS_REF, labelsRef.GetID())
    browserNode.AddNodeReferenceID(REFERENCE_POINTS_REF, pointsRef.GetID())
    if sliceResult.motion is not None:
        from .persist import motionFieldsNode

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


def addSegmentationOutputs(browserNode: Any, slices: list, names: list | None = None) -> list:
    """Replace earlier outputs on ``browserNode`` by those of ``slices`` (one ``SliceSegmentation`` each)."""
    getScene(browserNode.GetScene())
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


def outputNodes(browserNode: Any, role: str) -> list:
    """The nodes recorded on the browser under ``role``, in slice order."""
    return referencedSequenceNodes(browserNode, role)


def updateSliceOutputs(browserNode: Any, index: int, sliceResult: Any, updateLabels: bool = True) -> None:
    """Rewrite slice ``index``'s label and markup nodes from ``sliceResult`` (after an edit)."""
    scene = browserNode.GetScene()
    ijkToRas = sliceResult.series.ijk_to_ras()
    time_s = sliceResult.series.time_s
    if updateLabels:
        labelsSequence = outputNodes(browserNode, REFERENCE_LABELS)[index]
        frame = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "QPerf labels frame")
        logic = segmentationsLogic(scene)
        wasModifying = labelsSequence.StartModify()
        try:
            for t in range(sliceResult.nFrames):
                setSegmentationLabels(frame, sliceResult.labels[t], ijkToRas, logic)
                labelsSequence.SetDataNodeAtValue(frame, _formatTime(time_s[t]))
        finally:
            labelsSequence.EndModify(wasModifying)
            removeNode(scene, frame)
        setSegmentationLabels(outputNodes(browserNode, REFERENCE_LABELS_REF)[index], sliceResult.labelsRef, ijkToRas)
    pointsSequence = outputNodes(browserNode, REFERENCE_POINTS)[index]
    vectorSequence = outputNodes(browserNode, REFERENCE_VECTOR)[index]
    _fillMarkupsSequences(pointsSequence, vectorSequence, sliceResult, ijkToRas)
    _setPoints(outputNodes(browserNode, REFERENCE_POINTS_REF)[index], sliceResult.insertionPoints, ijkToRas)
    updateProxyNodes(browserNode)
