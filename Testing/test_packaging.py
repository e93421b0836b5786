"""Packaging: the shipped model is package data that every kind of install finds.

The weights stay in ``models/`` at the repository root and are installed as ``qperf._models``
(``setup.py`` maps the package onto the folder). The slow tests install a copy of the source
(offline: ``--no-deps --no-build-isolation``; the dependencies come from this environment) as a
built wheel, with ``pip install``, ``pip install --target`` and as an editable install, then,
in a fresh folder and a fresh process, load the model from the install (not from this checkout)
and, for the wheel and ``--target``, run ``qperf demo``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nrrd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from qperf import phantom
from qperf.segmentation import model_store

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: The files of the shipped model that installs carry.
SHIPPED = ["qperf_seg_v2.pt", "qperf_seg_v2.json", "qperf_seg_v2.md"]

PROBE = """
import json, sys
import qperf
from qperf.segmentation import model_store
net, card, _ = model_store.load_network()
print(json.dumps({"qperf": qperf.__file__, "models": str(model_store.MODELS_DIR), "version": card["version"]}))
"""


def test_package_data_cmake_list_and_folder_name_the_same_model_files() -> None:
    assert sorted(PYPROJECT["tool"]["setuptools"]["package-data"]["qperf._models"]) == sorted(SHIPPED)
    cmake = (REPO / "CMakeLists.txt").read_text()
    match = re.search(r"set\(QPERF_MODELS\s+(.*?)\)", cmake, re.S)
    assert match is not None
    assert sorted(match.group(1).split()) == sorted(f"models/{name}" for name in SHIPPED)
    for name in SHIPPED:
        assert (REPO / "models" / name).is_file()
    assert (REPO / "models" / "__init__.py").is_file()
    assert f"{model_store.DEFAULT_MODEL}.pt" in SHIPPED


def test_license_file_and_spdx_expression() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    requires = PYPROJECT["build-system"]["requires"]
    assert requires == ["setuptools>=77"]  # the first setuptools that reads an SPDX licence string


def test_models_folder_falls_back_to_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(model_store.importlib.resources, "files", not_installed)
    assert model_store._models_dir() == REPO / "models"


def test_models_folder_prefers_the_installed_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / f"{model_store.DEFAULT_MODEL}.json").write_text("{}")
    monkeypatch.setattr(model_store.importlib.resources, "files", lambda name: tmp_path)
    assert model_store._models_dir() == tmp_path


# --- installs (slow) ------------------------------------------------------------------------


def _source_copy(tmp_path: Path) -> Path:
    """The files a source distribution holds, copied so the build writes nothing in the checkout."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "qperf", src / "qperf", ignore=ignore)
    shutil.copytree(REPO / "models", src / "models", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    return src


def _deps_path(tmp_path: Path) -> Path:
    """This environment's site-packages without qperf (its own install may be editable, whose
    finder module would answer for the fresh install's): links to everything else, for the
    dependencies."""
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("qperf", "__editable__")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    return deps


def _env(tmp_path: Path, *front: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    deps = tmp_path / "deps"
    if not deps.is_dir():
        _deps_path(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, front), str(deps)])
    env["OMP_NUM_THREADS"] = "1"
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def _pip(*args: str | Path, cwd: Path, env: dict[str, str]) -> None:
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *map(str, args)], cwd, env)


def _fresh_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, _env(tmp_path))
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _probe(python: str | Path, cwd: Path, env: dict[str, str], root: Path) -> dict[str, str]:
    """Load the shipped model in a fresh process; qperf and the model come from under ``root``."""
    cwd.mkdir(exist_ok=True)
    found = json.loads(_run([str(python), "-c", PROBE], cwd, env).strip().splitlines()[-1])
    assert Path(found["qperf"]).resolve().is_relative_to(root.resolve()), found
    assert Path(found["models"]).resolve().is_relative_to(root.resolve()), found
    return found


def _demo(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    _run([*command, "demo", "-q", "--out", "demo"], cwd, env, timeout=300)
    report = json.loads((cwd / "demo" / "analysis" / "report.json").read_text())
    assert report


@pytest.mark.slow
def test_built_wheel_ships_the_model_not_the_training_files_and_runs_the_demo(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    env = _env(tmp_path)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", "dist", str(src)],
        tmp_path,
        env,
    )
    (wheel,) = (tmp_path / "dist").glob("qperf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = archive.read(metadata).decode()
    assert sorted(n.split("/")[-1] for n in names if n.startswith("qperf/_models/")) == sorted(
        [*SHIPPED, "__init__.py"]
    )
    assert not [n for n in names if "train_config" in n or "checkpoint" in n or ".data/" in n]
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    bin_dir = _fresh_venv(tmp_path)
    _run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps", str(wheel)],
        tmp_path,
        env,
    )
    site = tmp_path / "venv"
    _probe(bin_dir / "python", tmp_path / "fresh", env, site)
    _demo([str(bin_dir / "qperf")], tmp_path / "fresh", env)


@pytest.mark.slow
def test_pip_install_target_finds_the_model_and_segments(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    target = tmp_path / "target"
    _pip("--target", target, src, cwd=tmp_path, env=_env(tmp_path))
    assert not (target / "share").exists()
    env = _env(tmp_path, target)
    _probe(sys.executable, tmp_path / "fresh", env, target)
    study = phantom.generate_study(seed=3, n_slices=1, n_frames=36, shape=(96, 96), spacing_mm=2.6)
    phantom.write_study(study, tmp_path / "study")
    series = tmp_path / "study" / "slice_1.seq.nrrd"
    _run([sys.executable, "-m", "qperf.cli", "segment", str(series), "--out", "seg", "-q"], tmp_path / "fresh", env)
    labels = nrrd.read(str(tmp_path / "fresh" / "seg" / "labels.nrrd"))[0]
    assert (labels == 2).sum() > 100  # a myocardium from the shipped weights


@pytest.mark.slow
def test_pip_install_into_an_environment_finds_the_model(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    bin_dir = _fresh_venv(tmp_path)
    env = _env(tmp_path)
    _run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps"]
        + ["--no-build-isolation", str(src)],
        tmp_path,
        env,
    )
    shutil.rmtree(src)  # the install stands alone
    found = _probe(bin_dir / "python", tmp_path / "fresh", env, tmp_path / "venv")
    assert Path(found["models"]).name == "_models"  # the package data, not a source folder


@pytest.mark.slow
def test_editable_install_reads_the_model_from_the_source_models_folder(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    bin_dir = _fresh_venv(tmp_path)
    env = _env(tmp_path)
    _run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps"]
        + ["--no-build-isolation", "-e", str(src)],
        tmp_path,
        env,
    )
    found = _probe(bin_dir / "python", tmp_path / "fresh", env, src)
    assert Path(found["models"]).resolve() == (src / "models").resolve()
    # read through the installed package, not a path guessed beside the sources
    check = "import importlib.resources as r; print(r.files('qperf._models'))"
    assert Path(_run([str(bin_dir / "python"), "-c", check], tmp_path / "fresh", env).strip()) == src / "models"
