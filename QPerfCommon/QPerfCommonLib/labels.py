"""Label maps as Slicer segmentations, and back.

QPerf label maps are integer arrays ``(y, x)`` (one frame) or ``(t, y, x)`` (every frame) with
0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool (``qperf.types.LABELS``). In the
scene they are ``vtkMRMLSegmentationNode`` objects with three segments whose IDs, names,
colours and standard terminology (SNOMED CT codes) are fixed by :data:`SEGMENTS`, so every
frame of a segmentation sequence, every reference-frame segmentation and every file written
from them agree. The segment geometry is the slice's IJK-to-RAS matrix (a one-voxel-thick
labelmap on the series grid). This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer
import vtk

from qperf.errors import ValidationError
from qperf.types import LABEL_LV, LABEL_MYO, LABEL_RV

from .scene import formatTime, getScene, itemsAtTimes, newTimeSequence, removeNode


@dataclass(frozen=True)
class SegmentSpec:
    """One QPerf label as a Slicer segment.

    Attributes
    ----------
    label : int
        The label value in QPerf label maps.
    segmentId, name : str
    color : (float, float, float)
        RGB in 0-1, the colours of the report's contours (``qperf.report.flowmap.LABEL_COLORS``).
    terminology : str
        Slicer terminology entry: context, category, type, modifier, anatomic context, region,
        region modifier, each coded ``scheme^value^meaning``, separated by ``~``.
    """

    label: int
    segmentId: str
    name: str
    color: tuple
    terminology: str


_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
_ANATOMICAL_STRUCTURE = "SCT^123037004^Anatomical Structure"
_LEFT_VENTRICLE = "SCT^87878005^Left ventricle"
_RIGHT_VENTRICLE = "SCT^53085002^Right ventricle"
_MYOCARDIUM = "SCT^74281007^Myocardium"


def _terminology(typeCode: str, regionCode: str = "^^") -> str:
    return f"{_CONTEXT}~{_ANATOMICAL_STRUCTURE}~{typeCode}~^^~{_ANATOMIC_CONTEXT}~{regionCode}~^^"


#: The three segments, in label order (fixed IDs, names, colours and SNOMED CT terminology).
SEGMENTS: tuple = (
    SegmentSpec(LABEL_LV, "LVBloodPool", "LV blood pool", (0.9, 0.25, 0.25), _terminology(_LEFT_VENTRICLE)),
    SegmentSpec(LABEL_MYO, "Myocardium", "Myocardium", (0.25, 0.7, 1.0), _terminology(_MYOCARDIUM, _LEFT_VENTRICLE)),
    SegmentSpec(LABEL_RV, "RVBloodPool", "RV blood pool", (1.0, 0.7, 0.2), _terminology(_RIGHT_VENTRICLE)),
)


_segmentationsLogic: Any = None


def segmentationsLogic() -> Any:
    """The process's one ``vtkSlicerSegmentationsModuleLogic`` (the Segmentations module's in the application).

    Only its static import and export functions are used, which work on any scene. Every logic
    attached to a scene registers the representation converters again in the process-wide
    converter factory, and every conversion and every copy of a segmentation walks all of them:
    a logic made per call slowed a session with every use (a sequence item of a segmentation
    took 37 ms instead of under 1 ms after a few hundred calls). This one is attached once, to
    a scene of its own, which registers the converters where no application has.
    """
    global _segmentationsLogic
    module = getattr(getattr(slicer, "modules", None), "segmentations", None)
    if module is not None:
        return module.logic()
    if _segmentationsLogic is None:
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(slicer.vtkMRMLScene())
        _segmentationsLogic = logic
    return _segmentationsLogic


def _segmentIds(specs: tuple = SEGMENTS) -> Any:
    ids = vtk.vtkStringArray()
    for spec in specs:
        ids.InsertNextValue(spec.segmentId)
    return ids


def _checkLabels(labels: Any, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != ndim:
        raise ValidationError(f"{what}: expected a {ndim}-D label array, found shape {array.shape}")
    if array.size == 0 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise ValidationError(f"{what}: expected integer labels, found dtype {array.dtype}")
    if array.min() < 0 or array.max() > LABEL_RV:
        raise ValidationError(f"{what}: expected values 0 to {LABEL_RV}, found {array.min()} to {array.max()}")
    return array.astype(np.uint8)


def labelmapNode(labels: np.ndarray, ijkToRas: np.ndarray) -> Any:
    """A ``vtkMRMLLabelMapVolumeNode`` (not in a scene) of one frame ``(y, x)`` on the given grid."""
    node = slicer.vtkMRMLLabelMapVolumeNode()
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(labels, dtype=np.uint8)[np.newaxis])
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=float)))
    return node


def addQPerfSegments(segmentationNode: Any) -> None:
    """Give ``segmentationNode`` the three QPerf segments (empty), with names, colours and terminology."""
    segmentationsLogic()  # an empty segment needs the converters that the logic registers
    segmentation = segmentationNode.GetSegmentation()
    for spec in SEGMENTS:
        if segmentation.GetSegment(spec.segmentId) is None:
            segmentation.AddEmptySegment(spec.segmentId, spec.name, list(spec.color))
        segment = segmentation.GetSegment(spec.segmentId)
        segment.SetName(spec.name)
        segment.SetColor(*spec.color)
        segment.SetTerminology(spec.terminology)


def setSegmentationLabels(segmentationNode: Any, labels: Any, ijkToRas: np.ndarray) -> None:
    """Replace the three QPerf segments of ``segmentationNode`` by the label map ``labels`` (y, x)."""
    labels = _checkLabels(labels, 2, "labels")
    addQPerfSegments(segmentationNode)
    if not segmentationsLogic().ImportLabelmapToSegmentationNode(
        labelmapNode(labels, ijkToRas), segmentationNode, _segmentIds()
    ):
        raise ValidationError(f"segmentation {segmentationNode.GetName()!r}: the label map could not be imported")


def segmentationNodeFromLabels(
    labels: Any, ijkToRas: np.ndarray, scene: Any | None = None, name: str = "QPerf labels"
) -> Any:
    """A new segmentation node in the scene holding the label map ``labels`` (y, x).

    Parameters
    ----------
    labels : array_like of int, shape (y, x)
        0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.
    ijkToRas : ndarray, shape (4, 4)
        The slice's IJK-to-RAS matrix (``PerfusionSeries.ijk_to_ras()``).
    """
    scene = getScene(scene)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    setSegmentationLabels(node, labels, ijkToRas)
    return node


def referenceVolumeNode(shape: tuple, ijkToRas: np.ndarray) -> Any:
    """A zero scalar volume (not in a scene) of one frame ``shape`` = (y, x) on the given grid."""
    node = slicer.vtkMRMLScalarVolumeNode()
    slicer.util.updateVolumeFromArray(node, np.zeros((1, *shape), dtype=np.uint8))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=float)))
    return node


def labelsFromSegmentationNode(segmentationNode: Any, shape: tuple, ijkToRas: np.ndarray) -> np.ndarray:
    """The label map ``(y, x)`` uint8 of a segmentation, resampled on the slice grid.

    Segments are found by the QPerf IDs, else by name (case-insensitive); later segments win
    where they overlap (RV over myocardium over LV blood pool). A segmentation drawn elsewhere
    (the Segment Editor, a file) is read the same way.

    Raises
    ------
    ValidationError
        Not a segmentation node, or none of the three segments is present.
    """
    if segmentationNode is None or not segmentationNode.IsA("vtkMRMLSegmentationNode"):
        found = "None" if segmentationNode is None else segmentationNode.GetClassName()
        raise ValidationError(f"segmentationNode: expected a vtkMRMLSegmentationNode, found {found}")
    segmentation = segmentationNode.GetSegmentation()
    byName = {
        segmentation.GetNthSegment(i).GetName().strip().lower(): segmentation.GetNthSegmentID(i)
        for i in range(segmentation.GetNumberOfSegments())
    }
    reference = referenceVolumeNode(tuple(shape), ijkToRas)
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    found = 0
    for spec in SEGMENTS:
        segmentId = spec.segmentId if segmentation.GetSegment(spec.segmentId) else byName.get(spec.name.lower())
        if segmentId is None:
            continue
        found += 1
        mask = exportSegmentsMask(segmentationNode, [segmentId], reference)
        labels[mask[0] if mask.ndim == 3 else mask] = spec.label
    if not found:
        raise ValidationError(
            f"segmentation {segmentationNode.GetName()!r}: expected segments "
            f"{', '.join(s.name for s in SEGMENTS)}, found {sorted(byName) or 'none'}"
        )
    return labels


def exportSegmentsMask(segmentationNode: Any, segmentIds: list, reference: Any) -> np.ndarray:
    """Boolean mask ``(k, j, i)`` of the union of segments, resampled on ``reference``'s grid.

    Goes through a temporary label map node; the node and the colour table that the export
    makes for it are removed afterwards, so repeated reads leave the scene as it was.
    """
    scene = segmentationNode.GetScene()
    ids = vtk.vtkStringArray()
    for segmentId in segmentIds:
        ids.InsertNextValue(segmentId)
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    colorsBefore = set()
    if scene is not None:
        colors = scene.GetNodesByClass("vtkMRMLColorTableNode")
        colorsBefore = {colors.GetItemAsObject(i).GetID() for i in range(colors.GetNumberOfItems())}
        scene.AddNode(labelmap)
    try:
        if not segmentationsLogic().ExportSegmentsToLabelmapNode(segmentationNode, ids, labelmap, reference):
            raise ValidationError(f"segmentation {segmentationNode.GetName()!r}: could not be exported to a label map")
        return np.asarray(slicer.util.arrayFromVolume(labelmap) > 0)
    finally:
        if scene is not None:
            removeNode(scene, labelmap)
            colors = scene.GetNodesByClass("vtkMRMLColorTableNode")
            for i in range(colors.GetNumberOfItems()):
                if colors.GetItemAsObject(i).GetID() not in colorsBefore:
                    scene.RemoveNode(colors.GetItemAsObject(i))


def segmentationSequenceFromLabels(
    labels: Any,
    time_s: np.ndarray,
    ijkToRas: np.ndarray,
    scene: Any | None = None,
    name: str = "QPerf labels",
) -> Any:
    """A ``vtkMRMLSequenceNode`` of segmentations, one per frame of ``labels`` (t, y, x).

    The index is ``"time"`` in ``"s"`` with the frame times as values, as the image sequences,
    so a browser plays the labels with their frames.
    """
    scene = getScene(scene)
    labels = _checkLabels(labels, 3, "labels")
    time_s = np.asarray(time_s, dtype=float)
    if labels.shape[0] != time_s.shape[0]:
        raise ValidationError(f"labels: expected {time_s.shape[0]} frames (one per time), found {labels.shape[0]}")
    sequenceNode = newTimeSequence(scene, name)
    # The frame being filled lives in the scene while the sequence copies it, then goes.
    frame = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{sequenceNode.GetName()} frame")
    wasModifying = sequenceNode.StartModify()
    try:
        for i in range(labels.shape[0]):
            setSegmentationLabels(frame, labels[i], ijkToRas)
            sequenceNode.SetDataNodeAtValue(frame, formatTime(time_s[i]))
    finally:
        sequenceNode.EndModify(wasModifying)
        removeNode(scene, frame)
    return sequenceNode


def labelsFromSegmentationSequence(
    sequenceNode: Any, shape: tuple, ijkToRas: np.ndarray, time_s: Any | None = None
) -> np.ndarray:
    """The labels ``(t, y, x)`` uint8 of a sequence of segmentations, frame by frame.

    With ``time_s``, the items at those times (a slice's frames), whatever else the sequence
    holds; else every item.
    """
    n = sequenceNode.GetNumberOfDataNodes()
    if n == 0:
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: expected segmentation frames, found none")
    items = range(n) if time_s is None else itemsAtTimes(sequenceNode, time_s)
    return np.stack([labelsFromSegmentationNode(sequenceNode.GetNthDataNode(i), shape, ijkToRas) for i in items])


def segmentEditorNode(scene: Any | None = None, name: str = "QPerfSegmentEditor") -> Any:
    """The scene's ``vtkMRMLSegmentEditorNode`` for the module panel's Segment Editor (made once)."""
    scene = getScene(scene)
    node = scene.GetFirstNodeByName(name)
    if node is None or not node.IsA("vtkMRMLSegmentEditorNode"):
        if not scene.IsNodeClassRegistered("vtkMRMLSegmentEditorNode"):
            scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
        node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", name)
        node.SetSingletonTag(name)
    return node
