"""The PDF report: the same blocks as the HTML page (:mod:`qperf.report.document`) laid out on
A4 pages with matplotlib (``PdfPages``; no further dependency).

Text and tables are drawn as vector text; figures are the report's PNGs. A table that does not
fit on a page continues on the next with its header repeated; a figure that does not fit the
rest of a page starts a new one.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.image import imread
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath

from qperf.report.document import Block, Heading, Image, Paragraph, Table, report_document, report_title
from qperf.report.figures import ReportFigures

__all__ = ["render_pdf"]

PAGE_IN = (8.27, 11.69)  # A4 portrait
MARGIN_IN = 0.55
_WIDTH_IN = PAGE_IN[0] - 2 * MARGIN_IN
_CHAR_IN = 0.0072  # width of an average character per point of font size, for wrapping paragraphs
_TEXT_TO_PATH = TextToPath()
_GREY, _RED, _HEADER = "#888888", "#a40000", "#eeeeee"


class _Layout:
    """Pages being filled top to bottom; ``y`` is the distance (in) from the top of the page."""

    def __init__(self, pdf: PdfPages, footer: str) -> None:
        self.pdf = pdf
        self.footer = footer
        self.page = 0
        self.fig: Figure | None = None
        self.table_fig: Figure | None = None  # the page the table being drawn has its header on
        self.y = 0.0

    def new_page(self) -> Figure:
        self.close_page()
        self.page += 1
        self.fig = Figure(figsize=PAGE_IN, facecolor="white")
        FigureCanvasAgg(self.fig)
        self.y = MARGIN_IN
        return self.fig

    def close_page(self) -> None:
        if self.fig is not None:
            self.text(PAGE_IN[0] / 2, PAGE_IN[1] - 0.3, f"{self.footer} \u00b7 page {self.page}", 7, _GREY, "center")
            self.pdf.savefig(self.fig)
            self.fig = None

    def room(self, height_in: float) -> Figure:
        """The current page if ``height_in`` still fits on it, else a new one."""
        if self.fig is None or self.y + height_in > PAGE_IN[1] - MARGIN_IN:
            return self.new_page()
        return self.fig

    def text(
        self, x_in: float, y_in: float, s: str, size: float, color: str = "black", ha: str = "left", **kw: Any
    ) -> None:
        assert self.fig is not None
        self.fig.text(x_in / PAGE_IN[0], 1 - y_in / PAGE_IN[1], s, fontsize=size, color=color, ha=ha, va="top", **kw)


def _wrap(text: str, size: float, width_in: float) -> list[str]:
    chars = max(8, int(width_in / (_CHAR_IN * size)))
    return textwrap.wrap(text, chars) or [""]


def _heading(lay: _Layout, b: Heading) -> None:
    size = 15.0 if b.level == 1 else 12.0
    lay.room(0.9)  # keep a heading with what follows it
    lay.y += 0.12 if b.level > 1 else 0.0
    lay.text(MARGIN_IN, lay.y, b.text, size, weight="bold")
    lay.y += size / 72 * 1.5
    if b.level > 1:
        assert lay.fig is not None
        lay.fig.add_artist(_band(lay.fig, lay.y - 0.07, 0.01, _WIDTH_IN, "#cccccc"))
        lay.y += 0.04


def _paragraph(lay: _Layout, b: Paragraph) -> None:
    size = 7.5 if b.style == "small" else 8.5
    color = _GREY if b.style == "small" else _RED if b.style == "warn" else "black"
    for line in _wrap(b.text, size, _WIDTH_IN):
        lay.room(size / 72 * 1.45)
        lay.text(MARGIN_IN, lay.y, line, size, color)
        lay.y += size / 72 * 1.45
    lay.y += 0.06


@functools.lru_cache(maxsize=4096)
def _text_width_in(text: str, size: float, bold: bool = False) -> float:
    """Width (in) of a line of text in the PDF's font."""
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    width_pt, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(text, prop, ismath=False)
    return float(width_pt) / 72.0


def _column_widths(t: Table, size: float) -> tuple[list[list[list[str]]], list[list[str]], list[float]]:
    """Wrapped cells of the rows and header, and the column widths (in) that fit the page."""
    n = len(t.header)
    caps = [t.widths[i] if i < len(t.widths) and t.widths[i] else 0 for i in range(n)]

    def wrap(cell: str, i: int) -> list[str]:
        return textwrap.wrap(cell, caps[i], break_long_words=False) if caps[i] and len(cell) > caps[i] else [cell]

    rows = [[wrap(c, i) for i, c in enumerate(r)] for r in t.rows]
    header = [textwrap.wrap(h, max(caps[i], 10, *(len(w) for w in h.split()))) or [""] for i, h in enumerate(t.header)]
    widths = []
    for i in range(n):
        lines = [_text_width_in(x, size, True) for x in header[i]]
        lines += [_text_width_in(x, size, r in t.bold) for r, row in enumerate(rows) for x in row[i]]
        widths.append(max(lines) + 0.14)
    return rows, header, widths


def _table_layout(t: Table) -> tuple[float, list[list[list[str]]], list[list[str]], list[float], float, float]:
    """Font size, wrapped rows and header, column widths, line height and total height (in)."""
    size, rows, header, widths = _fitting_widths(t, 5.0)
    widths = [w * min(1.0, _WIDTH_IN / sum(widths)) for w in widths]  # the last resort: tighter columns
    line = size / 72 * 1.35
    height = sum(line * max(len(c) for c in r) + 0.05 for r in [header, *rows]) + line + 0.12
    return size, rows, header, widths, line, height + (0.35 if t.caption else 0.0)


def _height(b: Block) -> float:
    """The height (in) a table (its first part) or a figure takes on the page (0 for other blocks)."""
    if isinstance(b, Table):
        return _table_layout(_split(b)[0])[5]  # of its first part, when split
    if isinstance(b, Image):
        h_px, w_px = imread(io.BytesIO(b.png), format="png").shape[:2]
        return min(_WIDTH_IN, w_px / 100.0) * h_px / w_px + 0.12
    return 0.0


_PAGE_ROOM_IN = PAGE_IN[1] - 2 * MARGIN_IN - 0.5


def _split(t: Table) -> list[Table]:
    """A table too wide for the page at 6 pt as several, each with the first ``t.key`` columns."""
    _, _, _, widths = _fitting_widths(t, 6.0)
    if sum(widths) <= _WIDTH_IN or len(widths) <= t.key + 1:
        return [t]
    groups: list[list[int]] = [[]]
    for i in range(t.key, len(widths)):
        if groups[-1] and sum(widths[: t.key]) + sum(widths[j] for j in [*groups[-1], i]) > _WIDTH_IN:
            groups.append([])
        groups[-1].append(i)
    parts = []
    for g, cols in enumerate(groups):
        keep = [*range(t.key), *cols]
        parts.append(
            dataclasses.replace(
                t,
                header=[t.header[i] for i in keep],
                rows=[[r[i] for i in keep] for r in t.rows],
                widths=tuple(t.widths[i] if i < len(t.widths) else 0 for i in keep),
                caption=t.caption if g == 0 else "",
            )
        )
    return parts


def _fitting_widths(t: Table, smallest: float) -> tuple[float, list[list[list[str]]], list[list[str]], list[float]]:
    """The largest font size (7 pt down to ``smallest``) at which the table fits the page width."""
    size = 7.0
    rows, header, widths = _column_widths(t, size)
    while sum(widths) > _WIDTH_IN and size > smallest:  # too wide at full size: a smaller font, not overlaps
        size -= 0.5
        rows, header, widths = _column_widths(t, size)
    return size, rows, header, widths


def _table(lay: _Layout, t: Table) -> None:
    parts = _split(t)
    if len(parts) > 1:
        for part in parts:
            _table(lay, part)
        return
    size, rows, header, widths, line, height = _table_layout(t)
    if height < _PAGE_ROOM_IN:  # a table that fits on a page is not split
        lay.room(height)
    if t.caption:
        lay.room(0.45)
        _paragraph(lay, Paragraph(t.caption))
    total = sum(widths)
    lefts = [MARGIN_IN + sum(widths[:i]) for i in range(len(widths))]

    def draw_row(cells: Sequence[Sequence[str]], kind: str, index: int = -1) -> None:
        height = line * max(len(c) for c in cells) + 0.05
        fig = lay.room(height + (0 if kind == "header" else line))
        if kind == "header":
            fig.add_artist(_band(fig, lay.y, height, total, _HEADER))
        elif fig is not lay.table_fig:  # a table continued on a new page: its header again
            lay.table_fig = fig
            draw_row(header, "header")
            return draw_row(cells, kind, index)
        lay.table_fig = fig
        color = _GREY if index in t.muted else "black"
        weight = "bold" if kind == "header" or index in t.bold else "normal"
        for i, cell in enumerate(cells):
            left = i < t.left
            x = lefts[i] + 0.04 if left else lefts[i] + widths[i] - 0.04
            for j, text in enumerate(cell):
                lay.text(x, lay.y + 0.025 + j * line, text, size, color, "left" if left else "right", weight=weight)
        lay.y += height
        fig.add_artist(_band(fig, lay.y, 0.004, total, "#cccccc"))

    lay.table_fig = lay.room(line * 4)
    draw_row(header, "header")
    for r, cells in enumerate(rows):
        draw_row(cells, "row", r)
    lay.y += 0.12


def _band(fig: Figure, y_in: float, height_in: float, width_in: float, color: str) -> Rectangle:
    """A filled band under table text (a header's background, a rule between rows)."""
    return Rectangle(
        (MARGIN_IN / PAGE_IN[0], 1 - (y_in + height_in) / PAGE_IN[1]),
        width_in / PAGE_IN[0],
        height_in / PAGE_IN[1],
        transform=fig.transFigure,
        color=color,
        zorder=-1,
    )


def _image(lay: _Layout, b: Image) -> None:
    pixels = imread(io.BytesIO(b.png), format="png")
    h_px, w_px = pixels.shape[:2]
    width = min(_WIDTH_IN, w_px / 100.0)
    height = width * h_px / w_px
    max_height = PAGE_IN[1] - 2 * MARGIN_IN - 0.2
    if height > max_height:
        height, width = max_height, max_height * w_px / h_px
    fig = lay.room(height + 0.1)
    x0 = MARGIN_IN + (_WIDTH_IN - width) / 2
    ax = fig.add_axes((x0 / PAGE_IN[0], 1 - (lay.y + height) / PAGE_IN[1], width / PAGE_IN[0], height / PAGE_IN[1]))
    ax.imshow(pixels, interpolation="none")  # embedded as drawn, not resampled
    ax.set_axis_off()
    lay.y += height + 0.12


def render_pdf(report: Mapping[str, Any], figures: ReportFigures) -> bytes:
    """The report as a PDF (A4): the same blocks as :func:`qperf.report.render_html`."""
    blocks: list[Block] = report_document(report, figures)
    buf = io.BytesIO()
    title = report_title(report)
    with PdfPages(buf, metadata={"Title": title, "Creator": "QPerf", "CreationDate": None}) as pdf:
        lay = _Layout(pdf, title)
        for i, b in enumerate(blocks):
            following = _height(blocks[i + 1]) if i + 1 < len(blocks) else 0.0
            if isinstance(b, (Heading, Paragraph)) and 0 < following < _PAGE_ROOM_IN:
                lay.room(0.5 + following)  # a heading or caption stays with the table or figure under it
            if isinstance(b, Heading):
                _heading(lay, b)
            elif isinstance(b, Paragraph):
                _paragraph(lay, b)
            elif isinstance(b, Table):
                _table(lay, b)
            else:
                _image(lay, b)
        lay.close_page()
    return buf.getvalue()
