"""Turn a training checkpoint into a shipped model with a measured model card.

    python -m qperf.segmentation.release RUN_DIR/best.pt --name qperf_seg_v3 --version 3.0.0 \\
        --n-studies 10 [--folder models]

Writes ``<name>.pt`` (weights and architecture), ``<name>.json`` (the model card: version,
architecture, input conventions, training configuration and data, training time, held-out
phantom metrics, sha256 of the weights) and ``<name>.md`` (the same card for people). The
metrics are measured here, on phantom studies whose seeds the training never used.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from qperf.segmentation import preprocessing as pre
from qperf.segmentation.aif_lv import CnnLvDetector
from qperf.segmentation.evaluate import (
    HELD_OUT_SEED,
    evaluate_phantom,
    evaluate_phantom_aif,
    evaluate_real_like,
    summarise,
    summarise_rows,
)
from qperf.segmentation.inference import Segmenter
from qperf.segmentation.model_store import MODELS_DIR, export_model, load_network
from qperf.segmentation.network import NetConfig, ResUNet, count_parameters


def _fmt(d: dict[str, Any], key: str, digits: int = 3) -> str:
    v = d.get(key)
    if not isinstance(v, dict):
        return "n/a"
    return f"{v['mean']:.{digits}f} +- {v['sd']:.{digits}f} (median {v['median']:.{digits}f}, n={v['n']})"


def card_markdown(card: dict[str, Any]) -> str:
    """The model card for people (``<name>.md``): the JSON card's content as Markdown."""
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        card["description"],
        "",
        "## Architecture and input",
        f"- {card['architecture']['summary']}; {card['architecture']['parameters']} parameters.",
        f"- Input: {card['input']['summary']}",
        f"- Output: {card['output']}",
        "",
        *_training_lines(card["training"]),
        "",
        *_phantom_lines(card),
        "",
        "## Measured accuracy on series that resemble real scans (per frame, held-out patients)",
        *_real_like_lines(card.get("metrics", {}).get("held_out_real_like")),
        "",
        "## Real data",
        f"- {card.get('real_data_checks', 'none recorded')}",
        *(
            [f"- Real AIF example (aif_example1): {card['metrics']['real_aif_example1']}"]
            if "real_aif_example1" in card.get("metrics", {})
            else []
        ),
        "",
        "## Training history",
        *[
            f"- Stage {h.get('stage')}: {h.get('what')}"
            + (f" ({h['steps']} steps, {h['minutes']} min, lr {h['lr']})" if "steps" in h else "")
            for h in card.get("training_history", [])
        ],
        "",
        "## Limitations",
        *[f"- {x}" for x in card.get("limitations", [])],
        "",
        f"sha256 of `{card.get('weights_file')}`: `{card.get('sha256')}` (checked at every load).",
        "",
    ]
    return "\n".join(lines)


def _training_lines(t: dict[str, Any]) -> list[str]:
    """Data, steps, time and best validation Dice of the card's ``training`` section."""
    return [
        "## Training",
        f"- Data: {t['data']}",
        f"- Steps: {t['steps']} x batch {t['config']['batch_size']} "
        f"({t['samples_seen']} randomised samples), "
        f"{t['time_minutes']:.0f} minutes on {t['hardware']}.",
        f"- Best validation myocardium Dice during training (network grid): {t['best_val_dice_myo']:.4f}",
        "- Configuration: see `training.config` in the JSON card.",
    ]


def _phantom_lines(card: dict[str, Any]) -> list[str]:
    """Held-out phantom accuracy: signal and Gd inputs, and the LV found in the AIF images."""
    m = card.get("metrics", {}).get("held_out_phantom", {})
    g = card.get("metrics", {}).get("held_out_phantom_gd", {})
    a = card.get("metrics", {}).get("held_out_phantom_aif_lv", {})
    return [
        "## Measured accuracy (held-out phantom studies, full pipeline, native pixel grid)",
        f"- Command: `{card['metrics']['command']}`",
        f"- Slices: {m.get('n_slices')}; heart found (myocardium Dice >= 0.5) in {m.get('found_slices', 'n/a')}",
        f"- Myocardium Dice: {_fmt(m, 'dice_myo')}",
        f"- LV blood pool Dice: {_fmt(m, 'dice_lv')}",
        f"- RV blood pool Dice: {_fmt(m, 'dice_rv')}",
        f"- Myocardium FP rate: {_fmt(m, 'fp_rate_myo')}; FN rate: {_fmt(m, 'fn_rate_myo')}",
        f"- Myocardium precision: {_fmt(m, 'precision_myo')}; recall: {_fmt(m, 'recall_myo')}",
        f"- Mean boundary distance (mm): {_fmt(m, 'mean_boundary_mm', 2)}",
        f"- Hausdorff distance (mm): {_fmt(m, 'hausdorff_mm', 2)}",
        f"- RV insertion angle error (degrees): {_fmt(m, 'angle_error_deg', 2)}",
        f"- Slices with QC flags: {m.get('qc_flagged_slices')}",
        "",
        "Same studies converted to Gd (qperf.gd.series_to_gd) before segmentation:",
        f"- Myocardium Dice: {_fmt(g, 'dice_myo')}",
        f"- Mean boundary distance (mm): {_fmt(g, 'mean_boundary_mm', 2)}; Hausdorff (mm): {_fmt(g, 'hausdorff_mm', 2)}",
        f"- RV insertion angle error (degrees): {_fmt(g, 'angle_error_deg', 2)}",
        "",
        "LV detection in the phantom's dual-sequence AIF images (same studies):",
        f"- LV Dice: {a.get('dice_lv', {}).get('mean', float('nan')):.3f} +- {a.get('dice_lv', {}).get('sd', float('nan')):.3f}"
        f" over {a.get('n_series')} series; found (Dice > 0.3) in {100 * a.get('found_fraction', float('nan')):.0f} %",
    ]


def _real_like_lines(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return ["- not measured (the cine anatomy was not available)"]
    return [
        "- Free-breathing first-pass series simulated with the phantom's physics on the real cine anatomy of "
        "patients training never saw (qperf.phantom.cine_perfusion; SC-HF-I-4, -5), segmented as acquired "
        "(Segmenter.segment: heart located at full field of view, motion corrected when the heart moves, labels "
        "carried to every frame), each frame compared with its own truth.",
        f"- Series: {m.get('n')}",
        f"- Myocardium Dice: {_fmt(m, 'dice_myo')}",
        f"- LV blood pool Dice: {_fmt(m, 'dice_lv')}",
        f"- RV blood pool Dice: {_fmt(m, 'dice_rv')}",
        f"- Seconds per series (motion correction included): {_fmt(m, 'seconds', 1)}",
    ]


def release(
    checkpoint: str | Path,
    name: str,
    version: str,
    *,
    n_studies: int = 10,
    folder: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Export ``checkpoint`` as ``name``, measure it on held-out phantom studies, write the card."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net_cfg = NetConfig.from_dict(state["net_config"])
    net = ResUNet(net_cfg)
    net.load_state_dict(state["model"])
    net.eval()
    metrics = measure(Segmenter(net), n_studies, name)
    card: dict[str, Any] = {
        "name": name,
        "version": version,
        "kind": "perfusion_segmentation",
        "description": (
            "Segments the LV blood pool, LV myocardium and RV blood pool of a 2D+T first-pass perfusion "
            "slice and finds the two RV insertion points (heat maps), from the whole series (time as channels)."
        ),
        "architecture": {
            "summary": "residual U-Net (batch norm, leaky ReLU), 1x1 temporal mixing then 4 levels",
            "net_config": net_cfg.to_dict(),
            "parameters": count_parameters(net),
        },
        "input": _input_section(),
        "output": "4 class logits (0 background, 1 LV blood pool, 2 myocardium, 3 RV) + 2 insertion heat maps "
        "(image-handed junction points; named anterior/inferior from the slice geometry)",
        "training": _training_section(state),
        "metrics": metrics,
        "limitations": list(LIMITATIONS),
    }
    if extra:
        card.update(extra)
    tmp_ckpt = Path(checkpoint)
    weights, card_path = export_model(tmp_ckpt, name, card, folder=folder)
    full = json.loads(card_path.read_text())
    card_path.with_suffix(".md").write_text(card_markdown(full))
    load_network(weights)  # the written files verify
    return weights, card_path


#: What the card states the network cannot do.
LIMITATIONS = (
    "No real perfusion images with manual labels were available for training: the network learned from "
    "label-driven synthetic series and the phantom; real-scan accuracy is estimated on series simulated on "
    "real anatomy (metrics.held_out_real_like), which is not the same as measured on real scans.",
    "The two insertion heat maps are defined by image handedness; anterior/inferior naming needs the "
    "slice geometry (without it, the upper point in the image is called anterior and QC says so).",
    "The network reads the contrast dynamics on a grid in seconds: wrong frame times (for example an "
    "assumed interval for files that record none) are partly absorbed by rescaling the time axis to the "
    "RV-to-LV transit measured in the data.",
    "Pixel spacing matters (the network works in mm): files without spacing need it given.",
)


def _input_section() -> dict[str, Any]:
    """The input conventions of :mod:`qperf.segmentation.preprocessing`, as the card states them."""
    return {
        "summary": (
            f"dynamic frames resampled to {pre.N_CHANNELS} channels {pre.DT_S} s apart aligned on the bolus arrival "
            f"(channel {pre.FOOT_CHANNEL}), per-pixel baseline removed, divided by the robust peak; "
            f"{pre.CROP_PX} x {pre.CROP_PX} crop at {pre.GRID_SPACING_MM} mm around the located heart"
        ),
        "grid_spacing_mm": pre.GRID_SPACING_MM,
        "crop_px": pre.CROP_PX,
        "n_channels": pre.N_CHANNELS,
        "dt_s": pre.DT_S,
        "foot_channel": pre.FOOT_CHANNEL,
    }


def _training_section(state: dict[str, Any]) -> dict[str, Any]:
    """Data, configuration, steps, time and validation of the run that made the checkpoint ``state``."""
    cfg = state["train_config"]
    return {
        "data": training_data_summary(cfg),
        "config": cfg,
        "steps": int(state["step"]),
        "samples_seen": int(state["step"]) * int(cfg["batch_size"]),
        "time_minutes": float(state.get("elapsed_s", 0.0)) / 60.0,
        "hardware": f"{platform.machine()} CPU, {cfg.get('threads')} threads (shared machine)",
        "best_val_dice_myo": float(state.get("best", float("nan"))),
        "validation": (
            f"{cfg['n_val_slices']} phantom slices from seed stream {cfg['val_seed']}"
            + (
                f" and {cfg.get('n_val_real_like')} series simulated on the real cine anatomy of the training patients"
                if cfg.get("cine_path")
                else ""
            )
            + " (network grid); the best checkpoint by the mean myocardium Dice of the two"
        ),
    }


def training_data_summary(cfg: dict[str, Any]) -> str:
    """What a run trained on, from its configuration."""
    phantom = (
        "randomised digital phantom studies generated in memory by qperf.phantom (physics: random anatomy, "
        "perfusion, defects, FLASH/SSFP readouts, 1.5/3 T, coil shading, Rician noise, stress and rest, 40-80 "
        "frames, raw signal and Gd, dual-sequence AIF images)"
    )
    fraction = float(cfg.get("synth_fraction", 0.0))
    if fraction <= 0:
        return phantom + ", re-randomised per sample; no real images"
    cine = (
        " and the real cine anatomy of the training patients (Sunnybrook SC-HF-I-1, -2, -6: LV, myocardium, RV derived from the images; backgrounds split into intensity clusters)"
        if cfg.get("cine_path")
        else ""
    )
    return (
        f"{100 * fraction:.0f} % label-driven synthetic series (qperf.segmentation.synth, after SynthSeg) from random "
        f"phantom hearts{cine}: every class with its own random baseline and enhancement curve, many background "
        "classes, bias fields, noise, blur or truncated k-space, 1.2-3 mm pixels, 30-120 irregular frames with and "
        "without PD frames, residual or free-breathing motion, tight fields of view; classes not drawn left out of "
        f"the loss; {100 * (1 - fraction):.0f} % {phantom}; every sample re-randomised (contrast, bias, noise, "
        "timing, rotations, flips, scaling, shifts); no real perfusion images"
    )


def measure(segmenter: Segmenter, n_studies: int, name: str, n_real_like: int = 36) -> dict[str, Any]:
    """The card's ``metrics``: held-out phantom studies (signal and Gd inputs), AIF LV detection,
    and per-frame Dice on real-like series (when the cine anatomy is available)."""
    from qperf.errors import NotAvailableError

    seeds = list(range(HELD_OUT_SEED, HELD_OUT_SEED + n_studies))
    t0 = time.time()
    scores = evaluate_phantom(segmenter, seeds)
    scores_gd = evaluate_phantom(segmenter, seeds, units="gd_mmol_l")
    real_like: dict[str, Any] = {}
    if n_real_like > 0:
        try:
            rows = evaluate_real_like(segmenter, n_real_like)
            real_like = {
                "held_out_real_like": {
                    **summarise_rows(rows, ("dice_lv", "dice_myo", "dice_rv", "seconds")),
                    "per_series": rows,
                }
            }
        except NotAvailableError:
            pass
    return {
        **real_like,
        "command": f"python -m qperf.segmentation.release CHECKPOINT --name {name} --n-studies {n_studies}",
        "held_out_seeds": [seeds[0], seeds[-1]],
        "held_out_phantom": summarise(scores),
        "held_out_phantom_gd": summarise(scores_gd),
        "held_out_phantom_aif_lv": evaluate_phantom_aif(CnnLvDetector(segmenter=segmenter), seeds),
        "per_slice": [s.__dict__ for s in scores],
        "per_slice_gd": [s.__dict__ for s in scores_gd],
        "evaluation_seconds": round(time.time() - t0, 1),
    }


def refresh_metrics(
    card_path: str | Path, n_studies: int = 10, extra: dict[str, Any] | None = None, n_real_like: int = 36
) -> Path:
    """Measure a shipped model again (same weights, current pre- and post-processing) and rewrite its card.

    Only ``metrics`` changes (with the date it was measured, and ``extra`` merged into it,
    e.g. checks on real data); the weights, their sha256 and everything else in the card stay
    as they are.
    """
    path = Path(card_path)
    card = json.loads(path.read_text())
    net, _, _ = load_network(path)
    metrics = measure(Segmenter(net, card), n_studies, str(card.get("name", path.stem)), n_real_like)
    metrics["command"] = f"python -m qperf.segmentation.release --refresh {path.name} --n-studies {n_studies}"
    metrics["measured"] = time.strftime("%Y-%m-%d")
    metrics.update(extra or {})
    card["metrics"] = metrics
    path.write_text(json.dumps(card, indent=2) + "\n")
    path.with_suffix(".md").write_text(card_markdown(card))
    load_network(path)  # the card still verifies against the weights
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="export a checkpoint as a shipped model with a measured card")
    parser.add_argument("checkpoint", nargs="?", help="training checkpoint to export")
    parser.add_argument("--refresh", metavar="CARD", help="measure a shipped model's card (.json) again instead")
    parser.add_argument("--name", default="qperf_seg_v2")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--n-studies", type=int, default=10)
    parser.add_argument("--folder", default=str(MODELS_DIR))
    parser.add_argument(
        "--extra", help="JSON file merged into the card (with --refresh: into its metrics), e.g. real-case checks"
    )
    args = parser.parse_args()
    extra = json.loads(Path(args.extra).read_text()) if args.extra else None
    if args.refresh:
        card_path = refresh_metrics(args.refresh, n_studies=args.n_studies, extra=extra)
        print(json.dumps(json.loads(card_path.read_text())["metrics"]["held_out_phantom"], indent=1))
        print(f"rewrote {card_path} and {card_path.with_suffix('.md')}")
        return
    if not args.checkpoint:
        parser.error("a checkpoint (or --refresh CARD) is required")
    weights, card = release(
        args.checkpoint, args.name, args.version, n_studies=args.n_studies, folder=args.folder, extra=extra
    )
    summary = json.loads(card.read_text())["metrics"]["held_out_phantom"]
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    print(f"wrote {weights} and {card}")


if __name__ == "__main__":
    main()
