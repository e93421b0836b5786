"""Speed of the segmentation model: load time and inference time per slice.

Run:  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_segmentation.py [--model PATH] [--repeats N]

Input: a 176 x 176 x 50 frame series (the published network's test size), a drawn LV/RV
ring at 2 mm pixels. Prints the model load time (checksum included), the full per-slice
inference time (pre-processing, network, post-processing, labels over all frames), and the
network's forward time alone, with torch.set_num_threads(2) (the target machine's cores), the
timing normalisation's share, and the default AIF LV detector on an AIF-sized series.
Targets: load < 0.2 s; per slice <= 0.12 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qperf.aif import AutoLvDetector, register_detector
from qperf.segmentation import load_segmenter
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.aif_lv import CnnLvDetector
from qperf.segmentation.rings import ring_labels, ring_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model weights or card (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        seg = load_segmenter(args.model, threads=args.threads)
        load_s.append(time.perf_counter() - t0)

    labels, _ = ring_labels((176, 176), (90.0, 84.0), 11.0, 16.0)
    series = ring_series(labels, n_frames=50, spacing_mm=(2.0, 2.0), seed=1)
    seg(series)  # warm-up
    per_slice = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        seg(series)
        per_slice.append(time.perf_counter() - t0)
    x, _, _ = pre.prepare_input(series)
    xt = torch.from_numpy(x[None])
    forward = []
    with torch.inference_mode():
        seg.network(xt)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            seg.network(xt)
            forward.append(time.perf_counter() - t0)
    timing = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        pre.normalise_timing(series)
        timing.append(time.perf_counter() - t0)
    # AIF LV detection on an AIF-sized series (64 x 52 x 99 at 5.5 mm), default detector.
    aif_labels, _ = ring_labels((64, 52), (32.0, 26.0), 3.0, 4.5)
    aif_series = ring_series(aif_labels, n_frames=99, frame_interval_s=0.7, spacing_mm=(5.5, 5.5), seed=2)
    register_detector(CnnLvDetector(segmenter=seg), replace=True)
    auto = AutoLvDetector()
    auto.detect(aif_series)
    aif_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        auto.detect(aif_series)
        aif_s.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in seg.network.parameters())
    print(f"model: {seg.card.get('name')} {seg.card.get('version')}, {n_params} parameters, threads {args.threads}")
    print(f"load (incl. sha256 check): median {statistics.median(load_s):.3f} s, min {min(load_s):.3f} s")
    print(
        f"per slice, 176 x 176 x 50 input: median {statistics.median(per_slice):.3f} s, "
        f"min {min(per_slice):.3f} s (n={args.repeats})"
    )
    print(f"network forward alone ({pre.CROP_PX} x {pre.CROP_PX} crop): median {statistics.median(forward):.3f} s")
    print(f"three slices: {3 * statistics.median(per_slice):.3f} s")
    print(f"of which timing normalisation (transit measured in the images): median {statistics.median(timing):.3f} s")
    print(
        f"AIF LV detection ('auto': network + classical), 64 x 52 x 99: median {statistics.median(aif_s):.3f} s "
        f"(mask from {auto.last_source})"
    )


if __name__ == "__main__":
    main()
