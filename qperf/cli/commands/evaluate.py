"""``qperf evaluate PREDICTED MANUAL --out DIR``: predicted labels against an annotator's."""

from __future__ import annotations

import argparse

from qperf.cli.commands._options import add_series_options, series_options

NAME = "evaluate"
ORDER = 65
HELP = "compare predicted labels (qperf segment outputs) with manual ones (case folders): Dice, distances, MBF"
DESCRIPTION = """Compare predicted labels with manual ones the way the segmentation paper reports them.

PREDICTED is a qperf segment output folder or a labels file, or a folder of them named like the
case folders; MANUAL is a case folder or a folder of case folders (series.*, labels.nrrd,
optional insertion.json and case.json: see qperf train --help). Per class and labelled frame:
Dice, false-positive and false-negative areas (% of the manual area), precision, recall, mean
surface distance and 95 % Hausdorff distance (mm), and the RV insertion direction error
(degrees); classes a case did not draw are not scored. Where both sides of a case hold a
report.json (qperf analyze outputs), global and per-segment MBF are compared (Bland-Altman bias
and limits of agreement, paired t-test). Writes evaluation.json, evaluation.csv (one row per
case and class) and evaluation.html (tables and plots) into DIR, and prints a summary."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predicted", help="qperf segment output folder or labels file, or a folder of them")
    parser.add_argument("manual", help="case folder, or a folder of case folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist unless --overwrite)")
    add_series_options(parser)


def run(args: argparse.Namespace) -> int:
    from qperf.evaluation import evaluate, write_evaluation
    from qperf.io import check_output

    check_output(args.out, args.overwrite, inputs=[args.predicted, args.manual])
    result = evaluate(args.predicted, args.manual, **series_options(args))
    write_evaluation(result, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"{'class':<16}{'Dice':>14}{'MSD mm':>10}{'HD95 mm':>10}{'cases':>7}")
        for name, entry in result.summary.items():
            if "dice" in entry:
                d = entry["dice"]
                msd = entry.get("msd_mm", {}).get("mean", float("nan"))
                hd = entry.get("hd95_mm", {}).get("mean", float("nan"))
                print(f"{name:<16}{d['mean']:>8.3f} +-{d['sd']:.3f}{msd:>10.2f}{hd:>10.2f}{d['n']:>7}")
            elif "angle_error_deg" in entry:
                a = entry["angle_error_deg"]
                print(f"{name:<16}{a['mean']:>8.2f} deg (n={a['n']})")
        if result.flow.get("global", {}).get("n"):
            g = result.flow["global"]
            print(
                f"global MBF: CNN {g['mean_predicted']:.3f}, manual {g['mean_manual']:.3f}, bias {g['bias']:+.3f} ml/min/g"
            )
        if result.unmatched:
            print(f"cases without a prediction: {', '.join(result.unmatched)}")
        print(f"wrote {args.out}")
    return 0
