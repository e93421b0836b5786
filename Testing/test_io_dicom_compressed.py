"""Compressed DICOM input: JPEG-LS and JPEG 2000 copies of a phantom study read as the original.

The copies are made by pydicom (``Dataset.compress``: pyjpegls encodes JPEG-LS, pylibjpeg-openjpeg
JPEG 2000, both in the ``dicom`` extra); lossless compression must give back every pixel, every
frame time and the geometry. A slow test runs ``qperf analyze`` on the copies and compares the
reports with the original's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, JPEG2000Lossless, JPEGLSLossless

from qperf import phantom
from qperf.cli import main as cli_main
from qperf.errors import NotAvailableError
from qperf.io.dicom import read_dicom_folder, write_dicom_study
from qperf.types import PerfusionStudy

SYNTAXES = {"jpeg-ls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless}


def compressed_copy(source: Path, out: Path, syntax: UID) -> Path:
    """Every file of ``source`` compressed with ``syntax`` into ``out`` (same relative paths)."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        target = out / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    return out


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = phantom.generate_study(seed=7, n_frames=12, motion=False).study
    return write_dicom_study(study, tmp_path_factory.mktemp("dicom") / "original")


def _assert_same(read: PerfusionStudy, reference: PerfusionStudy) -> None:
    assert len(read.slices) == len(reference.slices) and len(read.aif_series) == len(reference.aif_series)
    for a, b in zip([*read.slices, *read.aif_series], [*reference.slices, *reference.aif_series], strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.time_s, b.time_s)
        assert a.geometry == b.geometry and a.spacing_mm == b.spacing_mm and a.n_pd_frames == b.n_pd_frames


@pytest.mark.parametrize("name", sorted(SYNTAXES))
def test_compressed_copy_reads_the_same_as_the_original(original: Path, tmp_path: Path, name: str) -> None:
    copy = compressed_copy(original, tmp_path / name, SYNTAXES[name])
    first = sorted(copy.rglob("*.dcm"))[0]
    assert pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID == SYNTAXES[name]
    assert sum(p.stat().st_size for p in copy.rglob("*.dcm")) < sum(p.stat().st_size for p in original.rglob("*.dcm"))
    _assert_same(read_dicom_folder(copy), read_dicom_folder(original))


def test_missing_decoder_is_named_in_one_line(original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.pixels import get_decoder

    copy = compressed_copy(original, tmp_path / "jpeg-ls", JPEGLSLossless)
    decoder = get_decoder(JPEGLSLossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pyjpegls": ("pyjpegls>=1.4",)})
    with pytest.raises(NotAvailableError) as info:
        read_dicom_folder(copy)
    message = str(info.value)
    assert "\n" not in message
    assert "JPEG-LS Lossless" in message and "pyjpegls>=1.4" in message and "qperf[dicom]" in message


@pytest.mark.slow
def test_compressed_copies_of_a_moving_phantom_study_give_the_same_report(tmp_path: Path) -> None:
    # the demo's phantom (seed 0, with motion), two slices of 96 x 96 pixels and 36 frames to keep the three analyses short
    study = phantom.generate_study(seed=0, n_slices=2, n_frames=36, shape=(96, 96), spacing_mm=2.6).study
    original = write_dicom_study(study, tmp_path / "original")
    reports = {}
    for name, folder in [
        ("original", original),
        *((n, compressed_copy(original, tmp_path / n, s)) for n, s in SYNTAXES.items()),
    ]:
        out = tmp_path / f"analysis-{name}"
        assert cli_main(["analyze", str(folder), "--out", str(out), "-q"]) == 0
        report = json.loads((out / "report.json").read_text())
        reports[name] = {k: report[k] for k in ("maps", "segments", "territories", "global", "slices")}
        shutil.rmtree(out)
    for name in SYNTAXES:
        assert reports[name] == reports["original"], name
