"""Draw the extension and module icons (128 x 128 RGBA PNG) from simple geometry.

- ``Resources/Icons/QPerf.png``: a short-axis slice, RV crescent and LV ring, the ring coloured
  by flow with the perfusion colour table (extension icon).
- ``QPerfSeg/Resources/Icons/QPerfSeg.png``: the labels of a short-axis slice (LV blood pool,
  myocardium, RV) with the anterior RV insertion point.
- ``QPerfFlow/Resources/Icons/QPerfFlow.png``: an AHA 17-segment bull's-eye coloured by flow.

Run from anywhere: ``python Resources/Icons/make_icons.py``. Drawn on a 4x finer grid and
averaged down, so the edges are anti-aliased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SIZE = 128
OVERSAMPLE = 4
REPO = Path(__file__).resolve().parents[2]
COLOR_TABLE = REPO / "Resources" / "ColorTables" / "QPerfPerfusion.txt"

LV_BLOOD = (0.91, 0.33, 0.30)
MYOCARDIUM = (0.30, 0.69, 0.36)
RV_BLOOD = (0.27, 0.51, 0.86)
OUTLINE = (0.15, 0.15, 0.18)


def perfusionColors() -> NDArray[np.float64]:
    """RGB (n, 3) in [0, 1] from the perfusion colour table, or a dark-to-bright ramp without it."""
    if COLOR_TABLE.is_file():
        rows = [
            line.split()
            for line in COLOR_TABLE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        return np.array([[float(v) / 255.0 for v in row[2:5]] for row in rows])
    ramp = np.linspace(0.0, 1.0, 256)
    return np.column_stack([ramp, ramp**2, 0.4 * (1 - ramp)])


def grid() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Coordinates in [-1, 1] (x to the right, y upwards) of the oversampled canvas."""
    n = SIZE * OVERSAMPLE
    c = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    x, y = np.meshgrid(c, -c)
    return x, y


def paint(canvas: NDArray[np.float64], mask: NDArray[np.bool_], rgb: tuple | NDArray[np.float64]) -> None:
    """Fill ``mask`` of the RGBA canvas with ``rgb`` (a colour, or one colour per pixel)."""
    canvas[mask, :3] = np.asarray(rgb)[mask] if np.ndim(rgb) == 3 else rgb
    canvas[mask, 3] = 1.0


def finish(canvas: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average the oversampled canvas down to SIZE x SIZE with premultiplied alpha."""
    n = OVERSAMPLE
    premultiplied = canvas.copy()
    premultiplied[..., :3] *= canvas[..., 3:4]
    small = premultiplied.reshape(SIZE, n, SIZE, n, 4).mean(axis=(1, 3))
    alpha = small[..., 3:4]
    small[..., :3] = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-9), 0.0)
    return np.clip(small, 0.0, 1.0)


def shortAxis(ringColors: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """A short-axis slice; the LV ring coloured per pixel when ``ringColors`` is given."""
    x, y = grid()
    canvas = np.zeros(x.shape + (4,))
    lvCenter = (0.18, -0.02)
    r = np.hypot(x - lvCenter[0], y - lvCenter[1])
    rvOuter = np.hypot((x + 0.38) / 0.62, (y - 0.02) / 0.78) < 1.0
    paint(canvas, rvOuter & (r > 0.66), OUTLINE)
    paint(canvas, np.hypot((x + 0.38) / 0.56, (y - 0.02) / 0.72) < 1.0, RV_BLOOD)
    paint(canvas, r < 0.70, OUTLINE)
    paint(canvas, r < 0.64, MYOCARDIUM if ringColors is None else ringColors)
    paint(canvas, r < 0.38, OUTLINE)
    paint(canvas, r < 0.33, LV_BLOOD)
    return canvas


def segIcon() -> NDArray[np.float64]:
    canvas = shortAxis(None)
    x, y = grid()
    # Anterior RV insertion point: where the RV wall meets the LV ring, upper left.
    insertion = (0.18 + 0.67 * np.cos(np.radians(128)), -0.02 + 0.67 * np.sin(np.radians(128)))
    d = np.hypot(x - insertion[0], y - insertion[1])
    paint(canvas, d < 0.13, OUTLINE)
    paint(canvas, d < 0.09, (1.0, 0.85, 0.2))
    return finish(canvas)


def extensionIcon(colors: NDArray[np.float64]) -> NDArray[np.float64]:
    x, y = grid()
    angle = np.degrees(np.arctan2(y + 0.02, x - 0.18)) % 360.0
    # Flow high in most of the ring with one lower-flow (ischaemic) sector, inferolateral.
    flow = 0.75 - 0.55 * np.exp(-(((angle - 300.0 + 180.0) % 360.0 - 180.0) ** 2) / (2 * 28.0**2))
    index = np.clip((flow * (len(colors) - 1)).astype(int), 0, len(colors) - 1)
    return finish(shortAxis(colors[index]))


def flowIcon(colors: NDArray[np.float64]) -> NDArray[np.float64]:
    """AHA bull's-eye: basal (6), mid (6), apical (4) rings and the apex, coloured by flow."""
    x, y = grid()
    canvas = np.zeros(x.shape + (4,))
    r = np.hypot(x, y)
    angle = np.degrees(np.arctan2(y, x)) % 360.0
    rng = np.random.default_rng(3)
    ringEdges = [(0.72, 0.96, 6, 60.0), (0.48, 0.72, 6, 60.0), (0.24, 0.48, 4, 45.0)]
    paint(canvas, r < 0.99, OUTLINE)
    for inner, outer, count, start in ringEdges:
        for k in range(count):
            lo = (start + k * 360.0 / count) % 360.0
            inSector = ((angle - lo) % 360.0) < 360.0 / count
            value = 0.25 + 0.7 * rng.random()
            color = colors[int(value * (len(colors) - 1))]
            paint(canvas, inSector & (r > inner + 0.015) & (r < outer - 0.015), color)
    paint(canvas, r < 0.225, colors[int(0.85 * (len(colors) - 1))])
    # Thin dark spokes between segments.
    for inner, outer, count, start in ringEdges:
        for k in range(count):
            theta = np.radians(start + k * 360.0 / count)
            distance = np.abs(-np.sin(theta) * x + np.cos(theta) * y)
            along = np.cos(theta) * x + np.sin(theta) * y
            paint(canvas, (distance < 0.012) & (along > 0) & (r > inner) & (r < outer), OUTLINE)
    return finish(canvas)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    colors = perfusionColors()
    outputs = {
        REPO / "Resources" / "Icons" / "QPerf.png": extensionIcon(colors),
        REPO / "QPerfSeg" / "Resources" / "Icons" / "QPerfSeg.png": segIcon(),
        REPO / "QPerfFlow" / "Resources" / "Icons" / "QPerfFlow.png": flowIcon(colors),
    }
    for path, image in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        matplotlib.image.imsave(path, image)
        print(f"wrote {path.relative_to(REPO)} ({image.shape[1]} x {image.shape[0]})")


if __name__ == "__main__":
    main()
