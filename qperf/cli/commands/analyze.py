"""``qperf analyze STUDY --out DIR``: the one-click analysis of a study."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from qperf.cli.argtypes import point_yx
from qperf.cli.commands._options import add_analysis_options, add_series_options, analysis_options, series_options
from qperf.errors import ValidationError

NAME = "analyze"
ORDER = 1
HELP = "one click: motion correction, Gd, AIF, CNN labels, flow maps, AHA segments, report"
DESCRIPTION = """Analyse a perfusion study (study.json, its folder, or a DICOM folder) and write
the report (report.json, report.csv, report.html, bull's-eye and flow-map figures), the AIF
used, and per slice the corrected series, labels, segments and parameter maps into DIR.

Manual correction: --labels (one (y, x) label map per slice in the motion-corrected frame,
e.g. an edited labels_ref.nrrd) with --insertion (one insertion.json or "Y,X" per slice)
replace the CNN and give a new report in seconds.

--dicom (for a DICOM folder STUDY) also writes DIR/dicom: per slice one DICOM Parametric Map
per parameter map (MBF in ml/min/g, ...) and a DICOM SEG of the labels, referencing the source
images, as new series of the source study (needs the dicom extra: highdicom)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study.json, a study folder or a DICOM folder")
    parser.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--aif", metavar="CURVE", help="AIF curve (.csv) to use instead of the study's")
    parser.add_argument("--aif-kind", choices=["blood", "plasma"], help="what the --aif curve holds")
    parser.add_argument("--labels", nargs="+", metavar="LABELS", help="label map per slice (NRRD, corrected frame)")
    parser.add_argument(
        "--insertion", nargs="+", metavar="POINT", help="anterior insertion point per slice: JSON or Y,X"
    )
    parser.add_argument("--levels", nargs="+", choices=["basal", "mid", "apical"], help="slice levels, in slice order")
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write DIR/dicom: Parametric Maps and a SEG of the labels referencing the source DICOM",
    )
    add_analysis_options(parser)
    add_series_options(parser)


def read_insertion(text: str, slice_number: int) -> tuple[float, float]:
    """An anterior insertion point from ``"Y,X"`` or an insertion JSON (``qperf segment``/``analyze``)."""
    from qperf.io.insertion import read_anterior_point

    if "," in text and not Path(text).exists():
        try:
            return point_yx(text)
        except argparse.ArgumentTypeError as exc:
            raise ValidationError(f"--insertion: {exc} (or an insertion JSON file)") from None
    return read_anterior_point(text, slice_number)


#: Fields of the analysis options that a command-line option sets, for messages in the options' words.
OPTION_OF_FIELD = {"levels": "--levels", "labels": "--labels", "insertion_points_yx": "--insertion"}


def in_option_words(exc: ValidationError, args: argparse.Namespace) -> ValidationError:
    """The error of a field the user set through an option, naming the option (and the file) instead."""
    m = re.match(r"^(levels|labels|insertion_points_yx)(\[(\d+)\])?: (.*)$", str(exc), flags=re.DOTALL)
    if m is None or type(exc) is not ValidationError:
        return exc
    option = OPTION_OF_FIELD[m.group(1)]
    given = {"--labels": args.labels, "--insertion": args.insertion}.get(option)
    if m.group(3) is not None and given and int(m.group(3)) < len(given):
        option += f" {given[int(m.group(3))]}"
    return ValidationError(f"{option}: {m.group(4)}")


def read_labels(path: str) -> np.ndarray:
    from qperf import io

    image = io.read_image(path)
    if image.array.ndim != 2:
        raise ValidationError(
            f"{path}: expected a (y, x) label map in the motion-corrected frame (labels_ref.nrrd), "
            f"found shape {image.array.shape}"
        )
    labels = np.asarray(image.array)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 3:
        raise ValidationError(f"{path}: expected integer labels 0-3, found values {labels.min()} to {labels.max()}")
    return labels.astype(np.uint8)


def run(args: argparse.Namespace) -> int:
    from qperf import io
    from qperf.progress import TerminalProgress
    from qperf.workflow import AnalysisOptions, StudySource, analyze_files

    io.check_output(args.out, args.overwrite, inputs=[args.study])
    if (args.labels is None) != (args.insertion is None):
        raise ValidationError("--labels and --insertion go together (they replace the CNN)")
    if args.aif_kind is not None and args.aif is None:
        raise ValidationError("--aif-kind: says what an --aif curve holds; give it with --aif CURVE")
    if args.dicom:
        check_dicom_source(args.study)
    source = StudySource(args.study, series_options(args), aif=args.aif, aif_kind=args.aif_kind if args.aif else None)
    options = AnalysisOptions(
        **analysis_options(args),
        labels=[read_labels(p) for p in args.labels] if args.labels else None,
        insertion_points_yx=[read_insertion(t, i + 1) for i, t in enumerate(args.insertion)]
        if args.insertion
        else None,
        levels=args.levels,
    )
    with TerminalProgress("analyze", enabled=not args.quiet) as progress:
        try:
            result = analyze_files(source, options, args.out, overwrite=args.overwrite, progress=progress)
        except ValidationError as exc:
            raise in_option_words(exc, args) from exc
        if args.dicom:
            write_dicom(result, args.study, Path(args.out) / "dicom")
    if not args.quiet:
        print(summary(result.report))
        print(f"wrote {args.out}")
    return 0


def check_dicom_source(study: str) -> None:
    """Refuse --dicom before the analysis when the study is not a DICOM folder or highdicom is missing."""
    from qperf.io import MANIFEST_NAME
    from qperf.io.dicom_results import _highdicom

    p = Path(study)
    if not p.is_dir() or (p / MANIFEST_NAME).is_file():
        raise ValidationError(
            f"--dicom: expected a DICOM folder as STUDY (the results reference its images), found {study}"
        )
    _highdicom()


def write_dicom(result: Any, source: str, folder: Path) -> None:
    """The analysis' maps and labels as DICOM (:func:`qperf.workflow.write_analysis_dicom`)."""
    from qperf.workflow import write_analysis_dicom

    write_analysis_dicom(result, source, folder, overwrite=True)


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal: global and per-segment MBF with pixel counts (``*``: fewer
    than the minimum, ``low_pixel_count``), step timings."""
    g = report["global"]
    mean = g["mbf_mean_ml_min_g"]
    lines = [
        f"global MBF {'-' if mean is None else f'{mean:.2f}'} ml/min/g (mean of {g['n_pixels']} myocardial pixels)"
    ]
    row = []
    for k in range(1, 17):
        seg = report["segments"][str(k)]
        value = seg.get("mbf_mean_ml_min_g")
        count = f"({seg.get('mbf_n_valid', seg['n_pixels'])}{'*' if seg.get('low_pixel_count') else ''})"
        row.append((f"{k}:{value:.2f}" if value is not None else f"{k}:-") + count)
    lines.append("segments (valid pixels) " + " ".join(row))
    low = report["qc"].get("low_pixel_segments")
    if low:
        lines.append(
            f"* fewer than {report['qc']['min_segment_pixels']} valid pixels: segments {low}, values uncertain"
        )
    lines.append("timings " + ", ".join(f"{k} {v:.2f} s" for k, v in report["timings_s"].items()))
    return "\n".join(lines)
