"""The report's content as a list of blocks, which the HTML page and the PDF both render.

Headings, paragraphs, tables and images in reading order: one source for both formats, so
the two show the same numbers, flags and figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qperf.aha.table import SEGMENTS, TERRITORIES
from qperf.errors import ValidationError
from qperf.report.build import PRIMARY_MAP, slice_title
from qperf.report.figures import ReportFigures
from qperf.report.qc import FIT_STATUS_NAMES
from qperf.report.schema import map_keys, validate_report

__all__ = ["Heading", "Image", "Paragraph", "Table", "report_document"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    style: str = ""  # "", "warn" or "small"


@dataclass(frozen=True)
class Table:
    """Plain-text cells; the first ``left`` columns are left-aligned, ``bold`` and ``muted``
    name rows (indices) to emphasise or grey out; ``widths`` caps a column's characters per
    line in the PDF (0: no cap); ``caption`` is a line above the table, kept with it; a table
    too wide for a PDF page is split into several, each repeating the first ``key`` columns."""

    header: list[str]
    rows: list[list[str]]
    left: int = 1
    bold: frozenset[int] = frozenset()
    muted: frozenset[int] = frozenset()
    widths: tuple[int, ...] = field(default_factory=tuple)
    caption: str = ""
    key: int = 1


@dataclass(frozen=True)
class Image:
    png: bytes
    alt: str


Block = Heading | Paragraph | Table | Image


def fmt(value: Any, decimals: int = 2) -> str:
    """A table cell: None as a dash, floats to ``decimals``."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def report_title(report: Mapping[str, Any]) -> str:
    return f"QPerf report {report['study']['name']}".strip()


def report_document(report: Mapping[str, Any], figures: ReportFigures) -> list[Block]:
    """The report's blocks in reading order: summary, bull's-eye, segment tables with pixel
    counts and flags, quality control (flags, fit status, pixels, motion), curves, flow maps,
    timings and versions."""
    validate_report(report)
    if len(figures.flowmaps_png) != len(report["slices"]):
        raise ValidationError(
            f"figures: expected {len(report['slices'])} flow maps (one per slice), found {len(figures.flowmaps_png)}"
        )
    k = map_keys(PRIMARY_MAP)
    mpr = (report.get("mpr") or {}).get("values")
    blocks: list[Block] = [Heading(report_title(report), 1), *_summary(report, k, mpr)]
    blocks.append(Heading("Bull's-eye"))
    blocks.append(Image(figures.bullseye_png, "bull's-eye of mean MBF per segment"))
    if figures.mpr_bullseye_png is not None:
        blocks.append(Image(figures.mpr_bullseye_png, "bull's-eye of the perfusion reserve"))
    blocks += [Heading("MBF per segment (ml/min/g)"), _mbf_table(report, k, mpr)]
    minimum = report["qc"].get("min_segment_pixels")
    if minimum is not None:
        blocks.append(
            Paragraph(
                f"Pixels: the myocardial pixels of the segment that enter its statistics; valid: those with an "
                f"MBF. A segment with fewer than {minimum} valid pixels is flagged 'few pixels' (grey here, "
                f"hatched on the bull's-eye): below that count the error of a segment mean grows steeply "
                f"(qperf.aha.MIN_SEGMENT_PIXELS).",
                "small",
            )
        )
    others = [m for m in report["maps"] if m != PRIMARY_MAP]
    if others:
        blocks += [Heading("Other maps per segment"), _other_maps_table(report, others)]
    blocks += _qc_blocks(report, figures)
    blocks += _curve_blocks(report, figures)
    blocks.append(Heading("Flow maps"))
    for (name, png), entry in zip(figures.flowmaps_png, report["slices"], strict=True):
        blocks.append(
            Paragraph(
                f"{slice_title(entry)}: mean MBF {fmt(entry[k['mean']])} ml/min/g, insertion point "
                f"{fmt(entry['insertion_from_anterior_deg'], 0)} deg from anterior, septum "
                f"{'clockwise' if entry['septum_clockwise'] else 'counter-clockwise'} ({entry['sense_source']})"
            )
        )
        blocks.append(Image(png, name))
    if report["timings_s"]:
        rows = [[str(s), f"{v:.2f}"] for s, v in report["timings_s"].items()]
        blocks += [Heading("Timings (s)"), Table(["Step", "Seconds"], rows)]
    versions = ", ".join(f"{a} {b}" for a, b in report["versions"].items())
    blocks.append(Paragraph(f"Schema {report['schema']} {report['schema_version']} \u00b7 {versions}", "small"))
    return blocks


def _summary(report: Mapping[str, Any], k: Mapping[str, str], mpr: Mapping[str, Any] | None) -> list[Block]:
    """Condition, slices, creation time and the global MBF (and MPR) of the study."""
    study = report["study"]
    g = report["global"]
    n_flags = len(report["qc"].get("flags", report["qc"]["warnings"]))
    return [
        Paragraph(
            f"Condition: {study['condition']} \u00b7 slices: {study['n_slices']} (levels from "
            f"{study['level_source']}) \u00b7 created {report['created_utc']} UTC \u00b7 quality control: "
            + (f"{n_flags} flag{'s' if n_flags != 1 else ''} (see below)" if n_flags else "no flags")
        ),
        Paragraph(
            f"Global MBF: {fmt(g[k['mean']])} \u00b1 {fmt(g[k['sd']])} ml/min/g (median {fmt(g[k['median']])}; "
            f"{g['n_pixels']} pixels; endocardial {fmt(g['endo'][k['mean']])}, epicardial "
            f"{fmt(g['epi'][k['mean']])})" + (f" \u00b7 global MPR {fmt(mpr.get('global'))}" if mpr else "")
        ),
    ]


def _mbf_row(first: list[str], e: Mapping[str, Any], k: Mapping[str, str]) -> list[str]:
    """``first`` then mean, median, SD, pixels, valid pixels and the endo and epi means of ``e``."""
    return [
        *first,
        fmt(e[k["mean"]]),
        fmt(e[k["median"]]),
        fmt(e[k["sd"]]),
        str(e["n_pixels"]),
        str(e[k["n_valid"]]),
        fmt(e["endo"][k["mean"]]),
        fmt(e["epi"][k["mean"]]),
    ]


def _mbf_table(report: Mapping[str, Any], k: Mapping[str, str], mpr: Mapping[str, Any] | None) -> Table:
    """MBF statistics per segment, then per territory and globally, with the MPR when there is
    one; segments with too few pixels flagged and greyed."""
    header = ["Segment", "Name", "Territory", "Mean", "Median", "SD", "Pixels", "Valid", "Endo mean", "Epi mean"]
    if mpr:
        header.append("MPR")
    header.append("Flag")
    rows: list[list[str]] = []
    muted: set[int] = set()
    bold: set[int] = set()
    for n, seg in SEGMENTS.items():
        entry = report["segments"][str(n)]
        row = _mbf_row([str(n), seg.name, seg.territory], entry, k)
        if mpr:
            row.append(fmt(mpr.get(str(n))))
        low = bool(entry.get("low_pixel_count"))
        row.append("few pixels" if low else "")
        if low:
            muted.add(len(rows))
        rows.append(row)
    for t in (*TERRITORIES, "global"):
        e = report["global"] if t == "global" else report["territories"][t]
        row = _mbf_row([t, "territory" if t != "global" else "all segments", ""], e, k)
        if mpr:
            row.append(fmt(mpr.get(t)))
        row.append("")
        bold.add(len(rows))
        rows.append(row)
    return Table(header, rows, left=3, bold=frozenset(bold), muted=frozenset(muted))


def _other_maps_table(report: Mapping[str, Any], others: list[str]) -> Table:
    """Segment means of the maps other than MBF, three decimals, with the segment's pixels
    (segments with too few greyed)."""
    units = {m: f" ({report['maps'][m]['unit']})" if report["maps"][m]["unit"] else "" for m in others}
    hdr = ["Segment", "Pixels"] + [f"{report['maps'][m]['quantity']} mean{units[m]}" for m in others]
    segments = [report["segments"][str(n)] for n in SEGMENTS]
    rows = [
        [str(n), str(e["n_pixels"])] + [fmt(e[map_keys(m)["mean"]], 3) for m in others]
        for n, e in zip(SEGMENTS, segments, strict=True)
    ]
    muted = frozenset(i for i, e in enumerate(segments) if e.get("low_pixel_count"))
    return Table(hdr, rows, muted=muted, key=2)


def _qc_blocks(report: Mapping[str, Any], figures: ReportFigures) -> list[Block]:
    """Flags (what each means, where it came from), fit outcomes, pixels, motion per frame."""
    qc = report["qc"]
    blocks: list[Block] = [Heading("Quality control")]
    flags = qc.get("flags")
    if flags is None:  # a 1.0 report: its warnings only
        flags = [{"flag": "warning", "where": "", "meaning": "", "source": "", "detail": w} for w in qc["warnings"]]
    if flags:
        rows = [[f["flag"], f["where"], f["meaning"], f["source"], f["detail"]] for f in flags]
        blocks.append(
            Table(["Flag", "Where", "What it means", "Source", "Detail"], rows, left=5, widths=(18, 14, 40, 16, 46))
        )
    else:
        blocks.append(Paragraph("No flags: no step reported a problem."))
    slices = report["slices"]
    if any("fit_status_counts" in s["qc"] for s in slices):
        header = ["Slice", *(n.replace("_", " ") for n in FIT_STATUS_NAMES.values()), "Frames left out", "Motion"]
        rows = []
        for s in slices:
            counts = s["qc"].get("fit_status_counts") or {}
            score = s["qc"].get("motion_score")
            rows.append(
                [
                    slice_title(s),
                    *(str(counts.get(n, "\u2013")) for n in FIT_STATUS_NAMES.values()),
                    ", ".join(str(f) for f in s["qc"].get("frames_left_out_of_fit", [])) or "none",
                    "not corrected" if "motion_displacement_mm" not in s["qc"] else f"score {fmt(score, 3)}",
                ]
            )
        caption = "Fit outcome of the myocardial pixels (qperf.kinetics.FitStatus) per slice:"
        blocks.append(Table(header, rows, caption=caption))
    blocks.append(_pixels_table(report))
    if figures.motion_png is not None:
        blocks.append(Image(figures.motion_png, "displacement per frame"))
    elif any("fit_status_counts" in s["qc"] for s in slices):
        blocks.append(Paragraph("No slice was motion-corrected (the heart did not move, or correction was off)."))
    return blocks


_EXCLUDED = (
    ("blood_border_pixels_excluded", "Blood border"),
    ("epicardial_border_pixels_excluded", "Epicardial border"),
    ("flow_at_bound_pixels_excluded", "At flow bound"),
    ("high_outlier_pixels_excluded", "High outliers"),
)


def _pixels_table(report: Mapping[str, Any]) -> Table:
    """Per slice: pixels in the statistics, valid, and those left out by each rule."""
    k = map_keys(PRIMARY_MAP)
    header = ["Slice", "Pixels in statistics", "Valid MBF", *(label + " left out" for _, label in _EXCLUDED)]
    rows = [
        [slice_title(s), str(s["n_pixels"]), str(s[k["n_valid"]]), *(fmt(s["qc"].get(key)) for key, _ in _EXCLUDED)]
        for s in report["slices"]
    ]
    caption = "Myocardial pixels per slice: in the statistics, with a valid MBF, and left out by each rule:"
    return Table(header, rows, caption=caption)


def _curve_blocks(report: Mapping[str, Any], figures: ReportFigures) -> list[Block]:
    curves = report.get("curves")
    if not curves:
        return []
    blocks: list[Block] = [
        Heading("Curves"),
        Paragraph(
            f"The arterial input, and per segment the mean tissue curve over the pixels of its statistics with "
            f"the {curves.get('model', '')} model fitted to it (its MBF, fitted to the mean curve, next to the "
            f"segment's mean of pixel MBF in the table above) and the residual (measured minus fit) beneath."
        ),
    ]
    if figures.aif_png is not None:
        blocks.append(Image(figures.aif_png, "arterial input function"))
    blocks += [Image(png, name) for name, png in figures.curves_png]
    return blocks
