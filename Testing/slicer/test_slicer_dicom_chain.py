"""A study through every representation: DICOM -> NRRD sequences -> Slicer sequence nodes -> PerfusionSeries."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

from QPerfCommonLib import loadStudy, studyFromBrowserNode  # noqa: E402
from QPerfCommonLib.selftest import checkSeriesEqual, makeTestStudy  # noqa: E402

from qperf import io  # noqa: E402
from qperf.io.dicom_write import write_dicom_study  # noqa: E402


def test_dicom_study_reaches_the_scene_and_comes_back_identical(scene, tmp_path):
    generated = makeTestStudy(nFrames=12, shape=(14, 18))
    # Integer-valued signal, as scanners store it, so DICOM keeps it exactly.
    study = generated.replace(slices=tuple(s.replace(data=np.round(s.data)) for s in generated.slices), aif=None)
    dicom_study = io.read_study(write_dicom_study(study, tmp_path / "dicom"))
    assert dicom_study.n_slices == 2
    manifest = io.write_study(dicom_study, tmp_path / "nrrd")
    nodes = loadStudy(manifest, scene)
    back = studyFromBrowserNode(nodes.browserNode)
    assert back.n_slices == dicom_study.n_slices
    for i, (from_dicom, restored) in enumerate(zip(dicom_study.slices, back.slices, strict=True)):
        checkSeriesEqual(from_dicom, restored, f"slice {i + 1}")
        np.testing.assert_array_equal(restored.data, from_dicom.data)
        np.testing.assert_array_equal(restored.time_s, from_dicom.time_s)
        np.testing.assert_allclose(restored.ijk_to_ras(), from_dicom.ijk_to_ras(), atol=1e-9)
    # and what DICOM held is the generated study (same pixels, geometry; times from its clock)
    by_origin = {tuple(np.round(s.geometry.origin_mm, 3)): s for s in study.slices}
    for restored in back.slices:
        original = by_origin[tuple(np.round(restored.geometry.origin_mm, 3))]
        np.testing.assert_array_equal(restored.data, original.data)
        np.testing.assert_allclose(np.diff(restored.time_s), np.diff(original.time_s), atol=1e-3)
        np.testing.assert_allclose(restored.ijk_to_ras(), original.ijk_to_ras(), atol=1e-4)
        assert restored.n_pd_frames == original.n_pd_frames
