"""A motion correction on disk: written, read back bit for bit, and what ``qperf moco`` and
``qperf segment --reference`` write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qperf import io, motion, phantom
from qperf.cli import main
from qperf.errors import FormatError, ValidationError
from qperf.motion.folder import read_motion_folder, write_motion_folder


@pytest.fixture(scope="module")
def corrected() -> tuple:
    series, _ = motion.simulate_moving_series(3, n_frames=16, shape=(48, 48), shift_px=3.0)
    return series, motion.correct_series(series, n_rounds=1)


def test_a_written_correction_reads_back_bit_for_bit(corrected: tuple, tmp_path: Path) -> None:
    series, result = corrected
    folder = write_motion_folder(result, tmp_path / "motion")
    assert sorted(p.name for p in folder.iterdir()) == [
        "corrected.seq.nrrd",
        "forward_px.nrrd",
        "inverse_px.nrrd",
        "moco.json",
    ]
    back = read_motion_folder(folder)
    np.testing.assert_array_equal(back.forward_px, result.forward_px)
    np.testing.assert_array_equal(back.inverse_px, result.inverse_px)
    assert back.forward_px.dtype == np.float32 and back.key_frame == result.key_frame
    assert back.region == result.region and back.engine == result.engine and back.settings == result.settings
    assert back.quality["score"] == result.quality["score"]
    np.testing.assert_array_equal(back.corrected.data, result.corrected.data)
    np.testing.assert_array_equal(back.corrected.time_s, result.corrected.time_s)
    # With the acquired series, the corrected one is made as correct_series makes it.
    again = read_motion_folder(folder, series)
    assert again.corrected.spacing_mm == result.corrected.spacing_mm
    assert again.corrected.geometry == result.corrected.geometry
    assert dict(again.corrected.metadata) == dict(result.corrected.metadata)
    labels = np.zeros(series.shape, np.uint8)
    labels[20:28, 20:28] = 2
    np.testing.assert_array_equal(
        motion.labels_over_frames(labels, again, series.n_frames),
        motion.labels_over_frames(labels, result, series.n_frames),
    )


def test_qperf_moco_output_is_a_motion_folder(corrected: tuple, tmp_path: Path) -> None:
    series, _ = corrected
    source = io.write_series(series, tmp_path / "slice.seq.nrrd")
    assert main(["moco", str(source), "--out", str(tmp_path / "moco"), "--rounds", "1", "--quiet"]) == 0
    result = read_motion_folder(tmp_path / "moco", series)
    record = json.loads((tmp_path / "moco" / "moco.json").read_text())
    assert result.key_frame == record["key_frame"] and result.forward_px.shape == (series.n_frames, 2, *series.shape)
    stored = io.read_series(tmp_path / "moco" / "corrected.seq.nrrd")
    np.testing.assert_array_equal(result.corrected.data, stored.data)


def test_bad_motion_folders_are_named(corrected: tuple, tmp_path: Path) -> None:
    series, result = corrected
    with pytest.raises(FormatError, match="not a motion folder"):
        read_motion_folder(tmp_path)
    folder = write_motion_folder(result, tmp_path / "motion")
    with pytest.raises(ValidationError, match="expected the shape"):
        read_motion_folder(folder, series.replace(data=series.data[:, :40]))
    (folder / "inverse_px.nrrd").unlink()
    with pytest.raises(FormatError, match="no such motion field file"):
        read_motion_folder(folder)
    with pytest.raises(ValidationError, match="MotionResult"):
        write_motion_folder(series, tmp_path / "other")  # type: ignore[arg-type]


def test_segment_reference_writes_what_rebuilds_the_segmentation(tmp_path: Path) -> None:
    """``qperf segment --reference``: the labels on the corrected grid and the correction, as in this process."""
    from qperf.segmentation import load_segmenter

    series = phantom.generate_study(seed=4, n_slices=1, n_frames=30, shape=(48, 48)).study.slices[0]
    source = io.write_series(series, tmp_path / "slice.seq.nrrd")
    out = tmp_path / "seg"
    args = ["segment", str(source), "--out", str(out), "--motion", "on", "--reference", "--threads", "1", "-q"]
    assert main(args) == 0
    here = load_segmenter(threads=1).segment(io.read_series(source), motion="on")
    np.testing.assert_array_equal(io.read_image(out / "labels_ref.nrrd").array, here.labels_ref)
    np.testing.assert_array_equal(io.read_image(out / "labels.nrrd").array, here.labels)
    result = read_motion_folder(out / "motion", series)
    np.testing.assert_array_equal(result.forward_px, here.extras["motion"].forward_px)
    assert result.key_frame == here.extras["motion"].key_frame
    still = tmp_path / "still"
    assert main(["segment", str(source), "--out", str(still), "--motion", "off", "--reference", "-q"]) == 0
    assert (still / "labels_ref.nrrd").is_file() and not (still / "motion").exists()
