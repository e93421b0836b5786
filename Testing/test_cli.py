"""The command line: error contract, info and convert."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qperf import PerfusionSeries, SliceGeometry, __version__, io
from qperf.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qperf.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def series_file(tmp_path: Path, rng: np.random.Generator) -> Path:
    s = PerfusionSeries(
        rng.uniform(0, 100, (6, 8, 10)),
        time_s=[0.0, 0.9, 1.9, 2.8, 3.9, 4.8],
        spacing_mm=(2.0, 2.0),
        geometry=SliceGeometry(x_direction=(1, 0, 0), y_direction=(0, 0, -1)),
        n_pd_frames=1,
        name="slice 1",
    )
    path = tmp_path / "s.seq.nrrd"
    io.write_series(s, path)
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_info_describes_series(series_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(series_file)]) == 0
    out = capsys.readouterr().out
    assert "6 frames (1 PD)" in out and "matrix 8 x 10" in out and "spacing 2 x 2 mm" in out
    assert "y towards I" in out and "x towards L" in out


def test_convert_round_trip(series_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.nii.gz"
    assert main(["convert", str(series_file), str(out), "-q"]) == 0
    a, b = io.read_series(series_file), io.read_series(out)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.time_s, b.time_s)
    np.testing.assert_allclose(a.ijk_to_ras(), b.ijk_to_ras(), atol=1e-5)
    folder = tmp_path / "study"
    assert main(["convert", str(out), str(folder), "-q"]) == 0
    assert io.read_study(folder).n_slices == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "/no/such/file.nrrd"], "no such file"),
        (["convert", "/no/such/file.nrrd", "out.nrrd"], "no such file"),
    ],
)
def test_errors_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qperf {args[0]}: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage" * 100)
    result = run_cli("info", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a readable" in result.stderr


def test_convert_refuses_overwrite_and_input(series_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.npz"
    assert main(["convert", str(series_file), str(out), "-q"]) == 0
    before = out.read_bytes()
    assert main(["convert", str(series_file), str(out), "-q"]) == 2
    assert out.read_bytes() == before
    assert main(["convert", str(series_file), str(out), "-q", "--overwrite"]) == 0
    original = series_file.read_bytes()
    assert main(["convert", str(series_file), str(series_file), "--overwrite"]) == 2
    assert series_file.read_bytes() == original


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("info", str(tmp_path / "missing.nrrd"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_info_on_real_analyze(shared_data: Path) -> None:
    result = run_cli("info", str(shared_data / "qperf_rest" / "data.hdr"))
    assert result.returncode == 0, result.stderr
    assert "68 frames" in result.stdout and "matrix 47 x 51" in result.stdout
    assert "frame interval unknown" in result.stdout
    result = run_cli("info", str(shared_data / "qperf_rest" / "data.hdr"), "--frame-interval", "0.5", "--units", "gd_mmol_l")
    assert "time 0.00 to 33.50 s, interval 0.500 s" in result.stdout and "units gd_mmol_l" in result.stdout
