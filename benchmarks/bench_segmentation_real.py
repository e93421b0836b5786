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

from qperf import metrics, phantom
from qperf.phantom.cine import VALIDATION_CASES, default_cine_path, load_cine_frames
from qperf.phantom.cine_perfusion import simulate_scan
from qperf.segmentation import load_segmenter
from qperf.segmentation.evaluate import HELD_OUT_SEED, evaluate_phantom, summarise

#: Seeds of the real-like set (fixed, so every model is measured on the same series).
REAL_LIKE_SEED = 31_000


def per_frame_dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Mean over frames of the Dice of ``label``; frames where neither has it are skipped."""
    values = [
        metrics.dice(p == label, t == label)
        for p, t in zip(pred, truth, strict=True)
        if (p == label).any() or (t == label).any()
    ]
    return float(np.mean(values)) if values else float("nan")


def score(result: Any, truth: np.ndarray) -> dict[str, float]:
    return {name: per_frame_dice(result.labels, truth, c) for c, name in ((1, "lv"), (2, "myo"), (3, "rv"))}


def real_like(segmenter: Any, n: int, motion: str) -> list[dict[str, Any]]:
    frames = [
        f for f in load_cine_frames(default_cine_path(), VALIDATION_CASES, with_myocardium=True) if f.rv is not None
    ]
    rows = []
    for k in range(n):
        scan = simulate_scan(frames[k % len(frames)], np.random.default_rng([REAL_LIKE_SEED, k]))
        t0 = time.perf_counter()
        result = segmenter.segment(scan.series, motion=motion)
        rows.append(
            {
                **score(result, scan.labels),
                "seconds": time.perf_counter() - t0,
                "corrected": bool(result.qc.motion.get("corrected")),
                "qc_ok": result.qc.ok,
                **{k2: scan.info[k2] for k2 in ("case", "condition", "breathing_mm", "spacing_mm", "n_frames")},
            }
        )
        print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in rows[-1].items()}), flush=True)
    return rows


def phantom_breathing(segmenter: Any, n: int, motion: str) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        seed = HELD_OUT_SEED + 500 + k
        ps = phantom.generate_study(seed=seed, condition="stress" if k % 2 else "rest", aif_images=False)
        for series, truth in zip(ps.study.slices, ps.truth.slices, strict=True):
            t0 = time.perf_counter()
            result = segmenter.segment(series, motion=motion)
            rows.append({**score(result, np.asarray(truth.labels_moving)), "seconds": time.perf_counter() - t0})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("lv", "myo", "rv", "seconds"):
        v = np.array([r[key] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[key] = {"mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min())} if v.size else None
    return out


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
    figures["real_like"] = summary(real_like(segmenter, args.cases, args.motion))
    figures["phantom_breathing"] = summary(phantom_breathing(segmenter, args.phantom, args.motion))
    static = summarise(evaluate_phantom(segmenter, range(HELD_OUT_SEED, HELD_OUT_SEED + args.phantom)))
    figures["phantom_static"] = {k: static[f"dice_{k}"] for k in ("lv", "myo", "rv")} | {"n": static["n_slices"]}

    print(f"\nmodel {figures['model']} {figures['version']}, motion {args.motion}")
    print(f"{'set':<20}{'n':>4}{'myocardium':>14}{'LV':>8}{'RV':>8}{'s/slice':>9}")
    for name in ("real_like", "phantom_breathing", "phantom_static"):
        f = figures[name]
        sec = f.get("seconds")
        print(
            f"{name:<20}{f['n']:>4}{f['myo']['mean']:>10.3f} ({f['myo']['median']:.2f}){f['lv']['mean']:>8.3f}"
            f"{f['rv']['mean']:>8.3f}{'' if not sec else format(sec['mean'], '9.1f')}"
        )
    print("(mean Dice; median in brackets; real-like and breathing sets per frame, static on the reference frame)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
