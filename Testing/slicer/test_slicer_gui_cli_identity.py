"""The GUI and the command line give the same numbers for the same study and options.

The same small phantom study (three breathing slices, AIF images, no AIF curve) is analysed twice
from its ``study.json``: by ``qperf analyze`` (the CLI's ``main``), and by the Slicer modules'
logic as the panels run it: QPerf Seg's :class:`SegmentationLogic` loads the study into a scene
and segments it (motion correction where the heart moves, the shipped CNN, labels and insertion
points carried over the frames), QPerf Flow's :class:`FlowLogic` computes the flow from what the
scene then holds. Both use the default options (``AnalysisOptions()``; BTEX).

The per-segment mean MBF of all 16 AHA segments and the global MBF must be equal exactly, not
within a tolerance, and so must the rest of the report but its timings: both front ends run the
same core steps (``qperf.workflow.segment_study``, then ``analyze_study``) on the same data, and
the scene changes none of it. It keeps the series and the motion-corrected series as float32
voxels, which is what the core computes in (``PerfusionSeries.data`` is float32), the motion
fields as float32 (as the core makes them), the labels as integers, the frame times as the
shortest text that reads back to the same double, and the insertion points' pixel positions as
written (pixel -> RAS -> pixel alone would return 28.0 as 27.999999999999996); QPerf Flow hands
the segmentation, as the scene holds it, to ``analyze_study`` instead of segmenting again. The
MBF maps are compared too, as written (float32 NRRD) and as shown (float32 volume nodes).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
from QPerfFlowLib import FlowLogic  # noqa: E402
from QPerfSegLib import SegmentationLogic  # noqa: E402

from qperf import io, phantom  # noqa: E402
from qperf.cli import main  # noqa: E402
from qperf.workflow import AnalysisOptions  # noqa: E402

KEY = "mbf_mean_ml_min_g"


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    """``(cli report, GUI report, GUI exported report, CLI folder, flow logic, browser)`` of one study."""
    folder = tmp_path_factory.mktemp("identity")
    ps = phantom.generate_study(seed=5, n_slices=3, n_frames=30, shape=(48, 48), condition="stress")
    manifest = io.write_study(ps.study, folder / "study")

    assert main(["analyze", str(manifest), "--out", str(folder / "cli"), "--quiet"]) == 0
    cliReport = json.loads((folder / "cli" / "report.json").read_text(encoding="utf-8"))

    scene = slicer.vtkMRMLScene()
    seg = SegmentationLogic(scene)
    browser = seg.loadStudy(manifest).browserNode
    seg.segment(browser, AnalysisOptions(), segmenter="inprocess")
    flow = FlowLogic(scene)
    result = flow.compute(browser)
    exported = flow.exportReport(browser, folder / "gui")
    guiExported = json.loads((exported / "report.json").read_text(encoding="utf-8"))
    return cliReport, result.report, guiExported, folder / "cli", flow, browser


@pytest.mark.slow
def test_gui_and_cli_give_the_same_segment_and_global_mbf(analyses):
    cliReport, guiReport, guiExported, *_ = analyses
    cli = {k: cliReport["segments"][str(k)][KEY] for k in range(1, 17)}
    assert all(v is not None and math.isfinite(v) for v in cli.values()), "the CLI left segments without MBF"
    for report in (guiReport, guiExported):
        gui = {k: report["segments"][str(k)][KEY] for k in range(1, 17)}
        assert gui == cli
        assert report["global"][KEY] == cliReport["global"][KEY]
    assert len(guiReport["slices"]) == len(cliReport["slices"]) == 3
    for cliSlice, guiSlice in zip(cliReport["slices"], guiReport["slices"]):
        assert guiSlice[KEY] == cliSlice[KEY] and guiSlice["level"] == cliSlice["level"]
        assert guiSlice["qc"]["labels_source"] == cliSlice["qc"]["labels_source"] == "cnn"


@pytest.mark.slow
def test_gui_and_cli_give_the_same_maps_and_segment_table(analyses):
    cliReport, _, _, cliFolder, flow, browser = analyses
    for i in range(3):
        written = io.read_image(cliFolder / f"slice_{i + 1}" / "mbf.nrrd").array
        shown = flow.mapArray(browser, "mbf_ml_min_g", i)
        np.testing.assert_array_equal(shown, np.asarray(written, dtype=np.float32))
    rows = {(r["region"], r["layer"]): r[KEY] for r in flow.segmentRows(browser)}
    for k in range(1, 17):
        assert rows[(str(k), "all")] == cliReport["segments"][str(k)][KEY]


@pytest.mark.slow
def test_gui_and_cli_reports_differ_only_in_their_timings(analyses):
    cliReport, guiReport, guiExported, *_ = analyses
    untimed = [{k: v for k, v in r.items() if k not in ("timings_s", "created_utc")} for r in (cliReport, guiExported)]
    assert untimed[1] == untimed[0]
