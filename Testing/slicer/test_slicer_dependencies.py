"""First-use dependency checks of the Slicer modules (no installation happens in these tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")

from QPerfCommonLib import dependencies  # noqa: E402
from QPerfCommonLib.resources import extensionResourcePath, resourceCandidates  # noqa: E402

from qperf import NotAvailableError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def names(requirements):
    return {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in requirements}


def test_requirements_file_is_found_and_matches_the_package_dependencies():
    assert extensionResourcePath("requirements.txt") == REPO / "Resources" / "requirements.txt"
    requirements = dependencies.readRequirements()
    pyproject = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M)
    assert block, "pyproject.toml has no [project] dependencies list"
    declared = names(re.findall(r'"([^"]+)"', block.group(1)))
    dicom = re.search(r"^dicom = \[(.*?)\]", pyproject, re.S | re.M)
    assert dicom, "pyproject.toml has no dicom extra"
    declared |= names(re.findall(r'"([^"]+)"', dicom.group(1)))
    # PyTorch comes through the PyTorch extension, not through this file.
    assert names(requirements) == declared - {"torch"}


def test_everything_needed_is_installed_here_so_nobody_is_asked():
    asked = []
    assert dependencies.missingRequirements() == []
    assert dependencies.ensureRequirements(asked.append) == []
    assert asked == []


def test_missing_or_too_old_packages_are_listed_and_need_consent():
    missing = dependencies.missingRequirements(["numpy<1.0", "qperf-no-such-package-xyz>=1", "scipy"])
    assert missing == ["numpy<1.0", "qperf-no-such-package-xyz>=1"]
    asked = []

    def decline(message):
        asked.append(message)
        return False

    with pytest.raises(NotAvailableError, match="qperf-no-such-package-xyz>=1 are needed and were not installed"):
        dependencies.ensureRequirements(decline, ["qperf-no-such-package-xyz>=1"])
    assert len(asked) == 1 and "qperf-no-such-package-xyz>=1" in asked[0]


def test_requirement_files_skip_comments_and_options(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\n--index-url https://example.invalid\nnumpy>=1.2  # inline\npynrrd\n")
    assert dependencies.readRequirements(path) == ["numpy>=1.2", "pynrrd"]
    with pytest.raises(NotAvailableError, match="not a valid requirement line"):
        dependencies.missingRequirements(["!!"])


def test_python_older_than_310_is_refused_with_the_slicer_version_to_use():
    with pytest.raises(
        NotAvailableError, match=r"needs Python 3.10 or later \(Slicer 5.9 or later\), found Python 3.9"
    ):
        dependencies.checkPythonVersion((3, 9))
    dependencies.checkPythonVersion((3, 12))


def test_missing_resources_name_the_places_searched():
    candidates = resourceCandidates("ColorTables/none.txt")
    assert candidates[1] == REPO / "Resources" / "ColorTables" / "none.txt"
    with pytest.raises(NotAvailableError, match="resource ColorTables/none.txt: not found"):
        extensionResourcePath("ColorTables/none.txt")
