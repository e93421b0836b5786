"""Flow quantification of phantom studies in the scene, checked node by node (part of the self-test).

:func:`runFlowWorkflowSelfTest` generates a small stress and rest phantom study of one heart
(one slice, 30 frames, 48 x 48 pixels, no breathing so the test stays short), puts each in the
scene with QPerf Seg's outputs (the phantom's truth labels and insertion points, the path that
needs no trained weights), detects the LV blood pool in the AIF images as an editable region,
takes the AIF from it, computes BTEX maps, adds every output node, the perfusion reserve,
exports the report and saves and reopens the scene. Every node is compared with the core
library's result it shows (maps, segments, table rows, curves, bull's-eye); the AIF and the
AIF region are compared with the phantom's truth.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from QPerfCommonLib.outputs import REFERENCE_SECTORS, outputNodes
from QPerfCommonLib.scene import getScene, openScene, saveScene
from QPerfCommonLib.segmentation import addSegmentationOutputs
from QPerfCommonLib.study import loadStudy

from qperf.progress import AnalysisCancelled, CancelToken

from .aifnodes import aifFromRegion, detectAifRegion, regionMask
from .colors import PERFUSION_COLOR_TABLE_NAME
from .compute import computeFlow, flowInputs
from .export import exportReport
from .results import REFERENCE_MAPS, addFlowOutputs, addPerfusionReserve

LogCallback = Callable[[str], None]
PHANTOM = {"seed": 4, "n_slices": 1, "n_frames": 30, "shape": (48, 48), "motion": False}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def studyWithOutputs(scene: Any, condition: str) -> tuple:
    """A phantom study of ``condition`` in the scene with QPerf Seg's outputs (truth labels and points).

    The outputs are what QPerf Seg records: the core's segmentation step on the study, its
    result added under the study browser (``QPerfCommonLib.segmentation``).
    """
    from qperf import phantom
    from qperf.workflow import AnalysisOptions, segment_study

    ps = phantom.generate_study(condition=condition, **PHANTOM)
    nodes = loadStudy(ps.study, scene)
    truth = [s for s in ps.truth.slices]
    options = AnalysisOptions(
        motion="off",
        labels=[t.labels_ref for t in truth],
        insertion_points_yx=[t.insertion_points_yx for t in truth],
    )
    addSegmentationOutputs(nodes.browserNode, segment_study(ps.study, options))
    return ps, nodes


def _checkAif(ps: Any, browserNode: Any) -> dict:
    region = detectAifRegion(browserNode)
    series = ps.study.aif_series[0]
    mask = regionMask(region, series.shape, series.ijk_to_ras())
    truthPool = ps.truth.aif_labels_ref == 1
    overlap = float((mask & truthPool).sum() / max(mask.sum(), 1))
    _check(mask.any() and overlap > 0.9, f"the detected AIF region lies {overlap:.0%} inside the true LV blood pool")
    aif, table = aifFromRegion(browserNode, region)
    truthAif = np.interp(aif.time_s, ps.truth.aif_time_s, ps.truth.aif_blood_gd_mmol_l)
    correlation = float(np.corrcoef(aif.values, truthAif)[0, 1])
    peakRatio = float(aif.values.max() / truthAif.max())
    _check(correlation > 0.95, f"AIF from the region correlates {correlation:.3f} with the truth")
    _check(0.75 < peakRatio < 1.25, f"AIF peak is {peakRatio:.2f} times the truth's")
    _check(table.GetNumberOfRows() == aif.n_samples, "AIF table rows")
    return {"aifRegionInsidePool": overlap, "aifCorrelation": correlation, "aifPeakRatio": peakRatio}


def _checkFlowNodes(result: Any, flowNodes: Any, browserNode: Any) -> None:
    from qperf.report import report_rows

    sl = result.slices[0]
    ijkToRas = sl.gd.ijk_to_ras()
    maps = flowNodes.maps[0]
    _check(set(maps) == set(sl.flow.maps), "one volume node per parameter map")
    for name, values in sl.flow.maps.items():
        node = maps[name]
        _check(node.IsA("vtkMRMLScalarVolumeNode") and node.GetAttribute("qperf_map") == name, f"map node {name}")
        shown = slicer.util.arrayFromVolume(node)
        _check(shown.shape == (1, *values.shape), f"{name}: voxel array shape {shown.shape}")
        _check(np.array_equal(shown[0], values, equal_nan=True), f"{name}: the node shows other values")
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        _check(np.allclose(slicer.util.arrayFromVTKMatrix(matrix), ijkToRas), f"{name}: geometry")
        color = node.GetDisplayNode().GetColorNode()
        _check(color is not None and color.GetName() == PERFUSION_COLOR_TABLE_NAME, f"{name}: perfusion colours")
    _check(len(outputNodes(browserNode, REFERENCE_MAPS)) == len(maps), "map nodes recorded on the browser")
    sectors = outputNodes(browserNode, REFERENCE_SECTORS)
    _check(len(sectors) == 1 and sectors[0].GetSegmentation().GetNumberOfSegments() == 16, "AHA contour node")
    rows = report_rows(result.report)
    table = flowNodes.segmentTable
    _check(table.GetNumberOfRows() == len(rows), f"segment table has {table.GetNumberOfRows()} rows, not {len(rows)}")
    mbf = slicer.util.arrayFromTableColumn(table, "mbf_mean_ml_min_g")
    expected = np.array([np.nan if r["mbf_mean_ml_min_g"] is None else r["mbf_mean_ml_min_g"] for r in rows])
    _check(np.allclose(mbf, expected, equal_nan=True), "segment table MBF means differ from the report")
    regions = [table.GetTable().GetValueByName(i, "region").ToString() for i in range(table.GetNumberOfRows())]
    _check(regions == [str(r["region"]) for r in rows], "segment table regions")
    curves = slicer.util.arrayFromTableColumn(flowNodes.curveTables[0], "myocardium_mmol_l")
    myo = sl.labels_ref == 2
    _check(np.allclose(curves, sl.flow.tissue_mmol_l[:, myo].mean(axis=1)), "myocardial curve")
    aifCurve = slicer.util.arrayFromTableColumn(flowNodes.curveTables[0], "aif_plasma_mmol_l")
    _check(np.allclose(aifCurve, sl.flow.aif.values), "AIF curve")
    _check(flowNodes.chart.GetNumberOfPlotSeriesNodes() == 2, "the chart plots the AIF and the myocardium")
    width, height = (int.from_bytes(flowNodes.bullseyePng[16:24][i : i + 4], "big") for i in (0, 4))
    dims = flowNodes.bullseye.GetImageData().GetDimensions()
    _check(dims[:2] == (width, height) and flowNodes.bullseye.IsA("vtkMRMLVectorVolumeNode"), "bull's-eye image")


def _checkCancel(inputs: Any) -> None:
    token = CancelToken()
    token.cancel()
    try:
        computeFlow(inputs, cancel=token)
    except AnalysisCancelled:
        return
    raise AssertionError("a cancelled flow computation finished")


def _checkExports(scene: Any, result: Any, stressNodes: Any, folder: Path) -> None:
    written = exportReport(result, folder / "report")
    report = json.loads((written / "report.json").read_text(encoding="utf-8"))
    key = "mbf_mean_ml_min_g"
    _check(report["segments"]["7"][key] == result.report["segments"]["7"][key], "report.json")
    for name in ("report.csv", "report.html", "bullseye.png"):
        _check((written / name).is_file(), f"{name} was not written")
    mrml = saveScene(scene, folder / "scene")
    reopened = openScene(mrml)
    _check(reopened.GetNumberOfNodes() == scene.GetNumberOfNodes(), "the reopened scene has other nodes")
    node = reopened.GetNodeByID(stressNodes.maps[0]["mbf_ml_min_g"].GetID())
    values = result.slices[0].flow.maps["mbf_ml_min_g"]
    _check(np.array_equal(slicer.util.arrayFromVolume(node)[0], values, equal_nan=True), "saved MBF map")


def runFlowWorkflowSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Run flow quantification of phantom stress and rest studies in ``scene``; see the module docstring.

    Returns
    -------
    dict
        ``phantoms`` (stress, rest), ``results`` (stress, rest ``AnalysisResult``),
        ``flowNodes`` (stress :class:`~.results.FlowNodes`), ``mprReport``, ``mprTable``, the
        AIF comparisons and ``truthMbf`` / ``measuredMbf`` (mean over the slice's segments).
    """
    scene = getScene(scene)
    log = log or (lambda message: None)
    stress, stressStudy = studyWithOutputs(scene, "stress")
    measured = _checkAif(stress, stressStudy.browserNode)
    log(f"AIF from the detected region: correlation {measured['aifCorrelation']:.3f} with the truth")
    inputs = flowInputs(stressStudy.browserNode)
    _check(inputs.sources["series"].startswith("motion-corrected"), "flow inputs use QPerf Seg's corrected series")
    _checkCancel(inputs)
    fractions: list = []
    result = computeFlow(inputs, model="btex", progress=lambda f, m: fractions.append(f))
    _check(fractions[0] == 0.0 and fractions[-1] == 1.0, "progress runs 0 to 1")
    flowNodes = addFlowOutputs(stressStudy.browserNode, result)
    _checkFlowNodes(result, flowNodes, stressStudy.browserNode)
    log("Stress maps, contours, segment table, curves and bull's-eye checked")

    rest, restStudy = studyWithOutputs(scene, "rest")
    aifFromRegion(restStudy.browserNode, detectAifRegion(restStudy.browserNode))
    restResult = computeFlow(flowInputs(restStudy.browserNode), model="btex")
    addFlowOutputs(restStudy.browserNode, restResult)
    mprReport, mprTable = addPerfusionReserve(stressStudy.browserNode, result, restResult)
    mpr = slicer.util.arrayFromTableColumn(mprTable, "mpr")
    region = [mprTable.GetTable().GetValueByName(i, "region").ToString() for i in range(mprTable.GetNumberOfRows())]
    key = "mbf_mean_ml_min_g"
    globalMpr = result.report["global"][key] / restResult.report["global"][key]
    _check(np.isclose(mpr[region.index("global")], globalMpr), "global perfusion reserve is stress / rest MBF")
    log(f"Perfusion reserve (global) {globalMpr:.2f}")

    with tempfile.TemporaryDirectory(prefix="qperf-flow-selftest-") as folder:
        _checkExports(scene, result, flowNodes, Path(folder))
    log("Report exported; scene saved and reopened")
    truthMbf = float(np.nanmean(stress.truth.slices[0].mbf_ml_min_g))
    measuredMbf = float(np.nanmean(result.slices[0].flow.maps["mbf_ml_min_g"][result.slices[0].labels_ref == 2]))
    return {
        "phantoms": (stress, rest),
        "results": (result, restResult),
        "flowNodes": flowNodes,
        "mprReport": mprReport,
        "mprTable": mprTable,
        "truthMbf": truthMbf,
        "measuredMbf": measuredMbf,
        **measured,
    }
