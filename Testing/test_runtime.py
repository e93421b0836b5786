"""Device and thread settings (:mod:`qperf.runtime`) and QPerf's log (:mod:`qperf.logs`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from qperf import io, motion
from qperf.cli import main
from qperf.errors import NotAvailableError, ValidationError
from qperf.logs import forward_log
from qperf.runtime import THREAD_VARIABLES, resolve_device, set_threads

NO_CUDA = not torch.cuda.is_available()
NO_GPU = NO_CUDA and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Thread variables and torch's threads as they were before the test."""
    for name in THREAD_VARIABLES:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def moving_series():  # type: ignore[no-untyped-def]
    series, _ = motion.simulate_moving_series(3, n_frames=16, shape=(48, 48), shift_px=3.0)
    return series


@pytest.fixture
def series_file(tmp_path: Path, moving_series) -> Path:  # type: ignore[no-untyped-def]
    return io.write_series(moving_series, tmp_path / "slice.seq.nrrd")


# ----------------------------------------------------------------------------- device
@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: auto takes it")
def test_auto_takes_the_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_a_missing_device_is_refused_by_name() -> None:
    with pytest.raises(NotAvailableError, match=r"^device cuda: not available"):
        resolve_device("cuda")
    with pytest.raises(NotAvailableError, match="cuda:1"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0", 3, ""])
def test_a_device_that_is_not_one_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="device: expected one of auto, cpu, cuda, mps"):
        resolve_device(bad)


@pytest.mark.skipif(not NO_GPU, reason="auto is the GPU here")
def test_motion_correction_on_cpu_and_auto_is_identical(moving_series) -> None:  # type: ignore[no-untyped-def]
    cpu = motion.correct_series(moving_series, n_rounds=1, device="cpu")
    auto = motion.correct_series(moving_series, n_rounds=1, device="auto")
    np.testing.assert_array_equal(cpu.forward_px, auto.forward_px)
    np.testing.assert_array_equal(cpu.corrected.data, auto.corrected.data)
    assert cpu.key_frame == auto.key_frame


@pytest.mark.skipif(not NO_GPU, reason="auto is the GPU here")
def test_segmentation_on_cpu_and_auto_is_identical() -> None:
    from qperf import phantom
    from qperf.segmentation import load_segmenter

    series = phantom.generate_study(seed=77, n_slices=1, n_frames=30, motion=False, aif_images=False).study.slices[0]
    cpu = load_segmenter(device="cpu").segment(series, motion="off")
    auto_segmenter = load_segmenter(device="auto")
    assert auto_segmenter.device == torch.device("cpu")
    auto = auto_segmenter.segment(series, motion="off")
    np.testing.assert_array_equal(cpu.probabilities, auto.probabilities)
    np.testing.assert_array_equal(cpu.labels, auto.labels)
    assert cpu.insertion_points == auto.insertion_points
    assert np.count_nonzero(cpu.labels_ref == 2) > 50  # the heart was found: a real comparison


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["segment", "analyze", "moco", "aif-detect", "demo", "train", "batch"])
def test_cli_refuses_a_missing_device_before_writing(
    command: str, series_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = {
        "segment": ["segment", str(series_file), "--out", str(out)],
        "analyze": ["analyze", str(series_file), "--out", str(out)],
        "moco": ["moco", str(series_file), "--out", str(out)],
        "aif-detect": ["aif-detect", str(series_file), "--out", str(out)],
        "demo": ["demo", "--out", str(out)],
        "train": ["train", "--out", str(out), "--max-steps", "1"],
        "batch": ["batch", str(series_file), "--out", str(out)],
    }[command]
    capsys.readouterr()
    assert main([*argv, "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"qperf {command}: error: --device cuda: not available"), lines[0]
    assert captured.out == ""
    assert not out.exists()


def test_cli_refuses_an_unknown_device_name(series_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(series_file), "--out", str(tmp_path / "o"), "--device", "tpu"])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------- threads
def test_set_threads_sizes_torch_the_fit_and_new_processes(restore_threads: None) -> None:
    from qperf.kinetics._btex_fit import _threads as fit_threads

    assert set_threads(2) == 2
    assert torch.get_num_threads() == 2
    assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    assert fit_threads() == min(2, os.cpu_count() or 1)
    assert set_threads(1) == 1 and torch.get_num_threads() == 1


def test_threads_default_to_the_environment(restore_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QPERF_THREADS", "1")
    torch.set_num_threads(2)
    assert set_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.delenv("QPERF_THREADS")
    torch.set_num_threads(2)
    assert set_threads() is None and torch.get_num_threads() == 2  # nothing asked, nothing changed
    monkeypatch.setenv("QPERF_THREADS", "two")
    with pytest.raises(ValidationError, match="QPERF_THREADS: expected a positive integer, found 'two'"):
        set_threads()
    with pytest.raises(ValidationError, match="threads: expected a positive integer"):
        set_threads(0)


def test_cli_threads_option_and_environment(
    series_file: Path, restore_threads: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(2)
    assert main(["info", str(series_file), "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1 and os.environ["QPERF_THREADS"] == "1"
    monkeypatch.setenv("QPERF_THREADS", "2")
    assert main(["info", str(series_file)]) == 0
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("QPERF_THREADS", "0")
    capsys.readouterr()
    assert main(["info", str(series_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["qperf info: error: QPERF_THREADS: expected a positive integer, found '0'"]


# ----------------------------------------------------------------------------- log
def test_steps_log_through_logging(series_file: Path, moving_series, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.INFO, logger="qperf"):
        io.read_study(series_file)
        motion.correct_series(moving_series, n_rounds=1, device="cpu")
    read = [r for r in caplog.records if r.name == "qperf.io"]
    assert read and "slice.seq.nrrd: 1 slice(s) of 16 frames of 48 x 48 pixels" in read[0].getMessage()
    moco = [r for r in caplog.records if r.name == "qperf.motion.driver"]
    assert moco and moco[0].levelno == logging.INFO and "key frame" in moco[0].getMessage()


def test_forward_log_passes_records_to_a_callback(series_file: Path) -> None:
    lines: list[str] = []
    logger = logging.getLogger("qperf")
    level = logger.level
    with forward_log(lines.append):
        io.read_study(series_file)
    assert len(lines) == 1 and lines[0].startswith("read slice.seq.nrrd")
    io.read_study(series_file)
    assert len(lines) == 1 and logger.level == level and not logger.handlers  # removed afterwards


def test_cli_verbose_logs_on_stderr_and_quiet_does_not(series_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["info", str(series_file), "-v"]) == 0
    err = capsys.readouterr().err
    assert "qperf info: info: read slice.seq.nrrd: 1 slice(s)" in err
    assert main(["info", str(series_file)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["info", str(series_file), "-q", "-v"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["info", str(series_file), "--debug"]) == 0
    assert "qperf info: info [qperf.io]: read slice.seq.nrrd" in capsys.readouterr().err
