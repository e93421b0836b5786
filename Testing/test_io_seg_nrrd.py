"""Labels as Slicer segmentation files: names, label values and terminology read back by slicerio.

The Slicer side (slicer-core opening the file as a Segmentation, the same segments as the QPerf
modules) is in ``Testing/slicer/test_slicer_seg_nrrd.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qperf.errors import OutputExistsError, ValidationError
from qperf.io.seg_nrrd import LABEL_SEGMENTS, write_labels_seg_nrrd
from qperf.types import SliceGeometry

slicerio = pytest.importorskip("slicerio", reason="slicerio is not installed (the test extra has it)")

GEOMETRY = SliceGeometry(
    origin_mm=(-118.25, 31.5, 42.125), x_direction=(0.8, 0.6, 0.0), y_direction=(0.0, 0.0, -1.0), slice_thickness_mm=8.0
)


def ring_labels(shape: tuple[int, int] = (48, 56)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - 20, xx - 25)
    labels = np.zeros(shape, np.uint8)
    labels[r < 6] = 1
    labels[(r >= 6) & (r < 10)] = 2
    labels[(r >= 10) & (r < 14) & (xx < 18)] = 3
    return labels


def test_segments_named_with_terminology_and_voxels_read_back(tmp_path: Path) -> None:
    labels = ring_labels()
    path = write_labels_seg_nrrd(labels, tmp_path / "labels_ref.seg.nrrd", spacing_mm=(1.5, 1.25), geometry=GEOMETRY)
    seg = slicerio.read_segmentation(str(path))
    np.testing.assert_array_equal(seg["voxels"][:, :, 0].T, labels)  # slicerio: (i, j, k) = (x, y, slice)
    found = {s["labelValue"]: s for s in seg["segments"]}
    assert sorted(found) == [1, 2, 3]
    for spec in LABEL_SEGMENTS:
        segment = found[spec.label]
        assert (segment["id"], segment["name"]) == (spec.segment_id, spec.name)
        terms = segment["terminology"]
        assert terms["category"] == ["SCT", "123037004", "Anatomical Structure"]
        assert terms["type"] == ["SCT", *spec.type_code]
    assert found[2]["terminology"]["anatomicRegion"] == ["SCT", "87878005", "Left ventricle"]
    ijk_to_lps = np.asarray(seg["ijkToLPS"])
    np.testing.assert_allclose(ijk_to_lps[:3, 3], GEOMETRY.origin_mm)
    np.testing.assert_allclose(ijk_to_lps[:3, 0], 1.25 * np.asarray(GEOMETRY.x_direction), atol=1e-9)
    np.testing.assert_allclose(ijk_to_lps[:3, 1], 1.5 * np.asarray(GEOMETRY.y_direction), atol=1e-9)


def test_empty_labels_still_name_every_segment(tmp_path: Path) -> None:
    path = write_labels_seg_nrrd(np.zeros((8, 9), np.uint8), tmp_path / "empty.seg.nrrd", spacing_mm=(1.0, 1.0))
    assert [s["name"] for s in slicerio.read_segmentation(str(path))["segments"]] == [s.name for s in LABEL_SEGMENTS]


@pytest.mark.parametrize(
    ("labels", "name", "message"),
    [
        (np.full((4, 4), 4, np.uint8), "a.seg.nrrd", "expected values 0-3, found 4 to 4"),
        (np.zeros((2, 4, 4), np.uint8), "a.seg.nrrd", r"expected an integer \(y, x\) label map"),
        (np.zeros((4, 4), np.float32), "a.seg.nrrd", r"expected an integer \(y, x\) label map"),
        (np.zeros((4, 4), np.uint8), "a.nrrd", "expected a name ending in .seg.nrrd"),
    ],
)
def test_bad_labels_or_name_are_refused(tmp_path: Path, labels: np.ndarray, name: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        write_labels_seg_nrrd(labels, tmp_path / name, spacing_mm=(1.0, 1.0))
    assert not any(tmp_path.iterdir())


def test_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    path = write_labels_seg_nrrd(ring_labels(), tmp_path / "l.seg.nrrd", spacing_mm=(1.0, 1.0))
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_labels_seg_nrrd(np.zeros((48, 56), np.uint8), path, spacing_mm=(1.0, 1.0))
    assert path.read_bytes() == before
    write_labels_seg_nrrd(np.zeros((48, 56), np.uint8), path, spacing_mm=(1.0, 1.0), overwrite=True)
    assert not slicerio.read_segmentation(str(path))["voxels"].any()
