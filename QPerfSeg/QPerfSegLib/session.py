"""A segmented study in the scene and its manual correction.

A :class:`SegmentationSession` ties the computed :class:`~.segment.SliceSegmentation` of every
slice (with its motion fields, which the scene has no place for) to the nodes that show them
under the study's browser (see :mod:`.outputs`). Manual correction works on it:

- :func:`applyFrameEdit`: labels edited on one acquired frame (for example with the Segment
  Editor on the current frame) go to the reference frame through the motion fields, and from
  there to every other frame; the edited frame keeps the edit exactly;
- :func:`moveInsertionPoint`: an insertion point placed on one acquired frame goes to the
  reference frame and from there to every frame;
- :func:`applyCurrentFrameEdits` reads both from the browser's proxy nodes at its current
  frame (what the user edited), then updates every node;
- :func:`recomputeSectors`: the AHA segments from the current labels and anterior insertion
  point, shown as contours, the input of everything downstream (flow report).

This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qperf.errors import ValidationError

from .frames import frameBackToReference, frameLabelsToReference
from .labels import labelsFromSegmentationNode
from .outputs import (
    REFERENCE_LABELS,
    REFERENCE_POINTS,
    REFERENCE_SECTORS,
    addSegmentationOutputs,
    outputNodes,
    rasToYx,
    removeOutputs,
    updateSliceOutputs,
)
from .sectors import sectorSegmentationNode
from .segment import SliceSegmentation
from .study import recordSliceReferences


@dataclass
class SegmentationSession:
    """The segmentation of one study: results per slice and the browser that shows them.

    Attributes
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        The study's browser; its node references hold the output nodes (see :mod:`.outputs`).
    slices : list of SliceSegmentation
    names : list of str
        Slice names used in node names.
    sectors : list of qperf.aha.SliceSectors
        Filled by :func:`recomputeSectors`.
    """

    browserNode: Any
    slices: list
    names: list
    sectors: list = field(default_factory=list)

    def index(self, sliceIndex: int) -> int:
        if not 0 <= int(sliceIndex) < len(self.slices):
            raise ValidationError(f"sliceIndex: expected 0 to {len(self.slices) - 1}, found {sliceIndex}")
        return int(sliceIndex)


def createSession(browserNode: Any, slices: list, names: list | None = None) -> SegmentationSession:
    """Add the outputs of ``slices`` under ``browserNode`` (replacing earlier ones) and return the session."""
    if browserNode is None or not browserNode.IsA("vtkMRMLSequenceBrowserNode"):
        found = "None" if browserNode is None else browserNode.GetClassName()
        raise ValidationError(f"browserNode: expected a vtkMRMLSequenceBrowserNode, found {found}")
    if not slices or not all(isinstance(s, SliceSegmentation) for s in slices):
        raise ValidationError("slices: expected a non-empty list of SliceSegmentation")
    if len(recordSliceReferences(browserNode)) != len(slices):
        raise ValidationError(f"slices: expected one per slice of {browserNode.GetName()!r}, found {len(slices)}")
    names = list(names or [s.series.name or f"slice {i + 1}" for i, s in enumerate(slices)])
    addSegmentationOutputs(browserNode, slices, names)
    return SegmentationSession(browserNode, list(slices), names)


def applyFrameEdit(session: SegmentationSession, sliceIndex: int, frame: int, labelsFrame: np.ndarray) -> Any:
    """Apply labels edited on acquired frame ``frame`` of a slice to its reference frame and every frame.

    Parameters
    ----------
    labelsFrame : ndarray of int, shape (y, x)
        The whole label map of that frame after the edit.

    Returns
    -------
    SliceSegmentation
        The slice's new state (also stored in the session and shown by its nodes).
    """
    i = session.index(sliceIndex)
    current = session.slices[i]
    labelsFrame = np.asarray(labelsFrame, dtype=np.uint8)
    if labelsFrame.shape != current.series.shape:
        raise ValidationError(f"labelsFrame: expected shape {current.series.shape}, found {labelsFrame.shape}")
    labelsRef = frameLabelsToReference(labelsFrame, frame, current.motion)
    updated = current.withLabels(labelsRef)
    updated.labels[int(frame)] = labelsFrame
    session.slices[i] = updated
    updateSliceOutputs(session.browserNode, i, updated)
    return updated


def applyReferenceEdit(session: SegmentationSession, sliceIndex: int, labelsRef: np.ndarray) -> Any:
    """Replace a slice's reference-frame labels (for example edited on the corrected series)."""
    i = session.index(sliceIndex)
    updated = session.slices[i].withLabels(labelsRef)
    session.slices[i] = updated
    updateSliceOutputs(session.browserNode, i, updated)
    return updated


def moveInsertionPoint(
    session: SegmentationSession, sliceIndex: int, frame: int, pointYx: tuple, name: str = "anterior"
) -> Any:
    """Move insertion point ``name`` of a slice to ``pointYx`` as placed on acquired frame ``frame``.

    The point goes to the reference frame and from there to every frame; frame ``frame`` keeps
    the placement exactly.
    """
    i = session.index(sliceIndex)
    current = session.slices[i]
    updated = current.withInsertionPoint(name, frameBackToReference(pointYx, frame, current.motion))
    updated.insertionPointsPerFrame[name][int(frame)] = (float(pointYx[0]), float(pointYx[1]))
    session.slices[i] = updated
    updateSliceOutputs(session.browserNode, i, updated, updateLabels=False)
    return updated


def currentFrame(session: SegmentationSession, sliceIndex: int, role: str = REFERENCE_LABELS) -> int:
    """The item of slice ``sliceIndex``'s ``role`` sequence that the browser shows now."""
    browser = session.browserNode
    sequence = outputNodes(browser, role)[session.index(sliceIndex)]
    master = browser.GetMasterSequenceNode()
    value = master.GetNthIndexValue(browser.GetSelectedItemNumber())
    item = sequence.GetItemNumberFromIndexValue(value, False)
    return int(max(item, 0))


def _proxyLabels(session: SegmentationSession, i: int) -> np.ndarray:
    proxy = session.browserNode.GetProxyNode(outputNodes(session.browserNode, REFERENCE_LABELS)[i])
    series = session.slices[i].series
    return labelsFromSegmentationNode(proxy, series.shape, series.ijk_to_ras())


def _proxyPoints(session: SegmentationSession, i: int) -> dict:
    proxy = session.browserNode.GetProxyNode(outputNodes(session.browserNode, REFERENCE_POINTS)[i])
    ijkToRas = session.slices[i].series.ijk_to_ras()
    points = {}
    for n in range(proxy.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        proxy.GetNthControlPointPosition(n, ras)
        points[proxy.GetNthControlPointLabel(n)] = rasToYx(ijkToRas, ras)
    return points


def applyCurrentFrameEdits(session: SegmentationSession, sliceIndex: int, tolerance_px: float = 1e-3) -> Any:
    """Take what the user changed on the browser's current frame (labels, points) into the session.

    The labels shown by the proxy segmentation and the points of the proxy point list are
    compared with the session's; what differs is applied as :func:`applyFrameEdit` and
    :func:`moveInsertionPoint` on that frame. Returns the slice's new state.
    """
    i = session.index(sliceIndex)
    frame = currentFrame(session, i)
    # Read every proxy before applying anything: applying refreshes the proxies.
    labels = _proxyLabels(session, i)
    points = _proxyPoints(session, i)
    if not np.array_equal(labels, session.slices[i].labels[frame]):
        applyFrameEdit(session, i, frame, labels)
    for name, pointYx in points.items():
        known = session.slices[i].insertionPointsPerFrame.get(name)
        if known is None or np.hypot(*(np.asarray(pointYx) - known[frame])) > tolerance_px:
            moveInsertionPoint(session, i, frame, pointYx, name)
    return session.slices[i]


def recomputeSectors(session: SegmentationSession, levels: list | None = None) -> list:
    """AHA segments of every slice from its reference labels and anterior insertion point.

    Levels come from ``levels`` or from the slices' geometry and order
    (``qperf.aha.slice_levels``). The segments are shown as a contour segmentation per slice
    (``QPerfSectors`` on the browser, replacing earlier ones).

    Returns
    -------
    list of qperf.aha.SliceSectors

    Raises
    ------
    ValidationError
        A slice without myocardium or without an anterior insertion point.
    """
    from qperf import aha

    assignment = aha.slice_levels([s.series for s in session.slices], levels=levels)
    sectors = []
    for name, s, level in zip(session.names, session.slices, assignment.levels):
        if "anterior" not in s.insertionPoints:
            raise ValidationError(f"{name}: expected an anterior RV insertion point, found none; place it first")
        sectors.append(
            aha.analyse_slice(
                s.labelsRef,
                s.insertionPoints["anterior"],
                level,
                spacing_mm=s.corrected.spacing_mm,
                geometry=s.corrected.geometry,
            )
        )
    removeOutputs(session.browserNode, (REFERENCE_SECTORS,))
    scene = session.browserNode.GetScene()
    for name, s, sliceSectors in zip(session.names, session.slices, sectors):
        node = sectorSegmentationNode(sliceSectors.segments, s.series.ijk_to_ras(), scene, f"{name} AHA segments")
        session.browserNode.AddNodeReferenceID(REFERENCE_SECTORS, node.GetID())
    session.sectors = sectors
    return sectors
