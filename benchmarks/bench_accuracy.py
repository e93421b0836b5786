"""Accuracy of the one-click analysis against phantom truth: per-segment and global MBF errors.

For each phantom study (3 slices, 60 frames, stress, noise, coil shading and limited
resolution): the analysis of the static study with its true labels (the flow chain alone),
and of the breathing study with motion correction and the network's labels (the whole
one-click chain). Prints, per study, the median absolute per-segment error, the global
error and the signed error of every segment (of the segments' mean MBF), then the medians over
the studies, also for the segments' median MBF. Reports
figures; passes or fails nothing.

    .venv/bin/python benchmarks/bench_accuracy.py [--seeds 1 2 3 4 5 6] [--condition stress] [--delay study]
        [--tissue-delay 1.2] [--static-only]

``--tissue-delay`` makes the myocardium lag the AIF (real scans: a fraction of a second to
about two seconds); a lag between the 0.5 s samples of the fitting grid tests the delay
estimate.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from qperf import phantom
from qperf.workflow import AnalysisOptions, analyze_study


def _errors(report: dict, truth: dict, statistic: str = "mean") -> tuple[np.ndarray, float]:
    """Signed per-segment errors (NaN where a segment has no value) and the global error."""
    errors = []
    for k in range(1, 17):
        value = report["segments"][str(k)][f"mbf_{statistic}_ml_min_g"]
        errors.append(np.nan if value is None else value / truth[k]["mbf_ml_min_g"] - 1.0)
    # the global value is a pixel mean: compare with the truth weighted by each segment's pixels
    weights = np.array([report["segments"][str(k)].get("mbf_n_valid") or 0 for k in range(1, 17)], dtype=float)
    values = np.array([truth[k]["mbf_ml_min_g"] for k in range(1, 17)])
    true_global = float(np.sum(weights * values) / weights.sum()) if weights.sum() > 0 else float(values.mean())
    return np.asarray(errors, dtype=float), report["global"][f"mbf_{statistic}_ml_min_g"] / true_global - 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--condition", choices=["stress", "rest"], default="stress")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--delay", choices=["study", "slice", "pixel"], default="study", help="AIF-tissue delay mode")
    parser.add_argument("--tissue-delay", type=float, default=0.0, help="myocardium behind the AIF, s")
    parser.add_argument("--static-only", action="store_true", help="only the static studies with true labels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    summary: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        runs = (("static, true labels", False), ("breathing, motion correction + CNN", True))
        for name, moving in runs[:1] if args.static_only else runs:
            ps = phantom.generate_study(
                seed=seed,
                n_slices=3,
                n_frames=60,
                condition=args.condition,
                motion=moving,
                tissue_delay_s=args.tissue_delay,
            )
            if moving:
                options = AnalysisOptions(delay=args.delay)
            else:
                options = AnalysisOptions(
                    delay=args.delay,
                    motion="off",
                    aif_motion_correction=False,
                    labels=[t.labels_moving for t in ps.truth.slices],
                    insertion_points_yx=[phantom.insertion_points_over_frames(t) for t in ps.truth.slices],
                )
            try:
                result = analyze_study(ps.study, options)
            except Exception as exc:  # a benchmark reports failures and goes on
                print(f"seed {seed} {name}: failed: {exc}")
                continue
            errors, global_error = _errors(result.report, ps.truth.segments)
            median = float(np.nanmedian(np.abs(errors)))
            summary.setdefault(name, []).append((median, global_error))
            errors_med, global_med = _errors(result.report, ps.truth.segments, "median")
            summary.setdefault(name + " (segment medians)", []).append(
                (float(np.nanmedian(np.abs(errors_med))), global_med)
            )
            spacing = ps.study.slices[0].spacing_mm[0]
            signed = " ".join("--" if np.isnan(e) else f"{100 * e:+.0f}" for e in errors)
            print(
                f"seed {seed} {name}: {spacing:.2f} mm pixels, median |segment error| {100 * median:.1f} %, "
                f"global {100 * global_error:+.1f} %, study delay {result.report['qc']['delay']['study_delay_s']} s; "
                f"segments 1-16 (%): {signed}"
            )
    for name, rows in summary.items():
        medians = np.array([r[0] for r in rows])
        globals_ = np.abs([r[1] for r in rows])
        print(
            f"{name}: over {len(rows)} studies, median of the per-study median |segment error| "
            f"{100 * np.median(medians):.1f} % (range {100 * medians.min():.1f}-{100 * medians.max():.1f} %), "
            f"median |global error| {100 * np.median(globals_):.1f} %"
        )


if __name__ == "__main__":
    main()
