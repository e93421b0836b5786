"""The single-file HTML report: the report's blocks (:mod:`qperf.report.document`) as one page,
figures embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from qperf.report.document import Block, Heading, Paragraph, Table, report_document, report_title
from qperf.report.figures import ReportFigures

__all__ = ["render_html"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}th{background:#f0f0f0}
td.l,th.l{text-align:left}.warn{color:#a40000}.small{font-size:11px;color:#666}
tr.muted td{color:#999;background:#f6f6f6}tr.bold td{font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:6px 0}
"""


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(t: Table) -> str:
    def cls(i: int) -> str:
        return "l" if i < t.left else ""

    head = "".join(f'<th class="{cls(i)}">{html.escape(h)}</th>' for i, h in enumerate(t.header))
    body = []
    for r, row in enumerate(t.rows):
        row_cls = "muted" if r in t.muted else "bold" if r in t.bold else ""
        cells = "".join(f'<td class="{cls(i)}">{html.escape(c)}</td>' for i, c in enumerate(row))
        body.append(f'<tr class="{row_cls}">{cells}</tr>')
    caption = f"<p>{html.escape(t.caption)}</p>" if t.caption else ""
    return f"{caption}<table><tr>{head}</tr>{''.join(body)}</table>"


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{html.escape(b.text)}</h{b.level}>"
    if isinstance(b, Paragraph):
        return f'<p class="{b.style}">{html.escape(b.text)}</p>' if b.style else f"<p>{html.escape(b.text)}</p>"
    if isinstance(b, Table):
        return _table(b)
    return _img(b.png, b.alt)


def render_html(report: Mapping[str, Any], figures: ReportFigures) -> str:
    """The report as one self-contained HTML page (no external files or scripts)."""
    blocks = report_document(report, figures)
    title = html.escape(report_title(report))
    head = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"
    return "\n".join([head, *(_block(b) for b in blocks), "</body></html>"])
