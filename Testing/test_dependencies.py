"""One dependency list: the Slicer extension's requirements file is made from pyproject.toml.

``Resources/requirements.txt`` (what the Slicer modules install on first use) is the core
dependencies without PyTorch (which comes through the PyTorch extension) plus the ``dicom``
extra. The test fails when the two drift; ``python Testing/test_dependencies.py`` rewrites the
file from pyproject.toml.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "Resources" / "requirements.txt"
#: Extras the Slicer modules need besides the core dependencies.
SLICER_EXTRAS = ("dicom",)
#: Core dependencies installed in Slicer by other means.
NOT_IN_SLICER_FILE = {"torch": "PyTorch is installed through the PyTorch extension (PyTorchUtils)"}

HEADER = """\
# Python packages the QPerf Slicer modules install on first use (after asking the user).
# Made from pyproject.toml (the core dependencies and the {extras} extra) by
# `python Testing/test_dependencies.py`; Testing/test_dependencies.py fails when they differ.
# numpy and SimpleITK ship with Slicer and are listed for completeness.
# PyTorch is installed separately through the PyTorch extension (PyTorchUtils), which picks
# the build matching the computer's GPU.
"""


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def slicer_requirements(project: dict | None = None) -> list[str]:
    """The requirement lines of the Slicer modules, from pyproject.toml."""
    project = (project or pyproject())["project"]
    lines = [r for r in project["dependencies"] if _name(r) not in NOT_IN_SLICER_FILE]
    for extra in SLICER_EXTRAS:
        lines += project["optional-dependencies"][extra]
    return lines


def requirements_text(project: dict | None = None) -> str:
    return (
        HEADER.format(extras=", ".join(f"`{e}`" for e in SLICER_EXTRAS))
        + "\n".join(slicer_requirements(project))
        + "\n"
    )


def test_slicer_requirements_file_is_made_from_pyproject() -> None:
    assert REQUIREMENTS.read_text(encoding="utf-8") == requirements_text(), (
        "Resources/requirements.txt differs from pyproject.toml: run `python Testing/test_dependencies.py`"
    )


def test_drift_is_caught() -> None:
    project = pyproject()
    project["project"]["dependencies"] = [*project["project"]["dependencies"], "nosuchpackage>=1"]
    assert requirements_text(project) != REQUIREMENTS.read_text(encoding="utf-8")
    project = pyproject()
    project["project"]["optional-dependencies"]["dicom"] = ["pyjpegls>=9"]
    assert requirements_text(project) != REQUIREMENTS.read_text(encoding="utf-8")


def test_runtime_needs_and_test_only_packages() -> None:
    project = pyproject()["project"]
    core = {_name(r): r for r in project["dependencies"]}
    assert core["pydicom"] == "pydicom>=3.0"  # pixel handlers, dataset API and compression of pydicom 3
    assert "h5py" not in core and "slicerio" not in core  # both read files in tests only
    test = {_name(r) for r in project["optional-dependencies"]["test"]}
    assert "h5py" in test and "qperf[dicom]" in project["optional-dependencies"]["test"]
    qperf_sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "qperf").rglob("*.py"))
    assert not re.search(r"^\s*(import|from)\s+h5py", qperf_sources, re.M)


def test_readme_set_up_installs_the_dicom_extra_and_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    set_up = re.search(r"pip install -q torch==2\.13\.0 -e \"\.\[([a-z,]+)\]\" && \.venv/bin/qperf demo", readme)
    assert set_up is not None and "dicom" in set_up.group(1).split(",")
    test_command = next(line for line in readme.splitlines() if line.startswith("python3 -m venv") and "[test]" in line)
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


if __name__ == "__main__":
    REQUIREMENTS.write_text(requirements_text(), encoding="utf-8")
    sys.stdout.write(f"wrote {REQUIREMENTS}\n")
