"""Flow results in the scene: maps, AHA contours, segment table, curves and bull's-eye.

:func:`addFlowOutputs` turns a ``qperf.workflow.StudyAnalysis`` into nodes, recorded on the
study browser (ordered node references) so a new computation replaces them:

- ``QPerfMaps``: one ``vtkMRMLScalarVolumeNode`` per slice and parameter map (``"<slice>
  mbf_ml_min_g"``, float32 ``(1, y, x)`` on the slice's grid, NaN where not fitted) shown with
  the perfusion colour table (flows on the report's fixed range, other maps on their own);
- ``QPerfSectors``: the AHA segments of each slice as contours (``QPerfCommonLib.sectors``);
- ``QPerfSegmentTable``: a ``vtkMRMLTableNode`` with the report's rows (``report.csv``);
- ``QPerfCurves`` and ``QPerfChart``: per slice a table of the plasma AIF and the mean
  myocardial tissue curve on the fitting grid, plotted by one chart;
- ``QPerfBullseye``: the bull's-eye image (RGBA ``vtkMRMLVectorVolumeNode``; its PNG bytes
  are returned too, for the module panel).

This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from QPerfCommonLib.outputs import REFERENCE_SECTORS, removeOutputs
from QPerfCommonLib.scene import getScene, removeNode
from QPerfCommonLib.sectors import sectorSegmentationNode

from qperf.types import LABEL_MYO

from .colors import perfusionColorTableNode

REFERENCE_MAPS = "QPerfMaps"
REFERENCE_SEGMENT_TABLE = "QPerfSegmentTable"
REFERENCE_CURVES = "QPerfCurves"
REFERENCE_CHART = "QPerfChart"
REFERENCE_BULLSEYE = "QPerfBullseye"
REFERENCE_PLOT_SERIES = "QPerfPlotSeries"
REFERENCE_MPR_TABLE = "QPerfMprTable"
FLOW_REFERENCES = (
    REFERENCE_PLOT_SERIES,
    REFERENCE_MAPS,
    REFERENCE_SECTORS,
    REFERENCE_SEGMENT_TABLE,
    REFERENCE_CURVES,
    REFERENCE_CHART,
    REFERENCE_BULLSEYE,
)
ATTR_MAP = "qperf_map"
ATTR_SLICE = "qperf_slice"
FLOW_MAPS = ("mbf_ml_min_g", "fp_ml_min_g", "ps_ml_min_g")
CURVE_COLUMNS = ("time_s", "aif_plasma_mmol_l", "myocardium_mmol_l")


@dataclass
class FlowNodes:
    """The nodes :func:`addFlowOutputs` added.

    Attributes
    ----------
    maps : list of dict
        Per slice, map name -> ``vtkMRMLScalarVolumeNode``.
    sectors : list of vtkMRMLSegmentationNode
    segmentTable : vtkMRMLTableNode
    curveTables : list of vtkMRMLTableNode
    chart : vtkMRMLPlotChartNode
    bullseye : vtkMRMLVectorVolumeNode
    bullseyePng : bytes
    """

    maps: list = field(default_factory=list)
    sectors: list = field(default_factory=list)
    segmentTable: Any = None
    curveTables: list = field(default_factory=list)
    chart: Any = None
    bullseye: Any = None
    bullseyePng: bytes = b""


def mapVolumeNode(values: np.ndarray, ijkToRas: np.ndarray, scene: Any, name: str, mapName: str) -> Any:
    """A scalar volume of one parameter map (y, x) with the perfusion colour table."""
    from qperf.colormaps import PERFUSION_RANGE_ML_MIN_G

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    array = np.asarray(values, dtype=np.float32)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array[np.newaxis]))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=float)))
    node.SetAttribute(ATTR_MAP, mapName)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(perfusionColorTableNode(scene).GetID())
    finite = array[np.isfinite(array)]
    if mapName in FLOW_MAPS:
        low, high = (float(v) for v in PERFUSION_RANGE_ML_MIN_G)
    elif finite.size:
        low, high = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    else:
        low, high = 0.0, 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, high if high > low else low + 1.0)
    return node


def tableNodeFromRows(rows: list, scene: Any, name: str) -> Any:
    """A table node with one column per key of ``rows`` (numbers as doubles, None as NaN, else text)."""
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = node.GetTable()
    keys = list(rows[0]) if rows else []
    for key in keys:
        values = [row.get(key) for row in rows]
        numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
        column: Any = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        column.SetName(key)
        for v in values:
            if numeric:
                column.InsertNextValue(float("nan") if v is None else float(v))
            else:
                column.InsertNextValue("" if v is None else str(v))
        table.AddColumn(column)
    node.Modified()
    return node


def curveTableNode(flow: Any, labelsRef: np.ndarray, scene: Any, name: str) -> Any:
    """Table of the plasma AIF and the mean myocardial tissue curve (mmol/L) on the fitting grid."""
    myo = np.asarray(labelsRef) == LABEL_MYO
    tissue = np.asarray(flow.tissue_mmol_l, dtype=np.float64)
    myoCurve = tissue[:, myo].mean(axis=1) if myo.any() else np.full(tissue.shape[0], np.nan)
    aif = np.asarray(flow.aif.values, dtype=np.float64)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slicer.util.updateTableFromArray(node, np.column_stack([flow.time_s, aif, myoCurve]), list(CURVE_COLUMNS))
    node.SetColumnUnitLabel("time_s", "s")
    node.SetColumnUnitLabel("aif_plasma_mmol_l", "mmol/L")
    node.SetColumnUnitLabel("myocardium_mmol_l", "mmol/L")
    return node


def _plotSeries(scene: Any, table: Any, yColumn: str, name: str, color: tuple) -> Any:
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(name))
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName("time_s")
    series.SetYColumnName(yColumn)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
    series.SetColor(*color)
    return series


def curvesChartNode(curveTables: list, names: list, scene: Any, name: str = "QPerf curves") -> Any:
    """A plot chart of the AIF (first slice) and every slice's myocardial curve."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle("AIF (plasma) and myocardium")
    chart.SetXAxisTitle("time (s)")
    chart.SetYAxisTitle("Gd (mmol/L)")
    series = [_plotSeries(scene, curveTables[0], "aif_plasma_mmol_l", "AIF (plasma)", (0.9, 0.2, 0.2))]
    palette = ((0.2, 0.5, 1.0), (0.1, 0.7, 0.3), (0.6, 0.3, 0.9), (0.9, 0.6, 0.1))
    for i, (table, sliceName) in enumerate(zip(curveTables, names)):
        color = palette[i % len(palette)]
        series.append(_plotSeries(scene, table, "myocardium_mmol_l", f"{sliceName} myocardium", color))
    for node in series:
        chart.AddAndObservePlotSeriesNodeID(node.GetID())
    return chart


def imageVolumeNodeFromPng(png: bytes, scene: Any, name: str) -> Any:
    """An RGBA ``vtkMRMLVectorVolumeNode`` of a PNG image (row 0 at the top), 1 mm pixels."""
    reader = vtk.vtkPNGReader()
    # A file works with every VTK of supported Slicer releases (memory readers changed in 9.6).
    with tempfile.TemporaryDirectory(prefix="qperf-png-") as folder:
        path = Path(folder) / "image.png"
        path.write_bytes(png)
        reader.SetFileName(str(path))
        reader.Update()
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", scene.GenerateUniqueName(name))
    image = vtk.vtkImageData()
    image.DeepCopy(reader.GetOutput())
    node.SetAndObserveImageData(image)
    node.SetIJKToRASDirections(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    node.CreateDefaultDisplayNodes()
    return node


def addFlowOutputs(browserNode: Any, result: Any, names: list | None = None) -> FlowNodes:
    """Add the nodes of a flow result under ``browserNode`` (replacing earlier flow outputs)."""
    from qperf.report import report_rows

    scene = getScene(browserNode.GetScene())
    removeOutputs(browserNode, FLOW_REFERENCES)
    names = names or [sl.series.name or f"slice {i + 1}" for i, sl in enumerate(result.slices)]
    nodes = FlowNodes()
    for i, (sl, sliceName) in enumerate(zip(result.slices, names)):
        ijkToRas = sl.gd.ijk_to_ras()
        maps = {}
        for mapName, values in sl.flow.maps.items():
            node = mapVolumeNode(values, ijkToRas, scene, f"{sliceName} {mapName}", mapName)
            node.SetAttribute(ATTR_SLICE, str(i + 1))
            browserNode.AddNodeReferenceID(REFERENCE_MAPS, node.GetID())
            maps[mapName] = node
        nodes.maps.append(maps)
        sectors = sectorSegmentationNode(sl.sectors.segments, ijkToRas, scene, f"{sliceName} AHA segments")
        browserNode.AddNodeReferenceID(REFERENCE_SECTORS, sectors.GetID())
        nodes.sectors.append(sectors)
        curves = curveTableNode(sl.flow, sl.labels_ref, scene, f"{sliceName} curves")
        browserNode.AddNodeReferenceID(REFERENCE_CURVES, curves.GetID())
        nodes.curveTables.append(curves)
    nodes.segmentTable = tableNodeFromRows(report_rows(result.report), scene, f"{browserNode.GetName()} segments")
    browserNode.SetNodeReferenceID(REFERENCE_SEGMENT_TABLE, nodes.segmentTable.GetID())
    nodes.chart = curvesChartNode(nodes.curveTables, names, scene, f"{browserNode.GetName()} curves")
    browserNode.SetNodeReferenceID(REFERENCE_CHART, nodes.chart.GetID())
    for i in range(nodes.chart.GetNumberOfPlotSeriesNodes()):
        browserNode.AddNodeReferenceID(REFERENCE_PLOT_SERIES, nodes.chart.GetNthPlotSeriesNodeID(i))
    nodes.bullseyePng = bytes(result.figures.bullseye_png)
    nodes.bullseye = imageVolumeNodeFromPng(nodes.bullseyePng, scene, f"{browserNode.GetName()} bull's-eye")
    browserNode.SetNodeReferenceID(REFERENCE_BULLSEYE, nodes.bullseye.GetID())
    return nodes


def addPerfusionReserve(stressBrowserNode: Any, stressResult: Any, restResult: Any) -> tuple:
    """The myocardial perfusion reserve (stress / rest mean MBF per region) as a table.

    Returns
    -------
    (dict, vtkMRMLTableNode)
        The stress report with its ``"mpr"`` section (``qperf.report.add_perfusion_reserve``)
        and a table of its rows (column ``mpr`` added), recorded on the stress browser
        (``QPerfMprTable``, replacing an earlier one).
    """
    from qperf.report import add_perfusion_reserve, report_rows

    report = add_perfusion_reserve(stressResult.report, restResult.report)
    scene = stressBrowserNode.GetScene()
    old = stressBrowserNode.GetNodeReference(REFERENCE_MPR_TABLE)
    if old is not None:
        removeNode(scene, old)
    table = tableNodeFromRows(report_rows(report), scene, f"{stressBrowserNode.GetName()} perfusion reserve")
    stressBrowserNode.SetNodeReferenceID(REFERENCE_MPR_TABLE, table.GetID())
    return report, table
