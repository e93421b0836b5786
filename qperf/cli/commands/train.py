"""``qperf train --out RUN_DIR``: train the segmentation network on streamed phantom slices."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from qperf.errors import ValidationError

NAME = "train"
ORDER = 60
HELP = "train the segmentation network on randomised phantom studies (and real annotated cases)"
DESCRIPTION = """Train the segmentation CNN. Randomised phantom studies are generated in memory
(nothing is written but the run folder) and randomised again (contrast, noise, bias fields,
blur, resolution, motion residue, artefacts, crops, flips, rotations). RUN_DIR receives
config.json, log.jsonl (loss and validation Dice), checkpoint.pt (every few minutes; an
existing one is resumed) and best.pt. Uses a GPU when one is present."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (resumed when it has a checkpoint)")
    parser.add_argument("--config", metavar="JSON", help="training configuration (fields of TrainConfig)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the configuration)")
    parser.add_argument("--max-steps", type=int, help="number of optimisation steps")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    parser.add_argument("--batch-size", type=int, help="samples per step")
    parser.add_argument("--real", metavar="FOLDER", help="folder of real annotated cases to mix in")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in RUN_DIR")


def run(args: argparse.Namespace) -> int:
    from qperf.segmentation.train import TrainConfig, train

    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    for name, attr in (
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("max_minutes", "max_minutes"),
        ("batch_size", "batch_size"),
        ("real", "real_folder"),
        ("threads", "threads"),
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, attr, value)
    if cfg.max_steps < 1 or cfg.batch_size < 1:
        raise ValidationError(
            f"--max-steps/--batch-size: expected positive integers, found {cfg.max_steps}/{cfg.batch_size}"
        )
    out = Path(args.out)
    if not args.quiet:
        print(json.dumps(asdict(cfg)))
    best = train(cfg, out, resume=not args.fresh, log=(lambda s: None) if args.quiet else print)
    if not args.quiet:
        print(f"best checkpoint: {best}")
    return 0
