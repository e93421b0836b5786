"""``qperf demo``: generate a phantom study, analyse it, and compare with its ground truth."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from qperf.cli.argtypes import seed
from qperf.cli.commands._options import add_device_option, device_of
from qperf.cli.commands.analyze import summary

NAME = "demo"
ORDER = 0
HELP = "generate a digital-phantom study, analyse it and compare the result with the truth"
DESCRIPTION = """Generate a 3-slice digital-phantom perfusion study with known per-segment flow,
run the whole analysis on it, and print measured against true MBF per AHA segment. Writes
OUT/study (the phantom, with OUT/study/truth) and OUT/analysis (the report and maps)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="qperf-demo", help="output folder (default: qperf-demo)")
    parser.add_argument("--seed", type=seed, default=1, help="phantom seed")
    parser.add_argument("--condition", choices=["stress", "rest"], default="stress")
    parser.add_argument("--field", type=float, choices=[1.5, 3.0], default=1.5, help="field strength (T)")
    parser.add_argument(
        "--truth-labels",
        action="store_true",
        help="use the phantom's true labels and insertion points instead of the CNN (tests the rest of the chain)",
    )
    add_device_option(parser)


def run(args: argparse.Namespace) -> int:
    from qperf import phantom
    from qperf.io import atomic_dir, check_output
    from qperf.progress import TerminalProgress
    from qperf.workflow import AnalysisOptions, analyze_study, write_analysis

    device = device_of(args)
    check_output(args.out, args.overwrite)
    ps = phantom.generate_study(seed=args.seed, n_slices=3, n_frames=60, condition=args.condition, field_t=args.field)
    options = AnalysisOptions(threads=args.threads, device=device)
    if args.truth_labels:
        options = AnalysisOptions(
            threads=args.threads,
            device=device,
            labels=[t.labels_moving for t in ps.truth.slices],
            insertion_points_yx=[phantom.insertion_points_over_frames(t) for t in ps.truth.slices],
        )
    with TerminalProgress("demo", enabled=not args.quiet) as progress:
        result = analyze_study(ps.study, options, progress=progress)
    with atomic_dir(args.out, args.overwrite) as tmp:
        phantom.write_study(ps, tmp / "study")
        write_analysis(result, tmp / "analysis")
    if not args.quiet:
        print(summary(result.report))
        print(compare_with_truth(result.report, ps.truth.segments))
        print(f"wrote {args.out}/study (phantom and truth) and {args.out}/analysis (report)")
    return 0


def compare_with_truth(report: dict[str, Any], truth: dict[int, dict[str, Any]]) -> str:
    """Per-segment measured vs true MBF, the errors and the valid pixel counts (``*``: fewer
    than the minimum), as text."""
    lines = ["segment  true   measured  error    pixels"]
    errors = []
    for k in range(1, 17):
        true = truth.get(k, {}).get("mbf_ml_min_g")
        measured = report["segments"][str(k)].get("mbf_mean_ml_min_g")
        if true is None or measured is None:
            lines.append(f"{k:>7}  {'-':>5}  {'-':>8}")
            continue
        err = (measured - true) / true
        errors.append(err)
        seg = report["segments"][str(k)]
        pixels = f"{seg.get('mbf_n_valid', seg['n_pixels'])}{'*' if seg.get('low_pixel_count') else ''}"
        lines.append(f"{k:>7}  {true:5.2f}  {measured:8.2f}  {100 * err:+5.1f} %  {pixels:>6}")
    if errors:
        lines.append(
            f"median absolute error {100 * float(np.median(np.abs(errors))):.1f} % over {len(errors)} segments"
        )
    return "\n".join(lines)
