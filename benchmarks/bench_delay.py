"""Flow behind an AIF-to-tissue delay: one shared delay against each pixel's own whole-sample delay.

Tissue curves from BTEX (plasma flow drawn +-15 % around the condition's value, PS, Vp and
Visf fixed) lag a gamma-variate AIF by delays between the 0.5 s samples of the fitting grid,
sampled on that grid or once per heartbeat, with Gaussian noise (a fraction of the tissue's
peak) and 0.5 % AIF noise. For each delay and noise draw, the median over the pixels of the
fitted flow over the true flow, for:

- ``shared``: :func:`qperf.flow.compute_flow_maps` as it runs by default (one delay that fits
  the pixels' curves, :mod:`qperf.flow.delay`);
- ``pixel``: each pixel's own delay in whole grid samples (``delay="pixel"``);
- ``true``: every pixel fitted at the true delay (what the fit alone can do).

Prints, per delay, the median ratio of each, then over all delays and draws the median ratio
and the 90th percentile of the absolute error. Reports figures; passes or fails nothing.

    .venv/bin/python benchmarks/bench_delay.py [--condition stress|rest] [--sampling grid|beats]
        [--pixels 150] [--noise 0.04] [--draws 4]
"""

from __future__ import annotations

import argparse

import numpy as np

from qperf import kinetics
from qperf.flow import compute_flow_maps
from qperf.types import AifCurve, PerfusionSeries

HCT = 0.42
DELAYS_S = (0.0, 0.2, 0.45, 0.7, 0.95, 1.1, 1.35, 1.6, 1.9)


def blood_aif(time_s: np.ndarray, tau_s: float, foot_s: float = 8.0, peak: float = 6.0) -> np.ndarray:
    """Whole-blood AIF: gamma-variate first pass, recirculation and a plateau."""
    x = np.clip(time_s - foot_s, 0.0, None)
    first = x**2.5 * np.exp(-x / tau_s)
    late = np.clip(x - 7.0, 0.0, None)
    second = late**2 * np.exp(-late / 3.0)
    return peak * first / first.max() + 0.12 * peak * second / max(second.max(), 1e-9) + 0.06 * peak * (x > 12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--condition", choices=["stress", "rest"], default="stress")
    parser.add_argument("--sampling", choices=["grid", "beats"], default="grid")
    parser.add_argument("--pixels", type=int, default=150)
    parser.add_argument("--noise", type=float, default=0.04, help="tissue noise SD over the tissue's peak")
    parser.add_argument("--draws", type=int, default=4)
    args = parser.parse_args()
    stress = args.condition == "stress"
    mbf, ps, tau = (3.5, 1.3, 1.1) if stress else (1.0, 1.0, 1.6)
    model = kinetics.get_model("btex")
    fine = np.arange(0.0, 80.0, 0.05)
    modes = ("shared", "pixel", "true")
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    shape = (10, max(args.pixels // 10, 1))
    print(
        f"{args.condition}, MBF {mbf} ml/min/g, {args.sampling} sampling, {shape[0] * shape[1]} pixels, "
        f"noise {100 * args.noise:.0f} % of the peak, {args.draws} draws per delay"
    )
    for delay_s in DELAYS_S:
        row: dict[str, list[float]] = {m: [] for m in modes}
        for draw in range(args.draws):
            rng = np.random.default_rng(100 + draw)
            if args.sampling == "grid":
                times = np.arange(110) * 0.5
            else:
                times = np.cumsum(np.r_[0.0, 0.85 + rng.normal(0.0, 0.04, 69)])
            fp = mbf * (1.0 - HCT) * rng.uniform(0.85, 1.15, shape)
            curves = model.simulate(
                blood_aif(fine, tau) / (1.0 - HCT), fine, Fp=fp, PS=ps, Vp=0.05, Visf=0.2, delay_s=delay_s
            )
            tissue = np.stack([np.interp(times, fine, c) for c in curves.reshape(-1, fine.size)]).reshape(*shape, -1)
            gd = np.moveaxis(tissue, -1, 0)
            gd = gd + rng.normal(0.0, args.noise * gd.max(), gd.shape)
            series = PerfusionSeries(gd.astype(np.float32), times, units="gd_mmol_l")
            aif = AifCurve(blood_aif(times, tau) + rng.normal(0.0, 0.005 * 6.0, times.size), times, kind="blood")
            runs = {
                "shared": {},
                "pixel": {"delay": "pixel"},
                "true": {"fixed_delay_s": delay_s},
            }
            for mode, options in runs.items():
                result = compute_flow_maps(series, aif, hematocrit=HCT, **options)
                row[mode].append(float(np.median(result.maps["fp_ml_min_g"] / fp)))
        for mode in modes:
            ratios[mode] += row[mode]
        print(f"delay {delay_s:.2f} s: " + "  ".join(f"{m} {np.median(row[m]):.3f}" for m in modes), flush=True)
    for mode in modes:
        values = np.asarray(ratios[mode])
        print(
            f"{mode}: median ratio {np.median(values):.3f}, 90th percentile |error| "
            f"{100 * np.percentile(np.abs(values - 1.0), 90):.1f} %"
        )


if __name__ == "__main__":
    main()
