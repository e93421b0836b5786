"""``qperf info PATH``: describe what QPerf reads from a file, folder or manifest."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from qperf.cli.commands._options import add_series_options, series_options

NAME = "info"
ORDER = 10
HELP = "describe a series, study manifest, DICOM folder or AIF curve"
DESCRIPTION = """Describe what QPerf reads: slices, frames, matrix, spacing, time range and
interval, units, proton-density frames, geometry, and the AIF. Nothing is written."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="series file, study.json, study folder, DICOM folder or AIF .csv")
    add_series_options(parser)


def run(args: argparse.Namespace) -> int:
    from qperf import io
    from qperf.checks import check_aif, check_series

    if args.path.lower().endswith(".csv"):
        aif = io.read_aif_curve(args.path)
        print(
            f"AIF curve {args.path}: {aif.n_samples} samples, {aif.time_s[0]:.2f} to {aif.time_s[-1]:.2f} s, "
            f"{aif.kind} {aif.units}, peak {aif.values.max():.4g} at {aif.time_s[aif.values.argmax()]:.2f} s"
        )
        _warn_if_refused(lambda: check_aif(aif, "AIF curve"))
        return 0
    options = series_options(args)
    options.setdefault("allow_missing_time", True)
    study = io.read_study(args.path, **options)
    print(study.summary())
    for i, series in enumerate(study.slices):
        _warn_if_refused(partial(check_series, series, f"slice {i + 1}"))
    if study.aif is not None:
        _warn_if_refused(partial(check_aif, study.aif, "the study's AIF curve", study.hematocrit))
    return 0


def _warn_if_refused(check: Callable[[], object]) -> None:
    """Run a check of :mod:`qperf.checks`; what an analysis would refuse is a warning here (nothing is analysed)."""
    from qperf.errors import ValidationError, warn

    try:
        check()
    except ValidationError as exc:
        warn(f"{exc} (an analysis would refuse this)")
