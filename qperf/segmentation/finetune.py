"""Fine-tuning on a site's own annotated cases: from the shipped model to a model for its scanner.

:func:`fine_tune` reads a folder of annotated cases (:mod:`qperf.segmentation.cases`), holds out
a fifth of the patients, brings every case's per-frame labels onto its motion-corrected grid
(:func:`~qperf.segmentation.sources.case_slice`), trains from the shipped (or a given) model on
the training cases mixed with synthetic and phantom slices, and writes the run folder as a model
(``model.pt``, ``model.json``, ``model.md``) that ``qperf segment --model RUN_DIR`` and QPerf Seg
load. The held-out cases are scored frame by frame before and after, with the manual labels of
the classes that were drawn.

Mixing: half of every batch comes from the real cases (``real_fraction`` 0.5): with 40-50 cases
that is each case several times per minute, while the synthetic half keeps the network from
forgetting what the real cases do not show (other vendors, the RV when it was not drawn, the AIF
images). Learning rate 3e-4 with cosine decay: a fifth of the from-scratch rate, so the shipped
weights are adapted rather than replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import ValidationError
from qperf.segmentation.cases import AnnotatedCase, read_cases, split_patients
from qperf.segmentation.evaluate import per_frame_dice
from qperf.segmentation.sources import prepare_case
from qperf.segmentation.train import TrainConfig, train

#: Minutes kept for scoring and writing the model after the training loop.
RESERVE_MINUTES = 1.0
FINE_TUNE_LR = 3e-4
REAL_FRACTION = 0.5
HELD_OUT_FRACTION = 0.2


def score_cases(segmenter: Any, cases: Sequence[AnnotatedCase], prepared: Sequence[Any]) -> dict[str, Any]:
    """Per-frame Dice of ``segmenter`` on annotated cases, for the classes each case drew.

    Each case is segmented on its corrected series with its motion fields (the labels then
    follow every acquired frame) and every labelled frame is compared with its manual labels.
    """
    rows = []
    for case, (item, motion) in zip(cases, prepared, strict=True):
        result = segmenter(item.series, motion=motion) if motion is not None else segmenter(case.series)
        manual = case.labels if case.labels.ndim == 3 else case.labels[None]
        predicted = result.labels if case.labels.ndim == 3 else result.labels_ref[None]
        frames = case.labelled_frames or (0,)
        row: dict[str, Any] = {"case": case.name, "patient": case.patient, "frames": len(frames)}
        for c, name in ((1, "dice_lv"), (2, "dice_myo"), (3, "dice_rv")):
            row[name] = per_frame_dice(predicted[list(frames)], manual[list(frames)], c) if c in case.drawn else None
        rows.append(row)
    summary: dict[str, Any] = {"n_cases": len(rows), "cases": rows}
    for key in ("dice_lv", "dice_myo", "dice_rv"):
        values = [r[key] for r in rows if r[key] is not None and np.isfinite(r[key])]
        summary[key] = float(np.mean(values)) if values else None
    return summary


def _prepare(cases: Sequence[AnnotatedCase], motion: str, log: Callable[[str], None]) -> list[tuple[Any, Any]]:
    """Each case as a training slice and the motion result its labels were carried with."""
    out = []
    for i, case in enumerate(cases):
        out.append(prepare_case(case, motion))
        log(f"prepared case {i + 1} of {len(cases)}: {case.name} ({len(case.labelled_frames) or 1} labelled frames)")
    return out


def fine_tune(
    real_folder: str | Path,
    out_dir: str | Path,
    *,
    init: str = "shipped",
    max_minutes: float = 20.0,
    held_out_fraction: float = HELD_OUT_FRACTION,
    real_fraction: float = REAL_FRACTION,
    motion: str = "auto",
    lr: float = FINE_TUNE_LR,
    series_options: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    log: Callable[[str], None] = print,
    resume: bool = True,
) -> Path:
    """Fine-tune a model on annotated cases and write the run folder as a model.

    Parameters
    ----------
    real_folder : path
        A folder of case folders (:mod:`qperf.segmentation.cases`).
    out_dir : path
        Run folder: ``config.json``, ``log.jsonl``, ``checkpoint.pt`` (resumed), ``best.pt``,
        ``split.json``, and the model ``model.pt`` / ``model.json`` / ``model.md``.
    init : str
        ``"shipped"`` or the path of a model (``.pt``, its card, a run folder) to start from.
    max_minutes : float
        Wall-clock budget of the whole run (preparation, training, scoring).
    held_out_fraction : float
        Patients held out for validation.
    real_fraction : float
        Share of real slices in every batch.
    motion : {"auto", "on", "off"}
        Motion correction of the cases before their labels are combined.
    lr : float
        Peak learning rate.
    config : TrainConfig, optional
        Further training settings (batch size, steps, threads, synthetic mix; the arguments
        above override it).

    Returns
    -------
    Path
        The model card ``out_dir/model.json``.
    """
    from qperf.segmentation import load_segmenter
    from qperf.segmentation.inference import Segmenter
    from qperf.segmentation.model_store import load_network

    start = time.monotonic()
    if not (0.0 < real_fraction <= 1.0):
        raise ValidationError(f"real_fraction: expected a fraction in (0, 1], found {real_fraction!r}")
    out = Path(out_dir)
    cases = read_cases(real_folder, **(series_options or {}))  # every case checked before the run folder is made
    out.mkdir(parents=True, exist_ok=True)
    training, held_out = split_patients(cases, held_out_fraction)
    split = {"training": [c.name for c in training], "held_out": [c.name for c in held_out]}
    (out / "split.json").write_text(json.dumps(split, indent=2) + "\n")
    log(
        f"{len(cases)} cases of {len({c.patient for c in cases})} patients: {len(training)} training, {len(held_out)} held out"
    )
    prepared_train = _prepare(training, motion, log)
    prepared_held = _prepare(held_out, motion, log)
    before = (
        score_cases(load_segmenter(None if init == "shipped" else init), held_out, prepared_held) if held_out else {}
    )
    cfg = config or TrainConfig()
    cfg.init_from = init
    cfg.real_fraction = real_fraction
    cfg.lr = lr
    cfg.real_folder = str(real_folder)
    cfg.max_minutes = max(1.0, max_minutes - (time.monotonic() - start) / 60.0 - RESERVE_MINUTES)
    best = train(
        cfg,
        out,
        resume=resume,
        log=log,
        real_slices=[p[0] for p in prepared_train],
        real_val_slices=[p[0] for p in prepared_held],
    )
    net, _, _ = _load_checkpoint(best)
    after = score_cases(Segmenter(net), held_out, prepared_held) if held_out else {}
    card = _card(cfg, cases, split, before, after, real_folder)
    weights, card_path = _export(best, out, card)
    load_network(card_path)  # the written model verifies
    log(json.dumps({"held_out_before": _short(before), "held_out_after": _short(after)}))
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({"held_out_before": before, "held_out_after": after}) + "\n")
    return card_path


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "cases"}


def _load_checkpoint(path: Path) -> tuple[Any, Any, Any]:
    import torch

    from qperf.segmentation.network import NetConfig, ResUNet

    state = torch.load(path, map_location="cpu", weights_only=False)
    net = ResUNet(NetConfig.from_dict(state["net_config"]))
    net.load_state_dict(state["model"])
    return net.eval(), state, None


def _card(
    cfg: TrainConfig,
    cases: Sequence[AnnotatedCase],
    split: dict[str, list[str]],
    before: dict[str, Any],
    after: dict[str, Any],
    folder: str | Path,
) -> dict[str, Any]:
    return {
        "name": "model",
        "version": time.strftime("%Y%m%d-%H%M"),
        "kind": "perfusion_segmentation",
        "description": f"Fine-tuned from {cfg.init_from} on {len(split['training'])} annotated cases of {folder}.",
        "training": {
            "data": (
                f"{len(cases)} annotated cases of {len({c.patient for c in cases})} patients "
                f"({sum(len(c.labelled_frames) or 1 for c in cases)} labelled frames); "
                f"{100 * cfg.real_fraction:.0f} % of every batch real, the rest synthetic and phantom slices"
            ),
            "split": split,
            "config": asdict(cfg),
        },
        "metrics": {"held_out_before": before, "held_out_after": after},
    }


def _export(best: Path, out: Path, card: dict[str, Any]) -> tuple[Path, Path]:
    from qperf.segmentation.model_store import export_model

    weights, card_path = export_model(best, "model", card, folder=out)
    lines = [
        f"# Model card: fine-tuned model {card['version']}",
        "",
        card["description"],
        "",
        f"- Data: {card['training']['data']}",
        f"- Held out: {', '.join(card['training']['split']['held_out']) or 'none'}",
        "",
        "Held-out cases, per-frame Dice of the drawn classes (before -> after):",
    ]
    before, after = card["metrics"]["held_out_before"], card["metrics"]["held_out_after"]
    for key in ("dice_myo", "dice_lv", "dice_rv"):
        b, a = before.get(key), after.get(key)
        if a is not None:
            lines.append(f"- {key}: {'n/a' if b is None else format(b, '.3f')} -> {a:.3f}")
    card_path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return weights, card_path
