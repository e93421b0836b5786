"""The QPerfCommon self-test: a study and its segmentation through the scene and back, exactly.

:func:`runLoadSelfTest`: a generated two-slice study written with ``qperf.io.write_study``,
loaded into the scene with :func:`~.study.loadStudy`, its nodes checked (types, names, time
index, geometry, proxies) and read back from the scene, every array compared with the original.
:func:`runSegmentationSelfTest`: a segmentation of that study (labels drawn on the slices, a
motion correction with known fields) added under the study browser with
:func:`~.segmentation.addSegmentationOutputs` and read back with
:func:`~.segmentation.segmentationFromScene`, which both modules start from: voxels, labels,
fields and points must come back unchanged. :func:`makeTestStudy` and :func:`checkSeriesEqual`
serve the other modules' self-tests too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import slicer
import vtk

from qperf.types import AifCurve, PerfusionSeries, PerfusionStudy, SliceGeometry

from .scene import getScene
from .sequences import seriesFromSequenceNode
from .study import loadStudy, studyFromBrowserNode

LogCallback = Callable[[str], None]


def _gammaVariate(
    time_s: np.ndarray, onset_s: float, peak: float, alpha: float = 2.5, beta_s: float = 1.8
) -> np.ndarray:
    t = np.clip(time_s - onset_s, 0.0, None)
    shape = (t / (alpha * beta_s)) ** alpha * np.exp(alpha - t / beta_s)
    return peak * shape


def makeTestStudy(nFrames: int = 24, shape: tuple = (20, 24), seed: int = 7) -> PerfusionStudy:
    """A small two-slice study with known content for self-tests.

    Each slice (``nFrames`` frames of ``shape`` = (y, x) pixels, 2 proton-density frames) shows
    a bright blood pool inside a myocardial ring that enhance after the AIF; the frames are
    unevenly spaced (heart-rate variation) and the slices are oblique, with different times.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot(yy - ny / 2.0, xx - nx / 2.0)
    blood = radius < 0.18 * min(ny, nx)
    ring = (radius >= 0.18 * min(ny, nx)) & (radius < 0.32 * min(ny, nx))
    interval_s = 0.8 + 0.2 * rng.random(nFrames)
    aifTime_s = np.arange(0.0, 1.0 + interval_s.sum() + 2.0, 0.5)
    aif = AifCurve(values=_gammaVariate(aifTime_s, 6.0, 6.0), time_s=aifTime_s, units="gd_mmol_l", kind="blood")
    slices = []
    for index in range(2):
        time_s = 1.0 + 0.3 * index + np.concatenate([[0.0], np.cumsum(interval_s[:-1])])
        bloodCurve = 400.0 * _gammaVariate(time_s, 6.0, 1.0)
        myoCurve = 80.0 * _gammaVariate(time_s, 7.0, 1.0, beta_s=3.0)
        data = (
            50.0
            + blood[None] * bloodCurve[:, None, None]
            + ring[None] * myoCurve[:, None, None]
            + rng.normal(0.0, 2.0, (nFrames, ny, nx))
        )
        data[:2] = 900.0 + rng.normal(0.0, 5.0, (2, ny, nx))  # proton-density frames
        geometry = SliceGeometry(
            origin_mm=(-40.0 + 3.0 * index, 25.0, 60.0 - 10.0 * index),
            x_direction=(0.8, 0.36, -0.48),
            y_direction=(0.0, 0.8, 0.6),
            slice_thickness_mm=8.0,
        )
        slices.append(
            PerfusionSeries(
                data=data.astype(np.float32),
                time_s=time_s,
                spacing_mm=(1.9, 1.7),
                geometry=geometry,
                n_pd_frames=2,
                slice_position_mm=20.0 - 10.0 * index,
                name=f"slice {index + 1}",
                metadata={"field_strength_t": 3.0, "readout": "flash"},
            )
        )
    return PerfusionStudy(slices, aif=aif, condition="rest", hematocrit=0.45, name="QPerf self-test")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def checkSeriesEqual(original: PerfusionSeries, restored: PerfusionSeries, what: str) -> None:
    """Raise AssertionError unless ``restored`` holds the same series as ``original``."""
    _check(restored.data.shape == original.data.shape, f"{what}: shape {restored.data.shape} != {original.data.shape}")
    _check(np.array_equal(restored.data, original.data), f"{what}: voxel values differ")
    _check(np.array_equal(restored.time_s, original.time_s), f"{what}: frame times differ")
    _check(np.allclose(restored.spacing_mm, original.spacing_mm, atol=1e-9), f"{what}: spacing differs")
    _check(np.allclose(restored.ijk_to_ras(), original.ijk_to_ras(), atol=1e-6), f"{what}: IJK-to-RAS geometry differs")
    _check((restored.geometry is None) == (original.geometry is None), f"{what}: geometry presence differs")
    _check(restored.n_pd_frames == original.n_pd_frames, f"{what}: PD frames {restored.n_pd_frames}")
    _check(restored.units == original.units, f"{what}: units {restored.units!r}")
    _check(restored.slice_position_mm == original.slice_position_mm, f"{what}: slice position differs")


def runLoadSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Load a generated study into ``scene`` and read it back; check every node and array.

    Returns
    -------
    dict
        ``{"study": PerfusionStudy, "nodes": StudyNodes, "checks": int}``.

    Raises
    ------
    AssertionError
        On the first check that fails, naming it.
    """
    scene = getScene(scene)
    log = log or (lambda message: None)
    study = makeTestStudy()
    checks = 0
    from qperf import io

    with tempfile.TemporaryDirectory(prefix="qperf-selftest-") as folder:
        manifest = io.write_study(study, Path(folder) / "study")
        log(f"Wrote the test study to {manifest}")
        nodes = loadStudy(manifest, scene)
    log(f"Loaded {len(nodes.sliceSequenceNodes)} slice sequence(s) under {nodes.browserNode.GetName()!r}")

    _check(len(nodes.sliceSequenceNodes) == study.n_slices, "one sequence node per slice")
    for original, sequenceNode in zip(study.slices, nodes.sliceSequenceNodes):
        what = sequenceNode.GetName()
        _check(sequenceNode.IsA("vtkMRMLSequenceNode"), f"{what}: not a sequence node")
        _check(sequenceNode.GetIndexName() == "time" and sequenceNode.GetIndexUnit() == "s", f"{what}: time index")
        _check(sequenceNode.GetNumberOfDataNodes() == original.n_frames, f"{what}: frame count")
        indexValues = [float(sequenceNode.GetNthIndexValue(i)) for i in range(original.n_frames)]
        _check(np.array_equal(indexValues, original.time_s), f"{what}: index values are not the frame times")
        frame = sequenceNode.GetNthDataNode(original.n_frames // 2)
        _check(frame.IsA("vtkMRMLScalarVolumeNode"), f"{what}: frames are not scalar volumes")
        matrix = vtk.vtkMatrix4x4()
        frame.GetIJKToRASMatrix(matrix)
        _check(
            np.allclose(slicer.util.arrayFromVTKMatrix(matrix), original.ijk_to_ras(), atol=1e-6),
            f"{what}: IJK-to-RAS matrix",
        )
        _check(nodes.browserNode.IsSynchronizedSequenceNode(sequenceNode, True), f"{what}: not in the browser")
        proxy = nodes.browserNode.GetProxyNode(sequenceNode)
        _check(proxy is not None and proxy.IsA("vtkMRMLScalarVolumeNode"), f"{what}: no proxy volume")
        checkSeriesEqual(original, seriesFromSequenceNode(sequenceNode), what)
        checks += 1
    aif = study.aif
    assert aif is not None
    _check(nodes.aifTableNode is not None and nodes.aifTableNode.GetNumberOfRows() == aif.n_samples, "AIF table")

    restored = studyFromBrowserNode(nodes.browserNode)
    for i, (original, back) in enumerate(zip(study.slices, restored.slices)):
        checkSeriesEqual(original, back, f"study slice {i + 1}")
    _check(restored.aif is not None, "the AIF curve did not come back")
    assert restored.aif is not None
    _check(np.array_equal(restored.aif.time_s, aif.time_s), "AIF times")
    _check(np.allclose(restored.aif.values, aif.values, rtol=1e-9, atol=1e-12), "AIF values")
    _check(restored.condition == study.condition and restored.hematocrit == study.hematocrit, "study fields")
    checks += 1
    log(f"Study loading checked ({checks} groups of checks)")
    return {"study": study, "nodes": nodes, "checks": checks}


def _ringLabels(shape: tuple) -> np.ndarray:
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot(yy - ny / 2.0, xx - nx / 2.0)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[radius < 0.18 * min(ny, nx)] = 1
    labels[(radius >= 0.18 * min(ny, nx)) & (radius < 0.32 * min(ny, nx))] = 2
    labels[(np.hypot(yy - ny / 2.0, xx - 0.85 * nx) < 0.12 * min(ny, nx)) & (labels == 0)] = 3
    return labels


def _testSegmentation(study: PerfusionStudy) -> Any:
    """A segmentation of ``study``: slice 1 motion-corrected with known fields, slice 2 not corrected."""
    from qperf.motion import MotionResult, labels_over_frames, point_over_frames
    from qperf.workflow import Segmentation, SliceSegmentation

    slices = []
    for i, series in enumerate(study.slices):
        labelsRef = _ringLabels(series.shape)
        motion = None
        if i == 0:
            t, (ny, nx) = series.n_frames, series.shape
            shift = np.zeros((t, 2, ny, nx), dtype=np.float32)
            shift[:, 0] = (0.5 * np.sin(np.arange(t)))[:, None, None].astype(np.float32)
            corrected = series.replace(data=series.data[:, ::-1].copy(), metadata={"motion_corrected": True})
            motion = MotionResult(corrected, 3, shift, -shift, {"score": 0.9}, {"total": 1.0}, (1, ny - 1, 2, nx - 2))
        points = {"anterior": (4.25, 15.5), "inferior": (14.0, 15.75)}
        slices.append(
            SliceSegmentation(
                series=series,
                corrected=motion.corrected if motion is not None else series,
                motion=motion,
                labels_ref=labelsRef,
                labels=labels_over_frames(labelsRef, motion, series.n_frames),
                insertion_points_yx=points,
                insertion_points_per_frame_yx={
                    k: point_over_frames(p, motion, series.n_frames) for k, p in points.items()
                },
                source="supplied",
                qc={"motion": {"mode": "on", "corrected": motion is not None}},
            )
        )
    return Segmentation(tuple(slices))


def runSegmentationSelfTest(scene: Any, browserNode: Any, study: PerfusionStudy, log: LogCallback) -> int:
    """Add a segmentation of ``study`` under ``browserNode`` and read it back; returns the checks made."""
    from .segmentation import addSegmentationOutputs, segmentationFromScene

    original = _testSegmentation(study)
    addSegmentationOutputs(browserNode, original)
    restored = segmentationFromScene(browserNode)
    _check(len(restored.slices) == len(original.slices), "one segmented slice per slice")
    for i, (a, b) in enumerate(zip(original.slices, restored.slices)):
        what = f"segmented slice {i + 1}"
        checkSeriesEqual(a.corrected, b.corrected, f"{what}: corrected series")
        _check(np.array_equal(a.labels_ref, b.labels_ref), f"{what}: reference labels")
        _check(np.array_equal(a.labels, b.labels), f"{what}: labels over the frames")
        for name, point in a.insertion_points_yx.items():
            _check(np.allclose(b.insertion_points_yx[name], point, atol=1e-9), f"{what}: {name} point")
            track = b.insertion_points_per_frame_yx[name]
            _check(np.allclose(track, a.insertion_points_per_frame_yx[name], atol=1e-6), f"{what}: {name} track")
        _check((a.motion is None) == (b.motion is None), f"{what}: motion correction present")
        if a.motion is not None:
            _check(np.array_equal(a.motion.forward_px, b.motion.forward_px), f"{what}: forward fields")
            _check(np.array_equal(a.motion.inverse_px, b.motion.inverse_px), f"{what}: inverse fields")
            _check(a.motion.key_frame == b.motion.key_frame, f"{what}: key frame")
            _check(a.motion.quality == b.motion.quality, f"{what}: motion quality")
        _check(b.source == a.source and b.qc == a.qc, f"{what}: labels source and QC")
    log(f"Segmentation of {len(original.slices)} slice(s) read back from the scene unchanged")
    return 1


def runSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Run the QPerfCommon self-test in ``scene`` (default ``slicer.mrmlScene``).

    Returns
    -------
    dict
        ``{"study", "nodes", "checks"}`` of :func:`runLoadSelfTest`, ``checks`` including those
        of :func:`runSegmentationSelfTest`.

    Raises
    ------
    AssertionError
        On the first check that fails, naming it.
    """
    log = log or (lambda message: None)
    loaded = runLoadSelfTest(scene, log)
    loaded["checks"] += runSegmentationSelfTest(getScene(scene), loaded["nodes"].browserNode, loaded["study"], log)
    log(f"QPerfCommon self-test passed ({loaded['checks']} groups of checks)")
    return loaded
