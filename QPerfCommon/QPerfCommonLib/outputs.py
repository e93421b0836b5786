"""The output nodes QPerf records on a study's sequence browser, by reference role.

Both modules find each other's outputs only through these roles (ordered node references on
the study browser, one entry per slice where it says so); the nodes themselves are written and
read by :mod:`.segmentation` (QPerf Seg's outputs) and by QPerf Flow's results. A new run
removes the nodes an earlier one recorded (:func:`removeOutputs`). This file imports ``slicer``
only through :mod:`.scene` and never ``qt``.
"""

from __future__ import annotations

from typing import Any

from .scene import referencedNodes, removeNode

#: The motion-corrected series, a volume sequence on the acquired times (one per slice).
REFERENCE_CORRECTED = "QPerfCorrected"
#: The labels over every acquired frame, a sequence of segmentations (one per slice).
REFERENCE_LABELS = "QPerfLabels"
#: The labels on the reference (motion-corrected) grid, a segmentation (one per slice).
REFERENCE_LABELS_REF = "QPerfLabelsRef"
#: The RV insertion points per frame, a sequence of point lists (one per slice).
REFERENCE_POINTS = "QPerfInsertionPoints"
#: The insertion vector per frame (LV centre to anterior insertion point), a sequence of lines.
REFERENCE_VECTOR = "QPerfInsertionVector"
#: The RV insertion points on the reference grid, a point list (one per slice).
REFERENCE_POINTS_REF = "QPerfInsertionRef"
#: The AHA segments of each slice, a segmentation shown as contours.
REFERENCE_SECTORS = "QPerfSectors"
#: The motion fields of each motion-corrected slice, a hidden volume (see :mod:`.motionfields`).
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
#: Everything a segmentation adds under the browser.
SEGMENTATION_REFERENCES = (*PER_SLICE_REFERENCES, REFERENCE_SECTORS, REFERENCE_MOTION)


def outputNodes(browserNode: Any, role: str) -> list:
    """The nodes recorded on the browser under ``role``, in slice order."""
    return referencedNodes(browserNode, role)


def removeOutputs(browserNode: Any, references: tuple = SEGMENTATION_REFERENCES) -> None:
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
