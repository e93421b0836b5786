"""The console scripting guide (docs/slicer-console.md) runs as written, under slicer-core.

Its Python blocks are executed in order in one namespace, with ``slicer.mrmlScene`` set to a
fresh scene as inside the application; then what they produced is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "slicer-console.md"


def guideBlocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)


@pytest.mark.slow
def test_the_console_guide_runs_as_written_and_gives_arrays_and_tables(monkeypatch, capsys):
    scene = slicer.vtkMRMLScene()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    blocks = guideBlocks()
    assert len(blocks) >= 8, "the guide lost its code"
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{GUIDE.name} block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "100% " in out and "global MPR" in out
    labels, corrected = namespace["labels"], namespace["corrected"]
    assert labels.shape == corrected.data.shape and labels.dtype == np.uint8
    assert namespace["anteriorTrack"].shape == (corrected.n_frames, 2)
    assert not (namespace["seg"].labelsArray(namespace["browser"], 0)[namespace["frame"]][:2] > 0).any()
    mbf = namespace["mbf"]
    myocardium = namespace["seg"].session(namespace["browser"]).slices[0].labels_ref == 2
    assert mbf.shape == labels.shape[1:] and np.isfinite(mbf[myocardium]).mean() > 0.9
    assert namespace["mid"] and all(r["level"] == "mid" for r in namespace["mid"])
    assert (namespace["out"] / "cases" / namespace["cases"][0].name / "labels.nrrd").is_file()
    assert (namespace["reportFolder"] / "report.html").is_file() and namespace["mrml"].is_file()
    assert np.isfinite(namespace["mprReport"]["mpr"]["values"]["global"])
