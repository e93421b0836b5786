"""Fine-tuning on a site's own annotated cases: held-out myocardium Dice before and after.

Run:  .venv/bin/python benchmarks/bench_finetune.py [--max-minutes 20] [--out DIR] [--no-site-look]

The protocol of ``qperf train --real``'s acceptance: 48 labelled series of 24 patients (stress
and rest, labels of the myocardium and LV blood pool only, every frame, not motion-corrected)
fine-tune the shipped model within ``--max-minutes`` on the CPU; 12 series of 6 other patients
are scored frame by frame with the shipped and the fine-tuned model.

There is no public labelled perfusion set, so the "site" is simulated:
:func:`qperf.phantom.cine_perfusion.simulate_scan` on Sunnybrook cine anatomy (training
anatomy for the site's training cases, :data:`qperf.phantom.cine.VALIDATION_CASES` for the
held-out patients), with one fixed protocol (3 T, 2.3 mm pixels, 50-70 frames, no PD frames,
free breathing) and, unless ``--no-site-look``, one scanner "look" that the shipped model was
not trained on: a strong surface-coil falloff from the anterior chest wall, a vendor
smoothing filter and a compressed intensity scale (gamma 0.7). A patient is one cine frame
with one draw of the site's variability; every patient gives a stress and a rest series.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from qperf.phantom.cine import TRAINING_CASES, VALIDATION_CASES, default_cine_path, load_cine_frames
from qperf.phantom.cine_perfusion import SimulatedScan, simulate_scan
from qperf.segmentation import load_segmenter
from qperf.segmentation.cases import write_case
from qperf.segmentation.evaluate import per_frame_dice
from qperf.types import LABEL_RV

SITE_SEED = 731_000


def site_look(scan: SimulatedScan, rng: np.random.Generator) -> SimulatedScan:
    """The simulated scanner's appearance: coil falloff, smoothing filter, gamma-compressed scale."""
    data = np.asarray(scan.series.data, dtype=np.float64)
    ny, nx = data.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    mm = scan.series.spacing_mm[0]
    heart = np.argwhere(scan.labels_ref > 0).mean(axis=0)
    coil_y = heart[0] - 55.0 / mm + rng.normal(0, 5.0 / mm)  # coil on the anterior chest wall
    coil_x = heart[1] + rng.normal(0, 10.0 / mm)
    distance_mm = np.hypot(yy - coil_y, xx - coil_x) * mm
    falloff = 0.25 + 2.5 * np.exp(-distance_mm / 45.0)
    smoothed = ndimage.gaussian_filter(data, sigma=(0, 0.7, 0.7))
    scaled = np.power(np.maximum(smoothed * falloff, 0.0), 0.7)
    series = scan.series.replace(data=(scaled * 100.0 / np.percentile(scaled, 99)).astype(np.float32))
    return SimulatedScan(series, scan.labels, scan.labels_ref, scan.info)


def site_scan(frame: Any, rng: np.random.Generator, condition: str, look: bool) -> SimulatedScan:
    scan = simulate_scan(
        frame,
        rng,
        condition=condition,
        field_t=3.0,
        spacing_mm=2.3,
        n_frames=int(rng.integers(50, 71)),
        n_pd_frames=0,
    )
    return site_look(scan, rng) if look else scan


def make_patients(frames: list[Any], n_patients: int, seed: int, look: bool) -> list[tuple[str, list[SimulatedScan]]]:
    patients = []
    for p in range(n_patients):
        frame = frames[p % len(frames)]
        rng = np.random.default_rng([seed, p])
        patients.append((f"P{seed % 1000:03d}-{p:02d}", [site_scan(frame, rng, c, look) for c in ("stress", "rest")]))
    return patients


def write_site_cases(patients: list[tuple[str, list[SimulatedScan]]], folder: Path) -> None:
    for patient, scans in patients:
        for scan, condition in zip(scans, ("stress", "rest"), strict=True):
            labels = np.where(scan.labels == LABEL_RV, 0, scan.labels).astype(np.uint8)  # RV not drawn
            write_case(folder / f"{patient}_{condition}", scan.series, labels, classes=(1, 2), patient=patient)


def score(model: Any, patients: list[tuple[str, list[SimulatedScan]]]) -> dict[str, Any]:
    segmenter = load_segmenter(model, threads=2)
    myo, lv, seconds = [], [], []
    for _, scans in patients:
        for scan in scans:
            t0 = time.perf_counter()
            result = segmenter.segment(scan.series)
            seconds.append(time.perf_counter() - t0)
            myo.append(per_frame_dice(result.labels, scan.labels, 2))
            lv.append(per_frame_dice(result.labels, scan.labels, 1))
    return {
        "dice_myo_mean": float(np.mean(myo)),
        "dice_myo_median": float(np.median(myo)),
        "dice_myo_min": float(np.min(myo)),
        "dice_lv_mean": float(np.mean(lv)),
        "n_series": len(myo),
        "seconds_per_series": float(np.mean(seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--out", help="keep the cases and the run folder here")
    parser.add_argument("--no-site-look", action="store_true", help="the protocol only, no scanner look")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: fine_tune's)")
    parser.add_argument("--real-fraction", type=float, help="share of real slices per batch (default: fine_tune's)")
    args = parser.parse_args()
    from qperf.segmentation.finetune import fine_tune

    look = not args.no_site_look
    path = default_cine_path()
    train_frames = [f for f in load_cine_frames(path, TRAINING_CASES, with_myocardium=True) if f.rv is not None]
    held_frames = [f for f in load_cine_frames(path, VALIDATION_CASES, with_myocardium=True) if f.rv is not None]
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="qperf-finetune-"))
    t0 = time.perf_counter()
    site = make_patients(train_frames, 24, SITE_SEED, look)
    held = make_patients(held_frames[::3], 6, SITE_SEED + 1, look)
    write_site_cases(site, root / "cases")
    print(f"site: 48 series of 24 patients, held out 12 series of 6 patients ({time.perf_counter() - t0:.0f} s)")
    before = score(None, held)
    print(f"shipped model on the held-out site series: {json.dumps(before)}")
    t0 = time.perf_counter()
    options = {k: v for k, v in (("lr", args.lr), ("real_fraction", args.real_fraction)) if v is not None}
    fine_tune(root / "cases", root / "run", max_minutes=args.max_minutes, log=lambda s: None, **options)
    minutes = (time.perf_counter() - t0) / 60.0
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    steps = max((r.get("step", 0) for r in log), default=0)
    after = score(root / "run", held)
    print(f"fine-tuned ({minutes:.1f} min, {steps} steps) on the held-out site series: {json.dumps(after)}")
    gain = after["dice_myo_mean"] - before["dice_myo_mean"]
    print(f"myocardium Dice {before['dice_myo_mean']:.3f} -> {after['dice_myo_mean']:.3f} ({gain:+.3f})")
    (root / "bench_finetune.json").write_text(json.dumps({"before": before, "after": after, "minutes": minutes}))
    print(f"cases and run in {root}")


if __name__ == "__main__":
    main()
