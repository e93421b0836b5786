"""A whole batch: the batch folder, what is finished already, the engine, the summary.

The batch folder holds one result folder per study (``<id>/``, as ``qperf analyze`` writes it,
plus its marker), ``summary.csv``, ``summary.parquet``, ``index.html`` and ``.qperf-batch/``
(a lock, so that two batches do not write to one folder, and the tracebacks of crashes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qperf.batch import engines
from qperf.batch.checksum import model_checksum, study_key
from qperf.batch.plan import StudyTask
from qperf.batch.progress import BatchProgress
from qperf.batch.summary import write_summary
from qperf.batch.worker import STATE_DIR, StudyRecord, read_marker, run_task
from qperf.errors import OutputExistsError, ValidationError

#: States of a study's result folder before a run (:func:`study_states`).
NEW, FINISHED, UNFINISHED, OTHER = "new", "finished", "unfinished", "other inputs"


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs.

    Parameters
    ----------
    workers, threads_per_worker : int, optional
        Size of the local pool (default: workers x threads = cores, one thread each).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to run on instead of a local pool.
    resume : bool
        Continue a batch folder: skip the studies finished with the same inputs and options.
    overwrite : bool
        Analyse every study again, replacing result folders that exist.
    """

    workers: int | None = None
    threads_per_worker: int | None = None
    scheduler: str | None = None
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValidationError(f"{name}: expected a positive whole number, found {value!r}")
        if self.scheduler is not None and self.workers is not None:
            raise ValidationError("workers: the Dask cluster decides its workers; give --workers without --scheduler")


@dataclass
class BatchResult:
    """The outcome of every study run or skipped, in the order listed, and the summary files."""

    out_dir: Path
    results: list[tuple[StudyTask, StudyRecord]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(1 for _, r in self.results if not r.ok)

    @property
    def n_ok(self) -> int:
        return sum(1 for _, r in self.results if r.ok)


def study_states(tasks: Sequence[StudyTask], *, resume: bool) -> list[str]:
    """The state of each task's result folder: new, finished (same key, with ``resume`` only),
    unfinished (no marker) or holding the result of other inputs or options."""
    model: dict[str | None, str] = {}
    states = []
    for task in tasks:
        folder = Path(task.out_dir)
        marker = read_marker(folder) if folder.is_dir() else None
        if not folder.exists():
            states.append(NEW)
        elif marker is None:
            states.append(UNFINISHED)
        elif not resume or not (folder / "report.json").is_file():
            states.append(OTHER)
        else:
            segmenter = None if task.options.segmenter is None else str(task.options.segmenter)
            if segmenter not in model:
                model[segmenter] = model_checksum(segmenter)
            states.append(FINISHED if marker["key"] == study_key(task, model[segmenter]) else OTHER)
    return states


def prepare_out_dir(out: Path, options: BatchOptions) -> None:
    """Create the batch folder, or accept an existing one with ``resume`` or ``overwrite``."""
    from qperf.io import check_output

    if out.exists():
        if not out.is_dir():
            raise ValidationError(f"output {out} exists and is not a folder")
        if not (options.resume or options.overwrite):
            raise OutputExistsError(f"output {out} exists; pass --resume to continue it or --overwrite to redo it")
        return
    check_output(out)
    out.mkdir()


@contextlib.contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Hold ``.qperf-batch/lock`` of the batch folder (where the platform has ``fcntl``)."""
    state = out / STATE_DIR
    state.mkdir(exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(state / "lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ValidationError(f"output {out}: another qperf batch is writing to it") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_partial(out: Path) -> None:
    """Remove what a run that was killed left half-written (temporary ``.<name>.*.part`` entries)."""
    for entry in out.iterdir():
        if entry.name.startswith(".") and ".part" in entry.name and entry.name != STATE_DIR:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _triage(
    tasks: Sequence[StudyTask], states: Sequence[str], options: BatchOptions
) -> tuple[list[tuple[StudyTask, StudyRecord]], list[StudyTask]]:
    """Studies done already (or refused) and studies to run, with the permission to replace their folders."""
    done, todo = [], []
    for task, state in zip(tasks, states, strict=True):
        if state == FINISHED:
            marker = read_marker(task.out_dir) or {}
            done.append((task, StudyRecord(task.study_id, "ok", "", marker.get("run_time_s"), resumed=True)))
        elif state == NEW:
            todo.append(task)
        elif options.overwrite or (options.resume and state == UNFINISHED):
            todo.append(dataclasses.replace(task, overwrite=True))
        else:
            message = f"{task.out_dir} holds the result of other inputs or options; pass --overwrite to replace it"
            done.append((task, StudyRecord(task.study_id, "failed", message)))
    return done, todo


def _run_engine(
    todo: Sequence[StudyTask], options: BatchOptions, progress: BatchProgress, on_result: engines.ResultCallback
) -> None:
    if options.scheduler is not None:
        progress.start(len(todo), f"the Dask cluster at {options.scheduler}")
        tasks = [dataclasses.replace(t, threads=options.threads_per_worker) for t in todo]
        if tasks:
            engines.run_dask(tasks, run_task, address=options.scheduler, on_result=on_result)
        return
    workers, threads = engines.pool_size(options.workers, options.threads_per_worker)
    workers = max(1, min(workers, len(todo)))
    progress.start(len(todo), f"{workers} local worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}")
    if todo:
        engines.run_local(todo, run_task, workers=workers, threads=threads, on_result=on_result)


def run_batch(
    tasks: Sequence[StudyTask],
    out_dir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    *,
    progress: BatchProgress | None = None,
) -> BatchResult:
    """Run a batch (:func:`qperf.batch.plan_batch` makes ``tasks``) and write its summary.

    A study that fails becomes a failed record and the others go on. An interrupted batch
    (Ctrl-C) still writes the summary of the studies finished, then re-raises.

    Raises
    ------
    OutputExistsError
        ``out_dir`` exists and neither ``resume`` nor ``overwrite`` was given.
    ValidationError
        Another batch holds ``out_dir``; the tasks are not those of ``out_dir``.
    NotAvailableError
        No Dask scheduler answers at ``options.scheduler``.
    """
    options = options or BatchOptions()
    out = Path(os.path.abspath(out_dir))
    if any(Path(t.out_dir).parent != out for t in tasks):
        raise ValidationError(f"tasks: expected result folders in {out} (plan the batch with this folder)")
    progress = progress or BatchProgress(len(tasks), enabled=False)
    prepare_out_dir(out, options)
    result = BatchResult(out)
    with batch_lock(out):
        remove_partial(out)
        done, todo = _triage(tasks, study_states(tasks, resume=options.resume), options)
        outcomes = {t.study_id: (t, r) for t, r in done}
        for task, record in done:
            progress(task, record)

        def on_result(task: StudyTask, record: StudyRecord) -> None:
            outcomes[task.study_id] = (task, record)
            progress(task, record)

        try:
            _run_engine(todo, options, progress, on_result)
        finally:
            result.results = [outcomes[t.study_id] for t in tasks if t.study_id in outcomes]
            result.files = write_summary(result.results, out)
    return result
