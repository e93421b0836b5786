"""Flow quantification of a study in the scene: inputs gathered, the core pipeline run.

:func:`flowInputs` gathers what the flow fit needs from the scene: the series (the
motion-corrected sequences that QPerf Seg recorded on the study browser, else the acquired
ones), the reference-frame labels (QPerf Seg's, or any segmentation per slice with segments
named "LV blood pool", "Myocardium", "RV blood pool"), the anterior RV insertion point (a point
list per slice with a control point "anterior", or the first point), and the AIF (a table
node, or the AIF images). :func:`computeFlow` runs ``qperf.workflow.analyze_study`` on them
(no second motion correction; labels and points supplied) with the chosen kinetic model and
hematocrit, reporting progress and checking a cancel flag at every progress step. This file
imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from QPerfSegLib.labels import labelsFromSegmentationNode
from QPerfSegLib.outputs import (
    REFERENCE_CORRECTED,
    REFERENCE_LABELS_REF,
    REFERENCE_POINTS_REF,
    outputNodes,
    rasToYx,
)
from QPerfSegLib.segment import CancelToken, checkedProgress
from QPerfSegLib.sequences import seriesFromSequenceNode
from QPerfSegLib.study import aifCurveFromTableNode, studyFromBrowserNode

from qperf.errors import ValidationError

MODELS = ("btex", "fermi", "2cxm", "tofts")
DEFAULT_MODEL = "btex"
ProgressCallback = Callable[[float, str], None]


@dataclass
class FlowInputs:
    """Everything the flow fit takes, gathered from the scene.

    Attributes
    ----------
    study : qperf.PerfusionStudy
        The series to fit (motion-corrected when available), the AIF, hematocrit, condition.
    labels : list of ndarray, uint8, (y, x)
        Reference-frame labels per slice.
    insertionPoints : list of (y, x)
        Anterior RV insertion point per slice (pixels).
    aif : qperf.AifCurve or None
        The AIF chosen (None: the study's curve or its AIF images).
    sources : dict
        Where each input came from (for the summary).
    """

    study: Any
    labels: list
    insertionPoints: list
    aif: Any | None = None
    sources: dict = field(default_factory=dict)


def _firstOrNamedPoint(pointsNode: Any, ijkToRas: np.ndarray, name: str = "anterior") -> tuple:
    n = pointsNode.GetNumberOfControlPoints()
    if n == 0:
        raise ValidationError(
            f"point list {pointsNode.GetName()!r}: expected the anterior RV insertion point, found none"
        )
    chosen = 0
    for i in range(n):
        if pointsNode.GetNthControlPointLabel(i).strip().lower() == name:
            chosen = i
            break
    ras = [0.0, 0.0, 0.0]
    pointsNode.GetNthControlPointPosition(chosen, ras)
    return rasToYx(ijkToRas, ras)


def flowInputs(
    browserNode: Any,
    aifTableNode: Any | None = None,
    hematocrit: float | None = None,
    condition: str | None = None,
    segmentationNodes: list | None = None,
    insertionNodes: list | None = None,
) -> FlowInputs:
    """Gather the flow inputs of a study browser.

    Parameters
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        The study (from QPerf Seg, or any browser of single-slice volume sequences).
    aifTableNode : vtkMRMLTableNode, optional
        The AIF curve; defaults to the study's (else its AIF images are used).
    hematocrit : float, optional
    condition : {"stress", "rest", "unknown"}, optional
    segmentationNodes, insertionNodes : list of nodes, optional
        One segmentation and one point list per slice, instead of QPerf Seg's outputs.

    Raises
    ------
    ValidationError
        Missing labels or insertion points, or labels that are not on the slices' grids.
    """
    study = studyFromBrowserNode(browserNode, aifTableNode=aifTableNode, hematocrit=hematocrit, condition=condition)
    sources: dict = {"series": "acquired"}
    corrected = outputNodes(browserNode, REFERENCE_CORRECTED)
    if corrected and len(corrected) == study.n_slices:
        study = study.replace(slices=tuple(seriesFromSequenceNode(node) for node in corrected))
        sources["series"] = "motion-corrected (QPerf Seg)"
    segmentationNodes = segmentationNodes or outputNodes(browserNode, REFERENCE_LABELS_REF)
    insertionNodes = insertionNodes or outputNodes(browserNode, REFERENCE_POINTS_REF)
    for what, nodes in (("segmentationNodes", segmentationNodes), ("insertionNodes", insertionNodes)):
        if len(nodes) != study.n_slices:
            raise ValidationError(
                f"{what}: expected one per slice ({study.n_slices}), found {len(nodes)}; run QPerf Seg or choose them"
            )
    labels = [
        labelsFromSegmentationNode(node, s.shape, s.ijk_to_ras()) for node, s in zip(segmentationNodes, study.slices)
    ]
    points = [_firstOrNamedPoint(node, s.ijk_to_ras()) for node, s in zip(insertionNodes, study.slices)]
    sources["labels"] = ", ".join(node.GetName() for node in segmentationNodes)
    if study.aif is None and not study.aif_series:
        raise ValidationError(f"aif: expected an AIF table or AIF images for {browserNode.GetName()!r}, found neither")
    sources["aif"] = "curve" if study.aif is not None else "AIF images"
    return FlowInputs(study, labels, points, None, sources)


def computeFlow(
    inputs: FlowInputs,
    model: str = DEFAULT_MODEL,
    hematocrit: float | None = None,
    levels: list | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Parameter maps, AHA segments and report of the inputs (``qperf.workflow.analyze_study``).

    Parameters
    ----------
    model : {"btex", "fermi", "2cxm", "tofts"}
    hematocrit : float, optional
        Replaces the study's.
    levels : list of str, optional
        Slice levels instead of those from geometry and order.

    Returns
    -------
    qperf.workflow.StudyAnalysis

    Raises
    ------
    AnalysisCancelled
        When ``cancel`` was set.
    """
    from qperf.workflow import AnalysisOptions, analyze_study

    if model not in MODELS:
        raise ValidationError(f"model: expected one of {', '.join(MODELS)}, found {model!r}")
    options = AnalysisOptions(
        model=model,
        motion="off",
        labels=[np.asarray(lab, dtype=np.uint8) for lab in inputs.labels],
        insertion_points_yx=[tuple(p) for p in inputs.insertionPoints],
        aif=inputs.aif,
        levels=levels,
        hematocrit=hematocrit,
    )
    report = checkedProgress(progress, cancel)
    report(0.0, "flow quantification")
    result = analyze_study(inputs.study, options, progress=report)
    report(1.0, "done")
    return result


def aifFromTable(tableNode: Any) -> Any:
    """The AIF curve of a table node (see ``QPerfSegLib.study.aifCurveFromTableNode``)."""
    return aifCurveFromTableNode(tableNode)
