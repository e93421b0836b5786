"""``qperf batch INPUTS... --out DIR``: the one-click analysis of many studies."""

from __future__ import annotations

import argparse
from typing import Any

from qperf.cli.argtypes import positive_int
from qperf.cli.commands._options import add_analysis_options, add_series_options, analysis_options, series_options
from qperf.errors import ValidationError

NAME = "batch"
ORDER = 2
HELP = "the one-click analysis of many studies, on a local process pool or a Dask cluster"
#: Largest exit status that counts failed studies (100 means 100 or more).
MAX_FAILED_STATUS = 100
DESCRIPTION = """Analyse every study of INPUTS as `qperf analyze` does, with the same options,
into DIR/<study-id>/, then write DIR/summary.csv and DIR/summary.parquet (one row per study and
AHA segment, plus a global row per study: MBF and the other maps' means, pixel counts, QC,
status, error, run time, versions) and DIR/index.html linking every report.

INPUTS: study folders, study.json files, DICOM folders, series files, or lists of them: a .txt
file (one path per line) or a .csv file with a header row, a 'path' column and optional columns
id, condition, hematocrit (or hct), aif, aif_kind. Paths in a list are relative to it. A study's
id is its 'id', else its folder or file name (with parent folder names added until unique).

Runs on this machine in a process pool of workers x threads = cores (--workers,
--threads-per-worker), or on an existing Dask cluster (--scheduler tcp://HOST:8786) whose
workers see the same files at the same paths. A study that fails gets a row with its error and
the others go on. --resume continues an interrupted batch: studies finished with the same
inputs (checksums) and options are skipped.

Exit status: 0 when every study succeeded, else the number of failed studies (100 for 100 or
more); 2 also for bad arguments (an error line, nothing analysed); 130 when interrupted (the
summary then covers the studies finished)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="study folder, study.json, DICOM folder, or a list")
    parser.add_argument("--out", required=True, help="batch folder (must not exist unless --resume or --overwrite)")
    engine = parser.add_argument_group("where it runs")
    engine.add_argument(
        "--workers", type=positive_int, metavar="N", help="local worker processes (default: cores / threads)"
    )
    engine.add_argument(
        "--threads-per-worker",
        type=positive_int,
        metavar="N",
        help="threads of each worker (default: --threads or QPERF_THREADS, else cores / workers, 1 alone)",
    )
    engine.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster of this scheduler")
    run = parser.add_argument_group("what it runs")
    run.add_argument("--resume", action="store_true", help="continue DIR: skip the studies finished there")
    run.add_argument("--max-studies", type=positive_int, metavar="N", help="only the first N studies of INPUTS")
    run.add_argument("--dry-run", action="store_true", help="list the studies, their ids and states; analyse nothing")
    parser.add_argument(
        "--condition", choices=["stress", "rest"], help="replace the studies' conditions (a list's column wins)"
    )
    add_analysis_options(parser)
    add_series_options(parser)


def _check(args: argparse.Namespace) -> None:
    for name in ("workers", "threads_per_worker", "max_studies"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValidationError(f"--{name.replace('_', '-')}: expected a positive number, found {value}")
    if args.scheduler is not None and args.workers is not None:
        raise ValidationError("--workers: the Dask cluster decides its workers; leave it out with --scheduler")


def _check_extra(scheduler: str | None) -> None:
    """Refuse to start without the packages of the ``batch`` extra (found without importing them)."""
    from importlib.util import find_spec

    from qperf.errors import NotAvailableError

    needed = ["pyarrow"] + (["distributed"] if scheduler is not None else [])
    missing = [name for name in needed if find_spec(name) is None]
    if missing:
        raise NotAvailableError(
            f"qperf batch needs {' and '.join(missing)} (the Parquet summary, Dask clusters): "
            "pip install 'qperf[batch]' (or -e \".[batch]\" in a checkout)"
        )


def run(args: argparse.Namespace) -> int:
    from qperf.batch import BatchOptions, BatchProgress, plan_batch, run_batch
    from qperf.workflow import AnalysisOptions

    _check(args)
    options = AnalysisOptions(**analysis_options(args))
    tasks = plan_batch(args.inputs, args.out, options, series_options=series_options(args), condition=args.condition)
    if args.max_studies is not None:
        tasks = tasks[: args.max_studies]
    if args.dry_run:
        print(dry_run_table(tasks, resume=args.resume))
        return 0
    _check_extra(args.scheduler)
    batch = BatchOptions(
        workers=args.workers,
        threads_per_worker=args.threads_per_worker if args.threads_per_worker is not None else args.threads,
        scheduler=args.scheduler,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    result = run_batch(tasks, args.out, batch, progress=BatchProgress(len(tasks), enabled=not args.quiet))
    if not args.quiet:
        print(f"{result.n_ok} of {len(result.results)} studies analysed, {result.n_failed} failed")
        print(f"wrote {args.out}/summary.csv, summary.parquet and index.html")
    return min(result.n_failed, MAX_FAILED_STATUS)


def dry_run_table(tasks: Any, *, resume: bool) -> str:
    """What a batch would do: one line per study (id, state, input)."""
    from pathlib import Path

    from qperf.batch import study_states

    states = study_states(tasks, resume=resume)
    width = max((len(t.study_id) for t in tasks), default=2)
    lines = [f"{'id':<{width}}  {'state':<13}  input"]
    for task, state in zip(tasks, states, strict=True):
        missing = "" if Path(task.source.path).exists() else "  (no such file or folder)"
        lines.append(f"{task.study_id:<{width}}  {state:<13}  {task.source.path}{missing}")
    to_do = sum(1 for s in states if s != "finished")
    lines.append(f"{len(tasks)} studies, {to_do} to analyse")
    return "\n".join(lines)
