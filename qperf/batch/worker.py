"""What a worker process does with one study: analyse it as ``qperf analyze`` does, then mark it finished.

:func:`run_task` is the function that the local process pool and the Dask workers call. It
never raises for a study that fails: the error becomes the record's message (and, for a crash,
a traceback in ``<batch folder>/.qperf-batch/errors/<id>.txt``). The result folder is written
atomically by :func:`qperf.workflow.analyze_files`; the marker ``qperf-batch.json`` is written
into it afterwards, last and atomically, so a folder without its marker is never taken for a
finished study.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qperf import __version__
from qperf.batch.plan import StudyTask
from qperf.runtime import set_threads as _set_threads
from qperf.runtime import thread_environment

MARKER_NAME = "qperf-batch.json"
MARKER_FORMAT = "qperf.batch.study"
STATE_DIR = ".qperf-batch"

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h
_MALLOC_RELAXED = False


@dataclass(frozen=True)
class StudyRecord:
    """The outcome of one study of a batch.

    ``status`` is ``"ok"`` or ``"failed"``; ``resumed`` marks a study finished by an earlier run
    (its ``run_time_s`` is that run's).
    """

    study_id: str
    status: str
    error: str = ""
    run_time_s: float | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def set_threads(threads: int | None) -> None:
    """Limit this process's threads (torch's included) and those of the processes it starts."""
    if threads is not None:
        _set_threads(threads, import_torch=True)


def relax_malloc() -> bool:
    """Undo a fixed glibc trim threshold in this process (Dask's nanny starts its workers with one).

    ``MALLOC_TRIM_THRESHOLD_`` (65536 under a Dask nanny) also freezes glibc's mmap threshold at
    128 KiB, so every numpy temporary above it is mapped and unmapped again, page by page: the
    BTEX table of a study took 10.0 s instead of 2.3 s. Temporaries up to 64 MiB are taken from
    the heap again, and up to 256 MiB of free heap is kept. Returns whether anything was changed
    (only where the variable is set and the C library is glibc).
    """
    global _MALLOC_RELAXED
    if _MALLOC_RELAXED or "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        changed = bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20))
    except (OSError, AttributeError):
        return False
    _MALLOC_RELAXED = changed
    return changed


def init_worker(threads: int) -> None:
    """Initializer of a local worker process.

    The process was started with :func:`thread_environment` (BLAS, OpenMP and torch read it
    when they are imported, torch's intra-op threads included), so only Ctrl-C is set here.
    """
    import signal

    os.environ.update(thread_environment(threads))
    # Ctrl-C reaches the whole process group: the batch stops the workers, they do not stop themselves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def describe_error(exc: BaseException) -> str:
    """One line naming the problem (the exception type too, for anything but an input error)."""
    from qperf.errors import QPerfError

    text = " ".join(str(exc).split())
    if isinstance(exc, QPerfError | ValueError | OSError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _save_traceback(task: StudyTask, exc: BaseException) -> str:
    """Write the traceback of a crash beside the batch's state; returns the note for the message."""
    folder = Path(task.out_dir).parent / STATE_DIR / "errors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        (folder / f"{task.study_id}.txt").write_text(text, encoding="utf-8")
    except OSError:
        return ""
    return f" (traceback in {STATE_DIR}/errors/{task.study_id}.txt)"


def run_task(task: StudyTask) -> StudyRecord:
    """Analyse one study into its result folder and mark it finished; never raises for the study's own errors."""
    from qperf.errors import QPerfError
    from qperf.workflow import analyze_files

    start = time.perf_counter()
    try:
        set_threads(task.threads)
        relax_malloc()
        from qperf.batch.checksum import study_key

        key = study_key(task)
        with warnings.catch_warnings():
            # a study's warnings go into its report's QC (and the summary), not onto the batch's terminal
            warnings.simplefilter("ignore")
            analyze_files(task.source, task.options, task.out_dir, overwrite=task.overwrite)
        elapsed = time.perf_counter() - start
        write_marker(task, key, elapsed)
    except Exception as exc:
        message = describe_error(exc)
        if not isinstance(exc, QPerfError):
            message += _save_traceback(task, exc)
        return StudyRecord(task.study_id, "failed", message, time.perf_counter() - start)
    return StudyRecord(task.study_id, "ok", "", elapsed)


def write_marker(task: StudyTask, key: str, run_time_s: float) -> None:
    """Mark a result folder finished (atomically, after everything else in it)."""
    from qperf.io import atomic_file

    doc = {
        "format": MARKER_FORMAT,
        "version": 1,
        "study_id": task.study_id,
        "key": key,
        "input": task.source.path,
        "run_time_s": run_time_s,
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "qperf": __version__,
    }
    with atomic_file(Path(task.out_dir) / MARKER_NAME, overwrite=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def read_marker(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A result folder's marker, or None when it has none (or an unreadable one)."""
    path = Path(out_dir) / MARKER_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT or not isinstance(doc.get("key"), str):
        return None
    return doc
