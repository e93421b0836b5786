"""Where the studies of a batch run: a local process pool, or an existing Dask distributed cluster.

Both engines call one function per study (:func:`qperf.batch.worker.run_task`) and report each
outcome through a callback, in the order the studies finish. Neither has a queue or protocol
of its own: the local engine is :class:`concurrent.futures.ProcessPoolExecutor` (processes
started fresh, ``spawn``, with their thread environment set before they import numpy or
torch), the cluster engine is :mod:`dask.distributed`.

A worker process that dies (killed, out of memory, a crash in native code) breaks the local
pool; the studies it was running are then run again one at a time, each in a pool of its own,
so that the study that kills its worker is the one that fails, and the others go on. A Dask
cluster reschedules the work of a dead worker itself and fails the study after its
``allowed-failures``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from qperf.batch.plan import StudyTask
from qperf.batch.worker import StudyRecord, describe_error, init_worker
from qperf.runtime import thread_environment

TaskFunction = Callable[[StudyTask], StudyRecord]
ResultCallback = Callable[[StudyTask, StudyRecord], None]
#: Memory a worker may need at its peak (a 3-slice study peaks below 1 GB), for sizing the pool.
WORKER_MEMORY_BYTES = 1 << 30
WORKER_DIED = "the worker process died while analysing this study (killed, out of memory, or a crash in native code)"


def available_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def pool_size(workers: int | None, threads: int | None, cores: int | None = None) -> tuple[int, int]:
    """Workers and threads per worker: by default workers x threads = cores, one thread each.

    Without ``workers`` the pool is also kept within the machine's memory
    (:data:`WORKER_MEMORY_BYTES` per worker).
    """
    cores = cores or available_cores()
    if threads is None:
        threads = 1 if workers is None else max(1, cores // workers)
    if workers is None:
        workers = max(1, cores // threads)
        memory = _memory_bytes()
        if memory is not None:
            workers = max(1, min(workers, memory // WORKER_MEMORY_BYTES))
    return workers, threads


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while the block runs (the worker processes inherit it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_local(
    tasks: Sequence[StudyTask], fn: TaskFunction, *, workers: int, threads: int, on_result: ResultCallback
) -> None:
    """Run ``fn`` on every task in a pool of ``workers`` processes of ``threads`` threads each."""
    queue = deque(tasks)
    with _environment(thread_environment(threads)):
        while queue:
            suspects = _run_pool(queue, fn, min(workers, len(queue)), threads, on_result)
            for task in suspects:  # one at a time: the study whose worker dies is the culprit
                for died in _run_pool(deque([task]), fn, 1, threads, on_result):
                    on_result(died, StudyRecord(died.study_id, "failed", WORKER_DIED))


def _run_pool(
    queue: deque[StudyTask], fn: TaskFunction, workers: int, threads: int, on_result: ResultCallback
) -> list[StudyTask]:
    """Run tasks from ``queue`` until it is empty or the pool breaks; returns the tasks in flight at a break.

    At most ``workers`` tasks are in flight, so a break involves only the studies being run.
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(threads,))
    running: dict[Future[StudyRecord], StudyTask] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                task = queue.popleft()
                running[pool.submit(fn, task)] = task
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:
                    return [task, *running.values()]
                except Exception as exc:  # the task could not be sent or its result not returned
                    record = StudyRecord(task.study_id, "failed", describe_error(exc))
                on_result(task, record)
    except BaseException:  # Ctrl-C: the workers (which ignore it) finish the studies they hold
        pool.shutdown(wait=True, cancel_futures=True)
        for future, task in running.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                on_result(task, future.result())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return []


def run_dask(
    tasks: Sequence[StudyTask],
    fn: TaskFunction,
    *,
    address: str,
    on_result: ResultCallback,
    timeout_s: float | None = None,
) -> None:
    """Run ``fn`` on every task on the Dask cluster whose scheduler is at ``address``.

    The workers must see the inputs and the batch folder at the same paths (a shared file
    system) and have QPerf installed. ``timeout_s`` bounds the wait for the scheduler (default:
    Dask's ``distributed.comm.timeouts.connect``, 30 s unless configured).

    Raises
    ------
    NotAvailableError
        No scheduler answers at ``address``.
    """
    from distributed import Client, as_completed

    from qperf.errors import NotAvailableError

    try:
        client = Client(address) if timeout_s is None else Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise NotAvailableError(f"--scheduler {address}: no Dask scheduler answers ({describe_error(exc)})") from exc
    batch = uuid.uuid4().hex[:8]
    with client:
        futures = {client.submit(fn, t, key=f"qperf-batch-{batch}-{t.study_id}", pure=False): t for t in tasks}
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # KilledWorker: the study took down its workers
                    record = StudyRecord(task.study_id, "failed", f"on the Dask cluster: {describe_error(exc)}")
                on_result(task, record)
        finally:
            client.cancel(list(_unfinished(futures)))


def _unfinished(futures: Iterable[object]) -> Iterator[object]:
    for f in futures:
        if not getattr(f, "done", lambda: True)():
            yield f
