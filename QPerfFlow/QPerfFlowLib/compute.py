"""Flow quantification of a study in the scene: inputs gathered, the core workflow run.

:func:`flowInputs` gathers what the analysis needs from the scene. A study segmented by QPerf
Seg brings its whole segmentation (``QPerfCommonLib.segmentation.segmentationFromScene``: the
acquired and motion-corrected series, the motion fields, the reference and per-frame labels,
the insertion points, after any manual edit), which :func:`computeFlow` hands to
``qperf.workflow.analyze_study`` as it is, so the flow, the AHA segments and the report come
from the same step and the same data as ``qperf analyze`` (the scene holds the series as
float32 voxels, as the core does, the labels as integers and the times exactly). Any other
segmentation (one per slice, with segments named "LV blood pool", "Myocardium", "RV blood
pool") with a point list per slice (a control point "anterior", or the first point) is passed
as supplied labels on the series as they are (QPerf Seg's corrected series when there are
some), without a second motion correction. The AIF is a table node, or the AIF images. Progress
is reported and a cancel flag checked at every progress step. This file imports ``slicer`` but
never ``qt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from QPerfCommonLib.labels import labelsFromSegmentationNode
from QPerfCommonLib.markups import namedPoint
from QPerfCommonLib.outputs import REFERENCE_CORRECTED, REFERENCE_LABELS_REF, REFERENCE_POINTS_REF, outputNodes
from QPerfCommonLib.segmentation import hasSegmentationOutputs, segmentationFromScene
from QPerfCommonLib.sequences import seriesFromSequenceNode
from QPerfCommonLib.study import aifCurveFromTableNode, studyFromBrowserNode

from qperf.errors import ValidationError
from qperf.progress import CancelToken, ProgressCallback, checked_progress

MODELS = ("btex", "fermi", "2cxm", "tofts")
DEFAULT_MODEL = "btex"


@dataclass
class FlowInputs:
    """Everything the flow fit takes, gathered from the scene.

    Attributes
    ----------
    study : qperf.PerfusionStudy
        The study as acquired with the chosen AIF, hematocrit and condition (with labels from
        elsewhere: QPerf Seg's corrected series when there are some).
    labels : list of ndarray, uint8, (y, x)
        Reference-frame labels per slice.
    insertionPoints : list of (y, x)
        Anterior RV insertion point per slice (pixels).
    aif : qperf.AifCurve or None
        The AIF chosen (None: the study's curve or its AIF images).
    sources : dict
        Where each input came from (for the summary).
    segmentation : qperf.workflow.Segmentation or None
        QPerf Seg's segmentation of the study, when the labels are QPerf Seg's.
    """

    study: Any
    labels: list
    insertionPoints: list
    aif: Any | None = None
    sources: dict = field(default_factory=dict)
    segmentation: Any | None = None


def _fromOtherNodes(browserNode: Any, study: Any, segmentationNodes: list | None, insertionNodes: list | None) -> tuple:
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
    points = [namedPoint(node, s.ijk_to_ras()) for node, s in zip(insertionNodes, study.slices)]
    sources["labels"] = ", ".join(node.GetName() for node in segmentationNodes)
    return study, labels, points, sources


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
    segmentation = None
    if not segmentationNodes and not insertionNodes and hasSegmentationOutputs(browserNode):
        segmentation = segmentationFromScene(browserNode)
        labels = [s.labels_ref for s in segmentation.slices]
        points = [s.anterior_yx for s in segmentation.slices]
        labelsNodes = outputNodes(browserNode, REFERENCE_LABELS_REF)
        sources = {
            "series": "motion-corrected (QPerf Seg)",
            "labels": ", ".join(node.GetName() for node in labelsNodes),
        }
    else:
        study, labels, points, sources = _fromOtherNodes(browserNode, study, segmentationNodes, insertionNodes)
    if study.aif is None and not study.aif_series:
        raise ValidationError(f"aif: expected an AIF table or AIF images for {browserNode.GetName()!r}, found neither")
    sources["aif"] = "curve" if study.aif is not None else "AIF images"
    return FlowInputs(study, labels, points, None, sources, segmentation)


def analysisOptions(
    inputs: FlowInputs,
    model: str = DEFAULT_MODEL,
    hematocrit: float | None = None,
    levels: list | None = None,
    options: Any | None = None,
) -> Any:
    """The ``qperf.workflow.AnalysisOptions`` of a flow computation (``options`` with the panel's choices)."""
    from qperf.workflow import AnalysisOptions

    if model not in MODELS:
        raise ValidationError(f"model: expected one of {', '.join(MODELS)}, found {model!r}")
    base = options or AnalysisOptions()
    chosen: dict = {"model": model}
    if inputs.aif is not None:
        chosen["aif"] = inputs.aif
    if hematocrit is not None:
        chosen["hematocrit"] = hematocrit
    if levels is not None:
        chosen["levels"] = levels
    if inputs.segmentation is None:  # labels from elsewhere, on the series as they are
        chosen["motion"] = "off"
        chosen["labels"] = [np.asarray(lab, dtype=np.uint8) for lab in inputs.labels]
        chosen["insertion_points_yx"] = [tuple(p) for p in inputs.insertionPoints]
        chosen["label_frames"] = None
    return dataclasses.replace(base, **chosen)


def computeFlow(
    inputs: FlowInputs,
    model: str = DEFAULT_MODEL,
    hematocrit: float | None = None,
    levels: list | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    options: Any | None = None,
) -> Any:
    """Parameter maps, AHA segments and report of the inputs (``qperf.workflow.analyze_study``).

    Parameters
    ----------
    model : {"btex", "fermi", "2cxm", "tofts"}
    hematocrit : float, optional
        Replaces the study's.
    levels : list of str, optional
        Slice levels instead of those from geometry and order.
    options : qperf.workflow.AnalysisOptions, optional
        The other options of ``qperf analyze`` (delay, fitting grid, border trimming, ...);
        ``model``, ``hematocrit`` and ``levels`` given here replace theirs.

    Returns
    -------
    qperf.workflow.StudyAnalysis

    Raises
    ------
    AnalysisCancelled
        When ``cancel`` was set.
    """
    from qperf.workflow import analyze_study

    chosen = analysisOptions(inputs, model, hematocrit, levels, options)
    report = checked_progress(progress, cancel)
    report(0.0, "flow quantification")
    result = analyze_study(inputs.study, chosen, segmentation=inputs.segmentation, progress=report)
    report(1.0, "done")
    return result


def aifFromTable(tableNode: Any) -> Any:
    """The AIF curve of a table node (see ``QPerfCommonLib.study.aifCurveFromTableNode``)."""
    return aifCurveFromTableNode(tableNode)
