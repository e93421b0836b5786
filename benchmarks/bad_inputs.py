"""Sweep of bad inputs over every ``qperf`` command: how many get a clean result.

Writes a small good study in every format (``bad_input_fixtures.py``), damaged copies of it and
bad option values (``bad_input_cases.py``, ``bad_input_cases_cli.py``), runs ``qperf`` on each
in a fresh process and checks the error contract of the command line:

- a refused input exits with status 2 and stderr holds exactly one line (after an argparse
  usage block) ``qperf <command>: error: ...`` naming the option, field or file (the case's
  words) in QPerf's words, not a raw Python message; no traceback, no line from Python's
  warnings module; no output file or folder created or changed;
- an input that can be read but is probably wrong is refused that way, or (where the case
  allows it) accepted with a stderr line ``qperf <command>: warning: ...`` naming the problem
  and the same flag in the outputs' QC;
- the inputs are never modified; paths with spaces and non-ASCII letters work (the controls).

Prints one line per case that is not clean and the figure; never fails on it.

    .venv/bin/python benchmarks/bad_inputs.py [--only WORD] [--jobs 2] [--keep DIR] [--list]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bad_input_cases import reader_cases
from bad_input_cases_cli import command_cases
from bad_input_fixtures import Fixtures

#: Raw Python texts that mean an error was not put into QPerf's words.
RAW_TEXTS = (
    "could not convert",
    "Expecting ",
    "invalid literal",
    "object has no attribute",
    "NoneType",
    "not subscriptable",
    "unhashable",
    "list index",
    "index out of range",
    "KeyError",
    "TypeError",
    "Unpickling",
    "[Errno",
    "positional argument",
    "unexpected keyword",
    "is not iterable",
    "cannot reshape",
    "operands could not",
    "division by zero",
    "truth value of an array",
    "unexpected error",
)
_WARNINGS_MODULE = re.compile(r"(^|\s|:)\w*Warning: ")


@dataclass
class Case:
    """One bad input: the command line and what a clean answer is.

    ``expect`` is ``"error"`` (refused), ``"warn_or_error"`` (refused, or accepted with a
    warning line and ``qc(out)`` true) or ``"ok"`` (a control that must work). ``words`` must
    all appear in the error or warning line (case-insensitive).
    """

    name: str
    argv: list[str]
    expect: str = "error"
    words: tuple[str, ...] = ()
    out: Path | None = None
    qc: Any = None
    kind: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return self.argv[0]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under ``root`` with its size and modification time, and every folder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:  # a folder's own time changes when a temporary file comes and goes
            out[str((Path(dirpath) / name).relative_to(root))] = (0, 0)
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _strip_usage(lines: list[str]) -> list[str]:
    """The lines after an argparse usage block."""
    if lines and lines[0].startswith("usage:"):
        i = 1
        while i < len(lines) and lines[i].startswith(" "):
            i += 1
        return lines[i:]
    return lines


def _changes(before: dict[str, Any], after: dict[str, Any], allowed: Path | None, root: Path) -> list[str]:
    changed = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
    if allowed is not None:
        prefix = str(allowed.relative_to(root))
        changed = [k for k in changed if not (k == prefix or k.startswith(prefix + os.sep))]
    return sorted(changed)


def judge(case: Case, rc: int, stderr: str, changes: list[str], output_changes: list[str], legacy: bool = False) -> str:
    """``"clean"`` or the kind of failure (``legacy``: the error line may be ``qperf: error:``, as before)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback" in stderr:
        return "traceback"
    if changes:
        return "input changed" if case.expect == "ok" else "partial output"
    if any(_WARNINGS_MODULE.search(line) for line in lines):
        return "warning spew"
    body = _strip_usage(lines)
    error = re.compile(
        rf"^qperf{'( ' + re.escape(case.command) + ')?' if legacy else ' ' + re.escape(case.command)}: error: "
    )
    warning = re.compile(rf"^qperf {re.escape(case.command)}: warning: ")
    words = [w.lower() for w in case.words]
    if rc == 2:
        if case.expect == "ok":
            return "refused a good input"
        if len(body) != 1 or not error.match(body[0]):
            return "not one error line"
        if output_changes:
            return "partial output"
        if any(raw in body[0] for raw in RAW_TEXTS) or not all(w in body[0].lower() for w in words):
            return "error does not name the problem"
        return "clean"
    if rc != 0:
        return f"exit status {rc}"
    if case.expect == "error":
        return "accepted"
    if case.expect == "ok":
        return "clean" if not any(error.match(line) for line in body) else "error line with status 0"
    warned = [line for line in body if warning.match(line) and all(w in line.lower() for w in words)]
    if not warned:
        return "accepted without a warning"
    if case.qc is not None and case.out is not None and not case.qc(case.out):
        return "warning not in the QC"
    return "clean"


def run_case(case: Case, root: Path, timeout_s: float, source: str | None = None, legacy: bool = False) -> Case:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="")
    if source:  # the qperf package of another checkout (the runs start in the inputs' folder)
        env["PYTHONPATH"] = source
    before = snapshot(root)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "qperf.cli", *case.argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            cwd=root,
        )
        rc, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        rc, stderr = -1, "timed out"
    after = snapshot(root)
    all_changes = _changes(before, after, None, root)
    elsewhere = _changes(before, after, case.out, root)
    in_output = [c for c in all_changes if c not in elsewhere]
    verdict = judge(case, rc, stderr, elsewhere, in_output, legacy) if rc != -1 else "timed out"
    case.result = {"verdict": verdict, "rc": rc, "stderr": stderr.strip(), "s": time.perf_counter() - start}
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the cases whose name contains this text")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once")
    parser.add_argument("--keep", help="build the inputs in this folder and keep them")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--source", help="run the qperf package of this checkout instead of the installed one")
    parser.add_argument("--legacy", action="store_true", help="accept the former error line 'qperf: error: ...'")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's stderr")
    args = parser.parse_args(argv)
    holder = None if args.keep else tempfile.TemporaryDirectory(prefix="qperf sweep é ")
    root = Path(args.keep or holder.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    fx = Fixtures(root)
    cases = reader_cases(fx) + command_cases(fx)
    names = Counter(c.name for c in cases)
    assert all(n == 1 for n in names.values()), [k for k, n in names.items() if n > 1]
    if args.only:
        cases = [c for c in cases if args.only in c.name]
    if args.list:
        for c in cases:
            print(f"{c.name:<40} {c.expect:<14} qperf {' '.join(c.argv)}")
        return 0
    start = time.perf_counter()
    if args.jobs > 1:
        print("note: with --jobs > 1 a case that changes files may be blamed on the case beside it")
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = list(pool.map(lambda c: run_case(c, root, args.timeout, args.source, args.legacy), cases))
    report(done, args.verbose, time.perf_counter() - start)
    if holder is not None:
        holder.cleanup()
    return 0


def report(cases: list[Case], verbose: bool, seconds: float) -> None:
    verdicts = Counter(c.result["verdict"] for c in cases)
    for c in cases:
        v = c.result["verdict"]
        if v != "clean" or verbose:
            last = " | ".join(c.result["stderr"].splitlines()[-2:])[:300]
            print(f"{v:<32} {c.name:<38} rc={c.result['rc']} {last}")
    clean = verdicts.pop("clean", 0)
    print(f"\n{clean} of {len(cases)} cases clean ({seconds:.0f} s)")
    for verdict, n in verdicts.most_common():
        print(f"  {n:>3} {verdict}")
    by_command = Counter(c.command for c in cases)
    print("cases per command: " + ", ".join(f"{k} {n}" for k, n in sorted(by_command.items())))


if __name__ == "__main__":
    sys.exit(main())
