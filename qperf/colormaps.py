"""QPerf's perfusion colour map and a writer for Slicer colour-table files.

The perfusion map is dark at zero flow and rises through blue, cyan, green, yellow and red to
a bright near-white at the highest flows, so that low-flow (ischaemic) myocardium reads as
dark blue against the greens and yellows of normal stress flow. It is defined by a few anchor
colours and linear interpolation in RGB; the default display range is 0 to 6 ml/min/g.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError
from qperf.io import atomic_file

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.colors import Colormap

__all__ = [
    "PERFUSION_ANCHORS",
    "PERFUSION_NAME",
    "PERFUSION_RANGE_ML_MIN_G",
    "perfusion_cmap",
    "perfusion_colors",
    "perfusion_rgb",
    "slicer_color_table_text",
    "write_slicer_color_table",
]

PERFUSION_NAME = "QPerfPerfusion"
#: Default display range of MBF maps, ml/min/g.
PERFUSION_RANGE_ML_MIN_G: tuple[float, float] = (0.0, 6.0)

#: Anchor positions in [0, 1] of the display range and their RGB colours in [0, 1].
PERFUSION_ANCHORS: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (0.00, (0.00, 0.00, 0.00)),  # black: no flow
    (0.08, (0.06, 0.04, 0.42)),  # deep indigo
    (0.20, (0.10, 0.30, 1.00)),  # blue
    (0.34, (0.00, 0.78, 0.92)),  # cyan
    (0.48, (0.15, 0.80, 0.25)),  # green
    (0.63, (1.00, 0.90, 0.10)),  # yellow
    (0.80, (0.95, 0.20, 0.08)),  # red
    (1.00, (1.00, 0.93, 0.90)),  # near white: very high flow
)


def perfusion_rgb(fraction: ArrayLike) -> NDArray[np.float64]:
    """Colours of positions in the display range.

    Parameters
    ----------
    fraction : array_like of float
        Positions in ``[0, 1]`` (clipped; NaN gives black).

    Returns
    -------
    ndarray of float64, shape (..., 3)
        RGB in ``[0, 1]``, piecewise linear between :data:`PERFUSION_ANCHORS`.
    """
    f = np.clip(np.nan_to_num(np.asarray(fraction, dtype=float), nan=0.0), 0.0, 1.0)
    pos = np.array([p for p, _ in PERFUSION_ANCHORS])
    rgb = np.array([c for _, c in PERFUSION_ANCHORS])
    return np.stack([np.interp(f, pos, rgb[:, k]) for k in range(3)], axis=-1)


def perfusion_colors(n: int = 256) -> NDArray[np.float64]:
    """``n`` evenly spaced colours of the map, ``(n, 3)`` RGB in ``[0, 1]``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise ValidationError(f"n: expected an integer of at least 2, found {n!r}")
    return perfusion_rgb(np.linspace(0.0, 1.0, int(n)))


def perfusion_cmap(n: int = 256, bad: str | tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)) -> Colormap:
    """The map as a matplotlib colormap; NaN drawn in ``bad`` (transparent by default)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(perfusion_colors(n), name=PERFUSION_NAME).with_extremes(bad=bad)


def slicer_color_table_text(
    n: int = 256, range_ml_min_g: tuple[float, float] = PERFUSION_RANGE_ML_MIN_G, name: str = PERFUSION_NAME
) -> str:
    """Text of a Slicer colour-table file (``.txt``/``.ctbl``) with ``n`` entries.

    Each line is ``index name R G B A`` with 0-255 components; the entry names give the MBF
    (ml/min/g) at the centre of each entry over ``range_ml_min_g``.
    """
    lo, hi = (float(v) for v in range_ml_min_g)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValidationError(f"range_ml_min_g: expected (low, high) with high > low, found {range_ml_min_g!r}")
    if not name or any(c.isspace() for c in name):
        raise ValidationError(f"name: expected a non-empty name without spaces, found {name!r}")
    colors = np.round(perfusion_colors(n) * 255.0).astype(int)
    values = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    lines = [
        f"# Color table file {name}.txt",
        f"# {n} values",
        f"# {name}: QPerf perfusion colour map, MBF {lo:g} to {hi:g} ml/min/g (entry names: ml/min/g)",
    ]
    lines += [f"{i} {values[i]:.3f} {r} {g} {b} 255" for i, (r, g, b) in enumerate(colors)]
    return "\n".join(lines) + "\n"


def write_slicer_color_table(
    path: str | os.PathLike[str],
    *,
    n: int = 256,
    range_ml_min_g: tuple[float, float] = PERFUSION_RANGE_ML_MIN_G,
    overwrite: bool = False,
) -> None:
    """Write the perfusion map as a Slicer colour-table file (atomically).

    Raises
    ------
    OutputExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    stem = os.path.basename(os.fspath(path)).split(".")[0] or PERFUSION_NAME
    text = slicer_color_table_text(n, range_ml_min_g, stem.replace(" ", "_"))
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
