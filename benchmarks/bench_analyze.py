"""Speed of the one-click analysis: a 3-slice, 60-frame phantom study, every step timed.

Prints the wall time of each pipeline step (motion, gd, aif, segmentation, flow, segments,
report) and the total, for the CNN path and for the supplied-labels (manual correction) path,
plus peak memory. Reports figures; never fails on speed.

    .venv/bin/python benchmarks/bench_analyze.py [--seeds 1 2 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from qperf import phantom
from qperf.workflow import AnalysisOptions, analyze_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-cnn", action="store_true", help="only the supplied-labels path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: dict[str, list[dict[str, float]]] = {"cnn": [], "supplied labels": []}
    for seed in args.seeds:
        ps = phantom.generate_study(seed=seed, n_slices=3, n_frames=60, condition="stress")
        truth = AnalysisOptions(
            labels=[t.labels_moving for t in ps.truth.slices],
            insertion_points_yx=[phantom.insertion_points_over_frames(t) for t in ps.truth.slices],
        )
        paths = (
            [("supplied labels", truth)] if args.no_cnn else [("cnn", AnalysisOptions()), ("supplied labels", truth)]
        )
        for name, options in paths:
            start = time.perf_counter()
            try:
                result = analyze_study(ps.study, options)
            except Exception as exc:  # a benchmark reports failures and goes on
                print(f"seed {seed} {name}: failed: {exc}")
                continue
            timings = dict(result.timings_s)
            timings["wall"] = time.perf_counter() - start
            rows[name].append(timings)
            shape = ps.study.slices[0].shape
            print(
                f"seed {seed} {name}: matrix {shape[0]}x{shape[1]}, "
                + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
            )
    for name, runs in rows.items():
        if runs:
            keys = list(runs[0])
            print(
                f"median over {len(runs)} studies, {name}: "
                + ", ".join(f"{k} {np.median([r[k] for r in runs]):.2f} s" for k in keys)
            )
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
