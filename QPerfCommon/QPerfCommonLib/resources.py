"""Where the extension's shared resources are, in a source checkout and in an installed extension.

A source checkout keeps them in ``Resources/`` at the repository root, beside the module
folders; an installed extension merges every module's ``Resources/`` into one folder beside the
module files (``qt-scripted-modules/Resources``). Both places are searched.
"""

from __future__ import annotations

from pathlib import Path

from qperf.errors import NotAvailableError

REQUIREMENTS_FILE = "requirements.txt"
PERFUSION_COLOR_TABLE_FILE = "ColorTables/QPerfPerfusion.txt"


def resourceCandidates(relativePath: str) -> list:
    """The paths, in search order, where the resource ``relativePath`` may be."""
    moduleDir = Path(__file__).resolve().parent.parent
    return [moduleDir / "Resources" / relativePath, moduleDir.parent / "Resources" / relativePath]


def extensionResourcePath(relativePath: str) -> Path:
    """The path of an extension resource such as ``"requirements.txt"``.

    Raises
    ------
    NotAvailableError
        When the resource is in none of the searched places.
    """
    candidates = resourceCandidates(relativePath)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise NotAvailableError(f"resource {relativePath}: not found; looked in {', '.join(str(c) for c in candidates)}")
