"""Segmentation accuracy on series that resemble real scans, beside the phantom.

Run:  .venv/bin/python benchmarks/bench_segmentation_real.py [--model PATH] [--cases 36] [--phantom 6]
      [--motion auto|on|off] [--json OUT.json]

Three sets, every slice through ``Segmenter.segment`` (heart located at full field of view,
motion corrected when the heart moves, labels carried back to every acquired frame), scored
frame by frame against per-frame truth (mean over frames of each frame's Dice):

- real-like: free-breathing first-pass series simulated with the phantom's physics on real cine
  anatomy of patients that training never used (:mod:`qperf.phantom.cine_perfusion`,
  :data:`qperf.phantom.cine.VALIDATION_CASES`): real backgrounds and coil shading, saturated
  stress peaks and residual contrast, 40-100 frames, no PD frames in most, 1.4-2.6 mm pixels;
- phantom, breathing: held-out phantom studies with free-breathing motion, raw signal;
- phantom, static: the model card's held-out phantom studies (motion-free), reference frame.

Needs the cine anatomy in ``../shared/data/sunnybrook_cine`` (or ``$QPERF_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qperf import phantom
from qperf.segmentation import load_segmenter
from qperf.segmentation.evaluate import (
    HELD_OUT_SEED,
    evaluate_phantom,
    evaluate_real_like,
    per_frame_dice,
    summarise,
    summarise_rows,
)


def phantom_breathing(segmenter: Any, n: int, motion: str) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        seed = HELD_OUT_SEED + 500 + k
        ps = phantom.generate_study(seed=seed, condition="stress" if k % 2 else "rest", aif_images=False)
        for series, truth in zip(ps.study.slices, ps.truth.slices, strict=True):
            t0 = time.perf_counter()
            result = segmenter.segment(series, motion=motion)
            labels = np.asarray(truth.labels_moving)
            row = {
                name: per_frame_dice(result.labels, labels, c)
                for c, name in ((1, "dice_lv"), (2, "dice_myo"), (3, "dice_rv"))
            }
            rows.append({**row, "seconds": time.perf_counter() - t0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model weights or card (default: the shipped model)")
    parser.add_argument("--cases", type=int, default=36, help="real-like series (default 36)")
    parser.add_argument(
        "--phantom", type=int, default=6, help="held-out phantom studies per phantom set (3 slices each)"
    )
    parser.add_argument("--motion", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    segmenter = load_segmenter(args.model, threads=args.threads)
    figures: dict[str, Any] = {"model": segmenter.card.get("name"), "version": segmenter.card.get("version")}
    keys = ("dice_lv", "dice_myo", "dice_rv", "seconds")

    def show(row: dict[str, Any]) -> None:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    figures["real_like"] = summarise_rows(evaluate_real_like(segmenter, args.cases, motion=args.motion, log=show), keys)
    figures["phantom_breathing"] = summarise_rows(phantom_breathing(segmenter, args.phantom, args.motion), keys)
    static = summarise(evaluate_phantom(segmenter, range(HELD_OUT_SEED, HELD_OUT_SEED + args.phantom)))
    figures["phantom_static"] = {k: static[k] for k in ("dice_lv", "dice_myo", "dice_rv")} | {"n": static["n_slices"]}

    print(f"\nmodel {figures['model']} {figures['version']}, motion {args.motion}")
    print(f"{'set':<20}{'n':>4}{'myocardium':>14}{'LV':>8}{'RV':>8}{'s/slice':>9}")
    for name in ("real_like", "phantom_breathing", "phantom_static"):
        f = figures[name]
        sec = f.get("seconds")
        print(
            f"{name:<20}{f['n']:>4}{f['dice_myo']['mean']:>10.3f} ({f['dice_myo']['median']:.2f})"
            f"{f['dice_lv']['mean']:>8.3f}{f['dice_rv']['mean']:>8.3f}{'' if not sec else format(sec['mean'], '9.1f')}"
        )
    print("(mean Dice; median in brackets; real-like and breathing sets per frame, static on the reference frame)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
