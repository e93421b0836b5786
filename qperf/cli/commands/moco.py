"""``qperf moco SERIES --out DIR``: respiratory motion correction of one perfusion slice."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.cli.commands._options import add_series_options, series_options
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

FIELD_LAYOUT = (
    "float32 (t, 2, y, x) C order = NRRD axes (x, y, component, frame); component 0 = dy (rows), "
    "1 = dx (columns), pixels; pull field"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("series", metavar="SERIES", help="series file, study folder/study.json or DICOM folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--slice", type=int, metavar="N", help="slice to correct when SERIES holds several (1-based)")
    parser.add_argument("--mask", metavar="M", help="rough heart region (.nrrd, non-zero = heart) on the series grid")
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="synthetic-frame rounds (3)")
    parser.add_argument("--engine", choices=["torch", "sitk"], default="torch", help="registration engine (torch)")
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


def write_field(field: NDArray[np.float32], path: Path, spacing_mm: tuple[float, float], description: str) -> None:
    """Write a ``(t, 2, y, x)`` displacement field as NRRD (see :data:`FIELD_LAYOUT`)."""
    import nrrd

    header: dict[str, Any] = {
        "kinds": ["domain", "domain", "vector", "list"],
        "encoding": "gzip",
        "qperf_layout": FIELD_LAYOUT,
        "qperf_description": description,
        "qperf_spacing_mm": f"{spacing_mm[0]} {spacing_mm[1]}",
    }
    nrrd.write(str(path), np.ascontiguousarray(field, dtype=np.float32), header, index_order="C")


def run(args: argparse.Namespace) -> int:
    from qperf import io, motion
    from qperf.io import atomic_dir, check_output
    from qperf.progress import TerminalProgress

    out = Path(args.out)
    check_output(out, args.overwrite, inputs=[args.series])
    series = _read_slice(args)
    heart_mask = None
    if args.mask:
        image = io.read_image(args.mask)
        if image.array.ndim != 2:
            raise ValidationError(f"--mask: expected a 2D map (y, x), found shape {image.array.shape}")
        heart_mask = image.array != 0
    with TerminalProgress("moco", enabled=not args.quiet) as progress:
        result = motion.correct_series(
            series, heart_mask=heart_mask, n_rounds=args.rounds, progress=progress, engine=args.engine
        )
    corrected_name = _output_name(Path(args.series))
    with atomic_dir(out, overwrite=args.overwrite, inputs=[args.series]) as tmp:
        io.write_series(result.corrected, tmp / corrected_name)
        write_field(result.forward_px, tmp / "forward_px.nrrd", series.spacing_mm, "corrected_t(p) = original_t(p + u)")
        write_field(result.inverse_px, tmp / "inverse_px.nrrd", series.spacing_mm, "original_t(q) = corrected_t(q + w)")
        report = {
            "input": str(args.series),
            "corrected": corrected_name,
            "forward_field": "forward_px.nrrd",
            "inverse_field": "inverse_px.nrrd",
            "field_layout": FIELD_LAYOUT,
            "key_frame": result.key_frame,
            "n_frames": series.n_frames,
            "n_pd_frames": series.n_pd_frames,
            "region_yyxx": list(result.region),
            "engine": result.engine,
            "settings": result.settings,
            "quality": result.quality,
            "timings_s": result.timings_s,
        }
        (tmp / "moco.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.quiet:
        q = result.quality
        print(
            f"wrote {out}: key frame {result.key_frame}, score {q['score']:.3f} (before {q['score_before']:.3f}), "
            f"{result.timings_s['total']:.1f} s"
        )
        for warning in q["warnings"]:
            print(f"warning: {warning}")
    return 0
