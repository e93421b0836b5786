"""Report figures: the AHA bull's-eye and flow maps with territory contours and labels.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
global state), and rendered to PNG or SVG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle, Wedge

from qperf.aha.table import LEVEL_SEGMENTS, SEGMENTS
from qperf.colormaps import PERFUSION_RANGE_ML_MIN_G, perfusion_cmap
from qperf.errors import ValidationError, describe
from qperf.report.build import PRIMARY_MAP, SliceResult, slice_title
from qperf.report.curves import aif_figure, curves_figure, motion_figure
from qperf.report.flowmap import flowmap_figure
from qperf.report.schema import map_keys, validate_report

__all__ = [
    "BULLSEYE_RINGS",
    "ReportFigures",
    "bullseye_figure",
    "bullseye_point",
    "bullseye_wedge",
    "figure_bytes",
    "render_figures",
]

#: Default colour range of perfusion-reserve bull's-eyes.
MPR_RANGE: tuple[float, float] = (0.0, 5.0)
#: Radii (inner, outer) of the bull's-eye rings, outer radius 1.
BULLSEYE_RINGS: dict[str, tuple[float, float]] = {
    "apex": (0.0, 0.22),
    "apical": (0.22, 0.48),
    "mid": (0.48, 0.74),
    "basal": (0.74, 1.0),
}
_NO_VALUE = (0.82, 0.82, 0.82)
_HATCH = (0.35, 0.35, 0.35)


def bullseye_wedge(segment: int) -> tuple[float, float, float, float]:
    """``(r_inner, r_outer, theta1_deg, theta2_deg)`` of a segment in the bull's-eye.

    Standard layout: basal outside, apical inside; anterior at the top, septum on the left
    (angles counter-clockwise from the right, as in matplotlib).
    """
    if segment not in SEGMENTS:
        raise ValidationError(f"segment: expected 1-16, found {segment!r}")
    level = SEGMENTS[segment].level
    r0, r1 = BULLSEYE_RINGS[level]
    j = LEVEL_SEGMENTS[level].index(segment)
    theta1 = 60.0 + 60.0 * j if level != "apical" else 45.0 + 90.0 * j
    return r0, r1, theta1, theta1 + (60.0 if level != "apical" else 90.0)


def bullseye_point(segment: int, frac_angle: float = 0.5, frac_radius: float = 0.5) -> tuple[float, float]:
    """Data coordinates of a point inside a segment's wedge (0.5, 0.5: its centre)."""
    r0, r1, t1, t2 = bullseye_wedge(segment)
    r = r0 + frac_radius * (r1 - r0)
    t = np.radians(t1 + frac_angle * (t2 - t1))
    return float(r * np.cos(t)), float(r * np.sin(t))


def _luminance(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def bullseye_figure(
    values: Mapping[int | str, float | None],
    *,
    vmin: float = PERFUSION_RANGE_ML_MIN_G[0],
    vmax: float = PERFUSION_RANGE_ML_MIN_G[1],
    title: str = "",
    colorbar_label: str = "MBF (ml/min/g)",
    cmap: Colormap | None = None,
    decimals: int = 2,
    hatched: Sequence[int] = (),
    hatched_label: str = "",
) -> Figure:
    """The AHA 16-segment bull's-eye of one value per segment.

    Parameters
    ----------
    values : mapping of segment (int or str "1"-"16") to float or None
        Missing, None or NaN segments are drawn grey without a value.
    vmin, vmax : float
        Colour range (ml/min/g for MBF).
    title, colorbar_label : str
    cmap : matplotlib colormap, optional
        The perfusion colour map by default.
    decimals : int
        Decimals of the printed values.
    hatched : sequence of int
        Segments whose values are uncertain (too few pixels): drawn paler and hatched, their
        value in grey italics.
    hatched_label : str
        Legend text for the hatching (under the colour bar).

    Returns
    -------
    matplotlib.figure.Figure
        6 x 5 inches; the bull's-eye axes span data coordinates -1.08 to 1.08.
    """
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        raise ValidationError(f"vmin, vmax: expected finite numbers with vmax > vmin, found {vmin!r}, {vmax!r}")
    vals = _segment_values(values)
    hatched_set = {int(n) for n in hatched}
    cmap = cmap or perfusion_cmap(1024)
    norm = Normalize(vmin=vmin, vmax=vmax, clip=True)
    fig = Figure(figsize=(6.0, 5.0), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.04, 0.74, 0.86))
    ax.set_xlim(-1.08, 1.08)
    ax.set_ylim(-1.08, 1.08)
    ax.set_aspect("equal")
    ax.set_axis_off()
    for n in SEGMENTS:
        v = vals.get(n, float("nan"))
        color = tuple(cmap(norm(v))[:3]) if np.isfinite(v) else _NO_VALUE
        uncertain = n in hatched_set
        if uncertain:  # paler: half way to the no-value grey
            color = tuple(0.5 * c + 0.5 * g for c, g in zip(color, _NO_VALUE, strict=True))
        r0, r1, t1, t2 = bullseye_wedge(n)
        ax.add_patch(Wedge((0.0, 0.0), r1, t1, t2, width=r1 - r0, facecolor=color, edgecolor="white", linewidth=1.5))
        if uncertain:
            ax.add_patch(
                Wedge((0.0, 0.0), r1, t1, t2, width=r1 - r0, facecolor="none", edgecolor=_HATCH, hatch="///", lw=0)
            )
        x, y = bullseye_point(n)
        text = f"{v:.{decimals}f}" if np.isfinite(v) else "n/a"
        ink = "black" if _luminance(color) > 0.5 else "white"
        style = "italic" if uncertain else "normal"
        ax.text(x, y + 0.035, text, ha="center", va="center", fontsize=10, color=ink, fontweight="bold", style=style)
        ax.text(x, y - 0.065, str(n), ha="center", va="center", fontsize=7, color=ink)
    _draw_apex_and_directions(ax)
    cax = fig.add_axes((0.82, 0.14, 0.04, 0.66))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label=colorbar_label)
    if hatched_set:
        ax.add_patch(Rectangle((0.74, -1.07), 0.12, 0.09, facecolor=_NO_VALUE, edgecolor=_HATCH, hatch="///", lw=0))
        ax.text(0.89, -1.025, hatched_label or "hatched: uncertain", fontsize=7, va="center", color=(0.3, 0.3, 0.3))
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def _segment_values(values: Mapping[int | str, float | None]) -> dict[int, float]:
    """Segment number to value (NaN for None), after checking the mapping and its keys."""
    if not isinstance(values, Mapping):
        raise ValidationError(f"values: expected a mapping of segment to value, found {describe(values)}")
    vals: dict[int, float] = {}
    for k, v in values.items():
        n = int(k) if str(k).isdigit() else -1
        if n not in SEGMENTS:
            raise ValidationError(f"values: expected segments 1-16, found {k!r}")
        vals[n] = float("nan") if v is None else float(v)
    return vals


def _draw_apex_and_directions(ax: Any) -> None:
    """The blank apex (segment 17, not reported) and the names of the four walls."""
    r_apex = BULLSEYE_RINGS["apex"][1]
    ax.add_patch(Circle((0.0, 0.0), r_apex, facecolor="white", edgecolor=(0.7, 0.7, 0.7), linewidth=1.0))
    ax.text(0.0, 0.0, "17\n(apex)", ha="center", va="center", fontsize=7, color=(0.5, 0.5, 0.5))
    for label, (x, y), ha in (
        ("anterior", (0.0, 1.06), "center"),
        ("inferior", (0.0, -1.06), "center"),
        ("septal", (-1.06, 0.0), "right"),
        ("lateral", (1.06, 0.0), "left"),
    ):
        ax.text(
            x,
            y,
            label,
            ha=ha,
            va="center",
            fontsize=7,
            color=(0.35, 0.35, 0.35),
            rotation=90 if label in ("septal", "lateral") else 0,
        )


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    """Render a figure to PNG or SVG bytes (SVG text as UTF-8, deterministic ids)."""
    if fmt not in ("png", "svg"):
        raise ValidationError(f"fmt: expected 'png' or 'svg', found {fmt!r}")
    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "qperf", "svg.fonttype": "none"}):
        fig.savefig(
            buf, format=fmt, dpi=dpi, facecolor=fig.get_facecolor(), metadata={"Date": None} if fmt == "svg" else None
        )
    return buf.getvalue()


@dataclass(frozen=True)
class ReportFigures:
    """Rendered report figures.

    Attributes
    ----------
    bullseye_png, bullseye_svg : bytes
    flowmaps_png : tuple of (str, bytes)
        One ``(file name, PNG)`` per slice, ``flowmap_<n>_<level>.png``.
    mpr_bullseye_png : bytes or None
        Bull's-eye of the perfusion reserve when the report has one.
    aif_png : bytes or None
        The AIF curves, when the report has ``curves``.
    curves_png : tuple of (str, bytes)
        One ``(file name, PNG)`` per slice of ``curves``: ``curves_<n>_<level>.png``, the
        segment-mean tissue curves with their fits and residuals.
    motion_png : bytes or None
        Displacement per frame of the motion-corrected slices, when any was corrected.
    """

    bullseye_png: bytes
    bullseye_svg: bytes
    flowmaps_png: tuple[tuple[str, bytes], ...]
    mpr_bullseye_png: bytes | None = None
    aif_png: bytes | None = None
    curves_png: tuple[tuple[str, bytes], ...] = ()
    motion_png: bytes | None = None


def render_figures(
    report: Mapping[str, Any],
    slices: Sequence[SliceResult],
    *,
    vmin: float = PERFUSION_RANGE_ML_MIN_G[0],
    vmax: float = PERFUSION_RANGE_ML_MIN_G[1],
    mpr_range: tuple[float, float] = MPR_RANGE,
    dpi: int = 100,
) -> ReportFigures:
    """The bull's-eye of the report's segment mean MBF (segments flagged ``low_pixel_count``
    hatched), one flow-map figure per slice, the bull's-eye of the perfusion reserve (colour
    range ``mpr_range``) when the report has one, and from the report's ``curves`` and slice QC
    the AIF, the segment curves of every slice and the motion per frame."""
    validate_report(report)
    if len(slices) != len(report["slices"]):
        raise ValidationError(f"slices: expected {len(report['slices'])} (as the report), found {len(slices)}")
    key = map_keys(PRIMARY_MAP)["mean"]
    study = report["study"]
    label = " ".join(p for p in (study["name"], study["condition"] if study["condition"] != "unknown" else "") if p)
    bull = bullseye_figure(
        {n: report["segments"][str(n)][key] for n in SEGMENTS},
        vmin=vmin,
        vmax=vmax,
        title=f"Mean MBF per AHA segment{': ' + label if label else ''}",
        hatched=[n for n in SEGMENTS if report["segments"][str(n)].get("low_pixel_count")],
        hatched_label=f"hatched: fewer than {report['qc'].get('min_segment_pixels', '?')} pixels",
    )
    maps = []
    for i, (s, entry) in enumerate(zip(slices, report["slices"], strict=True)):
        fig = flowmap_figure(
            s.maps[PRIMARY_MAP],
            spacing_mm=s.sectors.frame.spacing_mm,
            segments=s.sectors.segments,
            labels=s.labels,
            center_yx=s.sectors.frame.center_yx,
            insertion_yx=s.sectors.insertion_yx,
            anterior_angle_deg=s.sectors.frame.anterior_angle_deg,
            septum_clockwise=s.sectors.frame.septum_clockwise,
            vmin=vmin,
            vmax=vmax,
            title=slice_title(entry),
        )
        maps.append((f"flowmap_{i + 1}_{entry['level']}.png", figure_bytes(fig, "png", dpi)))
    mpr_png = None
    if report.get("mpr"):
        mpr_fig = bullseye_figure(
            {n: report["mpr"]["values"][str(n)] for n in SEGMENTS},
            vmin=mpr_range[0],
            vmax=mpr_range[1],
            title=f"Myocardial perfusion reserve (stress / rest){': ' + study['name'] if study['name'] else ''}",
            colorbar_label="MPR",
        )
        mpr_png = figure_bytes(mpr_fig, "png", dpi)
    aif_png, curve_pngs = None, []
    curves = report.get("curves")
    if curves:
        model = str(curves.get("model", ""))
        aif_png = figure_bytes(
            aif_figure(curves, f"Arterial input function{': ' + label if label else ''}"), "png", dpi
        )
        low = report["qc"].get("low_pixel_segments", [])
        for sl in curves["slices"]:
            entry = report["slices"][sl["index"]]
            title = f"{slice_title(entry)}: segment-mean tissue curves, {model} fits and residuals"
            fig = curves_figure(sl, title, entry["level"], low, model)
            curve_pngs.append((f"curves_{sl['index'] + 1}_{entry['level']}.png", figure_bytes(fig, "png", dpi)))
    motion = motion_figure(report["slices"])
    return ReportFigures(
        figure_bytes(bull, "png", dpi),
        figure_bytes(bull, "svg"),
        tuple(maps),
        mpr_png,
        aif_png,
        tuple(curve_pngs),
        None if motion is None else figure_bytes(motion, "png", dpi),
    )
