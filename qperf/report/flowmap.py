"""Flow-map figures: MBF with coronary-territory contours, and the label and segment overlay.

By default the slice is shown in the standard short-axis view, anterior at the top and the
septum on the left, by the one of the eight flips and quarter turns of the image that comes
closest (no interpolation: pixels are shown as they are).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike, NDArray

from qperf.aha.table import TERRITORIES
from qperf.colormaps import PERFUSION_RANGE_ML_MIN_G, perfusion_cmap
from qperf.errors import ValidationError, describe

__all__ = [
    "LABEL_COLORS",
    "TERRITORY_COLORS",
    "DisplayOrientation",
    "boundary_segments",
    "display_orientation",
    "flowmap_figure",
]

#: Territory contour colours, as in the original inline maps.
TERRITORY_COLORS: dict[str, str] = {"LAD": "#ffff00", "RCA": "#00ff00", "LCx": "#ff0000"}
#: Label overlay colours (1 LV blood pool, 2 LV myocardium, 3 RV blood pool).
LABEL_COLORS: dict[int, tuple[float, float, float]] = {1: (0.9, 0.25, 0.25), 2: (0.25, 0.7, 1.0), 3: (1.0, 0.7, 0.2)}


@dataclass(frozen=True)
class DisplayOrientation:
    """A flip / quarter-turn of a ``(y, x)`` image: optional transpose, then optional flips.

    Attributes
    ----------
    transpose, flip_y, flip_x : bool
    anterior_angle_deg : float or None
        Image angle of anterior after the transform (-90 is straight up).
    """

    transpose: bool = False
    flip_y: bool = False
    flip_x: bool = False
    anterior_angle_deg: float | None = None

    def array(self, arr: NDArray[Any]) -> NDArray[Any]:
        a = arr.T if self.transpose else arr
        if self.flip_y:
            a = a[::-1]
        if self.flip_x:
            a = a[:, ::-1]
        return np.ascontiguousarray(a)

    def point(self, yx: tuple[float, float], shape: tuple[int, int]) -> tuple[float, float]:
        y, x = (yx[1], yx[0]) if self.transpose else yx
        ny, nx = (shape[1], shape[0]) if self.transpose else shape
        return (ny - 1 - y if self.flip_y else y, nx - 1 - x if self.flip_x else x)

    def spacing(self, spacing_mm: tuple[float, float]) -> tuple[float, float]:
        return (spacing_mm[1], spacing_mm[0]) if self.transpose else spacing_mm

    def vector(self, vy: float, vx: float) -> tuple[float, float]:
        """A physical in-plane direction ``(v_y, v_x)`` after the transform."""
        if self.transpose:
            vy, vx = vx, vy
        return (-vy if self.flip_y else vy, -vx if self.flip_x else vx)


def _wrap(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def display_orientation(anterior_angle_deg: float, septum_clockwise: bool) -> DisplayOrientation:
    """The image transform that shows anterior closest to the top and the septum on the left.

    Parameters
    ----------
    anterior_angle_deg : float
        Image angle of anterior (see :mod:`qperf.aha`).
    septum_clockwise : bool
        Septal sense in the original image.
    """
    best: DisplayOrientation | None = None
    best_cost = math.inf
    for tr in (False, True):
        for fy in (False, True):
            for fx in (False, True):
                d = DisplayOrientation(tr, fy, fx)
                a = math.radians(anterior_angle_deg)
                s = math.radians(anterior_angle_deg + (90.0 if septum_clockwise else -90.0))
                ay, ax = d.vector(math.sin(a), math.cos(a))
                sy, sx = d.vector(math.sin(s), math.cos(s))
                new_a = math.degrees(math.atan2(ay, ax))
                if _wrap(math.degrees(math.atan2(sy, sx)) - new_a) > 0:
                    continue  # septum clockwise from anterior: septum would be on the right
                cost = abs(_wrap(new_a + 90.0))
                if cost < best_cost - 1e-9:
                    best, best_cost = DisplayOrientation(tr, fy, fx, new_a), cost
    assert best is not None
    return best


def _crop(
    mask: NDArray[np.bool_], spacing_mm: tuple[float, float], margin_mm: float, extent: tuple[float, ...]
) -> tuple[float, float, float, float] | None:
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    dy, dx = spacing_mm
    x0 = max(xs.min() * dx - margin_mm, extent[0])
    x1 = min(xs.max() * dx + margin_mm, extent[1])
    y1 = min(ys.max() * dy + margin_mm, extent[2])
    y0 = max(ys.min() * dy - margin_mm, extent[3])
    return (x0, x1, y1, y0)


def boundary_segments(regions: NDArray[Any], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """Pixel edges between different values of a region map, as line segments in mm.

    Parameters
    ----------
    regions : ndarray, shape (y, x)
        Integer or boolean map; an edge is drawn wherever two 4-neighbours differ (and along
        the image border around non-zero pixels).
    spacing_mm : (float, float)

    Returns
    -------
    ndarray of float64, shape (n, 2, 2)
        Segments ``[[x0, y0], [x1, y1]]`` in mm, pixel centre ``(y, x)`` at ``(x dx, y dy)``.
    """
    r = np.pad(np.asarray(regions), 1)
    dy, dx = spacing_mm
    vy, vx = np.nonzero(r[:, :-1] != r[:, 1:])  # edge between columns vx and vx + 1 of the padded map
    hy, hx = np.nonzero(r[:-1, :] != r[1:, :])
    xe = (vx - 0.5) * dx
    vert = np.stack([np.stack([xe, (vy - 1.5) * dy], -1), np.stack([xe, (vy - 0.5) * dy], -1)], axis=1)
    ye = (hy - 0.5) * dy
    horiz = np.stack([np.stack([(hx - 1.5) * dx, ye], -1), np.stack([(hx - 0.5) * dx, ye], -1)], axis=1)
    return np.concatenate([vert, horiz]).astype(np.float64)


def _outline(ax: Any, regions: NDArray[Any], spacing_mm: tuple[float, float], color: Any, width: float) -> None:
    segs = boundary_segments(regions, spacing_mm)
    if segs.size:
        ax.add_collection(LineCollection(list(segs), colors=[color], linewidths=width, capstyle="projecting"))


def flowmap_figure(
    mbf_ml_min_g: ArrayLike,
    *,
    spacing_mm: tuple[float, float],
    segments: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    center_yx: tuple[float, float] | None = None,
    insertion_yx: tuple[float, float] | None = None,
    anterior_angle_deg: float | None = None,
    septum_clockwise: bool | None = None,
    orient: str = "standard",
    vmin: float = PERFUSION_RANGE_ML_MIN_G[0],
    vmax: float = PERFUSION_RANGE_ML_MIN_G[1],
    title: str = "",
    crop_margin_mm: float | None = 25.0,
) -> Figure:
    """A flow map with coronary-territory contours and, beside it, the label and segment overlay.

    Parameters
    ----------
    mbf_ml_min_g : array_like of float, shape (y, x)
        The MBF map (NaN drawn black).
    spacing_mm : (float, float)
        ``(dy, dx)``; drawn in millimetres with the true aspect ratio.
    segments : array_like of int, shape (y, x), optional
        AHA segment map: territory contours (LAD yellow, RCA green, LCx red), segment
        boundaries and numbers.
    labels : array_like of int, shape (y, x), optional
        Label map for the overlay (LV blood pool red, myocardium blue, RV orange).
    center_yx, insertion_yx : (float, float), optional
        LV centre (+) and anterior RV insertion point (x) in pixels.
    anterior_angle_deg, septum_clockwise : optional
        Orientation of the slice (:class:`qperf.aha.SectorFrame`); without anterior, it is
        placed 30 degrees from the insertion point away from the septum.
    orient : {"standard", "image"}
        ``"standard"``: anterior up, septum left (when the septal sense is known);
        ``"image"``: row 0 at the top as stored.
    vmin, vmax : float
        Colour range in ml/min/g.
    title : str
    crop_margin_mm : float or None
        Zoom to the labelled region plus this margin; None shows the whole image.
    """
    mbf, seg, lab = _check_maps(mbf_ml_min_g, segments, labels, orient)
    shape = (int(mbf.shape[0]), int(mbf.shape[1]))
    tf = DisplayOrientation()
    if orient == "standard" and septum_clockwise is not None:
        anterior = _anterior_deg(anterior_angle_deg, septum_clockwise, center_yx, insertion_yx, spacing_mm)
        if anterior is not None:
            tf = display_orientation(anterior, septum_clockwise)
    t: Callable[[NDArray[Any]], NDArray[Any]] = tf.array
    mbf = t(mbf)
    seg = None if seg is None else t(seg)
    lab = None if lab is None else t(lab)
    center = None if center_yx is None else tf.point(center_yx, shape)
    insertion = None if insertion_yx is None else tf.point(insertion_yx, shape)
    dy, dx = tf.spacing((float(spacing_mm[0]), float(spacing_mm[1])))
    ny, nx = mbf.shape
    extent = (-0.5 * dx, (nx - 0.5) * dx, (ny - 0.5) * dy, -0.5 * dy)
    norm = Normalize(vmin=vmin, vmax=vmax, clip=True)
    two = seg is not None or lab is not None
    fig = Figure(figsize=(11.0 if two else 6.0, 5.0), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    roi = (lab > 0) if lab is not None else (seg > 0) if seg is not None else None
    crop = _crop(roi, (dy, dx), crop_margin_mm, extent) if roi is not None and crop_margin_mm is not None else None
    for ax in axes:
        ax.set_facecolor("black")
        ax.set_xticks([])
        ax.set_yticks([])
    im = _draw_mbf(axes[0], mbf, seg, norm, extent, (dy, dx))
    fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02, label="MBF (ml/min/g)")
    if two:
        grey = np.clip((np.nan_to_num(mbf, nan=0.0) - vmin) / (vmax - vmin), 0, 1)
        _draw_overlay(axes[1], grey, seg, lab, center, insertion, extent, (dy, dx))
    for ax in axes:
        x0, x1, y1, y0 = crop if crop is not None else extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    note = "anterior up, septum left" if tf.anterior_angle_deg is not None else "as stored (row 0 at the top)"
    fig.suptitle(f"{title}{' - ' if title else ''}{note}", fontsize=11)
    return fig


def _check_maps(
    mbf_ml_min_g: ArrayLike, segments: ArrayLike | None, labels: ArrayLike | None, orient: str
) -> tuple[NDArray[np.float64], NDArray[Any] | None, NDArray[Any] | None]:
    """The maps as arrays, after checking their shapes and the orientation name."""
    mbf = np.asarray(mbf_ml_min_g, dtype=float)
    if mbf.ndim != 2:
        raise ValidationError(f"mbf_ml_min_g: expected a (y, x) map, found {describe(mbf)}")
    if orient not in ("standard", "image"):
        raise ValidationError(f"orient: expected 'standard' or 'image', found {orient!r}")
    seg = None if segments is None else np.asarray(segments)
    lab = None if labels is None else np.asarray(labels)
    for name, arr in (("segments", seg), ("labels", lab)):
        if arr is not None and arr.shape != mbf.shape:
            raise ValidationError(f"{name}: expected shape {mbf.shape} (as the map), found {arr.shape}")
    return mbf, seg, lab


def _anterior_deg(
    anterior_angle_deg: float | None,
    septum_clockwise: bool,
    center_yx: tuple[float, float] | None,
    insertion_yx: tuple[float, float] | None,
    spacing_mm: tuple[float, float],
) -> float | None:
    """Image angle of anterior: as given, else 30 degrees from the insertion point away from the septum."""
    if anterior_angle_deg is not None or center_yx is None or insertion_yx is None:
        return anterior_angle_deg
    ins = math.degrees(
        math.atan2((insertion_yx[0] - center_yx[0]) * spacing_mm[0], (insertion_yx[1] - center_yx[1]) * spacing_mm[1])
    )
    return ins - (30.0 if septum_clockwise else -30.0)


def _draw_mbf(
    ax: Any,
    mbf: NDArray[np.float64],
    seg: NDArray[Any] | None,
    norm: Normalize,
    extent: tuple[float, float, float, float],
    spacing: tuple[float, float],
) -> Any:
    """The MBF map (NaN black) with the territory contours and their legend; returns the image."""
    cmap = perfusion_cmap(1024, bad="black")
    im = ax.imshow(mbf, cmap=cmap, norm=norm, extent=extent, origin="upper", interpolation="nearest")
    ax.set_title("MBF with coronary territories" if seg is not None else "MBF", fontsize=10)
    if seg is not None:
        handles = []
        for terr, members in TERRITORIES.items():
            _outline(ax, np.isin(seg, members), spacing, TERRITORY_COLORS[terr], 1.6)
            handles.append(Line2D([], [], color=TERRITORY_COLORS[terr], lw=2, label=terr))
        ax.legend(handles=handles, loc="lower right", fontsize=7, facecolor="black", labelcolor="white", framealpha=0.6)
    return im


def _draw_overlay(
    ax: Any,
    grey: NDArray[np.float64],
    seg: NDArray[Any] | None,
    lab: NDArray[Any] | None,
    center: tuple[float, float] | None,
    insertion: tuple[float, float] | None,
    extent: tuple[float, float, float, float],
    spacing: tuple[float, float],
) -> None:
    """The map in grey under the labels, the segment borders and numbers, the centre (+) and insertion (x)."""
    dy, dx = spacing
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, origin="upper", interpolation="nearest")
    if lab is not None:
        overlay = np.zeros((*lab.shape, 4))
        for value, rgb in LABEL_COLORS.items():
            overlay[lab == value] = (*rgb, 0.45)
        ax.imshow(overlay, extent=extent, origin="upper", interpolation="nearest")
    if seg is not None:
        _outline(ax, seg, spacing, "white", 0.7)
        for n in np.unique(seg[seg > 0]):
            cy, cx = np.argwhere(seg == n).mean(axis=0)
            ax.text(
                cx * dx,
                cy * dy,
                str(int(n)),
                ha="center",
                va="center",
                fontsize=8,
                color="white",
                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")],
            )
    if center is not None:
        ax.plot(center[1] * dx, center[0] * dy, "+", color="white", ms=9, mew=1.5)
    if insertion is not None:
        ax.plot(insertion[1] * dx, insertion[0] * dy, "x", color="magenta", ms=9, mew=2)
    ax.set_title("Labels, AHA segments, RV insertion (x)", fontsize=10)
