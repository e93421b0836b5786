"""Speed of the segments-and-report step of ``qperf analyze`` on a 3-slice phantom study.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_report.py [--seeds 3] [--out DIR]``.

The phantom's truth labels, anterior insertion points and MBF/PS/Vp/Visf maps stand in for the
CNN and the flow maps. Prints, per study and as medians: slice levels + AHA segments + layers
(``report_study``, includes the statistics and the JSON report), the figures (bull's-eye PNG
and SVG, three flow-map PNGs) and writing the report folder (JSON, CSV, HTML). The analysis
target is 10 s for the whole ``qperf analyze`` on this 2-core machine; this step should take a
small part of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from qperf import phantom, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of studies (seeds 0..n-1)")
    parser.add_argument("--out", type=Path, default=None, help="keep the report folders here")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"segments+report": [], "figures": [], "write": []}
    report.bullseye_figure({1: 1.0})  # warm-up: matplotlib imports and font cache
    with tempfile.TemporaryDirectory() as tmp:
        out_root = args.out or Path(tmp)
        for seed in range(args.seeds):
            ps = phantom.generate_study(seed=seed, n_frames=10, motion=False, noise=False, aif_images=False)
            truth = ps.truth.slices
            maps = [{k: getattr(t, k) for k in ("mbf_ml_min_g", "ps_ml_min_g", "vp_ml_g", "visf_ml_g")} for t in truth]
            t0 = time.perf_counter()
            rep, slices = report.report_study(
                ps.study.slices,
                [t.labels_ref for t in truth],
                [t.insertion_points_yx["anterior"] for t in truth],
                maps,
                study_name=f"phantom {seed}",
                condition=ps.truth.condition,
            )
            t1 = time.perf_counter()
            figs = report.render_figures(rep, slices)
            t2 = time.perf_counter()
            report.write_report(rep, figs, out_root / f"report_{seed}", overwrite=True)
            t3 = time.perf_counter()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[key].append(value)
            ny, nx = ps.study.slices[0].shape
            print(
                f"seed {seed} ({ny} x {nx}): segments+report {t1 - t0:.3f} s, figures {t2 - t1:.3f} s, "
                f"write {t3 - t2:.3f} s"
            )
    total = sum(float(np.median(v)) for v in times.values())
    medians = ", ".join(f"{k} {np.median(v):.3f} s" for k, v in times.items())
    print(f"median: {medians}; total {total:.2f} s")


if __name__ == "__main__":
    main()
