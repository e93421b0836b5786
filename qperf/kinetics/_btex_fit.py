"""Pixel-wise BTEX fit: validation, per-pixel status, the table search in chunks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.kinetics._btex_local import N_FITTED, rates_at
from qperf.kinetics._btex_lut import TransferModel, build_table, coarse_candidates, grid_axes, rates_to_params
from qperf.kinetics._btex_search import SearchTable, locate, prepare_search
from qperf.kinetics.base import Acquisition, FitStatus, FloatArray
from qperf.kinetics.fitting import select_pixels

#: Parameters of a BTEX fit, in the order of the result.
PARAMETER_NAMES = ("Fp", "PS", "Vp", "Visf", "delay_s")
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


def _fit_chunk(
    search: SearchTable, y64: FloatArray, n_time: int, dt_s: float
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], FloatArray, NDArray[np.bool_]]:
    """Parameters, their SDs, the NRMSE and success of the curves ``y64`` ``(P, t)``."""
    a = y64.astype(np.float32) @ search.table.basis
    pos, fp, resid2, cov = locate(search, a)
    ynorm2 = np.sum(y64 * y64, axis=1)
    a64 = a.astype(np.float64)
    err2 = np.maximum(ynorm2 - np.sum(a64 * a64, axis=1), 0.0) + resid2
    sigma2 = err2 / max(n_time - N_FITTED - 1, 1)
    values, sd = _parameters_and_sd(pos, fp, cov, sigma2, dt_s)
    ok = np.all(np.isfinite(pos), axis=1) & np.isfinite(err2) & np.isfinite(fp)
    nrmse = np.sqrt(err2 / np.maximum(ynorm2, 1e-30))
    return values, sd, nrmse, ok


def fit_btex(
    model: TransferModel, acquisition: Acquisition, tissue_mmol_l: ArrayLike, mask: ArrayLike | None, max_delay_s: float
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], NDArray[np.int8], FloatArray, tuple[int, ...]]:
    """Pixel-wise BTEX fit; see :meth:`qperf.kinetics.btex.BtexModel.fit_acquisition`.

    Returns the parameters (``delay_s`` included) and their SDs as flat arrays, the status,
    the NRMSE and the pixel shape.
    """
    pixels = select_pixels(tissue_mmol_l, mask, max_delay_s, acquisition)
    flat, status, todo, dt_s = pixels.flat, pixels.status, pixels.todo, acquisition.dt_s
    params = {k: np.full(flat.shape[0], np.nan) for k in PARAMETER_NAMES}
    sds = {k: np.full(flat.shape[0], np.nan) for k in PARAMETER_NAMES[:-1]}
    nrmse = np.full(flat.shape[0], np.nan)
    if todo.size:
        table = build_table(model, acquisition.aif_plasma_mmol_l, dt_s, pixels.n_delays)
        search = prepare_search(table, coarse_candidates(table.shape))

        def run(chunk: NDArray[np.intp]) -> None:
            values, sd, error, ok = _fit_chunk(search, flat[chunk], acquisition.n_time, dt_s)
            for name in params:
                params[name][chunk] = np.where(ok, values[name], np.nan)
            for name in sds:
                sds[name][chunk] = np.where(ok, sd[name], np.nan)
            nrmse[chunk] = np.where(ok, error, np.nan)
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
    return params, sds, status, nrmse, pixels.shape
