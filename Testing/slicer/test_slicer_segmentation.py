"""QPerfSeg logic against the real MRML of slicer-core: labels as segmentations, the CNN paths, edits, export."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
import vtk  # noqa: E402
from QPerfCommonLib.labels import (  # noqa: E402
    SEGMENTS,
    labelmapNode,
    labelsFromSegmentationNode,
    labelsFromSegmentationSequence,
    segmentationNodeFromLabels,
    segmentationSequenceFromLabels,
    segmentationsLogic,
    setSegmentationLabels,
)
from QPerfCommonLib.outputs import PER_SLICE_REFERENCES, outputNodes  # noqa: E402
from QPerfSegLib import SegmentationLogic  # noqa: E402
from QPerfSegLib.groundtruth import exportGroundTruth  # noqa: E402
from QPerfSegLib.segment import runSegmentCommand, segmentStudy  # noqa: E402
from QPerfSegLib.session import createSession  # noqa: E402
from QPerfSegLib.workflowtest import dice  # noqa: E402

from qperf.errors import NotAvailableError, OutputExistsError, ValidationError  # noqa: E402
from qperf.progress import AnalysisCancelled, CancelToken  # noqa: E402
from qperf.types import ras_to_yx as rasToYx  # noqa: E402
from qperf.types import yx_to_ras as yxToRas  # noqa: E402
from qperf.workflow import AnalysisOptions  # noqa: E402

IJK_TO_RAS = np.array([[0.0, 1.5, 0.2, 10.0], [-1.7, 0.0, 0.1, 20.0], [0.0, 0.0, 8.0, -30.0], [0.0, 0.0, 0.0, 1.0]])


def ringLabels(shape=(20, 24)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - 10, xx - 11)
    labels = np.zeros(shape, np.uint8)
    labels[r < 4] = 1
    labels[(r >= 4) & (r < 6.5)] = 2
    labels[(np.hypot(yy - 10, xx - 19) < 3.5) & (labels == 0)] = 3
    return labels


@pytest.fixture(scope="module")
def phantomStudy():
    from qperf import phantom

    return phantom.generate_study(seed=4, n_slices=1, n_frames=30, shape=(48, 48), motion=False)


def test_labels_become_three_segments_with_terminology_colours_and_geometry(scene):
    labels = ringLabels()
    node = segmentationNodeFromLabels(labels, IJK_TO_RAS, scene, name="ring")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(3)] == ["LVBloodPool", "Myocardium", "RVBloodPool"]
    names = [segmentation.GetNthSegment(i).GetName() for i in range(3)]
    assert names == ["LV blood pool", "Myocardium", "RV blood pool"]
    terminology = [segmentation.GetNthSegment(i).GetTerminology() for i in range(3)]
    assert "SCT^87878005^Left ventricle" in terminology[0] and "SCT^123037004^Anatomical Structure" in terminology[0]
    assert "SCT^74281007^Myocardium" in terminology[1] and "SCT^53085002^Right ventricle" in terminology[2]
    assert all(t.count("~") == 6 for t in terminology), "context~category~type~modifier~anatomic context~region~mod"
    for spec in SEGMENTS:
        assert np.allclose(segmentation.GetSegment(spec.segmentId).GetColor(), spec.color)
        image = segmentation.GetSegment(spec.segmentId).GetRepresentation("Binary labelmap")
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(matrix), IJK_TO_RAS, atol=1e-9)
        assert image.GetExtent()[4:] == (0, 0), "one voxel thick: the slice"
    np.testing.assert_array_equal(labelsFromSegmentationNode(node, labels.shape, IJK_TO_RAS), labels)


def test_reading_and_writing_labels_registers_the_converters_once(slicer_core):
    factory = slicer_core.vtkSegmentationConverterFactory.GetInstance()
    labels = ringLabels()
    counts = []
    for _ in range(3):
        scene = slicer_core.vtkMRMLScene()
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        setSegmentationLabels(node, labels, IJK_TO_RAS)
        np.testing.assert_array_equal(labelsFromSegmentationNode(node, labels.shape, IJK_TO_RAS), labels)
        counts.append(len(factory.GetConverterRules()))
    assert counts[0] == counts[-1] > 0  # each new logic would have registered them again


def test_a_segmentation_drawn_elsewhere_is_read_by_segment_names(scene):
    labels = ringLabels()
    logic = segmentationsLogic()  # the converters registered, as Slicer does at start-up
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn elsewhere")
    ids = vtk.vtkStringArray()
    for segmentId, name in (
        ("Segment_1", "LV BLOOD POOL"),
        ("Segment_2", "myocardium"),
        ("Segment_3", "RV blood pool"),
    ):
        node.GetSegmentation().AddEmptySegment(segmentId, name, [0.5, 0.5, 0.5])
        ids.InsertNextValue(segmentId)
    assert logic.ImportLabelmapToSegmentationNode(labelmapNode(labels, IJK_TO_RAS), node, ids)
    np.testing.assert_array_equal(labelsFromSegmentationNode(node, labels.shape, IJK_TO_RAS), labels)
    other = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "unrelated")
    other.GetSegmentation().AddEmptySegment("x", "Liver", [1, 0, 0])
    with pytest.raises(ValidationError, match="expected segments LV blood pool, Myocardium, RV blood pool"):
        labelsFromSegmentationNode(other, labels.shape, IJK_TO_RAS)


@pytest.mark.parametrize(("bad", "message"), [(np.full((20, 24), 4), "values 0 to 3"), (np.zeros((2, 20, 24)), "2-D")])
def test_label_maps_out_of_range_are_refused(scene, bad, message):
    with pytest.raises(ValidationError, match=message):
        segmentationNodeFromLabels(bad.astype(np.int16), IJK_TO_RAS, scene)


def test_segmentation_sequence_has_the_frame_times_as_index_and_one_segmentation_per_frame(scene):
    labels = np.stack([np.roll(ringLabels(), shift, axis=1) for shift in range(4)])
    time_s = np.array([0.5, 1.31, 2.07, 2.9])
    sequence = segmentationSequenceFromLabels(labels, time_s, IJK_TO_RAS, scene, name="moving ring")
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "s")
    assert sequence.GetIndexType() == slicer.vtkMRMLSequenceNode.NumericIndex
    assert [float(sequence.GetNthIndexValue(i)) for i in range(4)] == time_s.tolist()
    assert sequence.GetNthDataNode(2).IsA("vtkMRMLSegmentationNode")
    np.testing.assert_array_equal(labelsFromSegmentationSequence(sequence, (20, 24), IJK_TO_RAS), labels)
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0, "no frame node left behind"
    with pytest.raises(ValidationError, match="expected 3 frames"):
        segmentationSequenceFromLabels(labels, time_s[:3], IJK_TO_RAS, scene)


def test_pixel_and_ras_coordinates_invert_each_other():
    ras = yxToRas(IJK_TO_RAS, (3.25, 7.5))
    assert np.allclose(rasToYx(IJK_TO_RAS, ras), (3.25, 7.5))


def test_cnn_in_process_and_in_a_separate_process_give_the_same_labels(phantomStudy):
    truth = phantomStudy.truth.slices[0]
    messages = []
    off = AnalysisOptions(motion="off")
    inProcess = segmentStudy(phantomStudy.study, off, segmenter="inprocess").slices[0]
    separate = segmentStudy(
        phantomStudy.study, off, segmenter="subprocess", progress=lambda f, m: messages.append(m)
    ).slices[0]
    assert (inProcess.source, separate.source) == ("cnn", "cnn-subprocess")
    np.testing.assert_array_equal(separate.labels_ref, inProcess.labels_ref)
    np.testing.assert_array_equal(separate.labels, inProcess.labels)
    assert separate.insertion_points_yx == inProcess.insertion_points_yx and "anterior" in separate.insertion_points_yx
    assert any("CNN running" in m for m in messages), "the GUI is not called while the process runs"
    assert dice(separate.labels_ref == 2, truth.labels_ref == 2) > 0.5
    assert separate.qc, "the quality-control report did not come back"


def test_separate_process_failure_quotes_its_reason(phantomStudy, tmp_path):
    with pytest.raises(NotAvailableError, match="segmentation process failed.*model"):
        runSegmentCommand(phantomStudy.study.slices[0], AnalysisOptions(segmenter=tmp_path / "missing.pt"))


def test_cancel_terminates_the_separate_process(phantomStudy):
    token = CancelToken()
    calls = []

    def heartbeat():
        calls.append(1)
        if len(calls) == 2:
            token.cancel()

    with pytest.raises(AnalysisCancelled):
        runSegmentCommand(phantomStudy.study.slices[0], cancel=token, heartbeat=heartbeat, pollInterval_s=0.05)
    assert len(calls) == 2


def test_supplied_labels_are_checked_against_the_study(phantomStudy):
    study = phantomStudy.study
    truth = phantomStudy.truth.slices[0]
    with pytest.raises(ValidationError, match="one label map per slice"):
        segmentStudy(study, AnalysisOptions(labels=[truth.labels_ref, truth.labels_ref], insertion_points_yx=[{}, {}]))
    with pytest.raises(ValidationError, match="insertion_points_yx"):
        segmentStudy(study, AnalysisOptions(labels=[truth.labels_ref]))
    with pytest.raises(ValidationError, match="expected shape"):
        segmentStudy(study, AnalysisOptions(motion="off", labels=[truth.labels_ref[:10]], insertion_points_yx=[{}]))
    with pytest.raises(ValidationError, match="segmenter"):
        segmentStudy(study, segmenter="gpu")


@pytest.mark.slow
def test_a_second_run_replaces_the_outputs_under_the_browser(scene, phantomStudy):
    logic = SegmentationLogic(scene)
    nodes = logic.loadStudy(phantomStudy.study)
    truth = phantomStudy.truth.slices[0]
    supplied = AnalysisOptions(motion="off", labels=[truth.labels_ref], insertion_points_yx=[truth.insertion_points_yx])
    logic.segment(nodes.browserNode, supplied)
    count = scene.GetNumberOfNodes()
    logic.segment(nodes.browserNode, supplied)
    assert scene.GetNumberOfNodes() == count
    for role in PER_SLICE_REFERENCES:
        assert len(outputNodes(nodes.browserNode, role)) == 1, role
    np.testing.assert_array_equal(logic.labelsArray(nodes.browserNode, 0), np.repeat(truth.labels_ref[None], 30, 0))
    segmentation, volume = logic.editingNodes(nodes.browserNode, 0)
    assert segmentation.IsA("vtkMRMLSegmentationNode") and volume.IsA("vtkMRMLScalarVolumeNode")
    assert "Segmentation:" in logic.describe(nodes.browserNode)


def test_logic_asks_for_a_segmentation_before_editing(scene, phantomStudy):
    logic = SegmentationLogic(scene)
    nodes = logic.loadStudy(phantomStudy.study)
    with pytest.raises(ValidationError, match="has not been segmented yet"):
        logic.recompute(nodes.browserNode)


def _truthSession(scene, phantomStudy):
    """A session of the phantom slice segmented with its true labels and insertion points."""
    truth = phantomStudy.truth.slices[0]
    slices = segmentStudy(
        phantomStudy.study,
        AnalysisOptions(motion="off", labels=[truth.labels_ref], insertion_points_yx=[truth.insertion_points_yx]),
    ).slices
    return createSession(SegmentationLogic(scene).loadStudy(phantomStudy.study).browserNode, slices)


def test_ground_truth_export_keeps_existing_cases_unless_asked(scene, phantomStudy, tmp_path):
    session = _truthSession(scene, phantomStudy)
    first = exportGroundTruth(session.slices, tmp_path, "study A")
    assert sorted(p.name for p in first[0].iterdir()) == [
        "case.json",
        "insertion.json",
        "labels.nrrd",
        "series.seq.nrrd",
    ]
    with pytest.raises(OutputExistsError):
        exportGroundTruth(session.slices, tmp_path, "study A")
    assert exportGroundTruth(session.slices, tmp_path, "study A", overwrite=True) == first
    empty = [session.slices[0].with_labels(np.zeros_like(session.slices[0].labels_ref))]
    with pytest.raises(ValidationError, match="myocardium"):
        exportGroundTruth(empty, tmp_path, "study B")


def test_exported_case_is_the_case_folder_format(scene, phantomStudy, tmp_path):
    """Every frame's labels (after an edit) on the acquired series, as qperf.segmentation.cases reads them."""
    from qperf.segmentation.cases import read_cases

    session = _truthSession(scene, phantomStudy)
    (written,) = exportGroundTruth(session.slices, tmp_path, "patient 7")
    (case,) = read_cases(tmp_path)
    s = session.slices[0]
    assert case.name == written.name == "patient_7_slice1" and case.patient == "patient 7"
    assert case.labels.shape == (s.series.n_frames, *s.series.shape)
    np.testing.assert_array_equal(case.labels, s.labels)
    np.testing.assert_array_equal(case.series.data, s.series.data)
    np.testing.assert_allclose(case.series.time_s, s.series.time_s)
    assert case.drawn == {1, 2, 3} and case.labelled_frames == tuple(range(s.series.n_frames))
    np.testing.assert_allclose(case.points_yx["anterior"], s.insertion_points_per_frame_yx["anterior"][0])


@pytest.mark.slow
def test_exported_cases_train_and_evaluate_without_edits(scene, phantomStudy, tmp_path):
    """Cases exported from the scene fine-tune a model (``qperf train --real``) and are the
    manual side of ``qperf evaluate``, as written."""
    import json

    from qperf.cli import main as cliMain
    from qperf.segmentation.finetune import fine_tune
    from qperf.segmentation.train import TrainConfig

    session = _truthSession(scene, phantomStudy)
    cases = tmp_path / "cases"
    for patient in ("patient A", "patient B"):
        exportGroundTruth(session.slices, cases, patient)
    config = TrainConfig(max_steps=2, batch_size=2, pool_size=2, n_val_slices=1, val_every=2, threads=1)
    card = json.loads(fine_tune(cases, tmp_path / "run", max_minutes=10, config=config, log=lambda s: None).read_text())
    assert len(card["training"]["split"]["held_out"]) == 1 and len(card["training"]["split"]["training"]) == 1
    assert card["metrics"]["held_out_after"]["dice_myo"] is not None

    series = cases / "patient_A_slice1" / "series.seq.nrrd"
    predicted = tmp_path / "predicted" / "patient_A_slice1"
    predicted.parent.mkdir()
    assert cliMain(["segment", str(series), "--out", str(predicted), "--model", str(tmp_path / "run"), "-q"]) == 0
    out = tmp_path / "evaluation"
    assert cliMain(["evaluate", str(tmp_path / "predicted"), str(cases), "--out", str(out), "-q"]) == 0
    rows = [r for r in json.loads((out / "evaluation.json").read_text())["rows"] if r["class"] == "lv_myocardium"]
    assert [r["case"] for r in rows] == ["patient_A_slice1"] and rows[0]["n_frames"] == session.slices[0].n_frames
    assert 0.0 <= rows[0]["dice"] <= 1.0


@pytest.mark.slow
def test_a_browser_made_elsewhere_is_segmented_and_segmented_again(scene, phantomStudy):
    """Sequences played by a plain browser (as Slicer's DICOM module makes them) are the slices."""
    from QPerfCommonLib.sequences import addSequenceToBrowser, createBrowserNode, sequenceNodeFromSeries

    series = phantomStudy.study.slices[0]
    sequence = sequenceNodeFromSeries(series, scene, name="from DICOM")
    for attribute in ("qperf_role", "qperf_units", "qperf_n_pd_frames", "qperf_metadata"):
        sequence.RemoveAttribute(attribute)
    browser = createBrowserNode(scene, "DICOM browser")
    addSequenceToBrowser(browser, sequence, referenceRole=None)
    truth = phantomStudy.truth.slices[0]
    logic = SegmentationLogic(scene)
    for _ in range(2):
        session = logic.segment(
            browser,
            AnalysisOptions(motion="off", labels=[truth.labels_ref], insertion_points_yx=[truth.insertion_points_yx]),
        )
        assert len(session.slices) == 1
    np.testing.assert_array_equal(logic.correctedSeries(browser, 0).data, series.data)


@pytest.mark.slow
def test_a_saved_scene_is_corrected_again_after_reopening(scene, tmp_path):
    """Motion fields, labels and points come back from the saved scene; an edit still reaches every frame."""
    from QPerfCommonLib.scene import openScene, saveScene

    from qperf import phantom

    ps = phantom.generate_study(seed=4, n_slices=1, n_frames=30, shape=(48, 48))
    truth = ps.truth.slices[0]
    logic = SegmentationLogic(scene)
    browser = logic.loadStudy(ps.study).browserNode
    options = AnalysisOptions(
        motion="on",
        labels=[truth.labels_moving[15]],
        insertion_points_yx=[{"anterior": (20.0, 20.0)}],
        label_frames=[15],
    )
    original = logic.segment(browser, options).slices[0]
    mrml = saveScene(scene, tmp_path)

    reopened = openScene(mrml)
    again = SegmentationLogic(reopened)
    browserAgain = reopened.GetNodeByID(browser.GetID())
    assert again.hasSegmentation(browserAgain) and not again.sessions
    restored = again.session(browserAgain).slices[0]
    np.testing.assert_array_equal(restored.labels_ref, original.labels_ref)
    np.testing.assert_array_equal(restored.labels, original.labels)
    np.testing.assert_array_equal(restored.motion.forward_px, original.motion.forward_px)
    np.testing.assert_array_equal(restored.motion.inverse_px, original.motion.inverse_px)
    assert restored.motion.key_frame == original.motion.key_frame
    np.testing.assert_allclose(
        restored.insertion_points_yx["anterior"], original.insertion_points_yx["anterior"], atol=1e-4
    )
    np.testing.assert_allclose(
        restored.insertion_points_per_frame_yx["anterior"],
        original.insertion_points_per_frame_yx["anterior"],
        atol=1e-4,
    )
    edited = restored.labels[22].copy()
    edited[edited == 3] = 0
    updated = again.applyFrameEdit(browserAgain, 0, 22, edited)
    assert not (updated.labels == 3).any()
