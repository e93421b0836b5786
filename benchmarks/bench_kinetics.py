"""Speed and memory of the kinetic models (prints figures; passes or fails nothing).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_kinetics.py [--pixels 49152] [--frames 80] [--repeat 3]

The BTEX fit can run chunks of pixels in threads (``QPERF_THREADS``, default 1); keep BLAS
single-threaded (``OMP_NUM_THREADS=1``): on a busy machine a multi-threaded BLAS makes the
small matrix products of the fit many times slower. On a shared machine the wall-clock
figures depend on the other work; each fit is timed ``--repeat`` times (the fastest is
reported, with the CPU time of that run and the load average before it).

Figures:
- BTEX transfer-function basis (computed once per time grid, AIF-independent, cached);
- BTEX look-up table for one AIF (every AIF);
- BTEX fit throughput on a whole-study-sized set of noisy pixels (3 slices x 128 x 128 by
  default) and on a myocardium-sized subset, with the flow error against the truth (look-up
  table, its preparation for the search and the search all included);
- simulation rate of BTEX curves, fit throughput of the other models (nonlinear and, where
  the model has one, the linear least-squares fast path) with a delay between samples;
  ``bench_kinetics_peers.py`` sets Tofts and 2CXM beside the OSIPI linear fitters;
- peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qperf import kinetics
from qperf.kinetics import _btex_lut


def _aif(time_s: np.ndarray) -> np.ndarray:
    x = np.clip(time_s - 8.0, 0.0, None)
    blood = 6.0 * (x / 5.0) ** 3 * np.exp(3.0 * (1.0 - x / 5.0)) + 0.6 * (1.0 - np.exp(-x / 15.0))
    return blood / (1.0 - 0.42)


def _timed(run: Callable[[], Any], repeat: int) -> tuple[Any, list[tuple[float, float, float]]]:
    """The result of the last of ``repeat`` runs and (wall s, CPU s, load average) of each."""
    runs = []
    result = None
    for _ in range(max(1, repeat)):
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        runs.append((time.perf_counter() - t0, time.process_time() - c0, load))
    return result, runs


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=3 * 128 * 128, help="pixels of the whole-study fit")
    parser.add_argument("--myocardium", type=int, default=3 * 1500, help="pixels of the myocardium-only fit")
    parser.add_argument("--frames", type=int, default=80, help="frames at dt = 0.5 s")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each BTEX fit (fastest reported)")
    args = parser.parse_args()

    dt = 0.5
    time_s = np.arange(args.frames) * dt
    aif = _aif(time_s)
    model = kinetics.get_model("btex")
    rng = np.random.default_rng(0)

    os.environ["QPERF_CACHE_DIR"] = ""  # the basis computed, not read back from the disk cache
    t0, c0 = time.perf_counter(), time.process_time()
    _btex_lut.transfer_basis(model, _btex_lut.basis_length(args.frames), dt)
    t_basis, c_basis = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    table = _btex_lut.build_table(model, aif, dt, 7)
    t_table, c_table = time.perf_counter() - t0, time.process_time() - c0
    n_entries = int(np.prod(table.shape[1:]))
    print(
        f"BTEX transfer-function basis ({n_entries} entries, {args.frames} frames; once per grid): "
        f"{t_basis:.2f} s wall, {c_basis:.2f} s CPU"
    )
    print(f"BTEX look-up table for one AIF ({n_entries} x 7 delays): {t_table:.2f} s wall, {c_table:.2f} s CPU")
    print(f"BTEX LUT in all (basis + table): {t_basis + t_table:.2f} s wall, {c_basis + c_table:.2f} s CPU")
    print(
        f"machine load average (1 min) at start: {os.getloadavg()[0]:.1f}, CPUs: {os.cpu_count()}, "
        f"QPERF_THREADS={os.environ.get('QPERF_THREADS', '1')}"
    )

    n_sim = 200
    t0 = time.perf_counter()
    model.simulate(aif, time_s, Fp=rng.uniform(0.5, 4, n_sim), PS=1.3, Vp=0.05, Visf=0.2)
    t_sim = time.perf_counter() - t0
    print(f"BTEX simulate: {n_sim / t_sim:.0f} curves/s ({n_sim} curves in {t_sim:.2f} s)")

    # Noisy pixels: half rest-like, half stress-like flows, 2 % noise.
    n_truth = 512
    truth = {
        "Fp": np.concatenate([rng.uniform(0.5, 1.3, n_truth // 2), rng.uniform(2.0, 3.6, n_truth // 2)]),
        "PS": rng.uniform(1.0, 1.7, n_truth),
        "Vp": rng.uniform(0.045, 0.095, n_truth),
        "Visf": rng.uniform(0.12, 0.45, n_truth),
        "delay_s": rng.choice(np.arange(6) * dt, n_truth),
    }
    clean = model.simulate(aif, time_s, **truth)
    for label, n_pix in (("whole study", args.pixels), ("myocardium", args.myocardium)):
        pick = rng.integers(0, n_truth, n_pix)
        tissue = clean[pick] + rng.normal(0.0, 0.02 * clean.max(), (n_pix, args.frames))
        fit, runs = _timed(lambda t=tissue: model.bind(aif, time_s).fit(t), args.repeat)
        elapsed, cpu, load = min(runs)
        err = np.abs(fit.params["Fp"] / truth["Fp"][pick] - 1.0)
        delay_ok = np.mean(fit.params["delay_s"] == truth["delay_s"][pick])
        print(
            f"BTEX fit, {label} ({n_pix} px, LUT included): {elapsed:.2f} s wall = {n_pix / elapsed:.0f} px/s "
            f"({cpu:.2f} s CPU = {n_pix / cpu:.0f} px per CPU-second; load {load:.1f}; "
            f"all runs {', '.join(f'{r[0]:.2f}' for r in runs)} s); "
            f"median |Fp error| {100 * np.median(err):.2f} %, delay exact {100 * delay_ok:.0f} %"
        )

    # One delay for every pixel (the one-click pipeline's default: the study's delay from the
    # mean myocardial curves), pixels simulated at that delay.
    fixed = {k: v if k != "delay_s" else np.full(n_truth, 2 * dt) for k, v in truth.items()}
    clean_fixed = model.simulate(aif, time_s, **fixed)
    shifted = np.r_[np.zeros(2), aif[:-2]]
    for label, n_pix in (("whole study", args.pixels), ("myocardium", args.myocardium)):
        pick = rng.integers(0, n_truth, n_pix)
        tissue = clean_fixed[pick] + rng.normal(0.0, 0.02 * clean.max(), (n_pix, args.frames))
        fit, runs = _timed(lambda t=tissue: model.bind(shifted, time_s).fit(t, max_delay_s=0.0), args.repeat)
        elapsed, cpu, load = min(runs)
        err = np.abs(fit.params["Fp"] / fixed["Fp"][pick] - 1.0)
        print(
            f"BTEX fit at a fixed delay, {label} ({n_pix} px, LUT included): {elapsed:.2f} s wall = "
            f"{n_pix / elapsed:.0f} px/s ({cpu:.2f} s CPU; load {load:.1f}); median |Fp error| {100 * np.median(err):.2f} %"
        )

    for name, params, methods in (
        ("fermi", {"F": 1.5, "k": 0.2, "tau": 2.0}, ("nonlinear",)),
        ("2cxm", {"Fp": 1.5, "PS": 1.2, "Vp": 0.06, "Ve": 0.2}, ("nonlinear", "linear")),
        ("tofts", {"Ktrans": 0.5, "Ve": 0.2}, ("nonlinear", "linear")),
        ("extended_tofts", {"Ktrans": 0.5, "Ve": 0.2, "Vp": 0.05}, ("nonlinear", "linear")),
    ):
        for method in methods:
            other = kinetics.get_model(name, method=method)
            delay = 1.3  # between samples
            curve = other.simulate(aif, time_s, delay_s=delay, **params)
            n_pix = 2000
            tissue = curve[None, :] + rng.normal(0.0, 0.02 * curve.max(), (n_pix, args.frames))
            t0 = time.perf_counter()
            fit = other.bind(aif, time_s).fit(tissue)
            elapsed = time.perf_counter() - t0
            first = other.parameter_names[0]
            err = np.median(np.abs(fit.params[first] / params[first] - 1.0))
            print(
                f"{name} {method} fit ({n_pix} px, continuous delay 0-3 s): {n_pix / elapsed:.0f} px/s; "
                f"median |{first} error| {100 * err:.1f} %, median delay {np.median(fit.params['delay_s']):.2f} s "
                f"(true {delay} s)"
            )

    print(f"peak resident memory: {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
