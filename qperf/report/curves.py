"""Curves of the report: the AIF, and per segment its mean tissue curve with the model's fit.

The segment-mean curve (over the pixels that enter the segment's statistics) is fitted with
the slice's kinetic model; the fit, its residual and its parameters show how well the model
explains what the pixel maps summarise. Figures are drawn from the report's ``curves``
section alone (JSON), so a report read back from disk draws them again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from qperf.aha.table import LEVEL_SEGMENTS, SEGMENTS
from qperf.errors import ValidationError, describe
from qperf.flow.delay import delayed_aif

__all__ = ["aif_figure", "curves_figure", "motion_figure", "segment_curves"]

#: Colours of measured curves, fits and residuals.
_MEASURED, _FIT, _RESIDUAL, _LOW = "#1f4e9c", "#d1495b", "#666666", "#a40000"


def _fit_values(fit: Any, j: int, hematocrit: float) -> dict[str, float | None]:
    """Parameters of curve ``j`` of a fit, by map name, with MBF (``Fp / (1 - Hct)``) where the
    model has a plasma flow (as :func:`qperf.flow.compute_flow_maps` reports it)."""
    maps = fit.maps()
    out: dict[str, float | None] = {}
    for name, values in maps.items():
        if name.endswith("_sd"):
            continue
        v = float(np.asarray(values)[j])
        out[name] = v if math.isfinite(v) else None
    fp = out.get("fp_ml_min_g")
    out["mbf_ml_min_g"] = None if fp is None else fp / (1.0 - hematocrit)
    return out


def segment_curves(
    time_s: ArrayLike,
    aif_plasma_mmol_l: ArrayLike,
    tissue_mmol_l: ArrayLike,
    segments: ArrayLike,
    *,
    model: str,
    hematocrit: float,
    index: int = 0,
    delay_s: Mapping[int, float] | None = None,
    max_delay_s: float = 3.0,
) -> dict[str, Any]:
    """The mean tissue curve of every segment of a slice, fitted with a kinetic model.

    Parameters
    ----------
    time_s : array_like of float, (n,)
        The fitting grid (s, regular).
    aif_plasma_mmol_l : array_like of float, (n,)
        The plasma AIF the pixels were fitted against, on ``time_s``.
    tissue_mmol_l : array_like of float, (n, y, x)
        Tissue curves (baseline removed).
    segments : array_like of int, (y, x)
        AHA segment numbers of the pixels to average (0 elsewhere), e.g. the segments
        restricted to the pixels that enter the statistics.
    model : str
        A :mod:`qperf.kinetics` model name.
    hematocrit : float
    index : int
        The slice's index in the report.
    delay_s : mapping of int to float, optional
        Per segment, the delay (s) of the tissue behind ``aif_plasma_mmol_l`` to fit with (the
        one its pixels were fitted with); a segment without one has its delay searched.
    max_delay_s : float
        Largest tissue delay searched (s), in whole grid steps.

    Returns
    -------
    dict
        ``index``, ``time_s``, ``aif_plasma_mmol_l`` and ``segments``: segment number (str)
        -> ``n_pixels``, ``tissue_mmol_l`` (the mean curve), ``fit_mmol_l`` (None when the
        fit failed), ``nrmse`` and ``params`` (the fit's values by map name, with
        ``mbf_ml_min_g``).

    Raises
    ------
    ValidationError
        Arrays of inconsistent shapes or an unknown model.
    """
    from qperf import kinetics

    t = np.asarray(time_s, dtype=np.float64)
    aif = np.asarray(aif_plasma_mmol_l, dtype=np.float64)
    tissue = np.asarray(tissue_mmol_l, dtype=np.float64)
    seg = np.asarray(segments)
    if t.ndim != 1 or aif.shape != t.shape:
        raise ValidationError(f"aif_plasma_mmol_l: expected shape {t.shape} (as time_s), found {aif.shape}")
    if tissue.ndim != 3 or tissue.shape[0] != t.size or tissue.shape[1:] != seg.shape:
        raise ValidationError(
            f"tissue_mmol_l: expected shape ({t.size}, *{seg.shape}) for the grid and segments, "
            f"found {describe(tissue)}"
        )
    numbers = [int(n) for n in np.unique(seg) if int(n) in SEGMENTS]
    out: dict[str, Any] = {"index": int(index), "time_s": t.tolist(), "aif_plasma_mmol_l": aif.tolist(), "segments": {}}
    if not numbers:
        return out
    means, counts = [], []
    for n in numbers:
        pixels = tissue[:, seg == n]
        pixels = pixels[:, np.all(np.isfinite(pixels), axis=0)]
        counts.append(int(pixels.shape[1]))
        means.append(pixels.mean(axis=1) if pixels.shape[1] else np.full(t.size, np.nan))
    km = kinetics.get_model(model)
    given = {int(k): float(v) for k, v in (delay_s or {}).items() if v is not None and math.isfinite(v)}
    groups: dict[float | None, list[int]] = {}
    for j, n in enumerate(numbers):
        groups.setdefault(given.get(n), []).append(j)
    for delay, members in groups.items():
        plasma = aif if delay is None else delayed_aif(aif, t, delay)
        bound = km.bind(plasma, t - t[0], hematocrit)
        curves = np.stack([means[j] for j in members])
        ok = np.asarray([counts[j] for j in members]) > 0
        fit = bound.fit(np.nan_to_num(curves), mask=ok, max_delay_s=max_delay_s if delay is None else 0.0)
        for m, j in enumerate(members):
            entry: dict[str, Any] = {"n_pixels": counts[j], "tissue_mmol_l": means[j].tolist(), "fit_mmol_l": None}
            entry.update(nrmse=None, params={})
            if ok[m] and int(fit.status[m]) == 0:
                params = {name: float(fit.params[name][m]) for name in (*km.parameter_names, "delay_s")}
                entry["fit_mmol_l"] = np.asarray(bound.simulate(**params), dtype=np.float64).tolist()
                entry["nrmse"] = float(fit.nrmse[m])
                entry["params"] = _fit_values(fit, m, hematocrit)
                if delay is not None:
                    entry["params"]["delay_s"] = delay
            out["segments"][str(numbers[j])] = entry
    out["segments"] = {str(n): out["segments"][str(n)] for n in numbers}
    return out


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def aif_figure(curves: Mapping[str, Any], title: str = "Arterial input function") -> Figure:
    """The blood AIF (when the report has it) and the plasma AIF each slice was fitted against."""
    fig = _new_figure(8.0, 3.6)
    ax = fig.add_axes((0.09, 0.15, 0.86, 0.72))
    blood = curves.get("aif_blood")
    if blood:
        ax.plot(blood["time_s"], blood["gd_mmol_l"], color="black", lw=1.6, label="blood (LV pool)")
    styles = ("-", "--", ":", "-.")
    for k, sl in enumerate(curves["slices"]):
        ax.plot(
            sl["time_s"],
            _nan(sl["aif_plasma_mmol_l"]),
            color=_FIT,
            lw=1.2,
            ls=styles[k % len(styles)],
            label=f"plasma, {sl.get('name') or 'slice ' + str(sl['index'] + 1)} grid",
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Gd (mmol/L)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11)
    return fig


def _nan(values: Sequence[float | None]) -> NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def curves_figure(
    slice_curves: Mapping[str, Any],
    title: str,
    level: str,
    low_pixel_segments: Sequence[int] = (),
    model: str = "",
) -> Figure:
    """One slice's segment-mean tissue curves with the model's fit, and the residuals beneath.

    One panel per segment of the level (4 or 6); a segment without a curve says so; a segment
    flagged for too few pixels has its title in red.
    """
    numbers = LEVEL_SEGMENTS[level]
    cols = 3 if len(numbers) == 6 else 2
    rows = math.ceil(len(numbers) / cols)
    fig = _new_figure(10.0, 3.0 * rows + 0.7)
    outer = fig.add_gridspec(rows, cols, hspace=0.42, wspace=0.28, top=1 - 0.75 / fig.get_figheight(), bottom=0.08)
    outer.update(left=0.07, right=0.98)
    t = np.asarray(slice_curves["time_s"], dtype=np.float64)
    segs = slice_curves["segments"]
    top = max([float(np.nanmax(_nan(c["tissue_mmol_l"]))) for c in segs.values() if c["n_pixels"]] + [0.1])
    residuals = [
        np.abs(_nan(e["tissue_mmol_l"]) - _nan(e["fit_mmol_l"])) for e in segs.values() if e["fit_mmol_l"] is not None
    ]
    res_lim = max([float(np.nanmax(r)) for r in residuals if np.isfinite(r).any()] + [0.02 * top])
    for k, n in enumerate(numbers):
        r, c = divmod(k, cols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.07)
        ax = fig.add_subplot(inner[0])
        res = fig.add_subplot(inner[1], sharex=ax)
        entry = segs.get(str(n))
        low = n in low_pixel_segments
        ax.set_title(_panel_title(n, entry, low), fontsize=8, color=_LOW if low else "black")
        ax.set_ylim(-0.1 * top, 1.15 * top)
        ax.tick_params(labelsize=7, labelbottom=False)
        res.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        res.grid(alpha=0.3)
        res.axhline(0.0, color="black", lw=0.6)
        if c == 0:
            ax.set_ylabel("Gd (mmol/L)", fontsize=8)
            res.set_ylabel("resid.", fontsize=8)
        if r == rows - 1:
            res.set_xlabel("time (s)", fontsize=8)
        if not entry or not entry["n_pixels"]:
            ax.text(0.5, 0.5, "no pixels", ha="center", va="center", transform=ax.transAxes, color="grey")
            continue
        measured = _nan(entry["tissue_mmol_l"])
        ax.plot(t, measured, "o", ms=2.5, color=_MEASURED, label="segment mean")
        if entry["fit_mmol_l"] is not None:
            fitted = _nan(entry["fit_mmol_l"])
            ax.plot(t, fitted, color=_FIT, lw=1.3, label=f"{model} fit" if model else "fit")
            res.plot(t, measured - fitted, color=_RESIDUAL, lw=0.9)
            res.set_ylim(-1.2 * res_lim, 1.2 * res_lim)  # one scale for the slice's residuals
        else:
            ax.text(0.5, 0.85, "fit failed", ha="center", transform=ax.transAxes, color=_LOW, fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, frameon=False, loc="upper right")
    fig.suptitle(title, fontsize=11)
    return fig


def _panel_title(n: int, entry: Mapping[str, Any] | None, low: bool) -> str:
    name = f"{n} {SEGMENTS[n].name}"
    if not entry or not entry["n_pixels"]:
        return name
    mbf = (entry.get("params") or {}).get("mbf_ml_min_g")
    parts = [f"{entry['n_pixels']} px" + (" (few)" if low else "")]
    if mbf is not None:
        parts.append(f"fit MBF {mbf:.2f}")
    if entry.get("nrmse") is not None:
        parts.append(f"NRMSE {entry['nrmse']:.3f}")
    return name + "\n" + ", ".join(parts)


def motion_figure(slices: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Mean displacement of the myocardium per frame (mm) of every slice with motion
    correction, frames left out of the fit marked; None when no slice was corrected."""
    series = [(s, s["qc"].get("motion_displacement_mm")) for s in slices]
    series = [(s, d) for s, d in series if d]
    if not series:
        return None
    fig = _new_figure(8.0, 3.2)
    ax = fig.add_axes((0.09, 0.17, 0.86, 0.7))
    for s, disp in series:
        d = _nan(disp)
        (line,) = ax.plot(np.arange(d.size), d, lw=1.2, marker=".", ms=3, label=str(s["name"]))
        n_pd = int(s["qc"].get("n_pd_frames", 0))
        left = [n_pd + int(f) for f in s["qc"].get("frames_left_out_of_fit", ()) if 0 <= n_pd + int(f) < d.size]
        if left:
            ax.plot(left, d[left], "x", color=line.get_color(), ms=8, mew=2)
    ax.set_xlabel("frame (acquired, proton-density frames first)")
    ax.set_ylabel("mean displacement (mm)")
    ax.set_title("Motion corrected per frame (x: frame left out of the fit)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig
