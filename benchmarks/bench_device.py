"""Segmentation and motion correction on each device this machine has (``--device``).

Run: ``.venv/bin/python benchmarks/bench_device.py [--devices cpu cuda] [--repeats 3] [--threads 1]``

Case: :func:`qperf.phantom.generate_study` seed 21, one slice of 60 frames, breathing amplified
(``motion_scale`` 2) so that :meth:`qperf.segmentation.Segmenter.segment` corrects the motion
(``motion="on"``). Printed per device: wall time of the network alone (``predict_grid``, the
located heart's crops), of motion correction (:func:`qperf.motion.correct_series`, the whole
slice) and of the whole segmentation step (best of ``--repeats``, after one warm-up run that
loads kernels), and how far each output is from the CPU's: the largest difference of the class
probabilities, of the motion fields (pixels), and the label pixels that differ. Devices that are
missing are listed and skipped. Timings depend on the machine and its load: figures, not tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qperf import motion, phantom
from qperf.errors import NotAvailableError
from qperf.runtime import resolve_device, set_threads
from qperf.segmentation import load_segmenter


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    fn()  # warm-up: kernels, caches
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda", "mps"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch, BLAS)")
    args = parser.parse_args()
    set_threads(args.threads, import_torch=True)
    ps = phantom.generate_study(seed=21, n_slices=1, n_frames=60, aif_images=False, motion_scale=2.0)
    series, truth = ps.study.slices[0], ps.truth.slices[0]
    heart = np.isin(truth.labels_ref, (1, 2, 3))
    print(f"slice {series.shape[0]} x {series.shape[1]} pixels, {series.n_frames} frames; {args.threads} CPU thread(s)")
    print(f"{'device':<8} {'network s':>9} {'moco s':>7} {'segment s':>9}  vs cpu: probabilities, fields px, labels px")
    reference: dict[str, Any] = {}
    for name in args.devices:
        try:
            device = resolve_device(name)
        except NotAvailableError as exc:
            print(f"{name:<8} skipped: {exc}")
            continue
        segmenter = load_segmenter(device=device)
        t_net, _ = _best(lambda s=segmenter: s.predict_grid(series), args.repeats)
        t_moco, moco = _best(
            lambda d=device: motion.correct_series(series, heart_mask=heart, margin_px=20, device=d), args.repeats
        )
        t_seg, result = _best(lambda s=segmenter: s.segment(series, motion="on"), args.repeats)
        if not reference:
            reference = {"prob": result.probabilities, "fields": moco.forward_px, "labels": result.labels}
        dp = float(np.nanmax(np.abs(result.probabilities - reference["prob"])))
        df = float(np.max(np.abs(moco.forward_px - reference["fields"])))
        dl = int(np.count_nonzero(result.labels != reference["labels"]))
        print(f"{name:<8} {t_net:9.3f} {t_moco:7.2f} {t_seg:9.2f}  {dp:.2e}, {df:.2e}, {dl}")


if __name__ == "__main__":
    main()
