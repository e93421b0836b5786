"""Timings of the flow chain: Gd conversion, LV detection, AIF processing and pixel-wise mapping.

Run ``.venv/bin/python benchmarks/bench_flow.py`` (add ``--quick`` for smaller inputs). Prints
one line per figure; nothing is asserted. The real cases in ``../shared/data`` are used when
present.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qperf import aif as qaif
from qperf import kinetics
from qperf.flow import compute_flow_maps
from qperf.gd import GdLookupTable, SrSequence, pd_signal, series_to_gd, sr_signal
from qperf.types import AifCurve, PerfusionSeries

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLASH = SrSequence("flash", 1.5, 110.0, 12.0, 5.0, 2.5, 20)
SSFP = SrSequence("ssfp", 3.0, 100.0, 50.0, 5.0, 2.8, 25)


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time (s) of ``repeat`` calls and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def blood_aif(time_s: np.ndarray, foot_s: float = 8.0, peak: float = 5.0) -> np.ndarray:
    x = np.clip(time_s - foot_s, 0.0, None)
    first = x**2.5 * np.exp(-x / 1.4)
    return peak * first / first.max() + 0.06 * peak * (x > 14)


def synthetic_slice(ny: int, nx: int, n_frames: int, rng: np.random.Generator) -> tuple[PerfusionSeries, AifCurve]:
    """A slice of BTEX tissue curves (Fp 0.5-3 ml/min/g) at ECG-like times, with its blood AIF."""
    fine = np.arange(0.0, n_frames * 1.0 + 5.0, 0.1)
    model = kinetics.get_model("btex")
    fp = rng.uniform(0.5, 3.0, 64)
    curves = model.simulate(blood_aif(fine) / 0.58, fine, Fp=fp, PS=1.2, Vp=0.05, Visf=0.2, delay_s=0.5)
    times = np.cumsum(np.r_[0.0, 0.85 + rng.normal(0.0, 0.03, n_frames - 1)])
    table = np.stack([np.interp(times, fine, c) for c in curves])
    pick = rng.integers(0, fp.size, ny * nx)
    data = table[pick].T.reshape(n_frames, ny, nx) + rng.normal(0.0, 0.01, (n_frames, ny, nx))
    return PerfusionSeries(data, times, units="gd_mmol_l"), AifCurve(blood_aif(times), times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    size = 64 if args.quick else 128

    for name, seq in (("flash 1.5 T", FLASH), ("ssfp 3 T", SSFP)):
        t, _ = timed(lambda seq=seq: GdLookupTable(seq, "myocardium"))
        print(f"gd look-up table ({name}, 2001 entries): {t * 1e3:.1f} ms")
    n_frames = 60
    gd_true = rng.gamma(2.0, 0.3, (n_frames, size, size))
    signal = np.concatenate([np.full((3, size, size), 400.0 * pd_signal(FLASH)), 400.0 * sr_signal(gd_true, FLASH)])
    meta = {k: getattr(FLASH, k) for k in FLASH.__dataclass_fields__}
    raw = PerfusionSeries(signal, np.arange(n_frames + 3) * 0.85, units="signal", n_pd_frames=3, metadata=meta)
    t, _ = timed(lambda: series_to_gd(raw))
    print(
        f"signal to Gd, {n_frames} frames of {size} x {size}: {t * 1e3:.1f} ms ({n_frames * size * size / t / 1e6:.1f} M values/s)"
    )

    example = SHARED / "aif_example1"
    if example.is_dir():
        images = np.load(example / "aif_scc.npy")
        truth = np.load(example / "aif_masks_final.npy")
        series = PerfusionSeries(np.moveaxis(images, -1, 0), np.arange(images.shape[-1]) * 0.9)
        t, mask = timed(lambda: qaif.detect_lv(series))
        print(
            f"LV detection (classical), real AIF images {images.shape[0]} x {images.shape[1]} x {images.shape[2]}: "
            f"{t * 1e3:.1f} ms, Dice {qaif.dice(mask, truth == 1):.3f} vs manual LV"
        )

    rest = SHARED / "qperf_rest" / "perf_data.mat"
    if rest.is_file():
        import scipy.io as sio

        mat = sio.loadmat(rest)
        gd = np.moveaxis(mat["data"], -1, 0)
        times = np.arange(gd.shape[0]) * 0.5
        series = PerfusionSeries(gd, times, units="gd_mmol_l")
        curve = AifCurve(mat["aif"].ravel(), times)
        t, result = timed(lambda: compute_flow_maps(series, curve), repeat=2)
        n = series.shape[0] * series.shape[1]
        print(f"flow maps, real rest slice, every pixel ({n}): {t:.2f} s ({n / t:.0f} pixels/s)")

    series, curve = synthetic_slice(size, size, 60, rng)
    n = size * size
    t_total, result = timed(lambda: compute_flow_maps(series, curve), repeat=2)
    fit_time, _ = timed(
        lambda: (
            kinetics.get_model("btex")
            .bind(result.aif.values, result.time_s - result.time_s[0])
            .fit(np.moveaxis(result.tissue_mmol_l, 0, -1))
        ),
        repeat=2,
    )
    grid = result.time_s

    def steps_before_the_fit() -> None:
        marks = qaif.detect_bolus(curve.values, curve.time_s)
        qaif.resample(curve.values - marks.baseline, curve.time_s, grid)
        tissue = qaif.resample(series.dynamic.reshape(series.n_frames, -1).T, series.time_s, grid)
        qaif.tissue_foot_s(tissue, grid, blood_peak=marks.peak_height)

    t_steps, _ = timed(steps_before_the_fit)
    print(f"flow maps, synthetic {size} x {size} slice, 60 frames: {t_total:.2f} s ({n / t_total:.0f} pixels/s)")
    print(f"  kinetic fit alone: {fit_time:.2f} s; AIF landmarks, resampling and delay alone: {t_steps:.2f} s")
    ring = np.zeros(series.shape, dtype=bool)
    yy, xx = np.mgrid[0 : series.shape[0], 0 : series.shape[1]]
    r = np.hypot(yy - size / 2, xx - size / 2)
    ring[(r > size * 0.12) & (r < size * 0.2)] = True
    t_myo, _ = timed(lambda: compute_flow_maps(series, curve, mask=ring), repeat=2)
    print(f"flow maps, myocardium-like ring ({int(ring.sum())} pixels): {t_myo:.2f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak resident memory: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
