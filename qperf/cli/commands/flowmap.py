"""``qperf flowmap``: pixel-wise myocardial blood flow and kinetic parameter maps of one slice."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from qperf.cli.argtypes import nonnegative_seconds, open_fraction, seconds
from qperf.cli.commands._options import add_series_options, series_options
from qperf.errors import FormatError, ValidationError
from qperf.types import DEFAULT_HEMATOCRIT, LABEL_MYO, AifCurve, PerfusionSeries

if TYPE_CHECKING:
    from qperf.flow import FlowResult

NAME = "flowmap"
ORDER = 40
HELP = "pixel-wise MBF (and PS, Vb, Visf, delay) maps of a slice from its AIF"
DESCRIPTION = """Fit a tracer-kinetic model (BTEX by default) to every pixel of a perfusion slice.

The series may be in Gd (mmol/L) or signal (then PD frames and the readout metadata are
needed). The AIF is a curve (.csv with time_s and gd_mmol_l; blood unless --aif-kind plasma)
or AIF images (one file per echo: --aif ECHO1 ECHO2), whose LV blood pool is found
automatically. A mask restricts the fit: a binary map, or a QPerf label map (then the
myocardium, label 2).

Writes DIR/mbf.nrrd (myocardial blood flow, Fp / (1 - Hct), ml/min/g, float32, the series'
grid and geometry, NaN where not fitted), one map per model parameter (fp, ps, vp, vb, visf,
delay, nrmse and *_sd for BTEX), status.nrrd (0 fitted, 1 outside the mask, 2-4 failed fits)
and aif.csv (the plasma AIF used, on the fitting grid)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", required=True, metavar="S", help="the perfusion slice (any series format)")
    parser.add_argument(
        "--aif",
        required=True,
        nargs="+",
        metavar="A",
        help="AIF curve (.csv, 1D array) or AIF image series, one per echo",
    )
    parser.add_argument("--aif-kind", choices=["blood", "plasma"], help="what an AIF curve holds (default: blood)")
    parser.add_argument(
        "--hematocrit", type=open_fraction, default=DEFAULT_HEMATOCRIT, help="for blood to plasma (0.42)"
    )
    parser.add_argument(
        "--model",
        default="btex",
        choices=["btex", "fermi", "2cxm", "tofts", "extended_tofts"],
        help="kinetic model: btex (default), fermi, 2cxm, tofts",
    )
    parser.add_argument("--dt", type=seconds(5.0), default=0.5, metavar="SECONDS", help="fitting grid step (0.5 s)")
    parser.add_argument(
        "--max-delay", type=nonnegative_seconds, default=3.0, metavar="SECONDS", help="largest AIF-tissue delay (3 s)"
    )
    parser.add_argument("--mask", metavar="M", help="pixels to fit: binary or label map (.nrrd) on the series grid")
    parser.add_argument(
        "--delay",
        choices=["pixel", "mean"],
        default=None,
        help="AIF-tissue delay: one shared by every pixel, the one that fits the --mask pixels' curves "
        "(mean; right at stress flows; the default with --mask), or searched in whole samples for every "
        "pixel (pixel; the default without --mask)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist unless --overwrite)")
    add_series_options(parser)


def _array_shape(path: Path) -> tuple[int, ...] | None:
    """Shape of a NumPy/NIfTI/Analyze file without reading its data; None for other formats."""
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
        if name.endswith((".nii", ".nii.gz", ".hdr", ".img")):
            import nibabel as nib

            return tuple(nib.load(str(path)).shape)  # type: ignore[attr-defined]
    except Exception as exc:  # unreadable files are reported by the readers below
        raise FormatError(f"{path.name}: not a readable array file ({exc})") from exc
    return None


def _read_aif(paths: list[str], args: argparse.Namespace) -> AifCurve | tuple[PerfusionSeries, ...]:
    from qperf import io

    first = Path(paths[0])
    shape = _array_shape(first) if first.exists() else None
    is_curve = first.suffix.lower() == ".csv" or (shape is not None and int(np.prod(shape)) == max(shape))
    if is_curve:
        if len(paths) > 1:
            raise ValidationError(f"--aif: expected one curve file, found {len(paths)} files")
        return io.read_aif_curve(first, kind=args.aif_kind, frame_interval_s=args.frame_interval)
    options = series_options(args)
    options.pop("units", None)
    options.pop("n_pd_frames", None)
    return tuple(io.read_series(p, **options) for p in paths)


def _read_mask(path: str, series: PerfusionSeries) -> NDArray[np.bool_]:
    from qperf import io

    image = io.read_image(path)
    labels = np.asarray(image.array)
    if labels.ndim == 3:
        labels = labels.max(axis=0)
    if labels.shape != series.shape:
        raise ValidationError(f"--mask: expected a map of shape {series.shape} (the series), found {labels.shape}")
    values = (
        set(np.unique(labels[np.isfinite(labels)]).tolist())
        if labels.dtype.kind == "f"
        else set(np.unique(labels).tolist())
    )
    if values - {0, 1}:
        mask = labels == LABEL_MYO
        if not mask.any():
            raise ValidationError(
                f"--mask: a label map without myocardium (label {LABEL_MYO}), found labels {sorted(values)}"
            )
        return np.asarray(mask)
    return np.asarray(labels == 1)


def write_flow_outputs(result: FlowResult, folder: Path) -> list[Path]:
    """Write every map (``<name>.nrrd``), ``status.nrrd`` and ``aif.csv`` into ``folder``."""
    from qperf import io
    from qperf.flow import map_file_stem

    written = []
    for name, values in result.maps.items():
        path = folder / f"{map_file_stem(name)}.nrrd"
        io.write_image(
            values.astype(np.float32),
            path,
            spacing_mm=result.spacing_mm,
            geometry=result.geometry,
            fields={"quantity": name, "model": result.model},
        )
        written.append(path)
    io.write_image(
        result.status.astype(np.int8), folder / "status.nrrd", spacing_mm=result.spacing_mm, geometry=result.geometry
    )
    written.append(folder / "status.nrrd")
    io.write_aif_curve(result.aif, folder / "aif.csv")
    written.append(folder / "aif.csv")
    return written


def run(args: argparse.Namespace) -> int:
    from qperf import io
    from qperf.checks import check_aif, check_series
    from qperf.flow import compute_flow_maps
    from qperf.io import atomic_dir, check_output
    from qperf.progress import TerminalProgress

    inputs = [args.series, *args.aif] + ([args.mask] if args.mask else [])
    check_output(args.out, overwrite=args.overwrite, inputs=inputs)
    series = io.read_series(args.series, **series_options(args))
    check_series(series, Path(args.series).name)
    aif: Any = _read_aif(args.aif, args)
    if isinstance(aif, AifCurve):
        check_aif(aif, f"--aif {Path(args.aif[0]).name}", args.hematocrit)
    mask = _read_mask(args.mask, series) if args.mask else None
    with TerminalProgress(f"flowmap {args.model}", enabled=not args.quiet) as progress:
        result = compute_flow_maps(
            series,
            aif,
            model=args.model,
            dt_s=args.dt,
            hematocrit=args.hematocrit,
            aif_kind=args.aif_kind,
            mask=mask,
            max_delay_s=args.max_delay,
            delay={"mean": "shared", "pixel": "pixel", None: None}[args.delay],
            progress=progress,
        )
    with atomic_dir(args.out, overwrite=args.overwrite, inputs=inputs) as tmp:
        write_flow_outputs(result, tmp)
    if not args.quiet:
        mbf = result.maps.get("mbf_ml_min_g")
        fitted = result.status == 0
        summary = f"{result.n_fitted} pixels fitted"
        if mbf is not None and fitted.any():
            summary += f", MBF median {np.nanmedian(mbf[fitted]):.3g} ml/min/g"
        print(f"{args.out}: {result.model} maps written ({summary})")
    return 0
