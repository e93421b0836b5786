"""A segmented study in the scene and its manual correction.

A :class:`SegmentationSession` ties the core's ``qperf.workflow.SliceSegmentation`` of every
slice (with its motion fields) to the nodes that show them under the study's browser
(``QPerfCommonLib.segmentation``). Manual correction works on it with the core's mappings
between the acquired frames and the reference grid (``qperf.motion``):

- :func:`applyFrameEdit`: labels edited on one acquired frame (for example with the Segment
  Editor on the current frame) go to the reference frame through the motion fields, and from
  there to every other frame; the edited frame keeps the edit exactly;
- :func:`moveInsertionPoint`: an insertion point placed on one acquired frame goes to the
  reference frame and from there to every frame;
- :func:`applyCurrentFrameEdits` reads both from the browser's proxy nodes at its current
  frame (what the user edited), then updates every node;
- :func:`recomputeSectors`: the AHA segments (``qperf.workflow.sectorise_study``) from the
  current labels and anterior insertion point, shown as contours.

This file imports ``slicer`` (through ``QPerfCommonLib``) but never ``qt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from QPerfCommonLib.labels import labelsFromSegmentationNode
from QPerfCommonLib.markups import pointsFromNode
from QPerfCommonLib.outputs import REFERENCE_LABELS, REFERENCE_POINTS, REFERENCE_SECTORS, outputNodes, removeOutputs
from QPerfCommonLib.sectors import sectorSegmentationNode
from QPerfCommonLib.segmentation import addSegmentationOutputs, segmentationFromScene, updateSliceOutputs
from QPerfCommonLib.study import checkBrowserNode, recordSliceReferences

from qperf.errors import ValidationError


@dataclass
class SegmentationSession:
    """The segmentation of one study: results per slice and the browser that shows them.

    Attributes
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        The study's browser; its node references hold the output nodes.
    slices : list of qperf.workflow.SliceSegmentation
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

    @property
    def segmentation(self) -> Any:
        """The current state as a ``qperf.workflow.Segmentation`` (what ``analyze_study`` takes)."""
        from qperf.workflow import Segmentation

        return Segmentation(tuple(self.slices))


def _sliceNames(slices: list) -> list:
    return [s.series.name or f"slice {i + 1}" for i, s in enumerate(slices)]


def createSession(browserNode: Any, segmentation: Any, names: list | None = None) -> SegmentationSession:
    """Add the outputs of a segmentation under ``browserNode`` (replacing earlier ones) and return the session.

    Parameters
    ----------
    segmentation : qperf.workflow.Segmentation or list of qperf.workflow.SliceSegmentation
    """
    from qperf.workflow import SliceSegmentation

    checkBrowserNode(browserNode)
    slices = list(getattr(segmentation, "slices", segmentation) or [])
    if not slices or not all(isinstance(s, SliceSegmentation) for s in slices):
        raise ValidationError("segmentation: expected a qperf.workflow.Segmentation with at least one slice")
    if len(recordSliceReferences(browserNode)) != len(slices):
        raise ValidationError(f"slices: expected one per slice of {browserNode.GetName()!r}, found {len(slices)}")
    names = list(names or _sliceNames(slices))
    addSegmentationOutputs(browserNode, slices, names)
    return SegmentationSession(browserNode, slices, names)


def sessionFromScene(browserNode: Any) -> SegmentationSession:
    """The session that the outputs under ``browserNode`` record (for example after reopening a scene).

    Raises
    ------
    ValidationError
        When the browser has no complete QPerf Seg outputs.
    """
    slices = list(segmentationFromScene(browserNode).slices)
    return SegmentationSession(browserNode, slices, _sliceNames(slices))


def _store(session: SegmentationSession, i: int, updated: Any, updateLabels: bool = True) -> Any:
    session.slices[i] = updated
    updateSliceOutputs(session.browserNode, i, updated, updateLabels=updateLabels)
    return updated


def applyFrameEdit(session: SegmentationSession, sliceIndex: int, frame: int, labelsFrame: np.ndarray) -> Any:
    """Apply labels edited on acquired frame ``frame`` of a slice to its reference frame and every frame.

    Parameters
    ----------
    labelsFrame : ndarray of int, shape (y, x)
        The whole label map of that frame after the edit.

    Returns
    -------
    qperf.workflow.SliceSegmentation
        The slice's new state (also stored in the session and shown by its nodes).
    """
    from qperf.motion import frame_labels_to_reference, labels_over_frames

    i = session.index(sliceIndex)
    current = session.slices[i]
    labelsFrame = np.asarray(labelsFrame, dtype=np.uint8)
    if labelsFrame.shape != current.series.shape:
        raise ValidationError(f"labelsFrame: expected shape {current.series.shape}, found {labelsFrame.shape}")
    labelsRef = frame_labels_to_reference(labelsFrame, int(frame), current.motion)
    frames = labels_over_frames(labelsRef, current.motion, current.n_frames)
    frames[int(frame)] = labelsFrame
    return _store(session, i, current.with_labels(labelsRef, frames))


def applyReferenceEdit(session: SegmentationSession, sliceIndex: int, labelsRef: np.ndarray) -> Any:
    """Replace a slice's reference-frame labels (for example edited on the corrected series)."""
    i = session.index(sliceIndex)
    return _store(session, i, session.slices[i].with_labels(labelsRef))


def moveInsertionPoint(
    session: SegmentationSession, sliceIndex: int, frame: int, pointYx: tuple, name: str = "anterior"
) -> Any:
    """Move insertion point ``name`` of a slice to ``pointYx`` as placed on acquired frame ``frame``.

    The point goes to the reference frame and from there to every frame; frame ``frame`` keeps
    the placement exactly.
    """
    from qperf.motion import frame_point_to_reference

    i = session.index(sliceIndex)
    current = session.slices[i]
    updated = current.with_insertion_point(name, frame_point_to_reference(pointYx, int(frame), current.motion))
    track = np.array(updated.insertion_points_per_frame_yx[name], dtype=np.float64)
    track[int(frame)] = (float(pointYx[0]), float(pointYx[1]))
    updated = dataclasses.replace(
        updated, insertion_points_per_frame_yx={**updated.insertion_points_per_frame_yx, name: track}
    )
    return _store(session, i, updated, updateLabels=False)


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
    return pointsFromNode(proxy, session.slices[i].series.ijk_to_ras())


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
        known = session.slices[i].insertion_points_per_frame_yx.get(name)
        if known is None or np.hypot(*(np.asarray(pointYx) - known[frame])) > tolerance_px:
            moveInsertionPoint(session, i, frame, pointYx, name)
    return session.slices[i]


def recomputeSectors(session: SegmentationSession, levels: list | None = None) -> list:
    """AHA segments of every slice from its reference labels and anterior insertion point.

    The core's ``qperf.workflow.sectorise_study`` (levels from ``levels`` or from the slices'
    geometry and order; the septal side from the geometry, else the RV label), shown as a
    contour segmentation per slice (``QPerfSectors`` on the browser, replacing earlier ones).

    Returns
    -------
    list of qperf.aha.SliceSectors

    Raises
    ------
    ValidationError
        A slice without myocardium or without an anterior insertion point.
    """
    from qperf.types import PerfusionStudy
    from qperf.workflow import AnalysisOptions, sectorise_study

    study = PerfusionStudy(tuple(s.series for s in session.slices))
    options = AnalysisOptions(levels=levels)
    sectors = list(sectorise_study(study, session.segmentation, None, options).slices)
    removeOutputs(session.browserNode, (REFERENCE_SECTORS,))
    scene = session.browserNode.GetScene()
    for name, s, sliceSectors in zip(session.names, session.slices, sectors):
        node = sectorSegmentationNode(sliceSectors.segments, s.series.ijk_to_ras(), scene, f"{name} AHA segments")
        session.browserNode.AddNodeReferenceID(REFERENCE_SECTORS, node.GetID())
    session.sectors = sectors
    return sectors
