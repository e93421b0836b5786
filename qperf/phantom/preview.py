"""Preview montages: frames of every slice at key times, labels, and time curves.

:func:`montage` lays out any set of 2D+T slices (phantom or real) the same way, so they can be
compared side by side: one row per slice with frames before contrast, at the RV peak, the LV
peak, the myocardial peak and late; the label overlay when known; and the time curves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qperf.phantom.truth import PhantomStudy


def key_frames(curves: Mapping[str, NDArray[np.float64]], n_frames: int) -> list[int]:
    """Frame indices: baseline, RV peak, LV peak, myocardial peak, late."""
    lv = curves.get("lv")
    rv = curves.get("rv", lv)
    myo = curves.get("myo", lv)
    if lv is None or rv is None or myo is None:
        return list(np.linspace(0, n_frames - 1, 5).astype(int))
    i_lv = int(np.argmax(lv))
    i_rv = int(np.argmax(rv[: i_lv + 1])) if i_lv > 0 else i_lv
    i_myo = int(np.argmax(myo))
    idx = [i_rv - 6, i_rv, i_lv, max(i_myo, i_lv + 2) if i_myo <= i_lv else i_myo, n_frames - 1]
    return [int(min(max(i, 0), n_frames - 1)) for i in idx]


def montage(
    slices: Sequence[NDArray[np.float32]],
    path: str | os.PathLike[str],
    *,
    curves: Sequence[Mapping[str, NDArray[np.float64]]],
    labels: Sequence[NDArray[np.uint8] | None] | None = None,
    title: str = "",
    units: str = "",
    vmax: Sequence[float | None] | None = None,
) -> Path:
    """Write a PNG montage.

    Parameters
    ----------
    slices : sequence of ndarray (t, y, x)
        Dynamic frames of every slice (PD frames removed).
    path : path
        Output PNG.
    curves : sequence of mappings
        Per slice ``{"lv": (t,), "rv": (t,), "myo": (t,)}`` region means (any subset).
    labels : sequence of (y, x) label maps or None
    title, units : str
    vmax : sequence of float or None, optional
        Display maximum per row (None: the row's 99.7th percentile).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(slices)
    fig, axes = plt.subplots(n, 7, figsize=(17.5, 2.6 * n + 0.4), squeeze=False)
    for i, frames in enumerate(slices):
        idx = key_frames(curves[i], frames.shape[0])
        top = vmax[i] if vmax is not None and vmax[i] is not None else float(np.percentile(frames, 99.7))
        for j, f in enumerate(idx):
            ax = axes[i, j]
            ax.imshow(frames[f], cmap="gray", vmin=0.0, vmax=top)
            ax.set_title(f"frame {f}", fontsize=8)
            ax.axis("off")
        ax = axes[i, 5]
        ax.imshow(frames[idx[3]], cmap="gray", vmin=0.0, vmax=top)
        lab = labels[i] if labels is not None else None
        if lab is not None:
            overlay = np.ma.masked_equal(lab, 0)
            ax.imshow(overlay, cmap="brg", alpha=0.45, vmin=1, vmax=3, interpolation="nearest")
            ax.set_title("labels", fontsize=8)
        else:
            ax.set_title("(no labels)", fontsize=8)
        ax.axis("off")
        ax = axes[i, 6]
        for name, colour in (("rv", "tab:blue"), ("lv", "tab:red"), ("myo", "tab:green")):
            c = curves[i].get(name)
            if c is not None:
                ax.plot(c, color=colour, label=name, lw=1.2)
        ax.set_xlabel("frame", fontsize=7)
        ax.set_ylabel(units, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


def region_curves(frames: NDArray[np.float32], labels: NDArray[np.uint8]) -> dict[str, NDArray[np.float64]]:
    """Mean curves of the LV (label 1), RV (3) and myocardium (2); labels (y, x) or per frame (t, y, x)."""
    out = {}
    lab = np.broadcast_to(labels, frames.shape)
    for name, value in (("lv", 1), ("myo", 2), ("rv", 3)):
        m = lab == value
        counts = m.sum(axis=(1, 2))
        if counts.min() > 0:
            out[name] = (np.where(m, frames, 0.0).sum(axis=(1, 2)) / counts).astype(np.float64)
    return out


def phantom_montage(ps: PhantomStudy, path: str | os.PathLike[str], *, gd: bool = False) -> Path:
    """Montage of a phantom study: one row per slice (acquired frames, or with ``gd`` the noise-free
    Gd truth) and a last row with the first-echo AIF images (signal)."""
    slices, curves, labels = [], [], []
    for s, t in zip(ps.study.slices, ps.truth.slices, strict=True):
        frames = t.gd_noise_free[s.n_pd_frames :] if gd else s.dynamic
        slices.append(frames)
        labels.append(t.labels_ref)
        curves.append(region_curves(frames, t.labels_ref if gd else t.labels_moving[s.n_pd_frames :]))
    if ps.study.aif_series and ps.truth.aif_labels_ref is not None and ps.truth.aif_labels_moving is not None:
        a = ps.study.aif_series[0]
        slices.append(a.dynamic)
        labels.append(ps.truth.aif_labels_ref)
        curves.append(region_curves(a.dynamic, ps.truth.aif_labels_moving[a.n_pd_frames :]))
    units = "Gd mmol/L" if gd else "signal"
    title = f"{ps.study.name}: {ps.study.slices[0].metadata.get('readout')} {ps.study.slices[0].metadata.get('field_strength_t')} T"
    return montage(slices, path, curves=curves, labels=labels, title=title, units=units)
