"""Speed, memory and accuracy of motion correction (``qperf.motion``), both engines.

Run: ``.venv/bin/python benchmarks/bench_motion.py [--engines torch sitk] [--repeats 2]``

Cases
-----
- ``sim128``: :func:`qperf.motion.simulate_moving_series`, 128 x 128, 60 frames (3 PD),
  respiratory shift 6 pixels over the heart plus smooth deformation, contrast changes,
  whole image registered (the 128 x 128 heart-region target).
- ``phantom``: :func:`qperf.phantom.generate_study` seed 0, one slice, 60 frames, breathing
  amplified (``motion_scale`` 2.5) so that the heart moves several pixels; the true heart
  mask is given, so the registered region is the heart plus a 30-pixel margin.

Printed per case and engine: wall time of ``correct_series`` (best of ``--repeats``), peak
resident memory of the process, median residual misalignment with the key frame in the heart
(from the true fields), the 90th percentile over frames of the per-frame median, and the
myocardium Dice between every corrected frame's true labels and the key frame's (median, min).
Uses 2 torch threads unless ``--threads`` says otherwise. On a shared, busy CPU, 2 threads can
be 30 times slower than 1 (the batched engine's many small parallel operations wait on each
other): compare with ``--threads 1``. Timings depend on the machine's load; they are figures, not tests.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from qperf import motion
from qperf.motion.fields import compose
from qperf.types import LABEL_MYO, PerfusionSeries


def _case_sim() -> tuple[PerfusionSeries, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    series, truth = motion.simulate_moving_series(0, n_frames=60, shape=(128, 128), n_pd_frames=3, shift_px=6.0)
    return series, truth.ref_to_frame_px, truth.heart_mask, truth.labels_moving, None


def _case_phantom() -> tuple[PerfusionSeries, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    from qperf import phantom

    ps = phantom.generate_study(seed=0, n_slices=1, n_frames=60, motion=True, aif_images=False, motion_scale=2.5)
    series, truth = ps.study.slices[0], ps.truth.slices[0]
    heart = truth.labels_ref > 0
    return series, truth.moving_to_ref_px, heart, truth.labels_moving, heart


def _measure(name: str, engine: str, repeats: int) -> None:
    series, pull, heart, labels_moving, mask = _case_sim() if name == "sim128" else _case_phantom()
    best = float("inf")
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = motion.correct_series(series, heart_mask=mask, engine=engine)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    key = result.key_frame
    res = compose(pull, result.forward_px) - pull[key][None]
    mag = np.hypot(res[:, 0], res[:, 1])[:, heart]
    before = pull - pull[key][None]
    mag0 = np.hypot(before[:, 0], before[:, 1])[:, heart]
    myo = motion.warp_labels(labels_moving, result.forward_px) == LABEL_MYO
    dice = np.array([2 * (m & myo[key]).sum() / max(m.sum() + myo[key].sum(), 1) for m in myo])
    n_pd = series.n_pd_frames
    y0, y1, x0, x1 = result.region
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{name:8s} {engine:5s} region {y1 - y0}x{x1 - x0} x {series.n_frames} frames | "
        f"time {best:6.2f} s | peak RSS {rss_mb:6.0f} MB | residual median {np.median(mag0):.2f} -> "
        f"{np.median(mag):.3f} px (dynamic {np.median(mag[n_pd:]):.3f}, PD {np.median(mag[:n_pd]) if n_pd else 0:.2f}), "
        f"p90 of frame medians {np.percentile(np.median(mag, axis=1), 90):.2f} px | myocardium Dice median "
        f"{np.median(dice[n_pd:]):.3f} min {dice.min():.3f} | score {result.quality['score_before']:.3f} -> "
        f"{result.quality['score']:.3f} | steps {result.timings_s}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=["torch", "sitk"], choices=["torch", "sitk"])
    parser.add_argument("--cases", nargs="+", default=["sim128", "phantom"], choices=["sim128", "phantom"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the development machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # warm-up (first-call allocations, thread pools)
    warm, _ = motion.simulate_moving_series(9, n_frames=8, shape=(32, 32), n_pd_frames=0)
    motion.correct_series(warm, n_rounds=1)
    for name in args.cases:
        for engine in args.engines:
            _measure(name, engine, args.repeats)


if __name__ == "__main__":
    main()
