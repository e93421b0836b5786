"""The QPerfFlow workflow as one object: what the module panel calls and what the Python console uses.

>>> from QPerfFlowLib import FlowLogic
>>> flow = FlowLogic(scene)                             # scene: slicer.mrmlScene inside Slicer
>>> flow.detectAifRegion(browserNode)                   # LV blood pool of the AIF images
>>> flow.aifFromRegion(browserNode)                     # the AIF table from that region
>>> result = flow.compute(browserNode, model="btex")    # maps, contours, tables, curves, bull's-eye
>>> flow.mapArray(browserNode, "mbf_ml_min_g")          # (y, x) numpy array of slice 1
>>> flow.segmentRows(browserNode)                       # the per-segment table as dicts
>>> flow.perfusionReserve(stressBrowser, restBrowser)   # stress / rest MBF table
>>> flow.exportReport(browserNode, "report/"); flow.saveScene("scene/")
>>> flow.exportDicom(browserNode, "dicom-results/")      # a study loaded from a DICOM folder

``compute`` runs ``qperf.workflow.analyze_study`` on the study and on QPerf Seg's segmentation
as the scene holds it (the same step and options as ``qperf analyze``; pass ``options`` for the
ones the panel does not show). Results are kept per study browser. This file imports
``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import slicer
from QPerfCommonLib.scene import getScene, saveScene

from qperf.errors import ValidationError
from qperf.logs import forward_log
from qperf.progress import CancelToken

from .aifnodes import aifFromRegion, detectAifRegion
from .compute import DEFAULT_MODEL, computeFlow, flowInputs
from .export import exportDicom, exportReport
from .results import REFERENCE_SEGMENT_TABLE, addFlowOutputs, addPerfusionReserve


class FlowLogic:
    """Quantify flow for studies in a scene and keep their results.

    Parameters
    ----------
    scene : vtkMRMLScene, optional
        Defaults to ``slicer.mrmlScene`` (inside the application).
    log : callable(str), optional
        Receives the core library's log lines (``qperf.logs.forward_log``: what each step did)
        while :meth:`compute` and the exports run; the module panel shows them.
    """

    def __init__(self, scene: Any | None = None, log: Callable[[str], None] | None = None) -> None:
        self.scene = getScene(scene)
        self.results: dict = {}
        self.nodes: dict = {}
        self.settings: dict = {}
        self.cancelToken: CancelToken | None = None
        self.log = log

    def detectAifRegion(self, browserNode: Any) -> Any:
        """Segmentation of the LV blood pool found in the study's AIF images (editable)."""
        return detectAifRegion(browserNode)

    def aifFromRegion(self, browserNode: Any, regionNode: Any | None = None) -> Any:
        """The AIF table from the AIF images under the region; it becomes the study's AIF."""
        return aifFromRegion(browserNode, regionNode)[1]

    def inputs(
        self,
        browserNode: Any,
        aifTable: Any | None = None,
        hematocrit: float | None = None,
        condition: str | None = None,
        labelsSegmentation: Any | None = None,
        insertionPoints: Any | None = None,
    ) -> Any:
        """The validated :class:`~.compute.FlowInputs` of a study browser."""
        return flowInputs(
            browserNode,
            aifTable,
            hematocrit,
            condition,
            [labelsSegmentation] if labelsSegmentation is not None else None,
            [insertionPoints] if insertionPoints is not None else None,
        )

    def compute(
        self,
        browserNode: Any,
        model: str = DEFAULT_MODEL,
        aifTable: Any | None = None,
        hematocrit: float | None = None,
        condition: str | None = None,
        labelsSegmentation: Any | None = None,
        insertionPoints: Any | None = None,
        progress: Any | None = None,
        options: Any | None = None,
    ) -> Any:
        """Flow maps and report of a study; the output nodes replace earlier ones under its browser.

        ``options`` (``qperf.workflow.AnalysisOptions``) carries what else ``qperf analyze``
        takes; ``model`` and ``hematocrit`` replace its. Returns the
        ``qperf.workflow.StudyAnalysis``; the nodes are in ``self.nodes[browserID]``.
        :meth:`cancel` stops it (``qperf.progress.AnalysisCancelled``, nothing added).
        """
        self.settings[browserNode.GetID()] = {
            "model": model,
            "aifTable": aifTable,
            "hematocrit": hematocrit,
            "condition": condition,
            "labelsSegmentation": labelsSegmentation,
            "insertionPoints": insertionPoints,
            "options": options,
        }
        inputs = self.inputs(browserNode, aifTable, hematocrit, condition, labelsSegmentation, insertionPoints)
        self.cancelToken = CancelToken()
        with forward_log(self.log):
            result = computeFlow(
                inputs, model=model, hematocrit=hematocrit, progress=progress, cancel=self.cancelToken, options=options
            )
        self.nodes[browserNode.GetID()] = addFlowOutputs(browserNode, result)
        self.results[browserNode.GetID()] = result
        return result

    def recompute(self, browserNode: Any, progress: Any | None = None) -> Any:
        """Compute again with the settings of the last :meth:`compute` (after labels or points changed)."""
        self.result(browserNode)
        return self.compute(browserNode, progress=progress, **self.settings[browserNode.GetID()])

    def cancel(self) -> None:
        if self.cancelToken is not None:
            self.cancelToken.cancel()

    def result(self, browserNode: Any) -> Any:
        result = self.results.get(browserNode.GetID()) if browserNode is not None else None
        if result is None:
            name = browserNode.GetName() if browserNode is not None else "None"
            raise ValidationError(f"browserNode: no flow result for {name!r}; compute it first")
        return result

    def bullseyePng(self, browserNode: Any) -> bytes:
        """The bull's-eye of the study's last result, as PNG bytes (for the module panel)."""
        self.result(browserNode)
        return self.nodes[browserNode.GetID()].bullseyePng

    def mapArray(self, browserNode: Any, mapName: str = "mbf_ml_min_g", sliceIndex: int = 0) -> np.ndarray:
        """A parameter map ``(y, x)`` float32 as the scene holds it (NaN where not fitted)."""
        self.result(browserNode)
        maps = self.nodes[browserNode.GetID()].maps[sliceIndex]
        if mapName not in maps:
            raise ValidationError(f"mapName: expected one of {', '.join(sorted(maps))}, found {mapName!r}")
        return np.array(slicer.util.arrayFromVolume(maps[mapName])[0])

    def segmentRows(self, browserNode: Any) -> list:
        """The per-segment table node of a study as a list of dicts (one per region and layer)."""
        table = browserNode.GetNodeReference(REFERENCE_SEGMENT_TABLE)
        if table is None:
            raise ValidationError(f"browserNode: no segment table for {browserNode.GetName()!r}; compute first")
        vtkTable = table.GetTable()
        names = [vtkTable.GetColumnName(c) for c in range(vtkTable.GetNumberOfColumns())]
        rows = []
        for r in range(vtkTable.GetNumberOfRows()):
            row = {}
            for c, name in enumerate(names):
                value = vtkTable.GetValue(r, c)
                row[name] = value.ToDouble() if value.IsNumeric() else value.ToString()
            rows.append(row)
        return rows

    def perfusionReserve(self, stressBrowser: Any, restBrowser: Any) -> tuple:
        """``(report with "mpr", table node)`` from the stress and rest results."""
        return addPerfusionReserve(stressBrowser, self.result(stressBrowser), self.result(restBrowser))

    def exportReport(
        self, browserNode: Any, folder: str | os.PathLike, overwrite: bool = False, withMaps: bool = False
    ) -> Path:
        """Write the report files (JSON, CSV, HTML, figures), or the whole analysis folder with ``withMaps``."""
        with forward_log(self.log):
            return exportReport(self.result(browserNode), folder, overwrite=overwrite, withMaps=withMaps)

    def exportDicom(
        self,
        browserNode: Any,
        folder: str | os.PathLike,
        source: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> list:
        """Write the study's maps and labels as DICOM Parametric Maps and a SEG, new series of its study.

        ``source`` is the DICOM folder the study was read from; by default the folder it was
        loaded from (:meth:`dicomSource`). Returns the files written.

        Raises
        ------
        ValidationError
            No flow result, a study not loaded from DICOM, or source images no longer there.
        """
        result = self.result(browserNode)
        if source is None:
            source = self.dicomSource(browserNode)
        if not source or not _isDicomFolder(source):
            raise ValidationError(
                f"source: expected the DICOM folder {browserNode.GetName()!r} was read from, found "
                f"{source or 'none recorded (a study not loaded from a DICOM folder)'}"
            )
        with forward_log(self.log):
            return exportDicom(result, source, folder, overwrite=overwrite)

    def dicomSource(self, browserNode: Any) -> str | None:
        """The DICOM folder a study browser was loaded from (``QPerfCommonLib.study.ATTR_SOURCE_PATH``),
        or None for a study loaded from other files or given in memory."""
        from QPerfCommonLib.study import ATTR_SOURCE_PATH

        source = browserNode.GetAttribute(ATTR_SOURCE_PATH)
        return source if source and _isDicomFolder(source) else None

    def saveScene(self, folder: str | os.PathLike, name: str = "scene", overwrite: bool = False) -> Path:
        """Save every node and the ``.mrml`` scene file into ``folder``."""
        return saveScene(self.scene, folder, name=name, overwrite=overwrite)


def _isDicomFolder(path: str | os.PathLike) -> bool:
    """A folder that is not a study folder (``study.json``): what ``qperf.io.read_study`` reads as DICOM."""
    return os.path.isdir(path) and not os.path.isfile(os.path.join(path, "study.json"))
