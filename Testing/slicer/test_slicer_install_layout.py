"""The installed extension's layout, rebuilt from the CMake file lists, runs on its own.

Slicer's build copies every listed module script and resource into one ``qt-scripted-modules``
folder (keeping relative paths) and puts that folder on ``sys.path``. This test makes that
folder from the lists in the CMakeLists.txt files (and the ``qperf/`` glob), then, in a fresh
Python process, imports ``qperf`` from it (not from the development checkout), finds the shared
resources and runs every module's self-test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import slicer
import qperf, qperf.io
import QPerfCommonLib, QPerfSegLib, QPerfFlowLib
from QPerfCommonLib.resources import extensionResourcePath
from QPerfCommonLib.selftest import runSelfTest as commonSelfTest
from QPerfSegLib.selftest import runSelfTest as segSelfTest
from QPerfFlowLib.selftest import runSelfTest as flowSelfTest
commonSelfTest(slicer.vtkMRMLScene())
segSelfTest(slicer.vtkMRMLScene())
flowSelfTest(slicer.vtkMRMLScene())
print(json.dumps({
    "qperf": qperf.__file__,
    "requirements": str(extensionResourcePath("requirements.txt")),
    "colorTable": str(extensionResourcePath("ColorTables/QPerfPerfusion.txt")),
    "io": qperf.io.__file__,
    "libraries": [m.__file__ for m in (QPerfCommonLib, QPerfSegLib, QPerfFlowLib)],
}))
"""


def cmakeItems(text: str, variable: str, moduleName: str = "") -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    return [item.replace("${MODULE_NAME}", moduleName) for item in match.group(1).split()]


def install(source: Path, relative: str, destination: Path) -> None:
    target = destination / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / relative, target)


@pytest.mark.slow
def test_installed_layout_imports_its_own_qperf_and_passes_the_self_tests(tmp_path):
    modules = tmp_path / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    top = (REPO / "CMakeLists.txt").read_text()
    core = [p.relative_to(REPO).as_posix() for p in (REPO / "qperf").rglob("*.py") if "__pycache__" not in p.parts]
    data = [p.relative_to(REPO).as_posix() for p in (REPO / "qperf").rglob("*") if p.name == "py.typed"]
    data += [p.relative_to(REPO).as_posix() for p in (REPO / "qperf" / "data").rglob("*") if p.is_file()]
    models = cmakeItems(top, "QPERF_MODELS")
    for relative in core + data + models + cmakeItems(top, "QPERF_SHARED_RESOURCES"):
        install(REPO, relative, modules)
    for module in ("QPerfCommon", "QPerfSeg", "QPerfFlow"):
        text = (REPO / module / "CMakeLists.txt").read_text()
        for relative in cmakeItems(text, "MODULE_PYTHON_SCRIPTS", module) + cmakeItems(
            text, "MODULE_PYTHON_RESOURCES", module
        ):
            install(REPO / module, relative, modules)
    assert (modules / "Resources" / "UI" / "QPerfSeg.ui").is_file()

    env = dict(os.environ, PYTHONPATH=str(modules), OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert Path(found["qperf"]) == modules / "qperf" / "__init__.py"
    assert Path(found["requirements"]) == modules / "Resources" / "requirements.txt"
    assert Path(found["colorTable"]) == modules / "Resources" / "ColorTables" / "QPerfPerfusion.txt"
    assert Path(found["io"]) == modules / "qperf" / "io" / "__init__.py"
    libraries = [Path(p) for p in found["libraries"]]
    assert libraries == [modules / f"{m}Lib" / "__init__.py" for m in ("QPerfCommon", "QPerfSeg", "QPerfFlow")]
