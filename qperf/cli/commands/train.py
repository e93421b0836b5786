"""``qperf train --out RUN_DIR``: train the segmentation network, or fine-tune it on annotated cases."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

from qperf.cli.argtypes import fraction, open_unit, positive_float, positive_int, seed
from qperf.cli.commands._options import add_device_option, add_series_options, device_of, series_options
from qperf.errors import ValidationError

NAME = "train"
ORDER = 60
HELP = "train the segmentation network, or fine-tune it on your own annotated cases (--real)"
DESCRIPTION = """Train the segmentation CNN on synthetic and phantom series generated in memory, or,
with --real FOLDER, fine-tune a model (the shipped one by default, --init) on annotated cases.

Annotated cases: FOLDER holds one folder per case with
  series.*       the series as acquired (any format qperf reads: .seq.nrrd, .nrrd, .nii(.gz),
                 .npz, .npy with the reading options below, a DICOM folder named series)
  labels.nrrd    (or .nii/.nii.gz) labels on the series' grid: 0 background, 1 LV blood pool,
                 2 myocardium, 3 RV blood pool; (y, x) for one frame or (t, y, x) per frame,
                 frames left all zero being unlabelled (not background)
  insertion.json optional RV insertion points, {"anterior": [y, x], "inferior": [y, x]} on the
                 (first) labelled frame, or as qperf segment writes them
  case.json      optional {"classes": ["lv_blood_pool", "lv_myocardium"], "patient": "P01"}: the
                 classes drawn (a class not drawn is left out of the loss; without case.json,
                 the classes present in any frame) and the patient (for the held-out split)
QPerf Seg's "Export ground truth" writes this format.

Fine-tuning: per-frame labels of an acquired, breathing series are carried to its
motion-corrected grid and combined (each pixel takes the label most frames give it); a fifth of
the patients are held out and scored frame by frame before and after; every batch is half real
cases, half synthetic and phantom slices (so the network keeps what the cases do not show);
learning rate 3e-4. --max-minutes bounds the whole run. RUN_DIR then holds model.pt, model.json
(card: data, split, held-out figures) and model.md, and works as qperf segment --model RUN_DIR
and in QPerf Seg. Every run writes config.json, log.jsonl (losses, validation Dice, held-out
figures), checkpoint.pt (every few minutes; an existing one is resumed) and best.pt. Uses a GPU
when one is present (--device auto, the default; or as --device or the configuration's device
says)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (resumed when it has a checkpoint)")
    parser.add_argument("--config", metavar="JSON", help="training configuration (fields of TrainConfig)")
    parser.add_argument("--real", metavar="FOLDER", help="fine-tune on the annotated cases in FOLDER")
    parser.add_argument(
        "--init",
        metavar="MODEL",
        help="with --real: 'shipped' (default) or a model (.pt, card, run folder) to start from",
    )
    parser.add_argument(
        "--held-out", type=fraction, default=0.2, metavar="F", help="with --real: patients held out (0.2)"
    )
    parser.add_argument(
        "--real-fraction",
        type=open_unit,
        default=0.5,
        metavar="F",
        help="with --real: share of real cases per batch (0.5)",
    )
    parser.add_argument(
        "--motion", choices=["auto", "on", "off"], default="auto", help="with --real: motion correction of the cases"
    )
    parser.add_argument("--seed", type=seed, help="random seed (overrides the configuration)")
    parser.add_argument("--max-steps", type=positive_int, help="number of optimisation steps")
    parser.add_argument(
        "--max-minutes",
        type=positive_float(None, "a positive number of minutes"),
        help="stop after this many minutes (with --real: the whole run)",
    )
    parser.add_argument("--batch-size", type=positive_int, help="samples per step")
    add_device_option(parser)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in RUN_DIR")
    add_series_options(parser)


#: Fields of the training configuration that take more than their type says.
_POSITIVE_INTS = ("max_steps", "batch_size", "crop_px", "pool_size", "refresh_every", "val_every", "threads")
_POSITIVE_NUMBERS = ("lr", "max_minutes", "checkpoint_minutes")
_FRACTIONS = ("real_fraction", "synth_fraction", "cine_fraction")


def _config_fields():  # type: ignore[no-untyped-def]
    """The schema of a ``--config`` file, from the fields of TrainConfig and their defaults."""
    import dataclasses

    from qperf.io import schema
    from qperf.segmentation.train import TrainConfig

    table = {}
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        if f.name in _POSITIVE_INTS:
            parse = schema.integer(1)
        elif f.name == "seed" or f.name == "val_seed":
            parse = schema.integer(0, 2**32 - 1)
        elif f.name in _POSITIVE_NUMBERS:
            parse = schema.number(0.0, open_low=True)
        elif f.name in _FRACTIONS:
            parse = schema.number(0.0, 1.0)
        elif isinstance(default, bool):
            parse = schema.flag()
        elif isinstance(default, int):
            parse = schema.integer(0)
        elif isinstance(default, float):
            parse = schema.number(0.0)
        elif isinstance(default, dict):
            parse = schema.mapping
        else:
            parse = schema.optional(schema.text())
        table[f.name] = schema.Field(parse)
    return table


def _read_config(path: str):  # type: ignore[no-untyped-def]
    """A TrainConfig from a JSON file, every field checked (unknown ones refused)."""
    from qperf.errors import FormatError
    from qperf.io import schema
    from qperf.io.insertion import read_json
    from qperf.segmentation.train import TrainConfig

    doc = read_json(Path(path))
    if not isinstance(doc, dict):
        raise FormatError(
            f"--config {Path(path).name}: expected an object of TrainConfig fields, found {type(doc).__name__}"
        )
    values = schema.validate(doc, _config_fields(), f"--config {Path(path).name}", unknown="error")
    return TrainConfig(**values)


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from qperf.segmentation.train import TrainConfig

    cfg = _read_config(args.config) if args.config else TrainConfig()
    for name, attr in (
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("max_minutes", "max_minutes"),
        ("batch_size", "batch_size"),
        ("threads", "threads"),
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, attr, value)
    if args.device != "auto" or not args.config:
        cfg.device = args.device
    from qperf.runtime import check_device_name

    try:
        check_device_name(cfg.device)
    except ValidationError:
        raise ValidationError(f"device: expected one of auto, cpu, cuda, mps, found {cfg.device!r}") from None
    device_of(argparse.Namespace(device=cfg.device))
    if cfg.max_steps < 1 or cfg.batch_size < 1:
        raise ValidationError(
            f"--max-steps/--batch-size: expected positive integers, found {cfg.max_steps}/{cfg.batch_size}"
        )
    if not (math.isfinite(cfg.max_minutes) and cfg.max_minutes > 0):
        raise ValidationError(f"--max-minutes: expected a positive number, found {cfg.max_minutes}")
    if cfg.threads < 1:
        raise ValidationError(f"--threads: expected a positive integer, found {cfg.threads}")
    for name in ("held_out", "real_fraction"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ValidationError(f"--{name.replace('_', '-')}: expected a fraction from 0 to 1, found {value}")
    return cfg


def _check_init(init: str | None) -> None:
    """A model to start from must load (before the run folder is made)."""
    if init and init != "shipped":
        from qperf.segmentation.model_store import load_network

        load_network(init)


def run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    _check_init(args.init)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out: {out} exists and is not a folder (a run folder is made or resumed there)")
    if not out.parent.is_dir():
        raise ValidationError(f"--out: the folder {out.parent} does not exist")
    log = (lambda s: None) if args.quiet else print
    if args.real:
        from qperf.segmentation.finetune import FINE_TUNE_LR, fine_tune

        card = fine_tune(
            args.real,
            out,
            init=args.init or "shipped",
            max_minutes=cfg.max_minutes if args.max_minutes is not None else 20.0,
            held_out_fraction=args.held_out,
            real_fraction=args.real_fraction,
            motion=args.motion,
            series_options=series_options(args),
            lr=cfg.lr if args.config else FINE_TUNE_LR,
            config=cfg,
            log=log,
            resume=not args.fresh,
        )
        log(f"model: {out} (card {card.name})")
        return 0
    if args.init:
        cfg.init_from = args.init
    from qperf.segmentation.train import train

    log(json.dumps(asdict(cfg)))
    best = train(cfg, out, resume=not args.fresh, log=log)
    log(f"best checkpoint: {best}")
    return 0
