"""Many studies, one analysis each: ``qperf batch`` on a local process pool or a Dask cluster.

>>> from qperf.batch import BatchOptions, plan_batch, run_batch
>>> from qperf.workflow import AnalysisOptions
>>> tasks = plan_batch(["cases.csv"], "results", AnalysisOptions(model="btex"))
>>> result = run_batch(tasks, "results", BatchOptions(workers=2, threads_per_worker=1))
>>> result.n_failed, result.files          # summary.csv, summary.parquet, index.html

Every study is analysed by :func:`qperf.workflow.analyze_files`, the function behind
``qperf analyze``, with the same options: a study gives the same numbers in a batch as alone.
Modules: :mod:`~qperf.batch.plan` (inputs, lists, study ids), :mod:`~qperf.batch.worker` (one
study in a worker, its marker), :mod:`~qperf.batch.checksum` (what makes a study finished),
:mod:`~qperf.batch.engines` (process pool, Dask), :mod:`~qperf.batch.summary` (tables and
index), :mod:`~qperf.batch.progress`, :mod:`~qperf.batch.run` (the whole batch).
"""

from qperf.batch.engines import available_cores, pool_size, run_dask, run_local
from qperf.batch.plan import ListedStudy, StudyTask, assign_ids, expand_inputs, plan_batch, read_list
from qperf.batch.progress import BatchProgress
from qperf.batch.run import BatchOptions, BatchResult, run_batch, study_states
from qperf.batch.summary import write_summary
from qperf.batch.worker import MARKER_NAME, StudyRecord, read_marker, run_task

__all__ = [
    "MARKER_NAME",
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "ListedStudy",
    "StudyRecord",
    "StudyTask",
    "assign_ids",
    "available_cores",
    "expand_inputs",
    "plan_batch",
    "pool_size",
    "read_list",
    "read_marker",
    "run_batch",
    "run_dask",
    "run_local",
    "run_task",
    "study_states",
    "write_summary",
]
