"""A whole perfusion study in the scene: one sequence per slice, the AIF as a table.

:func:`loadStudy` puts a :class:`qperf.PerfusionStudy` (or a study read from a path with
``qperf.io.read_study``) into the scene under one ``vtkMRMLSequenceBrowserNode``: one sequence
node per slice (each with its own times), the AIF image series as further sequences, and the AIF
curve as a ``vtkMRMLTableNode`` with columns ``time_s`` and ``gd_mmol_l`` (or ``signal``). The
browser records its slices and AIF through ordered node references and the study fields
(condition, hematocrit, name, metadata) as ``qperf_*`` attributes, so :func:`studyFromBrowserNode`
gives the same study back. This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import slicer
import vtk

from qperf.errors import ValidationError
from qperf.types import AifCurve, PerfusionStudy

from .scene import getScene, setFixedWindowLevel, updateProxyNodes
from .sequences import (
    ATTR_METADATA,
    ATTR_NAME,
    ATTR_ROLE,
    ATTR_UNITS,
    REFERENCE_AIF_SERIES,
    REFERENCE_SLICE,
    ROLE_AIF_SERIES,
    ROLE_SLICE,
    addSequenceToBrowser,
    createBrowserNode,
    jsonMetadata,
    referencedSequenceNodes,
    sequenceNodeFromSeries,
    seriesFromSequenceNode,
)

ROLE_STUDY = "study"
ROLE_AIF_CURVE = "aifCurve"
ATTR_CONDITION = "qperf_condition"
#: The file or folder a study was loaded from (absolute path; absent for a study given in memory):
#: QPerf Flow's DICOM export references the source images found there.
ATTR_SOURCE_PATH = "qperf_source_path"
ATTR_HEMATOCRIT = "qperf_hematocrit"
ATTR_AIF_KIND = "qperf_aif_kind"
REFERENCE_AIF_TABLE = "QPerfAifTable"
TIME_COLUMN = "time_s"

StudyOrPath = Union[PerfusionStudy, str, "os.PathLike[str]"]


@dataclass
class StudyNodes:
    """The nodes :func:`loadStudy` added to the scene.

    Attributes
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        Plays every sequence of the study; master is the first slice.
    sliceSequenceNodes : list of vtkMRMLSequenceNode
        One per slice, in the study's order.
    aifTableNode : vtkMRMLTableNode or None
        The AIF curve, when the study has one.
    aifSequenceNodes : list of vtkMRMLSequenceNode
        The AIF image series (one per echo), possibly empty.
    """

    browserNode: Any
    sliceSequenceNodes: list = field(default_factory=list)
    aifTableNode: Any | None = None
    aifSequenceNodes: list = field(default_factory=list)


def aifTableNodeFromCurve(aif: AifCurve, scene: Any | None = None, name: str = "AIF") -> Any:
    """A ``vtkMRMLTableNode`` with columns ``time_s`` and the AIF values (named by their units).

    Parameters
    ----------
    aif : qperf.AifCurve
        ``values`` and ``time_s`` of shape ``(n,)``; units "gd_mmol_l" or "signal".
    """
    scene = getScene(scene)
    if not isinstance(aif, AifCurve):
        raise ValidationError(f"aif: expected a qperf.AifCurve, found {type(aif).__name__}")
    tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slicer.util.updateTableFromArray(
        tableNode, np.column_stack([aif.time_s, aif.values]).astype(np.float64), [TIME_COLUMN, aif.units]
    )
    tableNode.SetColumnUnitLabel(TIME_COLUMN, "s")
    tableNode.SetColumnUnitLabel(aif.units, "mmol/L" if aif.units == "gd_mmol_l" else "")
    tableNode.SetAttribute(ATTR_ROLE, ROLE_AIF_CURVE)
    tableNode.SetAttribute(ATTR_UNITS, aif.units)
    tableNode.SetAttribute(ATTR_AIF_KIND, aif.kind)
    return tableNode


def aifCurveFromTableNode(tableNode: Any) -> AifCurve:
    """Read an AIF curve from a table node.

    The time column is ``time_s`` (or the first column); the value column is ``gd_mmol_l`` or
    ``signal`` (or the second column). Units and kind come from the ``qperf_*`` attributes, else
    from the value column's name, else "gd_mmol_l" of whole blood.

    Raises
    ------
    ValidationError
        Not a table node, fewer than two columns, non-numeric columns, or an invalid curve.
    """
    if tableNode is None or not tableNode.IsA("vtkMRMLTableNode"):
        found = "None" if tableNode is None else tableNode.GetClassName()
        raise ValidationError(f"aifTableNode: expected a vtkMRMLTableNode, found {found}")
    table = tableNode.GetTable()
    names = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    if len(names) < 2:
        raise ValidationError(
            f"table {tableNode.GetName()!r}: expected columns time_s and gd_mmol_l (or signal), found {names}"
        )
    timeName = TIME_COLUMN if TIME_COLUMN in names else names[0]
    valueNames = [n for n in ("gd_mmol_l", "signal") if n in names]
    valueName = valueNames[0] if valueNames else [n for n in names if n != timeName][0]
    columns = {}
    for columnName in (timeName, valueName):
        column = table.GetColumnByName(columnName)
        if not isinstance(column, vtk.vtkDataArray):
            raise ValidationError(f"table {tableNode.GetName()!r}: column {columnName!r} is not numeric")
        columns[columnName] = np.array(slicer.util.arrayFromTableColumn(tableNode, columnName), dtype=np.float64)
    units = tableNode.GetAttribute(ATTR_UNITS) or (valueName if valueName in ("gd_mmol_l", "signal") else "gd_mmol_l")
    return AifCurve(
        values=columns[valueName],
        time_s=columns[timeName],
        units=units,
        kind=tableNode.GetAttribute(ATTR_AIF_KIND) or "blood",
    )


def _readStudy(path: str | os.PathLike[str]) -> PerfusionStudy:
    from qperf import io

    return io.read_study(path)


def loadStudy(study: StudyOrPath, scene: Any | None = None, name: str | None = None) -> StudyNodes:
    """Add a perfusion study to the scene.

    Parameters
    ----------
    study : qperf.PerfusionStudy or path
        A study, or a path that ``qperf.io.read_study`` reads (``study.json`` manifest, DICOM
        folder, or one series file).
    scene : vtkMRMLScene, optional
        Defaults to ``slicer.mrmlScene``.
    name : str, optional
        Browser node name; defaults to the study name or "QPerf study".

    Returns
    -------
    StudyNodes
        The browser (showing the first frame), one sequence per slice, the AIF table and the
        AIF image sequences.
    """
    scene = getScene(scene)
    sourcePath = None
    if not isinstance(study, PerfusionStudy):
        if isinstance(study, (str, os.PathLike)):
            sourcePath = os.path.abspath(os.fspath(study))
            study = _readStudy(study)
        else:
            raise ValidationError(f"study: expected a qperf.PerfusionStudy or a path, found {type(study).__name__}")
    browserNode = createBrowserNode(scene, name=name or study.name or "QPerf study")
    browserNode.SetAttribute(ATTR_ROLE, ROLE_STUDY)
    browserNode.SetAttribute(ATTR_NAME, study.name)
    browserNode.SetAttribute(ATTR_CONDITION, study.condition)
    browserNode.SetAttribute(ATTR_HEMATOCRIT, repr(study.hematocrit))
    browserNode.SetAttribute(ATTR_METADATA, jsonMetadata(study.metadata))
    if sourcePath is not None:
        browserNode.SetAttribute(ATTR_SOURCE_PATH, sourcePath)
    nodes = StudyNodes(browserNode=browserNode)
    for i, series in enumerate(study.slices):
        sequenceNode = sequenceNodeFromSeries(series, scene, name=series.name or f"slice {i + 1}", role=ROLE_SLICE)
        addSequenceToBrowser(browserNode, sequenceNode, REFERENCE_SLICE)
        nodes.sliceSequenceNodes.append(sequenceNode)
    for i, series in enumerate(study.aif_series):
        sequenceNode = sequenceNodeFromSeries(
            series, scene, name=series.name or f"AIF echo {i + 1}", role=ROLE_AIF_SERIES
        )
        addSequenceToBrowser(browserNode, sequenceNode, REFERENCE_AIF_SERIES)
        nodes.aifSequenceNodes.append(sequenceNode)
    if study.aif is not None:
        nodes.aifTableNode = aifTableNodeFromCurve(study.aif, scene, name=f"{browserNode.GetName()} AIF")
        browserNode.SetNodeReferenceID(REFERENCE_AIF_TABLE, nodes.aifTableNode.GetID())
    browserNode.SetSelectedItemNumber(0)
    updateProxyNodes(browserNode)
    allSeries = (*study.slices, *study.aif_series)
    for sequenceNode, series in zip(nodes.sliceSequenceNodes + nodes.aifSequenceNodes, allSeries):
        setFixedWindowLevel(browserNode, sequenceNode, series.data)
    return nodes


def _studySliceNodes(browserNode: Any) -> list:
    nodes = referencedSequenceNodes(browserNode, REFERENCE_SLICE)
    if nodes:
        return nodes
    # A browser made elsewhere: every synchronised sequence of volumes is a slice.
    collection = vtk.vtkCollection()
    browserNode.GetSynchronizedSequenceNodes(collection, True)
    candidates = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    return [
        node
        for node in candidates
        if node.GetNumberOfDataNodes() > 0 and node.GetNthDataNode(0).IsA("vtkMRMLScalarVolumeNode")
    ]


def recordSliceReferences(browserNode: Any) -> list:
    """Record a browser's slice sequences as ``QPerfSlice`` references when it has none yet.

    A browser made elsewhere (Slicer's DICOM module) plays its slices without QPerf's
    references; once recorded, sequences that QPerf adds later (the corrected series) are not
    taken for slices. Returns the slice sequence nodes.
    """
    nodes = _studySliceNodes(browserNode)
    if not referencedSequenceNodes(browserNode, REFERENCE_SLICE):
        for node in nodes:
            browserNode.AddNodeReferenceID(REFERENCE_SLICE, node.GetID())
    return nodes


def checkBrowserNode(browserNode: Any) -> None:
    """Raise ValidationError unless ``browserNode`` is a sequence browser node."""
    if browserNode is None or not browserNode.IsA("vtkMRMLSequenceBrowserNode"):
        found = "None" if browserNode is None else browserNode.GetClassName()
        raise ValidationError(f"browserNode: expected a vtkMRMLSequenceBrowserNode, found {found}")


def studyFromBrowserNode(
    browserNode: Any,
    aifTableNode: Any | None = None,
    hematocrit: float | None = None,
    condition: str | None = None,
) -> PerfusionStudy:
    """The :class:`qperf.PerfusionStudy` that a study browser holds.

    Parameters
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        A browser made by :func:`loadStudy`, or any browser of single-slice volume sequences.
    aifTableNode : vtkMRMLTableNode, optional
        Overrides the AIF table the browser references.
    hematocrit : float, optional
        Overrides the browser's ``qperf_hematocrit`` (default 0.42).
    condition : {"stress", "rest", "unknown"}, optional
        Overrides the browser's ``qperf_condition``.
    """
    checkBrowserNode(browserNode)
    sliceNodes = _studySliceNodes(browserNode)
    if not sliceNodes:
        raise ValidationError(f"browser {browserNode.GetName()!r}: expected sequences of slices, found none")
    if aifTableNode is None:
        aifTableNode = browserNode.GetNodeReference(REFERENCE_AIF_TABLE)
    storedHematocrit = browserNode.GetAttribute(ATTR_HEMATOCRIT)
    metadataText = browserNode.GetAttribute(ATTR_METADATA)
    storedName = browserNode.GetAttribute(ATTR_NAME)
    kwargs: dict = {}
    if hematocrit is not None or storedHematocrit:
        kwargs["hematocrit"] = float(hematocrit if hematocrit is not None else storedHematocrit)
    return PerfusionStudy(
        slices=tuple(seriesFromSequenceNode(node) for node in sliceNodes),
        aif=aifCurveFromTableNode(aifTableNode) if aifTableNode is not None else None,
        aif_series=tuple(
            seriesFromSequenceNode(node) for node in referencedSequenceNodes(browserNode, REFERENCE_AIF_SERIES)
        ),
        condition=condition or browserNode.GetAttribute(ATTR_CONDITION) or "unknown",
        name=storedName if storedName is not None else browserNode.GetName(),
        metadata=json.loads(metadataText) if metadataText else {},
        **kwargs,
    )
