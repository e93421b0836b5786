"""A segmentation session rebuilt from the scene, so a saved scene can be corrected again.

Everything a :class:`~.session.SegmentationSession` holds is in the scene under the study's
browser (see :mod:`.outputs`), except the motion fields, which MRML has no node for. They are
stored as a hidden scalar volume per motion-corrected slice: voxels ``(4 t, y, x)`` float32,
the forward fields' ``dy`` and ``dx`` of every frame, then the inverse fields' (``(2, t, 2, y,
x)`` flattened), on the slice's grid, with the key frame and frame count as attributes. Slicer
saves it as an NRRD file with the scene. :func:`sessionFromScene` reads all of it back. This
file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import slicer

from qperf.errors import ValidationError

from .labels import labelsFromSegmentationNode, labelsFromSegmentationSequence
from .outputs import (
    REFERENCE_CORRECTED,
    REFERENCE_LABELS,
    REFERENCE_LABELS_REF,
    REFERENCE_MOTION,
    REFERENCE_POINTS,
    REFERENCE_POINTS_REF,
    outputNodes,
    rasToYx,
)
from .sequences import referencedSequenceNodes, seriesFromSequenceNode

ATTR_ROLE = "qperf_role"
ROLE_MOTION_FIELDS = "motionFields"
ATTR_KEY_FRAME = "qperf_key_frame"
ATTR_SLICE_INDEX = "qperf_slice_index"


def motionFieldsNode(motion: Any, ijkToRas: np.ndarray, scene: Any, name: str, sliceIndex: int) -> Any:
    """A hidden scalar volume holding the forward and inverse fields of one slice's motion result."""
    forward = np.asarray(motion.forward_px, dtype=np.float32)
    inverse = np.asarray(motion.inverse_px, dtype=np.float32)
    t, _, ny, nx = forward.shape
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(np.stack([forward, inverse]).reshape(4 * t, ny, nx)))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=float)))
    node.SetHideFromEditors(True)
    node.SetAttribute(ATTR_ROLE, ROLE_MOTION_FIELDS)
    node.SetAttribute(ATTR_KEY_FRAME, str(int(motion.key_frame)))
    node.SetAttribute(ATTR_SLICE_INDEX, str(int(sliceIndex)))
    return node


def motionFromNode(node: Any, corrected: Any) -> Any:
    """The ``qperf.motion.MotionResult`` (fields, key frame, corrected series) a fields volume holds."""
    from qperf.motion import MotionResult

    voxels = np.asarray(slicer.util.arrayFromVolume(node), dtype=np.float32)
    if voxels.shape[0] % 4 or voxels.shape[0] // 4 != corrected.n_frames or voxels.shape[1:] != corrected.shape:
        raise ValidationError(
            f"motion fields {node.GetName()!r}: expected (4 x {corrected.n_frames}, {corrected.shape[0]}, "
            f"{corrected.shape[1]}) voxels, found {voxels.shape}"
        )
    fields = voxels.reshape(2, corrected.n_frames, 2, *corrected.shape)
    return MotionResult(
        corrected=corrected,
        key_frame=int(node.GetAttribute(ATTR_KEY_FRAME) or 0),
        forward_px=np.ascontiguousarray(fields[0]),
        inverse_px=np.ascontiguousarray(fields[1]),
        quality={},
        timings_s={},
    )


def _points(node: Any, ijkToRas: np.ndarray) -> dict:
    points = {}
    for n in range(node.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(n, ras)
        points[node.GetNthControlPointLabel(n)] = rasToYx(ijkToRas, ras)
    return points


def sessionFromScene(browserNode: Any) -> Any:
    """The segmentation session that the outputs under ``browserNode`` record (for example after reopening).

    Raises
    ------
    ValidationError
        When the browser has no complete QPerf Seg outputs.
    """
    from .segment import SliceSegmentation
    from .session import SegmentationSession

    sliceNodes = referencedSequenceNodes(browserNode)
    roles = (REFERENCE_CORRECTED, REFERENCE_LABELS, REFERENCE_LABELS_REF, REFERENCE_POINTS, REFERENCE_POINTS_REF)
    found = {role: outputNodes(browserNode, role) for role in roles}
    if not sliceNodes or any(len(nodes) != len(sliceNodes) for nodes in found.values()):
        raise ValidationError(
            f"browserNode: {browserNode.GetName()!r} has not been segmented yet; run the segmentation first"
        )
    fields = {int(n.GetAttribute(ATTR_SLICE_INDEX) or 0): n for n in outputNodes(browserNode, REFERENCE_MOTION)}
    slices, names = [], []
    for i, sliceNode in enumerate(sliceNodes):
        series = seriesFromSequenceNode(sliceNode)
        corrected = seriesFromSequenceNode(found[REFERENCE_CORRECTED][i])
        ijkToRas = series.ijk_to_ras()
        motion = motionFromNode(fields[i], corrected) if i in fields else None
        pointsSequence = found[REFERENCE_POINTS][i]
        perFrame: dict = {}
        for t in range(pointsSequence.GetNumberOfDataNodes()):
            for name, point in _points(pointsSequence.GetNthDataNode(t), ijkToRas).items():
                perFrame.setdefault(name, []).append(point)
        slices.append(
            SliceSegmentation(
                series=series,
                corrected=corrected,
                motion=motion,
                labelsRef=labelsFromSegmentationNode(found[REFERENCE_LABELS_REF][i], series.shape, ijkToRas),
                labels=labelsFromSegmentationSequence(found[REFERENCE_LABELS][i], series.shape, ijkToRas),
                insertionPoints=_points(found[REFERENCE_POINTS_REF][i], ijkToRas),
                insertionPointsPerFrame={k: np.asarray(v, dtype=np.float64) for k, v in perFrame.items()},
                source="scene",
            )
        )
        names.append(series.name or f"slice {i + 1}")
    return SegmentationSession(browserNode, slices, names)
