"""Pixel-wise BTEX fit: validation, per-pixel status, the table search in chunks, maps."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.kinetics._btex_lut import build_table, coarse_candidates, grid_axes, rates_to_params
from qperf.kinetics._btex_search import N_FITTED, locate, prepare_search, rates_at
from qperf.kinetics.base import (
    FitResult,
    FitStatus,
    FloatArray,
    check_mask,
    check_max_delay,
    check_tissue,
)

if TYPE_CHECKING:
    from qperf.kinetics.btex import BtexModel

CHUNK_PIXELS = 8192  # large enough to amortise numpy's per-call overhead, small enough for the cache


def _parameters_and_sd(
    pos: FloatArray, fp: FloatArray, cov: FloatArray, sigma2: FloatArray, dt_s: float
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Model parameters and their standard deviations from grid positions and flow."""
    centre = np.zeros(pos.shape, dtype=np.intp)
    u, ra, rb = rates_at(centre, pos)
    params = rates_to_params(u, ra, rb, fp)
    params["delay_s"] = pos[:, 0] * dt_s
    du, da, db = (np.log(ax[1] / ax[0]) for ax in grid_axes())
    zero = np.zeros_like(fp)
    vp, ps, visf = params["Vp"], params["PS"], params["Visf"]
    # Rows: d(parameter) / d(u, a, b offsets; Fp). The delay is searched on the sample
    # grid; its uncertainty is not estimated.
    rows = {
        "Fp": [zero, zero, zero, np.ones_like(fp)],
        "Vp": [-vp * du, zero, zero, vp / fp],
        "PS": [-ps * du, ps * da, zero, ps / fp],
        "Visf": [-visf * du, visf * da, -visf * db, visf / fp],
    }
    sd = {}
    for name, row in rows.items():
        g = np.stack(row, axis=1)  # (P, 4)
        var = np.einsum("pi,pij,pj->p", g, cov, g) * sigma2
        sd[name] = np.sqrt(np.maximum(var, 0.0))
    return params, sd


def _threads() -> int:
    """Worker threads for the fit: ``QPERF_THREADS`` if set, else 1.

    The fit is many small array operations, so threads contend for the interpreter lock:
    on a shared 2-core machine two threads took about 20 % less wall time with a core to
    spare (for 40 % more CPU time) and gained nothing without one, hence one by default.
    """
    text = os.environ.get("QPERF_THREADS", "")
    if text.strip().isdigit() and int(text) > 0:
        return min(int(text), os.cpu_count() or 1)
    return 1


def fit_btex(
    model: BtexModel,
    tissue_mmol_l: ArrayLike,
    aif: FloatArray,
    time_s: FloatArray,
    dt_s: float,
    mask: ArrayLike | None,
    max_delay_s: float,
    hematocrit: float,
) -> FitResult:
    """Pixel-wise BTEX fit; see :meth:`qperf.kinetics.btex.BtexModel.fit`."""
    n = time_s.shape[0]
    tissue = check_tissue(tissue_mmol_l, n)
    pix_shape = tuple(tissue.shape[:-1])
    fit_mask = check_mask(mask, pix_shape)
    max_delay = check_max_delay(max_delay_s)
    n_delays = int(np.floor(max_delay / dt_s + 1e-9)) + 1
    n_delays = max(1, min(n_delays, n - 2))

    flat = tissue.reshape(-1, n)
    status = np.full(flat.shape[0], FitStatus.MASKED, dtype=np.int8)
    finite = np.all(np.isfinite(flat), axis=1)
    clean = np.where(np.isfinite(flat), flat, 0.0)
    peak = np.max(np.abs(clean), axis=1)
    spread = np.ptp(clean, axis=1)
    m = fit_mask.reshape(-1)
    status[m & ~finite] = FitStatus.INVALID_INPUT
    flat_signal = ~(spread > 1e-9 * np.maximum(peak, 1e-30)) | ~(peak > 0)
    status[m & finite & flat_signal] = FitStatus.NO_SIGNAL
    todo = np.nonzero(m & finite & ~flat_signal)[0]

    names = ("Fp", "PS", "Vp", "Visf", "delay_s")
    params = {k: np.full(flat.shape[0], np.nan) for k in names}
    sds = {k: np.full(flat.shape[0], np.nan) for k in ("Fp", "PS", "Vp", "Visf")}
    nrmse = np.full(flat.shape[0], np.nan)
    if todo.size:
        table = build_table(model, aif, dt_s, n_delays)
        search = prepare_search(table, coarse_candidates(table.shape))

        def run(chunk: NDArray[np.intp]) -> None:
            y64 = flat[chunk]
            a = y64.astype(np.float32) @ table.basis
            pos, fp, resid2, cov = locate(search, a)
            ynorm2 = np.sum(y64 * y64, axis=1)
            a64 = a.astype(np.float64)
            err2 = np.maximum(ynorm2 - np.sum(a64 * a64, axis=1), 0.0) + resid2
            sigma2 = err2 / max(n - N_FITTED - 1, 1)
            values, sd = _parameters_and_sd(pos, fp, cov, sigma2, dt_s)
            ok = np.all(np.isfinite(pos), axis=1) & np.isfinite(err2) & np.isfinite(fp)
            for name in names:
                params[name][chunk] = np.where(ok, values[name], np.nan)
            for name in sds:
                sds[name][chunk] = np.where(ok, sd[name], np.nan)
            nrmse[chunk] = np.where(ok, np.sqrt(err2 / np.maximum(ynorm2, 1e-30)), np.nan)
            status[chunk] = np.where(ok, FitStatus.OK, FitStatus.FAILED)

        threads = _threads()
        # With several threads, at least one chunk per thread (down to 1024 pixels).
        size = min(CHUNK_PIXELS, max(1024, -(-todo.size // threads)))
        chunks = [todo[i : i + size] for i in range(0, todo.size, size)]
        workers = max(1, min(threads, len(chunks)))
        if workers == 1:
            for chunk in chunks:
                run(chunk)
        else:
            # numpy releases the GIL in its array loops: chunks run in parallel threads.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, chunks))

    out_params = {k: params[k].reshape(pix_shape) for k in names}
    # reported blood volume and myocardial (whole-)blood flow, from the plasma quantities
    vb = out_params["Vp"] / (1.0 - hematocrit)
    return FitResult(
        model=model.name,
        params=out_params,
        status=status.reshape(pix_shape),
        nrmse=nrmse.reshape(pix_shape),
        units=model.units,
        map_names=model._map_names(),
        sd={k: v.reshape(pix_shape) for k, v in sds.items()},
        derived={"vb_ml_g": vb, "mbf_ml_min_g": out_params["Fp"] / (1.0 - hematocrit)},
    )
