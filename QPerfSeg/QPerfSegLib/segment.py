"""Motion correction and segmentation of a study, slice by slice, with progress and cancel.

:func:`segmentStudy` runs, for every slice, ``qperf.motion`` (respiratory motion correction)
and then the labels: the CNN (``qperf.segmentation``) in this process, the CNN in a separate
Python process through the ``qperf segment`` command (so the Slicer GUI stays responsive), or
labels and insertion points supplied by the caller (an annotator's, or a phantom's truth). A
:class:`CancelToken` is checked between slices and steps (and polled while the subprocess
runs); progress goes to a ``callback(fraction, message)``. Nothing here touches the scene.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import NotAvailableError, QPerfError, ValidationError
from qperf.types import PerfusionSeries, PerfusionStudy

from .frames import frameBackToReference, frameLabelsToReference, labelsToFrames, pointToFrames

ProgressCallback = Callable[[float, str], None]
SEGMENTERS = ("auto", "inprocess", "subprocess")


class AnalysisCancelled(QPerfError):
    """The user cancelled a running analysis; nothing was added to the scene."""


class CancelToken:
    """A flag that a long computation checks between steps (set from the GUI's Cancel button)."""

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        """Raise :class:`AnalysisCancelled` when cancel was requested."""
        if self._cancelled:
            raise AnalysisCancelled("the analysis was cancelled")


def checkedProgress(progress: ProgressCallback | None, cancel: CancelToken | None) -> ProgressCallback:
    """A progress callback that also checks ``cancel`` (so library loops stop at their next report)."""

    def report(fraction: float, message: str = "") -> None:
        if cancel is not None:
            cancel.check()
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    return report


def _scaled(progress: ProgressCallback, start: float, stop: float, prefix: str) -> ProgressCallback:
    def inner(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), f"{prefix}: {message}" if message else prefix)

    return inner


@dataclass
class SliceSegmentation:
    """Motion correction and labels of one slice.

    Attributes
    ----------
    series, corrected : PerfusionSeries
        The acquired slice and its motion-corrected version (the same object without motion
        correction).
    motion : qperf.motion.MotionResult or None
    labelsRef : ndarray, uint8, shape (y, x)
        Labels on the reference (corrected) grid.
    labels : ndarray, uint8, shape (t, y, x)
        Labels on every acquired frame.
    insertionPoints : dict
        ``{"anterior": (y, x), "inferior": (y, x)}`` reference-frame pixels (may be empty).
    insertionPointsPerFrame : dict
        Same names, ``(t, 2)`` pixel positions on the acquired frames.
    source : str
        "cnn", "cnn-subprocess" or "supplied".
    qc : dict
        The segmentation quality-control report (empty for supplied labels).
    """

    series: PerfusionSeries
    corrected: PerfusionSeries
    motion: Any | None
    labelsRef: np.ndarray
    labels: np.ndarray
    insertionPoints: dict = field(default_factory=dict)
    insertionPointsPerFrame: dict = field(default_factory=dict)
    source: str = "supplied"
    qc: dict = field(default_factory=dict)

    @property
    def nFrames(self) -> int:
        return int(self.series.n_frames)

    def withLabels(self, labelsRef: np.ndarray, labels: np.ndarray | None = None) -> SliceSegmentation:
        """A copy with new reference labels (propagated to every frame unless ``labels`` is given)."""
        labelsRef = np.asarray(labelsRef, dtype=np.uint8)
        if labelsRef.shape != self.series.shape:
            raise ValidationError(f"labels: expected shape {self.series.shape}, found {labelsRef.shape}")
        if labels is None:
            labels = labelsToFrames(labelsRef, self.motion, self.nFrames)
        return SliceSegmentation(
            self.series,
            self.corrected,
            self.motion,
            labelsRef,
            np.asarray(labels, dtype=np.uint8),
            dict(self.insertionPoints),
            {k: np.array(v) for k, v in self.insertionPointsPerFrame.items()},
            "edited",
            dict(self.qc),
        )

    def withInsertionPoint(self, name: str, pointYx: tuple) -> SliceSegmentation:
        """A copy with the reference-frame insertion point ``name`` moved to ``pointYx``."""
        points = dict(self.insertionPoints)
        perFrame = {k: np.array(v) for k, v in self.insertionPointsPerFrame.items()}
        points[name] = (float(pointYx[0]), float(pointYx[1]))
        perFrame[name] = pointToFrames(points[name], self.motion, self.nFrames)
        return SliceSegmentation(
            self.series, self.corrected, self.motion, self.labelsRef, self.labels, points, perFrame, "edited", self.qc
        )


def _heartbeat(report: ProgressCallback, fraction: float, name: str) -> Callable[[], None]:
    def beat() -> None:
        report(fraction, f"{name}: CNN running")

    return beat


def pythonExecutable() -> str:
    """The Python that runs ``qperf`` commands: ``$QPERF_PYTHON``, Slicer's ``PythonSlicer``, or this one."""
    configured = os.environ.get("QPERF_PYTHON")
    if configured:
        return configured
    if "slicer" in sys.modules and hasattr(sys.modules["slicer"], "app"):
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def _qperfRoot() -> str:
    import qperf

    return str(Path(qperf.__file__).resolve().parent.parent)


def runSegmentCommand(
    series: PerfusionSeries,
    model: str | os.PathLike | None = None,
    cancel: CancelToken | None = None,
    python: str | None = None,
    threads: int = 1,
    pollInterval_s: float = 0.1,
    heartbeat: Callable[[], None] | None = None,
) -> dict:
    """Segment one (motion-corrected) slice with ``qperf segment`` in a separate process.

    The series is written to a temporary ``.seq.nrrd``; the command writes ``labels.nrrd`` and
    ``insertion.json`` beside it. While the process runs, ``heartbeat()`` is called every
    ``pollInterval_s`` (the GUI processes its events there, so it stays responsive and its
    Cancel button works) and ``cancel`` is checked: a cancel terminates the process.

    Returns
    -------
    dict
        ``labels`` uint8 (t, y, x), ``insertionPoints`` ({name: (y, x)} on the series' grid),
        ``qc`` (dict).

    Raises
    ------
    NotAvailableError
        The command failed (for example no trained model); its last error line is quoted.
    AnalysisCancelled
        ``cancel`` was set while the command ran.
    """
    from qperf import io

    python = python or pythonExecutable()
    with tempfile.TemporaryDirectory(prefix="qperf-segment-") as folder:
        seriesPath = Path(folder) / "series.seq.nrrd"
        outPath = Path(folder) / "out"
        io.write_series(series, seriesPath)
        command = [python, "-m", "qperf.cli", "segment", str(seriesPath), "--out", str(outPath), "--quiet"]
        command += ["--motion", "off"]  # the caller corrected the series already
        command += ["--threads", str(int(threads))]
        if model is not None:
            command += ["--model", str(model)]
        env = dict(os.environ, OMP_NUM_THREADS=str(int(threads)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_qperfRoot(), env.get("PYTHONPATH", "")) if p)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        try:
            while process.poll() is None:
                try:
                    if heartbeat is not None:
                        heartbeat()
                    if cancel is not None:
                        cancel.check()
                except AnalysisCancelled:
                    process.terminate()
                    process.wait(timeout=30)
                    raise
                time.sleep(pollInterval_s)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        _, stderr = process.communicate()
        if process.returncode != 0:
            lines = [line for line in (stderr or "").strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {process.returncode}"
            raise NotAvailableError(f"qperf segment: the segmentation process failed: {reason}")
        labels = np.asarray(io.read_image(outPath / "labels.nrrd").array, dtype=np.uint8)
        record = json.loads((outPath / "insertion.json").read_text(encoding="utf-8"))["slices"][0]
    points = {name: tuple(float(v) for v in entry["pixel_yx"]) for name, entry in record["reference"].items()}
    return {"labels": labels, "insertionPoints": points, "qc": record.get("qc", {})}


def _cnnInProcess(segmenter: Any, corrected: PerfusionSeries) -> dict:
    result = segmenter(corrected)
    qc = result.qc.to_dict() if hasattr(result.qc, "to_dict") else {}
    points = {k: (float(v[0]), float(v[1])) for k, v in result.insertion_points.items()}
    return {"labels": np.asarray(result.labels, dtype=np.uint8), "insertionPoints": points, "qc": qc}


def _resolveSegmenter(segmenter: str) -> str:
    if segmenter not in SEGMENTERS:
        raise ValidationError(f"segmenter: expected one of {', '.join(SEGMENTERS)}, found {segmenter!r}")
    if segmenter == "auto":
        slicerModule = sys.modules.get("slicer")
        return "subprocess" if slicerModule is not None and hasattr(slicerModule, "app") else "inprocess"
    return segmenter


def segmentStudy(
    study: PerfusionStudy,
    *,
    motionCorrection: bool = True,
    segmenter: str = "auto",
    model: str | os.PathLike | None = None,
    labels: Sequence[np.ndarray] | None = None,
    insertionPoints: Sequence[dict] | None = None,
    labelFrames: Sequence[int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list:
    """Motion-correct and segment every slice of ``study``.

    Parameters
    ----------
    study : qperf.PerfusionStudy
    motionCorrection : bool
        Register every frame onto the key frame (``qperf.motion``); off for corrected series.
    segmenter : {"auto", "inprocess", "subprocess"}
        Where the CNN runs ("auto": a separate process inside the Slicer application).
    model : path, optional
        Model weights or card instead of the shipped model.
    labels : sequence of ndarray (y, x), optional
        Reference-frame labels per slice; replace the CNN.
    insertionPoints : sequence of dict, optional
        ``{"anterior": (y, x), ...}`` per slice with ``labels``.
    labelFrames : sequence of int, optional
        The acquired frame of each slice on which ``labels`` and ``insertionPoints`` were
        drawn; they are carried to the reference grid through the motion fields. Without it
        they are taken to be on the reference (motion-corrected) grid already.
    progress : callable(fraction, message), optional
    cancel : CancelToken, optional

    Returns
    -------
    list of SliceSegmentation

    Raises
    ------
    AnalysisCancelled
        When ``cancel`` is set; nothing is returned.
    NotAvailableError
        No trained model (and no labels supplied), or the segmentation process failed.
    ValidationError
        Supplied labels or points that do not fit the study.
    """
    if not isinstance(study, PerfusionStudy):
        raise ValidationError(f"study: expected a qperf.PerfusionStudy, found {type(study).__name__}")
    n = study.n_slices
    if labels is not None:
        if len(labels) != n:
            raise ValidationError(f"labels: expected one label map per slice ({n}), found {len(labels)}")
        if insertionPoints is None or len(insertionPoints) != n:
            raise ValidationError(f"insertionPoints: expected one dict of points per slice ({n}) with labels")
        if labelFrames is not None and len(labelFrames) != n:
            raise ValidationError(f"labelFrames: expected one frame index per slice ({n}), found {len(labelFrames)}")
    report = checkedProgress(progress, cancel)
    where = _resolveSegmenter(segmenter) if labels is None else "supplied"
    loaded = None
    results = []
    for i, series in enumerate(study.slices):
        name = series.name or f"slice {i + 1}"
        start, stop = i / n, (i + 1) / n
        report(start, f"{name}: motion correction")
        motion = None
        if motionCorrection:
            from qperf.motion import correct_series

            motion = correct_series(series, progress=_scaled(report, start, start + 0.6 * (stop - start), name))
        corrected = motion.corrected if motion is not None else series
        report(start + 0.6 * (stop - start), f"{name}: segmentation")
        if labels is not None:
            labelsRef = np.asarray(labels[i], dtype=np.uint8)
            if labelsRef.shape != series.shape:
                raise ValidationError(f"labels[{i}]: expected shape {series.shape}, found {labelsRef.shape}")
            points = {k: (float(v[0]), float(v[1])) for k, v in dict(insertionPoints[i]).items()}  # type: ignore[index]
            if labelFrames is not None:
                frame = int(labelFrames[i])
                labelsRef = frameLabelsToReference(labelsRef, frame, motion)
                points = {k: frameBackToReference(p, frame, motion) for k, p in points.items()}
            qc: dict = {}
        else:
            if where == "subprocess":
                found = runSegmentCommand(
                    corrected,
                    model=model,
                    cancel=cancel,
                    heartbeat=_heartbeat(report, start + 0.6 * (stop - start), name),
                )
                source = "cnn-subprocess"
            else:
                if loaded is None:
                    from qperf.segmentation import load_segmenter

                    loaded = load_segmenter(model, threads=1)
                found = _cnnInProcess(loaded, corrected)
                source = "cnn"
            # The corrected series has no motion left: its labels are the reference labels.
            labelsRef = found["labels"][corrected.n_frames // 2] if found["labels"].ndim == 3 else found["labels"]
            points, qc = found["insertionPoints"], found["qc"]
        framesLabels = labelsToFrames(labelsRef, motion, series.n_frames)
        perFrame = {k: pointToFrames(p, motion, series.n_frames) for k, p in points.items()}
        results.append(
            SliceSegmentation(
                series,
                corrected,
                motion,
                labelsRef,
                framesLabels,
                points,
                perFrame,
                "supplied" if labels is not None else source,
                qc,
            )
        )
        report(stop, f"{name}: done")
    return results
