"""The single-file HTML report: tables and figures (PNG embedded as base64)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from qperf.aha.table import SEGMENTS, TERRITORIES
from qperf.errors import ValidationError
from qperf.report.build import PRIMARY_MAP
from qperf.report.figures import ReportFigures, slice_title
from qperf.report.schema import map_keys, validate_report

__all__ = ["render_html"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td.l,th.l{text-align:left}.warn{color:#a40000}.small{font-size:11px;color:#666}
img{max-width:100%;border:1px solid #ddd;margin:6px 0}
"""


def _fmt(value: Any, decimals: int = 2) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return html.escape(str(value))


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: Mapping[str, Any], figures: ReportFigures) -> str:
    """The report as one self-contained HTML page (no external files or scripts)."""
    validate_report(report)
    if len(figures.flowmaps_png) != len(report["slices"]):
        raise ValidationError(
            f"figures: expected {len(report['slices'])} flow maps (one per slice), found {len(figures.flowmaps_png)}"
        )
    k = map_keys(PRIMARY_MAP)
    study = report["study"]
    mpr = (report.get("mpr") or {}).get("values")
    title = f"QPerf report {html.escape(study['name'])}".strip()
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        _summary(report, k, mpr),
    ]
    warnings = report["qc"]["warnings"]
    if warnings:
        parts.append(
            "<h2>Quality control</h2><ul>"
            + "".join(f'<li class="warn">{html.escape(w)}</li>' for w in warnings)
            + "</ul>"
        )
    parts.append("<h2>Bull's-eye</h2>" + _img(figures.bullseye_png, "bull's-eye of mean MBF per segment"))
    if figures.mpr_bullseye_png is not None:
        parts.append(_img(figures.mpr_bullseye_png, "bull's-eye of the perfusion reserve"))
    parts.append("<h2>MBF per segment (ml/min/g)</h2>" + _mbf_table(report, k, mpr))
    others = [m for m in report["maps"] if m != PRIMARY_MAP]
    if others:
        parts.append("<h2>Other maps per segment</h2>" + _other_maps_table(report, others))
    parts.append("<h2>Flow maps</h2>")
    for (name, png), entry in zip(figures.flowmaps_png, report["slices"], strict=True):
        parts.append(
            f"<p>{html.escape(slice_title(entry))}: mean MBF {_fmt(entry[k['mean']])} ml/min/g, "
            f"insertion point {_fmt(entry['insertion_from_anterior_deg'], 0)} deg from anterior, septum "
            f"{'clockwise' if entry['septum_clockwise'] else 'counter-clockwise'} ({html.escape(entry['sense_source'])})"
            f"</p>" + _img(png, name)
        )
    if report["timings_s"]:
        rows = [[html.escape(s), f"{v:.2f}"] for s, v in report["timings_s"].items()]
        parts.append("<h2>Timings (s)</h2>" + _table(["Step", "Seconds"], rows))
    versions = ", ".join(f"{html.escape(a)} {html.escape(b)}" for a, b in report["versions"].items())
    parts.append(f"<p class='small'>Schema {report['schema']} {report['schema_version']} &middot; {versions}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(report: Mapping[str, Any], k: Mapping[str, str], mpr: Mapping[str, Any] | None) -> str:
    """Condition, slices, creation time and the global MBF (and MPR) of the study."""
    study = report["study"]
    g = report["global"]
    return (
        f"<p>Condition: <b>{html.escape(study['condition'])}</b> &middot; slices: {study['n_slices']} "
        f"(levels from {html.escape(study['level_source'])}) &middot; created {html.escape(report['created_utc'])} "
        f"UTC</p><p>Global MBF: <b>{_fmt(g[k['mean']])}</b> &plusmn; {_fmt(g[k['sd']])} ml/min/g "
        f"(median {_fmt(g[k['median']])}; {g['n_pixels']} pixels; endocardial {_fmt(g['endo'][k['mean']])}, "
        f"epicardial {_fmt(g['epi'][k['mean']])})"
        + (f" &middot; global MPR <b>{_fmt(mpr.get('global'))}</b>" if mpr else "")
        + "</p>"
    )


def _mbf_row(first: list[str], e: Mapping[str, Any], k: Mapping[str, str]) -> list[str]:
    """``first`` then mean, median, SD, pixel count and the endo and epi means of region ``e``."""
    return [
        *first,
        _fmt(e[k["mean"]]),
        _fmt(e[k["median"]]),
        _fmt(e[k["sd"]]),
        str(e["n_pixels"]),
        _fmt(e["endo"][k["mean"]]),
        _fmt(e["epi"][k["mean"]]),
    ]


def _mbf_table(report: Mapping[str, Any], k: Mapping[str, str], mpr: Mapping[str, Any] | None) -> str:
    """MBF statistics per segment, then per territory and globally, with the MPR when there is one."""
    header = ["Segment", "Name", "Territory", "Mean", "Median", "SD", "Pixels", "Endo mean", "Epi mean"]
    if mpr:
        header.append("MPR")
    rows = []
    for n, seg in SEGMENTS.items():
        row = _mbf_row([str(n), html.escape(seg.name), seg.territory], report["segments"][str(n)], k)
        if mpr:
            row.append(_fmt(mpr.get(str(n))))
        rows.append(row)
    for t in (*TERRITORIES, "global"):
        e = report["global"] if t == "global" else report["territories"][t]
        row = _mbf_row([f"<b>{t}</b>", "territory" if t != "global" else "all segments", ""], e, k)
        if mpr:
            row.append(_fmt(mpr.get(t)))
        rows.append(row)
    return _table(header, rows, left=3)


def _other_maps_table(report: Mapping[str, Any], others: list[str]) -> str:
    """Segment means of the maps other than MBF, three decimals."""
    hdr = ["Segment"] + [
        f"{html.escape(report['maps'][m]['quantity'])} mean ({html.escape(report['maps'][m]['unit'])})" for m in others
    ]
    rows = [[str(n)] + [_fmt(report["segments"][str(n)][map_keys(m)["mean"]], 3) for m in others] for n in SEGMENTS]
    return _table(hdr, rows)
