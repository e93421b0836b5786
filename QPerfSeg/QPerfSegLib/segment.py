"""Motion correction and segmentation of a study, in this process or in a separate one.

:func:`segmentStudy` is the core step ``qperf.workflow.segment_study`` with the options the
command line takes (``qperf.workflow.AnalysisOptions``: ``motion``, ``labels``,
``insertion_points_yx``, ``label_frames``, ``segmenter``, ``threads``, ``device``), plus where the CNN runs:
in this process, or, so that the Slicer GUI stays responsive, in a separate Python process per
slice through ``qperf segment --reference``, which runs the same per-slice step
(``qperf.segmentation.Segmenter.segment``) and writes everything it produced (labels over the
frames and on the reference grid, insertion points, QC, the corrected series and the motion
fields); :func:`runSegmentCommand` rebuilds the slice's ``SliceSegmentation`` from those files,
equal to the one made in this process. Progress goes to a ``callback(fraction, message)``; a
``qperf.progress.CancelToken`` is checked at every report (and polled while a process runs).
Nothing here touches the scene.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qperf.errors import NotAvailableError, ValidationError
from qperf.progress import AnalysisCancelled, CancelToken, ProgressCallback, checked_progress

SEGMENTERS = ("auto", "inprocess", "subprocess")
#: The labels source of a slice segmented in a separate process.
SOURCE_SUBPROCESS = "cnn-subprocess"


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


def _segmentCommand(python: str, seriesPath: Path, outPath: Path, options: Any) -> list:
    command = [python, "-m", "qperf.cli", "segment", str(seriesPath), "--out", str(outPath), "--quiet", "--reference"]
    command += ["--motion", options.motion, "--device", str(options.device)]
    if options.threads is not None:
        command += ["--threads", str(int(options.threads))]
    if options.segmenter is not None:
        command += ["--model", str(options.segmenter)]
    return command


def _runProcess(command: list, env: dict, cancel: CancelToken | None, heartbeat: Any, pollInterval_s: float) -> None:
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


def sliceFromSegmentFolder(series: Any, folder: Path) -> Any:
    """The ``qperf.workflow.SliceSegmentation`` of one slice from what ``qperf segment --reference`` wrote.

    ``series`` is the slice as acquired (the one written for the command): the corrected series
    takes its grid, times and geometry (``qperf.motion.folder.read_motion_folder``).
    """
    from qperf import io
    from qperf.motion.folder import read_motion_folder
    from qperf.workflow import SliceSegmentation

    record = json.loads((folder / "insertion.json").read_text(encoding="utf-8"))["slices"][0]
    motion = read_motion_folder(folder / "motion", series) if (folder / "motion").is_dir() else None
    points = {name: tuple(float(v) for v in entry["pixel_yx"]) for name, entry in record["reference"].items()}
    perFrame = {
        name: np.asarray([entry["pixel_yx"] for entry in entries], dtype=np.float64)
        for name, entries in record["per_frame"].items()
    }
    return SliceSegmentation(
        series=series,
        corrected=motion.corrected if motion is not None else series,
        motion=motion,
        labels_ref=np.asarray(io.read_image(folder / "labels_ref.nrrd").array, dtype=np.uint8),
        labels=np.asarray(io.read_image(folder / "labels.nrrd").array, dtype=np.uint8),
        insertion_points_yx=points,
        insertion_points_per_frame_yx=perFrame,
        source=SOURCE_SUBPROCESS,
        qc=record.get("qc", {}),
    )


def runSegmentCommand(
    series: Any,
    options: Any | None = None,
    cancel: CancelToken | None = None,
    python: str | None = None,
    pollInterval_s: float = 0.1,
    heartbeat: Callable[[], None] | None = None,
) -> Any:
    """Segment one acquired slice with ``qperf segment --reference`` in a separate process.

    The series is written to a temporary ``.seq.nrrd``; the command segments it as
    ``qperf.workflow.segment_study`` does in this process (motion correction around the heart
    when ``options.motion`` asks for it, the CNN, labels carried to every frame). While the
    process runs, ``heartbeat()`` is called every ``pollInterval_s`` (the GUI processes its
    events there, so it stays responsive and its Cancel button works) and ``cancel`` is
    checked: a cancel terminates the process.

    Parameters
    ----------
    series : qperf.PerfusionSeries
    options : qperf.workflow.AnalysisOptions, optional
        ``motion``, ``segmenter`` (model file), ``threads`` and ``device`` are used.

    Returns
    -------
    qperf.workflow.SliceSegmentation
        Source ``"cnn-subprocess"``.

    Raises
    ------
    NotAvailableError
        The command failed (for example no trained model); its last error line is quoted.
    AnalysisCancelled
        ``cancel`` was set while the command ran.
    """
    from qperf import io
    from qperf.workflow import AnalysisOptions

    options = options or AnalysisOptions()
    python = python or pythonExecutable()
    with tempfile.TemporaryDirectory(prefix="qperf-segment-") as folder:
        seriesPath = Path(folder) / "series.seq.nrrd"
        outPath = Path(folder) / "out"
        io.write_series(series, seriesPath)
        env = dict(os.environ)
        if options.threads is not None:
            from qperf.runtime import thread_environment

            env.update(thread_environment(int(options.threads)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_qperfRoot(), env.get("PYTHONPATH", "")) if p)
        _runProcess(_segmentCommand(python, seriesPath, outPath, options), env, cancel, heartbeat, pollInterval_s)
        return sliceFromSegmentFolder(series, outPath)


def resolveSegmenter(segmenter: str) -> str:
    """Where the CNN runs: ``"auto"`` is a separate process inside the Slicer application, else this one."""
    if segmenter not in SEGMENTERS:
        raise ValidationError(f"segmenter: expected one of {', '.join(SEGMENTERS)}, found {segmenter!r}")
    if segmenter == "auto":
        slicerModule = sys.modules.get("slicer")
        return "subprocess" if slicerModule is not None and hasattr(slicerModule, "app") else "inprocess"
    return segmenter


def _inSeparateProcesses(study: Any, options: Any, report: ProgressCallback, cancel: Any) -> Any:
    from qperf.workflow import Segmentation

    start = time.perf_counter()
    slices = []
    n = study.n_slices
    for i, series in enumerate(study.slices):
        name = series.name or f"slice {i + 1}"
        report(i / n, f"{name}: segmentation")

        def beat(fraction: float = i / n, name: str = name) -> None:
            report(fraction, f"{name}: CNN running")

        slices.append(runSegmentCommand(series, options, cancel=cancel, heartbeat=beat))
    report(1.0, "segmentation done")
    return Segmentation(tuple(slices), {"segmentation": time.perf_counter() - start})


def segmentStudy(
    study: Any,
    options: Any | None = None,
    *,
    segmenter: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Motion-correct and segment every slice of ``study`` (``qperf.workflow.segment_study``).

    Parameters
    ----------
    study : qperf.PerfusionStudy
    options : qperf.workflow.AnalysisOptions, optional
        As for ``qperf analyze``: ``motion`` ("auto", "on", "off"), supplied ``labels`` with
        ``insertion_points_yx`` (and the ``label_frames`` they were drawn on) instead of the
        CNN, ``segmenter`` (model file), ``threads``, ``device``.
    segmenter : {"auto", "inprocess", "subprocess"}
        Where the CNN runs ("auto": a separate process inside the Slicer application).
        Supplied labels are always carried over the frames in this process.
    progress : callable(fraction, message), optional
    cancel : qperf.progress.CancelToken, optional

    Returns
    -------
    qperf.workflow.Segmentation

    Raises
    ------
    AnalysisCancelled
        When ``cancel`` is set; nothing is returned.
    NotAvailableError
        No trained model (and no labels supplied), or the segmentation process failed.
    ValidationError
        Supplied labels or points that do not fit the study.
    """
    from qperf.types import PerfusionStudy
    from qperf.workflow import AnalysisOptions, segment_study

    if not isinstance(study, PerfusionStudy):
        raise ValidationError(f"study: expected a qperf.PerfusionStudy, found {type(study).__name__}")
    options = options or AnalysisOptions()
    where = resolveSegmenter(segmenter)
    report = checked_progress(progress, cancel)
    if options.labels is None and where == "subprocess":
        return _inSeparateProcesses(study, options, report, cancel)
    return segment_study(study, options, progress=report)
