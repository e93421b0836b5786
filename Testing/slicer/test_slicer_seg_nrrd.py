"""Slicer opens the labels written as ``.seg.nrrd`` as a Segmentation with the QPerf modules' segments."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
from QPerfCommonLib.labels import SEGMENTS, labelsFromSegmentationNode  # noqa: E402

from qperf.io.seg_nrrd import LABEL_SEGMENTS, write_labels_seg_nrrd  # noqa: E402
from qperf.types import PerfusionSeries, SliceGeometry  # noqa: E402


def test_core_segment_terms_are_the_slicer_modules_segments():
    assert [(s.label, s.segment_id, s.name, tuple(s.color), s.terminology) for s in LABEL_SEGMENTS] == [
        (s.label, s.segmentId, s.name, tuple(s.color), s.terminology) for s in SEGMENTS
    ]


def test_seg_nrrd_opens_as_a_segmentation_with_names_terminology_and_labels(tmp_path):
    geometry = SliceGeometry(
        origin_mm=(-40.0, 12.5, 30.0), x_direction=(0.6, 0.8, 0.0), y_direction=(0.0, 0.0, -1.0), slice_thickness_mm=8.0
    )
    series = PerfusionSeries(np.zeros((2, 30, 34), np.float32), [0.0, 1.0], spacing_mm=(1.4, 1.2), geometry=geometry)
    yy, xx = np.mgrid[:30, :34]
    r = np.hypot(yy - 14, xx - 16)
    labels = np.zeros((30, 34), np.uint8)
    labels[r < 5] = 1
    labels[(r >= 5) & (r < 8)] = 2
    labels[(r >= 8) & (r < 11) & (xx < 10)] = 3
    path = write_labels_seg_nrrd(labels, tmp_path / "labels_ref.seg.nrrd", spacing_mm=(1.4, 1.2), geometry=geometry)

    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == [
        s.segment_id for s in LABEL_SEGMENTS
    ]
    for spec in LABEL_SEGMENTS:
        segment = segmentation.GetSegment(spec.segment_id)
        assert segment.GetName() == spec.name and segment.GetTerminology() == spec.terminology
    np.testing.assert_array_equal(labelsFromSegmentationNode(node, labels.shape, series.ijk_to_ras()), labels)
