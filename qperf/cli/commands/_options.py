"""Reading options shared by commands that take series files."""

from __future__ import annotations

import argparse
from typing import Any


def add_series_options(parser: argparse.ArgumentParser) -> None:
    """Options for files that do not record everything (NumPy, Analyze, plain arrays)."""
    group = parser.add_argument_group("reading options (for files that do not record them)")
    group.add_argument("--frame-interval", type=float, metavar="SECONDS", help="time between frames")
    group.add_argument("--spacing", type=float, nargs=2, metavar=("DY", "DX"), help="pixel spacing in mm")
    group.add_argument("--units", choices=["signal", "gd_mmol_l"], help="what the values are")
    group.add_argument("--pd-frames", type=int, metavar="N", help="number of leading proton-density frames")
    group.add_argument("--axes", choices=["tyx", "yxt"], default="tyx", help="axis order of .npy/.npz arrays")


def series_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"axes": args.axes}
    if args.frame_interval is not None:
        options["frame_interval_s"] = args.frame_interval
    if args.spacing is not None:
        options["spacing_mm"] = tuple(args.spacing)
    if args.units is not None:
        options["units"] = args.units
    if args.pd_frames is not None:
        options["n_pd_frames"] = args.pd_frames
    return options
