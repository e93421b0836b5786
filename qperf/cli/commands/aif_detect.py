"""``qperf aif-detect AIF_SERIES --out DIR``: LV blood pool in AIF images and the AIF curve."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qperf.cli.argtypes import nonnegative_int
from qperf.cli.commands._options import add_device_option, add_series_options, device_of, series_options
from qperf.errors import ValidationError
from qperf.types import AifCurve

NAME = "aif-detect"
ORDER = 31
HELP = "find the LV blood pool in dual-sequence AIF images and write the mask and AIF curve"
DESCRIPTION = """Find the LV blood pool in an AIF image series (by default the CNN and the classical
detector checking each other; or either alone) and write DIR/mask.nrrd (y, x; 1 = LV blood pool) and DIR/aif.csv. The curve is the
whole-blood Gd concentration when the series carries what the conversion needs (PD frames and
readout metadata, or Gd units); otherwise the mean pool signal, in signal units (stated on the
terminal). --reference compares the mask with a manual one (Dice)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("aif_series", help="AIF image series file (first echo) or study with AIF images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--method",
        default="auto",
        choices=["auto", "cnn", "classical"],
        help="detector: auto (default: the CNN, checked and trimmed by the classical detector, which backs it up), "
        "cnn or classical",
    )
    parser.add_argument(
        "--model", metavar="PATH", help="segmentation model for --method cnn or auto (default: the shipped one)"
    )
    parser.add_argument("--reference", metavar="MASK", help="manual mask (.npy/.nrrd, y x) to compare with")
    parser.add_argument(
        "--reference-label", type=nonnegative_int, default=1, metavar="L", help="LV label in --reference"
    )
    add_device_option(parser)
    add_series_options(parser)


def _reference(path: str, label: int, shape: tuple[int, int]) -> np.ndarray:
    from qperf import io

    if not Path(path).is_file():
        raise ValidationError(f"--reference: {path}: no such file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValidationError(f"--reference: {Path(path).name}: not a readable NumPy file ({exc})") from None
    else:
        arr = np.asarray(io.read_image(path).array)
    arr = np.squeeze(arr)
    if arr.shape != shape and arr.T.shape == shape:
        arr = arr.T
    if arr.shape != shape:
        raise ValidationError(f"--reference: expected a mask of shape {shape}, found {arr.shape}")
    return np.asarray(np.rint(arr) == label)


def run(args: argparse.Namespace) -> int:
    from qperf import aif, io
    from qperf.checks import check_aif, check_series
    from qperf.errors import warn
    from qperf.io import atomic_dir
    from qperf.metrics import dice
    from qperf.segmentation import aif_lv

    device = device_of(args) if args.method != "classical" else "cpu"
    io.check_output(args.out, args.overwrite, inputs=[args.aif_series])
    study = io.read_study(args.aif_series, **series_options(args))
    series = study.aif_series[0] if study.aif_series else study.slices[0]
    check_series(series, "AIF images" if study.aif_series else Path(args.aif_series).name)
    ref = _reference(args.reference, args.reference_label, series.shape) if args.reference else None
    if args.model:
        from qperf.segmentation.model_store import load_network

        load_network(args.model)  # a model that does not load is refused, not passed over by "auto"
        aif_lv.register(args.model, device=device)  # "cnn" with this model
    elif args.method != "classical":
        aif_lv.use_device(device)
    mask = aif_lv.detect_lv(study.aif_series or series, method=args.method)
    source = args.method
    if args.method == "auto":
        detector = aif.get_detector("auto")
        source = f"auto: {getattr(detector, 'last_source', '')}"
        reason = str(getattr(detector, "last_reason", ""))
        if reason:
            source += f"; {reason}"
    try:
        curve = aif.aif_from_images(study.aif_series or series, mask=mask).aif
        what = f"whole-blood Gd (mmol/L), peak {curve.values.max():.3g}"
    except ValidationError as exc:
        values = series.data[series.n_pd_frames :, mask].astype(np.float64).mean(axis=1)
        curve = AifCurve(values, series.dynamic_time_s, units="signal", kind="blood")
        what = f"mean pool signal (no Gd conversion: {exc})"
    try:
        check_aif(curve, "the AIF of the LV pool found", study.hematocrit)
    except ValidationError as exc:
        warn(str(exc))  # the mask and curve are still written: they show what was found
    with atomic_dir(args.out, overwrite=args.overwrite, inputs=[args.aif_series]) as tmp:
        io.write_image(mask.astype(np.uint8), tmp / "mask.nrrd", spacing_mm=series.spacing_mm, geometry=series.geometry)
        io.write_aif_curve(curve, tmp / "aif.csv")
    if not args.quiet:
        print(f"LV blood pool: {int(mask.sum())} pixels ({source}); aif.csv: {what}")
        if ref is not None:
            print(f"Dice against {args.reference} (label {args.reference_label}): {dice(mask, ref):.3f}")
        print(f"wrote {args.out}")
    return 0
