"""Overlay figures of segmentations on real series (visual checks where no truth exists).

    python -m qperf.segmentation.overlay SERIES_OR_MAT --out overlay.png [--spacing 1.6 2.0 2.4]
        [--frame-interval 0.5] [--units gd_mmol_l] [--reference MBF.jpg] [--model PATH]

``SERIES_OR_MAT`` is any series file QPerf reads, or a MATLAB ``perf_data.mat`` with a
``data`` array (rows, columns, time). The series records no pixel spacing in some sources, so
one row of overlays is drawn per assumed spacing. ``--reference`` adds an image (for example
the flow map the original implementation produced) for comparison.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from qperf.segmentation import preprocessing as pre
from qperf.segmentation.inference import Segmenter, load_segmenter
from qperf.types import PerfusionSeries


def read_input(path: str, frame_interval_s: float, units: str) -> PerfusionSeries:
    """A series from a QPerf-readable file or a MATLAB file with ``data`` (rows, columns, time)."""
    if path.endswith(".mat"):
        from scipy.io import loadmat

        data = np.moveaxis(np.asarray(loadmat(path)["data"], dtype=np.float32), -1, 0)
        return PerfusionSeries(data, np.arange(data.shape[0]) * frame_interval_s, units=units, name=Path(path).stem)
    from qperf import io

    return io.read_series(path, frame_interval_s=frame_interval_s, units=units)


def overlay_figure(
    segmenter: Segmenter,
    series: PerfusionSeries,
    spacings_mm: list[float],
    png: str | Path,
    *,
    reference: str | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Draw labels and insertion points over the first-pass and myocardial phases; returns QC per spacing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = 4 + (reference is not None)
    fig, axes = plt.subplots(len(spacings_mm), n_cols, figsize=(3.3 * n_cols, 3.3 * len(spacings_mm)), squeeze=False)
    qc: dict[str, Any] = {}
    for r, sp in enumerate(spacings_mm):
        s = series.replace(spacing_mm=(sp, sp))
        res = segmenter(s)
        ti = pre.temporal_input(s)
        frames = [
            (ti.enhancement[pre.FOOT_CHANNEL + 4], "first pass"),
            (ti.enhancement[pre.FOOT_CHANNEL + 16], "myocardial phase"),
        ]
        for c, (img, name) in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray")
            for k, col in ((1, "red"), (2, "lime"), (3, "yellow")):
                if (res.labels_ref == k).any():
                    ax.contour(res.labels_ref == k, [0.5], colors=col, linewidths=0.9)
            for pname, p in res.insertion_points.items():
                ax.plot(p[1], p[0], "c+" if pname == "anterior" else "mx", ms=10, mew=2)
            ax.set_title(f"{name}, {sp:g} mm pixels", fontsize=9)
            ax.axis("off")
        axes[r, 2].imshow(res.labels_ref, vmin=0, vmax=3, cmap="viridis")
        axes[r, 2].set_title("labels (blue LV, green myo, yellow RV)", fontsize=8)
        axes[r, 2].axis("off")
        axes[r, 3].imshow(res.confidence, vmin=0.3, vmax=1.0, cmap="magma")
        axes[r, 3].set_title(f"confidence; QC: {', '.join(res.qc.flags) or 'ok'}", fontsize=8)
        axes[r, 3].axis("off")
        if reference is not None:
            axes[r, 4].imshow(plt.imread(reference))
            axes[r, 4].set_title("reference", fontsize=9)
            axes[r, 4].axis("off")
        qc[f"{sp:g}"] = res.qc.to_dict()
    fig.suptitle(
        title or "segmentation overlays: red LV, green myocardium, yellow RV; + anterior, x inferior insertion"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return qc


def main() -> None:
    parser = argparse.ArgumentParser(description="segmentation overlays on a real series")
    parser.add_argument("series")
    parser.add_argument("--out", required=True)
    parser.add_argument("--spacing", type=float, nargs="+", default=[1.6, 2.0, 2.4])
    parser.add_argument("--frame-interval", type=float, default=0.5)
    parser.add_argument("--units", default="gd_mmol_l")
    parser.add_argument("--reference")
    parser.add_argument("--model")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    series = read_input(args.series, args.frame_interval, args.units)
    seg = load_segmenter(args.model)
    qc = overlay_figure(seg, series, args.spacing, args.out, reference=args.reference, title=args.title)
    print(json.dumps(qc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
