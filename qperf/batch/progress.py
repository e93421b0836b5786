"""Progress of a batch on stderr: studies done and failed, rate and time left.

One line per finished study (a terminal and a log file read the same), for example::

    qperf batch: [5/8] case_05 ok in 41.2 s | 5 done, 1 failed | 2.9 studies/min | about 1 min left

The rate counts the studies analysed in this run (not those an earlier run finished) over the
time since the first was started.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from qperf.batch.plan import StudyTask
from qperf.batch.worker import StudyRecord


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class BatchProgress:
    """Counts and prints the outcome of each study; silent (but for failures) when not ``enabled``."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.failed = 0
        self.resumed = 0
        self.analysed = 0
        self._start = time.monotonic()

    def _print(self, text: str) -> None:
        print(f"qperf batch: {text}", file=self.stream, flush=True)

    def start(self, to_do: int, engine: str) -> None:
        """Announce the run (and restart the clock for the rate)."""
        self._start = time.monotonic()
        if self.enabled:
            before = f", {self.resumed} finished before" if self.resumed else ""
            self._print(f"{self.total} studies{before}, {to_do} to analyse on {engine}")

    @property
    def rate_per_min(self) -> float | None:
        elapsed = time.monotonic() - self._start
        return 60.0 * self.analysed / elapsed if self.analysed and elapsed > 0 else None

    def __call__(self, task: StudyTask, record: StudyRecord) -> None:
        """Count one study's outcome and print its line."""
        self.done += 1
        self.failed += not record.ok
        if record.resumed:
            self.resumed += 1
            return
        self.analysed += 1
        outcome = "ok" if record.ok else f"FAILED: {record.error}"
        took = f" in {record.run_time_s:.1f} s" if record.run_time_s is not None else ""
        line = f"[{self.done}/{self.total}] {task.study_id} {outcome}{took} | {self.done} done, {self.failed} failed"
        rate = self.rate_per_min
        if rate:
            left = (self.total - self.done) / rate * 60.0
            line += f" | {rate:.1f} studies/min" + (
                f" | about {_duration(left)} left" if self.done < self.total else ""
            )
        if self.enabled or not record.ok:
            self._print(line)
