"""``qperf convert IN OUT``: between series formats, study folders and DICOM."""

from __future__ import annotations

import argparse
from pathlib import Path

from qperf.cli.argtypes import slice_number
from qperf.cli.commands._options import add_series_options, series_options
from qperf.errors import ValidationError

NAME = "convert"
ORDER = 11
HELP = "convert a series or study between formats (NRRD, NIfTI, Analyze, NumPy, DICOM, study folder)"
DESCRIPTION = """Convert between formats. OUT is chosen by its name: a series file
(.seq.nrrd, .nrrd, .nii, .nii.gz, .hdr, .npz, .npy) takes one slice (--slice N when the input
has several); a name without a series suffix becomes a study folder (study.json plus one
.seq.nrrd per slice), or a DICOM folder with --to dicom."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="series file, study.json, study folder or DICOM folder")
    parser.add_argument("output", help="series file or output folder")
    parser.add_argument(
        "--slice", type=slice_number, metavar="N", help="slice to write when OUT is a single series (1-based)"
    )
    parser.add_argument("--to", choices=["auto", "study", "dicom"], default="auto", help="kind of output folder")
    add_series_options(parser)


def run(args: argparse.Namespace) -> int:
    from qperf import io
    from qperf.io import check_output

    out = Path(args.output)
    check_output(out, args.overwrite, inputs=[args.input])
    study = io.read_study(args.input, **series_options(args))
    as_series = args.to == "auto" and _is_series_name(out)
    if as_series:
        if args.slice is None and study.n_slices > 1:
            raise ValidationError(
                f"{args.input} holds {study.n_slices} slices; choose one with --slice N or write a study folder"
            )
        index = (args.slice or 1) - 1
        if not 0 <= index < study.n_slices:
            raise ValidationError(f"--slice: expected 1 to {study.n_slices}, found {args.slice}")
        io.write_series(study.slices[index], out, overwrite=args.overwrite)
    elif args.to == "dicom":
        from qperf.io import dicom

        if study.aif is not None:
            raise ValidationError(
                f"{args.input} has an AIF curve, which DICOM images cannot hold; convert to a study folder instead"
            )
        dicom.write_dicom_study(study, out, overwrite=args.overwrite)
    else:
        io.write_study(study, out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _is_series_name(path: Path) -> bool:
    from qperf import io

    try:
        io.series_format(path)
    except ValidationError:
        return False
    return not path.is_dir()
