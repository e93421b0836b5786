"""Perfusion series as Slicer sequences, and back.

One :class:`qperf.PerfusionSeries` (one short-axis slice over time) becomes one
``vtkMRMLSequenceNode`` of ``vtkMRMLScalarVolumeNode`` frames: index name ``"time"``, unit
``"s"``, numeric index values equal to the frame times. Every frame is a single-slice volume
whose voxel array is ``(k, j, i) = (1, y, x)`` and whose IJK-to-RAS matrix is
``series.ijk_to_ras()``. The fields that MRML has no place for (units, proton-density frame
count, slice position, name, metadata) are node attributes named like the custom fields of
QPerf's NRRD files (``qperf_units``, ``qperf_n_pd_frames``, ...). Slicer's sequence storage
writes node attributes as NRRD fields and reads fields back as attributes, so a sequence saved
by Slicer reads completely with ``qperf.io.read_series`` and a ``.seq.nrrd`` written by
``qperf.io`` and opened in Slicer reads completely with :func:`seriesFromSequenceNode`.
Sequences from elsewhere (for example Slicer's DICOM module) are read
too: their geometry comes from the volumes and their times from the index values.

Functions take the MRML scene as an argument; ``None`` means ``slicer.mrmlScene``, which exists
inside the Slicer application only (see :mod:`.scene`). This file imports ``slicer`` but never
``qt``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import slicer
import vtk

from qperf.errors import ValidationError
from qperf.types import PerfusionSeries, SliceGeometry

from .scene import (
    ensureSequenceBrowserRegistered,
    formatTime,
    getScene,
    newTimeSequence,
    referencedNodes,
    setFixedWindowLevel,
    updateProxyNodes,
)

# Attribute names are the custom field names of qperf.io's NRRD series files.
ATTR_ROLE = "qperf_role"
ATTR_NAME = "qperf_name"
ATTR_UNITS = "qperf_units"
ATTR_N_PD_FRAMES = "qperf_n_pd_frames"
ATTR_SLICE_POSITION_MM = "qperf_slice_position_mm"
ATTR_GEOMETRY_UNKNOWN = "qperf_geometry_unknown"
ATTR_METADATA = "qperf_metadata"

ROLE_SLICE = "slice"
ROLE_AIF_SERIES = "aifSeries"

#: Node reference roles on a study's sequence browser (ordered lists of sequence nodes).
REFERENCE_SLICE = "QPerfSlice"
REFERENCE_AIF_SERIES = "QPerfAifSeries"

_TIME_UNIT_SCALE = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3}
_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GEOMETRY_TOLERANCE = 1e-4


def jsonMetadata(metadata: Mapping[str, Any]) -> str:
    """``metadata`` as JSON text for a node attribute (numpy values as numbers and lists)."""

    def fallback(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        return str(value)

    return json.dumps(dict(metadata), default=fallback, sort_keys=True)


def createBrowserNode(scene: Any | None = None, name: str = "QPerf study") -> Any:
    """A new ``vtkMRMLSequenceBrowserNode`` that shows times with two decimals in seconds."""
    scene = getScene(scene)
    ensureSequenceBrowserRegistered(scene)
    browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", scene.GenerateUniqueName(name))
    browserNode.SetIndexDisplayFormat("%.2f")
    return browserNode


def addSequenceToBrowser(browserNode: Any, sequenceNode: Any, referenceRole: str | None = REFERENCE_SLICE) -> None:
    """Play ``sequenceNode`` in ``browserNode`` (master when it is the first) and record its role.

    The slices of a multi-slice scan have their own times; the browser shows, for every
    synchronised slice, the frame nearest to the master's current time.
    """
    if browserNode.GetMasterSequenceNode() is None:
        browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
    elif not browserNode.IsSynchronizedSequenceNode(sequenceNode, True):
        browserNode.AddSynchronizedSequenceNode(sequenceNode)
    browserNode.SetSaveChanges(sequenceNode, False)
    if referenceRole:
        browserNode.AddNodeReferenceID(referenceRole, sequenceNode.GetID())


def referencedSequenceNodes(browserNode: Any, referenceRole: str = REFERENCE_SLICE) -> list:
    """The sequence nodes recorded on ``browserNode`` under ``referenceRole``, in order."""
    return referencedNodes(browserNode, referenceRole)


def sequenceNodeFromSeries(
    series: PerfusionSeries,
    scene: Any | None = None,
    name: str | None = None,
    role: str = ROLE_SLICE,
) -> Any:
    """Add a ``vtkMRMLSequenceNode`` holding ``series`` to the scene.

    Parameters
    ----------
    series : qperf.PerfusionSeries
        One slice over time, ``data`` float32 ``(t, y, x)``, ``time_s`` ``(t,)`` in seconds.
    scene : vtkMRMLScene, optional
        Defaults to ``slicer.mrmlScene``.
    name : str, optional
        Node name; defaults to ``series.name`` or ``"slice"`` (made unique in the scene).
    role : {"slice", "aifSeries"}
        Stored as the ``qperf_role`` attribute.

    Returns
    -------
    vtkMRMLSequenceNode
        ``t`` scalar volume frames of ``(1, y, x)`` voxels, float32; index ``"time"`` in ``"s"``
        with numeric values ``series.time_s``; IJK-to-RAS ``series.ijk_to_ras()``.
    """
    scene = getScene(scene)
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a qperf.PerfusionSeries, found {type(series).__name__}")
    sequenceNode = newTimeSequence(scene, name or series.name or "slice")
    nodeName = sequenceNode.GetName()
    ijkToRas = slicer.util.vtkMatrixFromArray(series.ijk_to_ras())
    frame = slicer.vtkMRMLScalarVolumeNode()
    wasModifying = sequenceNode.StartModify()
    try:
        for i in range(series.n_frames):
            frame.SetName(f"{nodeName} [{i:03d}]")
            slicer.util.updateVolumeFromArray(frame, series.data[i][np.newaxis])
            frame.SetIJKToRASMatrix(ijkToRas)
            sequenceNode.SetDataNodeAtValue(frame, formatTime(series.time_s[i]))
    finally:
        sequenceNode.EndModify(wasModifying)
    sequenceNode.SetAttribute(ATTR_ROLE, role)
    sequenceNode.SetAttribute(ATTR_NAME, series.name)
    sequenceNode.SetAttribute(ATTR_UNITS, series.units)
    sequenceNode.SetAttribute(ATTR_N_PD_FRAMES, str(series.n_pd_frames))
    if series.slice_position_mm is not None:
        sequenceNode.SetAttribute(ATTR_SLICE_POSITION_MM, repr(series.slice_position_mm))
    if series.geometry is None:
        sequenceNode.SetAttribute(ATTR_GEOMETRY_UNKNOWN, "1")
    sequenceNode.SetAttribute(ATTR_METADATA, jsonMetadata(series.metadata))
    return sequenceNode


def loadSeries(
    series: PerfusionSeries,
    scene: Any | None = None,
    browserNode: Any | None = None,
    name: str | None = None,
) -> Any:
    """Add ``series`` as a sequence node played by a browser; returns the sequence node.

    A new browser is created when ``browserNode`` is None; its proxy volume shows the first
    frame.
    """
    scene = getScene(scene)
    sequenceNode = sequenceNodeFromSeries(series, scene, name=name)
    if browserNode is None:
        browserNode = createBrowserNode(scene, name=f"{sequenceNode.GetName()} browser")
    addSequenceToBrowser(browserNode, sequenceNode, REFERENCE_SLICE)
    browserNode.SetSelectedItemNumber(0)
    updateProxyNodes(browserNode)
    setFixedWindowLevel(browserNode, sequenceNode, series.data)
    return sequenceNode


def _timesFromIndex(sequenceNode: Any) -> np.ndarray:
    if sequenceNode.GetIndexType() != slicer.vtkMRMLSequenceNode.NumericIndex:
        raise ValidationError(
            f"sequence {sequenceNode.GetName()!r}: expected a numeric time index, found a text index "
            f"{sequenceNode.GetIndexName()!r}"
        )
    unit = (sequenceNode.GetIndexUnit() or "").strip().lower()
    if unit == "" and (sequenceNode.GetIndexName() or "").strip().lower() in ("time", "t"):
        unit = "s"
    if unit not in _TIME_UNIT_SCALE:
        raise ValidationError(
            f"sequence {sequenceNode.GetName()!r}: expected a time index in s or ms, found "
            f"{sequenceNode.GetIndexName()!r} in {sequenceNode.GetIndexUnit()!r}"
        )
    n = sequenceNode.GetNumberOfDataNodes()
    try:
        values = np.array([float(sequenceNode.GetNthIndexValue(i)) for i in range(n)], dtype=np.float64)
    except ValueError as exc:
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: expected numeric index values, {exc}") from exc
    return values * _TIME_UNIT_SCALE[unit]


def _frameArray(sequenceNode: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    frame = sequenceNode.GetNthDataNode(i)
    if frame is None or not frame.IsA("vtkMRMLScalarVolumeNode"):
        found = "nothing" if frame is None else frame.GetClassName()
        raise ValidationError(
            f"sequence {sequenceNode.GetName()!r}: expected scalar volume frames, found {found} at item {i}"
        )
    if frame.GetImageData() is None:
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: frame {i} has no image data")
    voxels = slicer.util.arrayFromVolume(frame)
    if voxels.ndim != 3 or voxels.shape[0] != 1:
        raise ValidationError(
            f"sequence {sequenceNode.GetName()!r}: expected single-slice frames (1, y, x), found shape "
            f"{voxels.shape} at item {i}"
        )
    matrix = vtk.vtkMatrix4x4()
    frame.GetIJKToRASMatrix(matrix)
    return np.array(voxels[0], dtype=np.float32), slicer.util.arrayFromVTKMatrix(matrix)


def _optionalFloat(text: str | None) -> float | None:
    return None if text in (None, "", "None") else float(text)


def seriesFromSequenceNode(sequenceNode: Any) -> PerfusionSeries:
    """Read a sequence of single-slice scalar volumes back into a :class:`qperf.PerfusionSeries`.

    Parameters
    ----------
    sequenceNode : vtkMRMLSequenceNode
        Frames ``(1, y, x)`` sharing one geometry; numeric time index in s (or ms).

    Returns
    -------
    qperf.PerfusionSeries
        ``data`` float32 ``(t, y, x)``, ``time_s`` from the index values, spacing and geometry
        from the frames' IJK-to-RAS matrix, the other fields from the ``qperf_*`` attributes
        when present (a sequence made elsewhere gives units "signal" and no PD frames).

    Raises
    ------
    ValidationError
        Not a sequence node, no frames, non-numeric or non-time index, frames that are not
        single-slice scalar volumes, or frames with different matrices or geometry.
    """
    if sequenceNode is None or not sequenceNode.IsA("vtkMRMLSequenceNode"):
        found = "None" if sequenceNode is None else sequenceNode.GetClassName()
        raise ValidationError(f"sequenceNode: expected a vtkMRMLSequenceNode, found {found}")
    n = sequenceNode.GetNumberOfDataNodes()
    if n < 2:
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: expected at least 2 frames, found {n}")
    time_s = _timesFromIndex(sequenceNode)
    frames = []
    ijkToRas = None
    for i in range(n):
        voxels, matrix = _frameArray(sequenceNode, i)
        if ijkToRas is None:
            ijkToRas = matrix
        elif voxels.shape != frames[0].shape or not np.allclose(matrix, ijkToRas, atol=_GEOMETRY_TOLERANCE):
            raise ValidationError(
                f"sequence {sequenceNode.GetName()!r}: expected frames with one matrix and geometry, "
                f"item {i} differs from item 0"
            )
        frames.append(voxels)
    recorded, spacing_mm = SliceGeometry.from_ijk_to_lps(_RAS_FROM_LPS @ ijkToRas)
    geometry = None if sequenceNode.GetAttribute(ATTR_GEOMETRY_UNKNOWN) == "1" else recorded
    metadataText = sequenceNode.GetAttribute(ATTR_METADATA)
    try:
        metadata = json.loads(metadataText) if metadataText else {}
    except json.JSONDecodeError as exc:
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: attribute {ATTR_METADATA} is not JSON") from exc
    nPdText = sequenceNode.GetAttribute(ATTR_N_PD_FRAMES)
    if nPdText and not nPdText.strip().isdigit():
        raise ValidationError(f"sequence {sequenceNode.GetName()!r}: attribute {ATTR_N_PD_FRAMES} is not a count")
    storedName = sequenceNode.GetAttribute(ATTR_NAME)
    return PerfusionSeries(
        data=np.stack(frames),
        time_s=time_s,
        spacing_mm=spacing_mm,
        geometry=geometry,
        units=sequenceNode.GetAttribute(ATTR_UNITS) or "signal",
        n_pd_frames=int(nPdText) if nPdText else 0,
        slice_position_mm=_optionalFloat(sequenceNode.GetAttribute(ATTR_SLICE_POSITION_MM)),
        name=storedName if storedName is not None else (sequenceNode.GetName() or ""),
        metadata=metadata,
    )
