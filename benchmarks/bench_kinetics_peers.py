"""Tofts and 2CXM fits beside the OSIPI linear least-squares fitters, on the same curves, in one run.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_kinetics_peers.py [--copies 100] [--repeat 3]

Curves: the OSIPI peer reference cases in ``../shared/data/osipi`` (2CXM: 24 cases of 600
samples, one AIF; Tofts: the 25 QIBA DRO cases of 1321 samples, five AIFs), each case
repeated ``--copies`` times for the throughput, fitted once as they are for the accuracy
(cases within the OSIPI tolerances). Delay 0 for every fitter, as the peers have no delay;
QPerf's linear fit with its delay searched up to 10 s is printed as well, on the 2CXM cases
delayed by 5 s.

The peers. The OSIPI linear fitters (DCE-DSC-MRI_CodeCollection, contribution
OGJ_OsloU_Norway, ``MRImageAnalysis.DCE.Analyze`` with ``method='LLSQ'``: Murase's Tofts and
Flouri's 2CXM linearisations) are not published on PyPI (the ``osipi`` package there holds
only population AIFs), and this project works offline, so the peer side below is a
reimplementation of their published algorithm, labelled ``OSIPI LLSQ (reimpl.)``: per curve,
the curve's cumulative trapezoid integrals fill the curve-dependent columns of the design
matrix (the AIF columns are filled once), ``numpy.linalg.lstsq`` solves it, the parameters
follow from the coefficients, and a non-physical solution becomes infinite. Nothing of it is
a dependency of the project; it lives here only.

Prints figures; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qperf import kinetics

SHARED = Path(os.environ.get("QPERF_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# ----------------------------------------------------------------------------- peer side


def _peer_cumtrapz(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid of one curve, zero at the first sample (the peers' 'trapezoidal')."""
    out = np.zeros_like(y)
    out[1:] = np.cumsum(0.5 * np.diff(t) * (y[1:] + y[:-1]))
    return out


def peer_tofts(tissue: np.ndarray, aif: np.ndarray, t: np.ndarray) -> np.ndarray:
    """OSIPI LLSQ (reimpl.) Tofts: rows (Ktrans /min, ve); inf where not physical."""
    design = np.zeros((t.size, 2))
    design[:, 0] = _peer_cumtrapz(t, aif)
    out = np.empty((tissue.shape[0], 2))
    for i, signal in enumerate(tissue):
        design[:, 1] = -_peer_cumtrapz(t, signal)
        b = np.linalg.lstsq(design, signal, rcond=None)[0]
        ktrans, kep = b[0], b[1]
        if ktrans < 0 or kep < 0:
            ktrans = kep = np.inf
        out[i] = (60.0 * ktrans, ktrans / kep)
    return out


def peer_2cxm(tissue: np.ndarray, aif: np.ndarray, t: np.ndarray) -> np.ndarray:
    """OSIPI LLSQ (reimpl.) 2CXM: rows (Fp ml/min/ml, PS /min, vp, ve); inf where not physical."""
    design = np.zeros((t.size, 4))
    first = _peer_cumtrapz(t, aif)
    design[:, 3] = first
    design[:, 2] = _peer_cumtrapz(t, first)
    out = np.empty((tissue.shape[0], 4))
    for i, signal in enumerate(tissue):
        first_c = _peer_cumtrapz(t, signal)
        design[:, 1] = -first_c
        design[:, 0] = -_peer_cumtrapz(t, first_c)
        b = np.linalg.lstsq(design, signal, rcond=None)[0]
        fp = b[3]
        vp = b[3] ** 2 / (b[1] * b[3] - b[2])
        ve = b[2] / b[0] - vp
        ps = b[0] * ve * vp / fp
        ktrans = fp * ps / (fp + ps)
        if ktrans > fp or fp < 0 or ps < 0 or ve < 0 or vp < 0 or ve > 1 or vp > 1 or ve + vp > 1:
            fp = ps = vp = ve = np.inf
        out[i] = (60.0 * fp, 60.0 * ps, vp, ve)
    return out


# ----------------------------------------------------------------------------- data, scoring


def _rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 26)
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _series(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=np.float64)


def _within_2cxm(rows: list[dict[str, str]], x: np.ndarray) -> int:
    """Cases within the OSIPI tolerances; ``x`` rows (Fp ml/min/g, PS ml/min/g, vp, ve)."""
    n = 0
    for row, (fp, ps, vp, ve) in zip(rows, x, strict=True):
        ref = {k: float(row[k]) for k in ("fp", "ps", "vp", "ve")}
        n += bool(
            abs(vp - ref["vp"]) <= 0.025
            and abs(ve - ref["ve"]) <= 0.05
            and abs(100.0 * fp - ref["fp"]) <= 5.0 + 0.1 * ref["fp"]
            and abs(ps - ref["ps"]) <= 0.005 + 0.1 * ref["ps"]
        )
    return n


def _within_tofts(rows: list[dict[str, str]], x: np.ndarray) -> int:
    """Cases within the OSIPI tolerances; ``x`` rows (Ktrans /min, ve)."""
    n = 0
    for row, (ktrans, ve) in zip(rows, x, strict=True):
        ref_k, ref_v = float(row["Ktrans"]), float(row["ve"])
        n += bool(abs(ktrans - ref_k) <= 0.005 + 0.1 * ref_k and abs(ve - ref_v) <= 0.05)
    return n


def _best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


def _qperf_2cxm(method: str, tissue: np.ndarray, aif: np.ndarray, t: np.ndarray, max_delay_s: float) -> np.ndarray:
    fit = kinetics.get_model("2cxm", method=method).bind(aif, t).fit(tissue, max_delay_s=max_delay_s)
    return np.stack([fit.params[k] for k in ("Fp", "PS", "Vp", "Ve")], axis=1)


def _qperf_tofts(method: str, groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    model = kinetics.get_model("tofts", method=method)
    out = []
    for index, tissue, aif, t in groups:
        fit = model.bind(aif, t).fit(tissue, max_delay_s=0.0)
        out.append((index, np.stack([fit.params["Ktrans"], fit.params["Ve"]], axis=1)))
    return _in_order(out)


def _peer_tofts_groups(groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    return _in_order([(index, peer_tofts(tissue, aif, t)) for index, tissue, aif, t in groups])


def _in_order(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    index = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    out = np.empty_like(values)
    out[index] = values
    return out


def _tofts_groups(
    rows: list[dict[str, str]], copies: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Cases grouped by AIF: (case indices, tissue (n, t), AIF, time), each case ``copies`` times."""
    by_aif: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_aif.setdefault(row["ca"] + "|" + row["t"], []).append(i)
    groups = []
    for members in by_aif.values():
        index = np.repeat(np.array(members), copies)
        tissue = np.stack([_series(rows[i]["C"]) for i in index])
        first = rows[members[0]]
        groups.append((index, tissue, _series(first["ca"]), _series(first["t"])))
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100, help="copies of each case in the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each fitter (fastest reported)")
    args = parser.parse_args()
    folder = SHARED / "osipi"
    if not folder.is_dir():
        sys.exit(f"bench_kinetics_peers: the OSIPI reference curves are not in {folder} (set QPERF_SHARED_DATA)")
    print(
        f"machine load average (1 min) at start: {os.getloadavg()[0]:.1f}, CPUs: {os.cpu_count()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )

    # 2CXM: 24 cases, one AIF.
    rows = _rows(folder / "2cxm_sd_0.001_delay_0.csv")
    t = _series(rows[0]["t"])
    aif = _series(rows[0]["cp_aif"])
    cases = np.stack([_series(r["C_t"]) for r in rows])
    many = np.tile(cases, (args.copies, 1))
    print(f"2CXM: {len(rows)} OSIPI cases x {args.copies} copies = {many.shape[0]} curves of {t.size} samples")
    fitters_2cxm: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("OSIPI LLSQ (reimpl.)", lambda c: peer_2cxm(c, aif, t)),
        ("QPerf linear", lambda c: _qperf_2cxm("linear", c, aif, t, 0.0)),
        ("QPerf nonlinear", lambda c: _qperf_2cxm("nonlinear", c, aif, t, 0.0)),
    ]
    for label, fitter in fitters_2cxm:
        elapsed, _ = _best_time(lambda f=fitter: f(many), args.repeat)
        within = _within_2cxm(rows, fitter(cases))
        print(
            f"  {label:22s} {many.shape[0] / elapsed:9.0f} curves/s "
            f"({elapsed:.3f} s); OSIPI cases within tolerance {within}/{len(rows)}"
        )
    delayed = np.concatenate([np.repeat(cases[:, :1], 10, axis=1), cases[:, :-10]], axis=1)
    delayed_many = np.tile(delayed, (args.copies, 1))
    for method in ("linear", "nonlinear"):
        copies = delayed_many if method == "linear" else delayed
        elapsed, _ = _best_time(lambda m=method, c=copies: _qperf_2cxm(m, c, aif, t, 10.0), args.repeat)
        within = _within_2cxm(rows, _qperf_2cxm(method, delayed, aif, t, 10.0))
        print(
            f"  QPerf {method:9s} delay 5 s, searched 0-10 s: {copies.shape[0] / elapsed:7.0f} curves/s "
            f"({copies.shape[0]} curves); within tolerance {within}/{len(rows)}"
        )

    # Tofts: 25 QIBA DRO cases, five AIFs.
    rows = _rows(folder / "dce_DRO_data_tofts.csv")
    groups = _tofts_groups(rows, args.copies)
    single = _tofts_groups(rows, 1)
    n_curves = sum(g[1].shape[0] for g in groups)
    print(
        f"Tofts: {len(rows)} QIBA DRO cases x {args.copies} copies = {n_curves} curves of {groups[0][1].shape[1]} samples"
    )
    fitters_tofts: list[tuple[str, Callable[[Any], np.ndarray]]] = [
        ("OSIPI LLSQ (reimpl.)", _peer_tofts_groups),
        ("QPerf linear", lambda g: _qperf_tofts("linear", g)),
        ("QPerf nonlinear", lambda g: _qperf_tofts("nonlinear", g)),
    ]
    for label, fitter in fitters_tofts:
        elapsed, _ = _best_time(lambda f=fitter: f(groups), args.repeat)
        within = _within_tofts(rows, fitter(single))
        print(
            f"  {label:22s} {n_curves / elapsed:9.0f} curves/s "
            f"({elapsed:.3f} s); OSIPI cases within tolerance {within}/{len(rows)}"
        )


if __name__ == "__main__":
    main()
