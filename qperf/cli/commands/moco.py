"""``qperf moco SERIES --out DIR``: respiratory motion correction of one perfusion slice."""

from __future__ import annotations

import argparse
from pathlib import Path

from qperf.cli.argtypes import int_range, slice_number
from qperf.cli.commands._options import add_device_option, add_series_options, device_of, series_options
from qperf.errors import ValidationError
from qperf.types import PerfusionSeries

NAME = "moco"
ORDER = 30
HELP = "respiratory motion correction of a perfusion slice (corrected series, fields, quality score)"
DESCRIPTION = """Correct the respiratory motion of a 2D+T perfusion slice (KL/PCA synthetic frames,
non-rigid registration of every frame to its synthetic counterpart, key frame chosen
automatically; proton-density frames registered too).

Writes into DIR (created atomically; must not exist unless --overwrite):
  corrected.<ext>     the corrected series, in the input's format (.seq.nrrd for DICOM,
                      study folders and .npy)
  forward_px.nrrd     pull fields, float32 array (t, 2, y, x) in C order (NRRD axes x, y,
                      component, frame): component 0 = rows (dy), 1 = columns (dx), pixels;
                      corrected_t(p) = original_t(p + forward[t, :, p])
  inverse_px.nrrd     original_t(q) = corrected_t(q + inverse[t, :, q]), same layout
  moco.json           key frame, quality score and its parts, timings, settings"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("series", metavar="SERIES", help="series file, study folder/study.json or DICOM folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--slice", type=slice_number, metavar="N", help="slice to correct when SERIES holds several (1-based)"
    )
    parser.add_argument("--mask", metavar="M", help="rough heart region (.nrrd, non-zero = heart) on the series grid")
    parser.add_argument("--rounds", type=int_range(1, 10), default=3, metavar="N", help="synthetic-frame rounds (3)")
    parser.add_argument("--engine", choices=["torch", "sitk"], default="torch", help="registration engine (torch)")
    add_device_option(parser)
    add_series_options(parser)


def _read_slice(args: argparse.Namespace) -> PerfusionSeries:
    from qperf import io

    study = io.read_study(args.series, **series_options(args))
    if args.slice is None and study.n_slices > 1:
        raise ValidationError(f"{args.series} holds {study.n_slices} slices; choose one with --slice N")
    index = (args.slice or 1) - 1
    if not 0 <= index < study.n_slices:
        raise ValidationError(f"--slice: expected 1 to {study.n_slices}, found {args.slice}")
    return study.slices[index]


def _output_name(source: Path) -> str:
    name = source.name.lower()
    if source.is_dir() or name.endswith(".json") or name.endswith(".npy"):
        return "corrected.seq.nrrd"
    for suffix in (".seq.nrrd", ".nii.gz", ".nii", ".npz"):
        if name.endswith(suffix):
            return "corrected" + suffix
    if name.endswith((".hdr", ".img")):
        return "corrected.hdr"
    return "corrected.seq.nrrd"


def run(args: argparse.Namespace) -> int:
    from qperf import io, motion
    from qperf.checks import check_series
    from qperf.io import atomic_dir, check_output
    from qperf.motion.folder import write_motion_folder
    from qperf.progress import TerminalProgress

    out = Path(args.out)
    device = device_of(args) if args.engine == "torch" else "cpu"
    check_output(out, args.overwrite, inputs=[args.series])
    series = _read_slice(args)
    check_series(series, Path(args.series).name)
    heart_mask = None
    if args.mask:
        image = io.read_image(args.mask)
        if image.array.ndim != 2:
            raise ValidationError(f"--mask: expected a 2D map (y, x), found shape {image.array.shape}")
        if image.array.shape != series.shape:
            raise ValidationError(
                f"--mask: expected a map of shape {series.shape} (the series), found {image.array.shape}"
            )
        heart_mask = image.array != 0
    with TerminalProgress("moco", enabled=not args.quiet) as progress:
        result = motion.correct_series(
            series, heart_mask=heart_mask, n_rounds=args.rounds, progress=progress, engine=args.engine, device=device
        )
    corrected_name = _output_name(Path(args.series))
    with atomic_dir(out, overwrite=args.overwrite, inputs=[args.series]) as tmp:
        write_motion_folder(result, tmp, corrected_name=corrected_name, extra={"input": str(args.series)})
    if not args.quiet:
        q = result.quality
        print(
            f"wrote {out}: key frame {result.key_frame}, score {q['score']:.3f} (before {q['score_before']:.3f}), "
            f"{result.timings_s['total']:.1f} s"
        )
        for warning in q["warnings"]:
            print(f"warning: {warning}")
    return 0
