"""Benchmark of the digital phantom: time to generate a 3-slice, 60-frame study.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py [--seeds 5] [--model btex]``.
Prints the wall time and the CPU time of this process per study (the matrix size is drawn from
each seed, 112 to 256 pixels a side), their median and worst, and the target (2 s). On a shared,
loaded machine the CPU time is the better estimate of the time on an idle one (one thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qperf import phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of studies (seeds 0..n-1)")
    parser.add_argument("--model", default="btex", help="tissue model (btex or 2cxm-analytic)")
    args = parser.parse_args()
    phantom.generate_study(seed=0, n_frames=12, n_slices=1, model=args.model)  # warm-up (imports, caches)
    wall, cpu = [], []
    for seed in range(args.seeds):
        t0, c0 = time.perf_counter(), time.process_time()
        ps = phantom.generate_study(seed=seed, n_slices=3, n_frames=60, model=args.model)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        ny, nx = ps.study.slices[0].shape
        print(
            f"seed {seed}: wall {wall[-1]:.2f} s, cpu {cpu[-1]:.2f} s  (matrix {ny} x {nx}, "
            f"{ps.study.slices[0].metadata['readout']}, {ps.truth.kinetic_model})"
        )
    print(
        f"3 slices x 60 frames + dual-echo AIF images: wall median {np.median(wall):.2f} s, worst {max(wall):.2f} s; "
        f"cpu median {np.median(cpu):.2f} s, worst {max(cpu):.2f} s (target < 2 s)"
    )


if __name__ == "__main__":
    main()
