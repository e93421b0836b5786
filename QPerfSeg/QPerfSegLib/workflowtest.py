"""The segmentation workflow on a digital phantom, checked against its truth (part of the self-test).

:func:`runWorkflowSelfTest` generates a small phantom study with breathing motion (one slice,
30 frames, 48 x 48 pixels), loads it, and runs the module's logic: motion correction and
labels (the phantom's truth labels and insertion points as drawn on one acquired frame, the
supplied-labels path that needs no trained weights), the outputs under the study browser,
AHA sectors, the ground-truth export, a cancelled run, then a manual edit and a moved
insertion point on another frame. Labels, points and sectors are compared with the truth the
code never sees; node types, names, index values, segment names, colours and terminology are
checked on the real MRML nodes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
from QPerfCommonLib.labels import SEGMENTS, labelsFromSegmentationNode, setSegmentationLabels
from QPerfCommonLib.markups import pointsFromNode
from QPerfCommonLib.outputs import (
    PER_SLICE_REFERENCES,
    REFERENCE_CORRECTED,
    REFERENCE_LABELS,
    REFERENCE_LABELS_REF,
    REFERENCE_POINTS,
    REFERENCE_POINTS_REF,
    REFERENCE_SECTORS,
    REFERENCE_VECTOR,
    outputNodes,
)
from QPerfCommonLib.scene import getScene
from QPerfCommonLib.segmentation import lvCentreYx
from QPerfCommonLib.sequences import seriesFromSequenceNode
from QPerfCommonLib.study import loadStudy

from qperf.progress import AnalysisCancelled, CancelToken

from .groundtruth import exportGroundTruth
from .segment import segmentStudy
from .session import applyCurrentFrameEdits, createSession, currentFrame, recomputeSectors

LogCallback = Callable[[str], None]
PHANTOM = {"seed": 4, "n_slices": 1, "n_frames": 30, "shape": (48, 48)}
DRAWN_FRAME = 15
EDITED_FRAME = 22


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1 when both are empty)."""
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def truthPointsOnFrame(truth: Any, frame: int) -> dict:
    """The phantom's reference insertion points where they appear on acquired frame ``frame``."""
    from qperf.motion.fields import sample_field

    points = {}
    for name, p in truth.insertion_points_yx.items():
        shift = sample_field(truth.ref_to_moving_px[frame : frame + 1], np.array([p], dtype=float))[0, 0]
        points[name] = (float(p[0] + shift[0]), float(p[1] + shift[1]))
    return points


def truthPointTrack(truth: Any, name: str = "anterior") -> np.ndarray:
    """Positions ``(t, 2)`` of a truth insertion point on every acquired frame."""
    from qperf.motion.fields import sample_field

    p = np.array([truth.insertion_points_yx[name]], dtype=float)
    return p[0] + np.asarray(sample_field(truth.ref_to_moving_px, p), dtype=float)[:, 0, :]


def _markupsYx(node: Any, ijkToRas: np.ndarray) -> dict:
    return {name: np.asarray(p) for name, p in pointsFromNode(node, ijkToRas).items()}


def _checkLabelNodes(session: Any, truth: Any, what: str) -> int:
    s = session.slices[0]
    browser = session.browserNode
    ijkToRas = s.series.ijk_to_ras()
    labelsSequence = outputNodes(browser, REFERENCE_LABELS)[0]
    _check(labelsSequence.GetNumberOfDataNodes() == s.n_frames, f"{what}: one segmentation per frame")
    index = [float(labelsSequence.GetNthIndexValue(i)) for i in range(s.n_frames)]
    _check(np.array_equal(index, s.series.time_s), f"{what}: label index values are the frame times")
    frame = labelsSequence.GetNthDataNode(DRAWN_FRAME)
    _check(frame.IsA("vtkMRMLSegmentationNode"), f"{what}: label frames are segmentations")
    segmentation = frame.GetSegmentation()
    _check(segmentation.GetNumberOfSegments() == 3, f"{what}: three segments per frame")
    for spec in SEGMENTS:
        segment = segmentation.GetSegment(spec.segmentId)
        _check(segment is not None and segment.GetName() == spec.name, f"{what}: segment {spec.name!r}")
        _check(np.allclose(segment.GetColor(), spec.color), f"{what}: colour of {spec.name!r}")
        _check(segment.GetTerminology() == spec.terminology, f"{what}: terminology of {spec.name!r}")
    for t in (0, DRAWN_FRAME, s.n_frames - 1):
        back = labelsFromSegmentationNode(labelsSequence.GetNthDataNode(t), s.series.shape, ijkToRas)
        _check(np.array_equal(back, s.labels[t]), f"{what}: labels of frame {t} read back from the scene")
    labelsRef = outputNodes(browser, REFERENCE_LABELS_REF)[0]
    _check(
        np.array_equal(labelsFromSegmentationNode(labelsRef, s.series.shape, ijkToRas), s.labels_ref),
        f"{what}: reference-frame labels",
    )
    return 1


def _checkAgainstTruth(s: Any, truth: Any) -> dict:
    dynamic = range(s.series.n_pd_frames, s.n_frames)
    propagated = [dice(s.labels[t] == 2, truth.labels_moving[t] == 2) for t in dynamic]
    static = [dice(truth.labels_moving[DRAWN_FRAME] == 2, truth.labels_moving[t] == 2) for t in dynamic]
    _check(np.mean(propagated) > 0.78, f"myocardium Dice over frames {np.mean(propagated):.3f} <= 0.78")
    _check(np.mean(propagated) > np.mean(static) + 0.03, "propagated labels do not beat repeating the drawn frame")
    _check(np.min(propagated) > np.min(static), "the worst propagated frame is worse than repeating the drawn frame")
    track = truthPointTrack(truth)
    error_px = np.hypot(*(s.insertion_points_per_frame_yx["anterior"] - track).T)[s.series.n_pd_frames :]
    _check(float(error_px.mean()) < 1.0, f"insertion point tracked with {error_px.mean():.2f} px mean error")
    _check(float(error_px.max()) < 2.0, f"insertion point tracked with {error_px.max():.2f} px largest error")
    return {
        "myoDiceMean": float(np.mean(propagated)),
        "myoDiceStaticMean": float(np.mean(static)),
        "pointErrorMean_px": float(error_px.mean()),
    }


def _checkMarkups(session: Any, what: str) -> int:
    s = session.slices[0]
    ijkToRas = s.series.ijk_to_ras()
    points = outputNodes(session.browserNode, REFERENCE_POINTS)[0]
    vector = outputNodes(session.browserNode, REFERENCE_VECTOR)[0]
    _check(
        points.GetNumberOfDataNodes() == s.n_frames and vector.GetNumberOfDataNodes() == s.n_frames, f"{what}: items"
    )
    for t in (0, DRAWN_FRAME, s.n_frames - 1):
        node = points.GetNthDataNode(t)
        _check(node.IsA("vtkMRMLMarkupsFiducialNode"), f"{what}: insertion points are point lists")
        found = _markupsYx(node, ijkToRas)
        for name in ("anterior", "inferior"):
            _check(
                np.allclose(found[name], s.insertion_points_per_frame_yx[name][t], atol=1e-3), f"{what}: {name} at {t}"
            )
        line = vector.GetNthDataNode(t)
        _check(line.IsA("vtkMRMLMarkupsLineNode") and line.GetNumberOfControlPoints() == 2, f"{what}: vector at {t}")
        ends = _markupsYx(line, ijkToRas)
        _check(np.allclose(ends["LV centre"], lvCentreYx(s.labels[t]), atol=1e-3), f"{what}: vector start at {t}")
        _check(np.allclose(ends["anterior"], found["anterior"], atol=1e-3), f"{what}: vector end at {t}")
    referenceNode = outputNodes(session.browserNode, REFERENCE_POINTS_REF)[0]
    reference = _markupsYx(referenceNode, ijkToRas)
    _check(np.allclose(reference["anterior"], s.insertion_points_yx["anterior"], atol=1e-3), f"{what}: reference point")
    ras = [0.0, 0.0, 0.0]
    referenceNode.GetNthControlPointPosition(0, ras)
    y, x = s.insertion_points_yx["anterior"]
    lps = s.series.geometry.pixel_to_lps(y, x, s.series.spacing_mm)
    _check(np.allclose(ras, np.asarray(lps) * [-1.0, -1.0, 1.0], atol=1e-3), f"{what}: point position in the patient")
    return 1


def _checkSectors(session: Any, truth: Any) -> float:
    from qperf.aha import SEGMENTS as AHA
    from qperf.motion.fields import warp_labels

    sectors = recomputeSectors(session)
    s = session.slices[0]
    key = s.motion.key_frame
    truthOnKey = np.asarray(warp_labels(truth.aha_segments, truth.moving_to_ref_px[key]))
    both = (sectors[0].segments > 0) & (truthOnKey > 0)
    agreement = float((sectors[0].segments[both] == truthOnKey[both]).mean())
    _check(agreement > 0.85, f"AHA segments agree with the truth on {agreement:.1%} of the myocardium")
    node = outputNodes(session.browserNode, REFERENCE_SECTORS)[0]
    _check(node.GetSegmentation().GetNumberOfSegments() == 16, "one sector segment per AHA segment")
    _check(node.GetSegmentation().GetSegment("AHA7").GetName() == f"7 {AHA[7].name}", "sector segment names")
    _check(not node.GetDisplayNode().GetVisibility2DFill(), "sectors are drawn as contours")
    return agreement


def _checkExport(session: Any) -> int:
    from qperf.segmentation.cases import read_cases

    with tempfile.TemporaryDirectory(prefix="qperf-groundtruth-") as folder:
        written = exportGroundTruth(session.slices, folder, studyName="phantom 4")
        cases = read_cases(folder)
        _check([p.name for p in written] == ["phantom_4_slice1"], f"case folders {written}")
        _check(len(cases) == 1, "the exported case reads as one case")
        s = session.slices[0]
        _check(np.array_equal(cases[0].series.data, s.series.data), "exported series is the acquired series")
        _check(np.array_equal(cases[0].labels, s.labels), "exported labels are the labels of every frame")
        _check(cases[0].patient == "phantom 4", "the study is the case's patient")
        exported = cases[0].points_yx["anterior"]
        _check(np.allclose(exported, s.insertion_points_per_frame_yx["anterior"][0]), "exported insertion point")
    return 1


def _checkCancel(scene: Any, study: Any, options: Any) -> int:
    token = CancelToken()
    before = scene.GetNumberOfNodes()
    token.cancel()
    try:
        segmentStudy(study, options, cancel=token)
    except AnalysisCancelled:
        pass
    else:
        raise AssertionError("a cancelled run finished")
    _check(scene.GetNumberOfNodes() == before, "a cancelled run added nodes")
    return 1


def _checkEdits(session: Any) -> int:
    s = session.slices[0]
    browser = session.browserNode
    ijkToRas = s.series.ijk_to_ras()
    browser.SetSelectedItemNumber(EDITED_FRAME)
    _check(currentFrame(session, 0) == EDITED_FRAME, "the browser's current frame")
    edited = s.labels[EDITED_FRAME].copy()
    edited[edited == 3] = 0
    proxyLabels = browser.GetProxyNode(outputNodes(browser, REFERENCE_LABELS)[0])
    setSegmentationLabels(proxyLabels, edited, ijkToRas)
    proxyPoints = browser.GetProxyNode(outputNodes(browser, REFERENCE_POINTS)[0])
    moved = s.insertion_points_per_frame_yx["anterior"][EDITED_FRAME] + np.array([0.0, 2.0])
    proxyPoints.SetNthControlPointPosition(0, *(ijkToRas @ np.array([moved[1], moved[0], 0.0, 1.0]))[:3])
    updated = applyCurrentFrameEdits(session, 0)
    _check(np.array_equal(updated.labels[EDITED_FRAME], edited), "the edited frame keeps the edit")
    _check(not (updated.labels_ref == 3).any() and not (updated.labels == 3).any(), "the edit reached every frame")
    sequence = outputNodes(browser, REFERENCE_LABELS)[0]
    other = labelsFromSegmentationNode(sequence.GetNthDataNode(3), s.series.shape, ijkToRas)
    _check(not (other == 3).any(), "the edit reached the label sequence")
    _check(
        np.allclose(updated.insertion_points_per_frame_yx["anterior"][EDITED_FRAME], moved, atol=0.05), "moved point"
    )
    shift = updated.insertion_points_per_frame_yx["anterior"] - s.insertion_points_per_frame_yx["anterior"]
    _check(np.allclose(np.median(shift, axis=0), [0.0, 2.0], atol=0.3), f"the move reached every frame {shift[0]}")
    stored = _markupsYx(outputNodes(browser, REFERENCE_POINTS)[0].GetNthDataNode(3), ijkToRas)["anterior"]
    _check(
        np.allclose(stored, updated.insertion_points_per_frame_yx["anterior"][3], atol=1e-3), "moved point in sequence"
    )
    return 1


def runWorkflowSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Run the segmentation workflow on a phantom in ``scene``; see the module docstring.

    Returns
    -------
    dict
        ``phantom``, ``nodes`` (StudyNodes), ``session``, ``progress`` (the reported
        fractions), the truth comparisons (``myoDiceMean``, ``myoDiceStaticMean``,
        ``pointErrorMean_px``, ``sectorAgreement``) and ``checks``.
    """
    from qperf import phantom
    from qperf.workflow import AnalysisOptions

    scene = getScene(scene)
    log = log or (lambda message: None)
    ps = phantom.generate_study(**PHANTOM)
    truth = ps.truth.slices[0]
    nodes = loadStudy(ps.study, scene)
    options = AnalysisOptions(
        motion="on",
        labels=[truth.labels_moving[DRAWN_FRAME]],
        insertion_points_yx=[truthPointsOnFrame(truth, DRAWN_FRAME)],
        label_frames=[DRAWN_FRAME],
    )
    checks = _checkCancel(scene, ps.study, options)
    fractions: list = []
    segmentation = segmentStudy(ps.study, options, progress=lambda f, m: fractions.append(f))
    slices = segmentation.slices
    _check(fractions[-1] == 1.0 and all(b >= a for a, b in zip(fractions, fractions[1:])), "progress runs 0 to 1")
    session = createSession(nodes.browserNode, segmentation)
    log(f"Motion-corrected and labelled {ps.study.n_slices} slice(s); outputs under {nodes.browserNode.GetName()!r}")
    browser = nodes.browserNode
    for role in PER_SLICE_REFERENCES:
        _check(len(outputNodes(browser, role)) == 1, f"one {role} node per slice")
    corrected = outputNodes(browser, REFERENCE_CORRECTED)[0]
    for role in (REFERENCE_CORRECTED, REFERENCE_LABELS, REFERENCE_POINTS, REFERENCE_VECTOR):
        sequence = outputNodes(browser, role)[0]
        _check(browser.IsSynchronizedSequenceNode(sequence, True), f"{role} plays in the study browser")
        _check(browser.GetProxyNode(sequence) is not None, f"{role} has a proxy node")
    _check(np.array_equal(seriesFromSequenceNode(corrected).data, slices[0].corrected.data), "corrected series")
    checks += _checkLabelNodes(session, truth, "labels") + _checkMarkups(session, "markups")
    measured = _checkAgainstTruth(slices[0], truth)
    log(
        f"Myocardium Dice over frames {measured['myoDiceMean']:.3f} (drawn frame repeated: "
        f"{measured['myoDiceStaticMean']:.3f}); insertion point error {measured['pointErrorMean_px']:.2f} px"
    )
    measured["sectorAgreement"] = _checkSectors(session, truth)
    checks += 2 + _checkExport(session)
    checks += _checkEdits(session)
    checks += _checkLabelNodes(session, truth, "edited labels") + _checkMarkups(session, "edited markups")
    log(f"AHA sectors agree with the truth on {measured['sectorAgreement']:.1%} of the myocardium")
    return {"phantom": ps, "nodes": nodes, "session": session, "progress": fractions, "checks": checks, **measured}
