"""The evaluation page: summary table, Dice per case, Bland-Altman plot of MBF (single HTML file)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _dice_figure(rows: list[dict[str, Any]]) -> str:
    from matplotlib.figure import Figure

    classes = sorted({r["class"] for r in rows if "dice" in r})
    fig = Figure(figsize=(6.0, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    data = [[r["dice"] for r in rows if r["class"] == c and np.isfinite(r.get("dice", np.nan))] for c in classes]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(classes) + 1), [c.replace("_", " ") for c in classes])
    for i, values in enumerate(data, start=1):
        ax.plot(np.full(len(values), i) + np.linspace(-0.1, 0.1, len(values)), values, ".", alpha=0.6)
    ax.set_ylabel("Dice (mean over labelled frames)")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    return _png(fig)


def _bland_altman_figure(flow: dict[str, Any]) -> str:
    from matplotlib.figure import Figure

    rows = flow["rows"]
    a = np.array([r["predicted"] for r in rows])
    b = np.array([r["manual"] for r in rows])
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    is_global = np.array([r["region"] == "global" for r in rows])
    ax.plot(((a + b) / 2)[~is_global], (a - b)[~is_global], "o", alpha=0.5, label="AHA segments")
    ax.plot(((a + b) / 2)[is_global], (a - b)[is_global], "s", color="k", label="global")
    seg = flow["segments"]
    if "bias" in seg:
        ax.axhline(seg["bias"], color="C1", label=f"bias {seg['bias']:.3f}")
        for loa in seg["limits_of_agreement"]:
            ax.axhline(loa, color="C1", ls="--")
    ax.set_xlabel("mean of CNN and manual MBF (ml/min/g)")
    ax.set_ylabel("CNN - manual (ml/min/g)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _summary_table(summary: dict[str, Any]) -> str:
    keys = ("dice", "fp_area_pct", "fn_area_pct", "precision", "recall", "msd_mm", "hd95_mm", "angle_error_deg")
    head = "".join(f"<th>{k}</th>" for k in ("class", *keys))
    body = []
    for name, entry in summary.items():
        cells = [f"<td>{html.escape(name)}</td>"]
        for key in keys:
            v = entry.get(key)
            cells.append(f"<td>{v['mean']:.3f} &plusmn; {v['sd']:.3f} (n={v['n']})</td>" if v else "<td>-</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(result: Any) -> str:
    """The page: summary per class, Dice per case, and with MBF pairs the Bland-Altman plot and t-test."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>QPerf evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}</style></head><body>",
        "<h1>Segmentation against manual labels</h1>",
        "<p>Per class, mean &plusmn; SD over cases of each case's mean over its labelled frames.</p>",
        _summary_table(result.summary),
        f"<p><img alt='Dice per case' src='data:image/png;base64,{_dice_figure(result.rows)}'></p>",
    ]
    if result.unmatched:
        parts.append(f"<p>Cases without a prediction: {html.escape(', '.join(result.unmatched))}</p>")
    if result.flow:
        seg, glob = result.flow["segments"], result.flow["global"]
        parts.append("<h2>MBF with the CNN's labels against MBF with the manual labels</h2>")
        for name, stats in (("global", glob), ("AHA segments", seg)):
            if stats.get("n"):
                parts.append(
                    f"<p>{name}: n={stats['n']}, CNN {stats['mean_predicted']:.3f}, manual {stats['mean_manual']:.3f} "
                    f"ml/min/g; bias {stats['bias']:.3f}, limits of agreement {stats['limits_of_agreement'][0]:.3f} to "
                    f"{stats['limits_of_agreement'][1]:.3f}; paired t-test p = {stats.get('p_value', float('nan')):.3g}</p>"
                )
        parts.append(
            f"<p><img alt='Bland-Altman plot' src='data:image/png;base64,{_bland_altman_figure(result.flow)}'></p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
