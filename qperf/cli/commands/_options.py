"""Reading options shared by commands that take series files."""

from __future__ import annotations

import argparse
from typing import Any

from qperf.cli.argtypes import nonnegative_int, open_fraction, positive_float, seconds
from qperf.runtime import DEVICES


def add_series_options(parser: argparse.ArgumentParser) -> None:
    """Options for files that do not record everything (NumPy, Analyze, plain arrays)."""
    group = parser.add_argument_group("reading options (for files that do not record them)")
    group.add_argument("--frame-interval", type=seconds(3600.0), metavar="SECONDS", help="time between frames")
    group.add_argument(
        "--spacing", type=positive_float(1000.0), nargs=2, metavar=("DY", "DX"), help="pixel spacing in mm"
    )
    group.add_argument("--units", choices=["signal", "gd_mmol_l"], help="what the values are")
    group.add_argument("--pd-frames", type=nonnegative_int, metavar="N", help="number of leading proton-density frames")
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


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """Options of the one-click analysis that ``qperf analyze`` and ``qperf batch`` share."""
    parser.add_argument("--model", default="btex", choices=["btex", "fermi", "2cxm", "tofts"], help="kinetic model")
    parser.add_argument("--dt", type=seconds(5.0), default=0.5, metavar="SECONDS", help="fitting grid interval")
    parser.add_argument("--hematocrit", type=open_fraction, help="override the study's hematocrit")
    parser.add_argument("--segmenter", metavar="MODEL", help="segmentation model file instead of the shipped one")
    parser.add_argument(
        "--motion",
        choices=["auto", "on", "off"],
        default="auto",
        help="respiratory motion correction of the slices: when the heart moves (auto, default), always, never",
    )
    parser.add_argument("--no-moco", action="store_true", help="the same as --motion off (series already corrected)")
    parser.add_argument(
        "--delay",
        choices=["study", "slice", "pixel"],
        default="study",
        help="AIF-tissue delay: one for the study (default), one per slice, or searched for every pixel",
    )
    add_device_option(parser)


def analysis_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :class:`qperf.workflow.AnalysisOptions` from :func:`add_analysis_options`
    (the device checked now: :func:`device_of`)."""
    return {
        "model": args.model,
        "dt_s": args.dt,
        "motion": "off" if args.no_moco else args.motion,
        "segmenter": args.segmenter,
        "hematocrit": args.hematocrit,
        "delay": args.delay,
        "threads": args.threads,
        "device": device_of(args),
    }


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: where torch computes (the network, the motion correction)."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the network and motion correction compute: auto (a GPU when there is one; default), cpu, cuda, mps",
    )


def device_of(args: argparse.Namespace) -> str:
    """``args.device``, refused now, before any output is written, when this machine lacks it."""
    from qperf.errors import NotAvailableError
    from qperf.runtime import resolve_device

    try:
        resolve_device(args.device)
    except NotAvailableError as exc:
        raise NotAvailableError(f"--{exc}") from None
    return str(args.device)
