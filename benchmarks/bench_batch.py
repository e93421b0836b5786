"""Throughput of ``qperf batch``: studies per minute with 1 worker x 1 thread and 2 workers x 1 thread.

Writes phantom studies (the demo's size by default: 3 slices, 60 frames), then runs the same
batch twice in this process's run, once per pool, each from fresh worker processes (their
start-up and imports included), and prints studies per minute, their ratio, the per-study
times, the workers' CPU time per study and the cores they kept busy (CPU time over wall time:
what the machine gave them), and the largest peak memory of a worker. Reports figures; never fails on speed. On a
machine where other work holds cores, the second worker gains only what is free: the load
average at the start is printed with the figures.

    .venv/bin/python benchmarks/bench_batch.py [--studies 8] [--small]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from qperf import phantom
from qperf.batch import BatchOptions, plan_batch, run_batch
from qperf.workflow import AnalysisOptions

SMALL = {"n_slices": 2, "n_frames": 36, "shape": (96, 96), "spacing_mm": 2.6}
DEMO = {"n_slices": 3, "n_frames": 60}


def write_studies(root: Path, n: int, small: bool) -> list[str]:
    root.mkdir()
    paths = []
    for seed in range(n):
        folder = root / f"study{seed:02d}"
        phantom.write_study(phantom.generate_study(seed=seed, **(SMALL if small else DEMO)), folder)
        paths.append(str(folder))
    return paths


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(paths: list[str], out: Path, workers: int) -> tuple[float, float, list[float], int]:
    """Wall time, CPU time of the workers, per-study times and failures of one batch."""
    tasks = plan_batch(paths, out, AnalysisOptions())
    start, cpu = time.perf_counter(), _children_cpu_s()
    result = run_batch(tasks, out, BatchOptions(workers=workers, threads_per_worker=1))
    wall, cpu = time.perf_counter() - start, _children_cpu_s() - cpu
    times = [r.run_time_s for _, r in result.results if r.ok and r.run_time_s is not None]
    return wall, cpu, times, result.n_failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8, help="studies per batch")
    parser.add_argument("--small", action="store_true", help="2 slices, 36 frames, 96x96 (the tests' size)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average (1 min) at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_studies(root / "studies", args.studies, args.small)
        rates = {}
        for workers in (1, 2):
            wall, cpu, times, failed = run(paths, root / f"out{workers}", workers)
            rates[workers] = 60.0 * (len(paths) - failed) / wall
            print(
                f"{workers} worker{'s' * (workers > 1)} x 1 thread: {len(paths)} studies in {wall:.1f} s, "
                f"{rates[workers]:.2f} studies/min (per study: median {statistics.median(times):.1f} s, "
                f"slowest {max(times):.1f} s), {failed} failed; workers' CPU {cpu / len(paths):.1f} s per study, "
                f"{cpu / wall:.2f} cores busy on average"
            )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x studies per minute (the issue asks for 1.6x or more)")
    print(f"largest peak memory of a worker process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
