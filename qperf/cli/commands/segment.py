"""``qperf segment SERIES --out DIR``: LV blood pool, myocardium, RV and RV insertion points."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from qperf.cli.argtypes import slice_number
from qperf.cli.commands._options import add_device_option, add_series_options, device_of, series_options
from qperf.errors import ValidationError

NAME = "segment"
ORDER = 30
HELP = "segment the LV blood pool, myocardium and RV of perfusion series with the CNN"
DESCRIPTION = """Segment every slice of a series, study folder, study.json or DICOM folder with the
shipped network (or --model). Writes, in DIR: labels.nrrd (one slice) or labels_N.nrrd (slice N
of several): 2D+T labels on the input's frames, grid and geometry (0 background, 1 LV blood
pool, 2 myocardium, 3 RV blood pool); confidence.nrrd / confidence_N.nrrd (y, x); and
insertion.json: RV insertion points per slice and per frame, in pixels (y, x) and LPS mm, with
the quality-control report (the heart centre chosen, its score and the runner-up; the motion
decision).

Labels follow the heart on every frame of an uncorrected, breathing series: with --motion auto
(the default) the heart's breathing displacement is measured first (a fast correlation of every
frame's edges against their temporal mean); when it exceeds 1.2 mm, respiratory motion is
corrected around the heart (qperf moco's registration), the corrected series is segmented, and
labels and insertion points are carried back to every acquired frame. Series already corrected
by qperf (recorded in their metadata) and still series are segmented as they are, with the
labels repeated over the frames. --motion on always corrects, --motion off never does.

With --reference, also: labels_ref.nrrd / labels_ref_N.nrrd, the labels on the motion-corrected
(reference) grid, (y, x); and for every slice that was corrected motion/ / motion_N/, the
correction in qperf moco's layout (corrected.seq.nrrd, forward_px.nrrd, inverse_px.nrrd,
moco.json). A caller in another process rebuilds the whole segmentation from these files (the
Slicer modules run the CNN so)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("series", help="series file, study folder, study.json or DICOM folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist unless --overwrite)")
    parser.add_argument(
        "--model", metavar="PATH", help="model weights (.pt) or card (.json); default: the shipped model"
    )
    parser.add_argument("--slice", type=slice_number, metavar="N", help="segment only slice N (1-based)")
    add_device_option(parser)
    parser.add_argument(
        "--motion",
        choices=("auto", "on", "off"),
        default="auto",
        help="respiratory motion correction before segmentation: auto (when the heart moves more than "
        "1.2 mm; default), on, off",
    )
    parser.add_argument("--motion-correct", action="store_true", help="the same as --motion on")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also write the labels on the corrected grid (labels_ref.nrrd) and the motion correction (motion/)",
    )
    add_series_options(parser)


def run(args: argparse.Namespace) -> int:
    from qperf import io
    from qperf.checks import check_series
    from qperf.errors import collect_warnings
    from qperf.io import atomic_dir
    from qperf.io.insertion import slice_record
    from qperf.segmentation import load_segmenter

    device = device_of(args)
    study = io.read_study(args.series, **series_options(args))
    indices = list(range(study.n_slices))
    if args.slice is not None:
        if not 1 <= args.slice <= study.n_slices:
            raise ValidationError(f"--slice: expected 1 to {study.n_slices}, found {args.slice}")
        indices = [args.slice - 1]
    io.check_output(args.out, args.overwrite, inputs=[args.series])
    notes = {i: check_series(study.slices[i], f"slice {i + 1}") for i in indices}
    segmenter = load_segmenter(args.model, threads=args.threads, device=device)
    records = []
    with atomic_dir(args.out, overwrite=args.overwrite, inputs=[args.series]) as tmp:
        for i in indices:
            series = study.slices[i]
            with collect_warnings() as caught:
                result = segmenter.segment(series, motion="on" if args.motion_correct else args.motion)
            qc: dict[str, Any] = result.qc.to_dict()
            warnings = list(dict.fromkeys([*notes[i], *caught, *(str(w) for w in qc.get("warnings", []))]))
            if warnings:
                qc["warnings"] = warnings
            suffix = "" if len(indices) == 1 else f"_{i + 1}"
            io.write_image(
                result.labels.astype(np.uint8),
                tmp / f"labels{suffix}.nrrd",
                spacing_mm=series.spacing_mm,
                geometry=series.geometry,
                time_s=series.time_s,
            )
            io.write_image(
                result.confidence.astype(np.float32),
                tmp / f"confidence{suffix}.nrrd",
                spacing_mm=series.spacing_mm,
                geometry=series.geometry,
            )
            records.append(slice_record(result.insertion_points, result.insertion_points_per_frame, series, i, qc))
            if args.reference:
                _write_reference(result, series, tmp, suffix)
            if not args.quiet:
                flags = ", ".join(result.qc.flags) or "none"
                print(f"slice {i + 1}: myocardium {result.qc.myo_area_mm2:.0f} mm2, QC flags: {flags}")
        card = segmenter.card
        doc = {
            "model": {"name": card.get("name"), "version": card.get("version"), "sha256": card.get("sha256")},
            "slices": records,
        }
        (tmp / "insertion.json").write_text(json.dumps(doc, indent=2) + "\n")
    if not args.quiet:
        print(f"wrote {args.out}")
    return 0


def _write_reference(result: Any, series: Any, folder: Path, suffix: str) -> None:
    """The reference-grid labels and, when the slice was corrected, its motion folder."""
    from qperf import io
    from qperf.motion.folder import write_motion_folder

    io.write_image(
        np.asarray(result.labels_ref, dtype=np.uint8),
        folder / f"labels_ref{suffix}.nrrd",
        spacing_mm=series.spacing_mm,
        geometry=series.geometry,
    )
    moco = result.extras.get("motion")
    if moco is not None:
        write_motion_folder(moco, folder / f"motion{suffix}")
