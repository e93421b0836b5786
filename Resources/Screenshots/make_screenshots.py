"""Render the extension's screenshots from the modules' logic run on a digital phantom.

The Slicer GUI cannot be captured where the extension is built, so the workflow figures are
drawn with matplotlib from what the logic put in an MRML scene (``slicer-core``): the QPerf Seg
figure shows acquired and motion-corrected frames of a breathing phantom with the labels and
the insertion vector read back from the segmentation and markups sequences; the QPerf Flow
figure shows the report's own flow-map and bull's-eye figures (``qperf.report``) beside the
AIF and myocardial curves read from the curve table nodes. Labels and insertion points are the
phantom's truth drawn on one acquired frame (the annotator's path), carried to every frame by
the logic.

Run from the repository root, with the module libraries on the path as Slicer puts them
(about a minute)::

    PYTHONPATH=QPerfCommon:QPerfSeg:QPerfFlow OMP_NUM_THREADS=2 python Resources/Screenshots/make_screenshots.py
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import slicer  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED, DRAWN_FRAME = 3, 30


def runWorkflow() -> dict:
    """The QPerf Seg and QPerf Flow logic on a three-slice breathing phantom, in a fresh scene."""
    from QPerfFlowLib import FlowLogic
    from QPerfSegLib import SegmentationLogic
    from QPerfSegLib.workflowtest import truthPointsOnFrame

    from qperf import phantom
    from qperf.workflow import AnalysisOptions

    ps = phantom.generate_study(seed=SEED, n_slices=3, n_frames=60, condition="stress")
    scene = slicer.vtkMRMLScene()
    seg = SegmentationLogic(scene)
    browser = seg.loadStudy(ps.study).browserNode
    truth = ps.truth.slices
    drawn = AnalysisOptions(
        motion="on",
        labels=[t.labels_moving[DRAWN_FRAME] for t in truth],
        insertion_points_yx=[truthPointsOnFrame(t, DRAWN_FRAME) for t in truth],
        label_frames=[DRAWN_FRAME] * len(truth),
    )
    seg.segment(browser, drawn)
    seg.recompute(browser)
    flow = FlowLogic(scene)
    flow.aifFromRegion(browser, flow.detectAifRegion(browser))
    result = flow.compute(browser, model="btex")
    return {"phantom": ps, "scene": scene, "seg": seg, "flow": flow, "browser": browser, "result": result}


def _contours(ax, labels: np.ndarray) -> None:
    from qperf.report.flowmap import LABEL_COLORS

    for value, rgb in LABEL_COLORS.items():
        mask = (labels == value).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[rgb], linewidths=1.2)


def segFigure(run: dict, path: Path) -> None:
    """Acquired and corrected frames with the labels and insertion vector the scene holds."""
    from QPerfCommonLib.markups import pointsFromNode
    from QPerfCommonLib.outputs import REFERENCE_VECTOR, outputNodes
    from QPerfCommonLib.sequences import referencedSequenceNodes, seriesFromSequenceNode

    seg, browser = run["seg"], run["browser"]
    index = 1  # the mid slice
    series = seriesFromSequenceNode(referencedSequenceNodes(browser)[index])
    corrected = seg.correctedSeries(browser, index)
    labels = seg.labelsArray(browser, index)
    session = seg.session(browser)
    labelsRef = session.slices[index].labels_ref
    vectors = outputNodes(browser, REFERENCE_VECTOR)[index]
    ijkToRas = series.ijk_to_ras()
    rows, cols = np.nonzero(labelsRef)
    pad = 14
    y0, y1 = max(rows.min() - pad, 0), min(rows.max() + pad, series.shape[0])
    x0, x1 = max(cols.min() - pad, 0), min(cols.max() + pad, series.shape[1])
    frames = [5, 14, 22, 45]
    fig, axes = plt.subplots(2, len(frames), figsize=(10, 5.4), dpi=110)
    vmax = float(np.percentile(series.data[series.n_pd_frames :], 99.5))
    for col, t in enumerate(frames):
        for row, (data, lab, title) in enumerate(
            ((series.data[t], labels[t], "acquired"), (corrected.data[t], labelsRef, "motion-corrected"))
        ):
            ax = axes[row, col]
            ax.imshow(data[y0:y1, x0:x1], cmap="gray", vmin=0, vmax=vmax)
            _contours(ax, lab[y0:y1, x0:x1])
            ax.set_title(f"{title}, t = {series.time_s[t]:.1f} s", fontsize=8)
            ax.axis("off")
        ends = list(pointsFromNode(vectors.GetNthDataNode(t), ijkToRas).values())
        if len(ends) == 2:
            (ya, xa), (yb, xb) = ends
            axes[0, col].annotate(
                "", xy=(xb - x0, yb - y0), xytext=(xa - x0, ya - y0), arrowprops={"arrowstyle": "->", "color": "yellow"}
            )
    fig.suptitle(
        "QPerf Seg: labels (LV blood pool, myocardium, RV) and insertion vector on every frame, from one drawn frame",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def flowFigure(run: dict, path: Path) -> None:
    """The report's flow map and bull's-eye with the curves from the scene's curve tables."""
    from QPerfCommonLib.outputs import outputNodes
    from QPerfFlowLib.results import REFERENCE_CURVES

    result, browser = run["result"], run["browser"]
    name, flowmap = result.figures.flowmaps_png[1]
    curves = outputNodes(browser, REFERENCE_CURVES)[1]
    time_s = slicer.util.arrayFromTableColumn(curves, "time_s")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=110, gridspec_kw={"width_ratios": [1.9, 1.0, 0.9]})
    for ax, png in ((axes[0], flowmap), (axes[1], result.figures.bullseye_png)):
        image = mpimg.imread(io.BytesIO(png))
        rows = np.nonzero((image[..., :3] < 0.98).any(axis=(1, 2)))[0]
        cols = np.nonzero((image[..., :3] < 0.98).any(axis=(0, 2)))[0]
        ax.imshow(image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        ax.axis("off")
    ax = axes[2]
    ax.plot(time_s, slicer.util.arrayFromTableColumn(curves, "aif_plasma_mmol_l"), color=(0.9, 0.2, 0.2), label="AIF")
    myo = slicer.util.arrayFromTableColumn(curves, "myocardium_mmol_l")
    ax.plot(time_s, 5 * myo, color=(0.2, 0.5, 1.0), label="myocardium x 5")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Gd (mmol/L)")
    ax.set_title("AIF (plasma) and myocardial curve, mid slice", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle("QPerf Flow: pixel-wise BTEX maps, AHA report and curves", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    run = runWorkflow()
    segFigure(run, HERE / "QPerfSeg.png")
    flowFigure(run, HERE / "QPerfFlow.png")
    print(f"wrote {HERE / 'QPerfSeg.png'} and {HERE / 'QPerfFlow.png'}")


if __name__ == "__main__":
    main()
