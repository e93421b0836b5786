"""The Python packages QPerf needs inside Slicer, checked and installed on first use.

Nothing is installed at import time: a module calls :func:`ensureRequirements` when the user
starts work that needs the packages, with a ``confirm`` callback that asks the user (the module
passes ``slicer.util.confirmOkCancelDisplay``). Installation goes through
``slicer.pydeps.pip_ensure`` (Slicer 5.11 and later) or ``slicer.util.pip_install``; PyTorch goes
through the PyTorch extension's ``PyTorchUtils`` when it is installed, which picks the build
that matches the computer's GPU. This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Callable

from qperf.errors import NotAvailableError

from .resources import REQUIREMENTS_FILE, extensionResourcePath

#: The oldest Python the ``qperf`` package runs on (Slicer 5.9 and later ship a newer one).
MINIMUM_PYTHON = (3, 10)

_NAME_PATTERN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)")

ConfirmCallback = Callable[[str], bool]


def checkPythonVersion(versionInfo: tuple = tuple(sys.version_info[:2])) -> None:
    """Raise :class:`NotAvailableError` when this Python is older than :data:`MINIMUM_PYTHON`."""
    if tuple(versionInfo[:2]) < MINIMUM_PYTHON:
        found = ".".join(str(v) for v in versionInfo[:2])
        raise NotAvailableError(
            f"Python: QPerf needs Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or later (Slicer 5.9 or later), "
            f"found Python {found}"
        )


def readRequirements(path: Path | None = None) -> list:
    """Requirement lines of a requirements file (comments, blank lines and pip options dropped).

    ``path`` defaults to the extension's ``Resources/requirements.txt``.
    """
    path = Path(path) if path is not None else extensionResourcePath(REQUIREMENTS_FILE)
    requirements = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(line)
    return requirements


def _isSatisfied(requirement: str) -> bool:
    match = _NAME_PATTERN.match(requirement)
    if match is None:
        raise NotAvailableError(f"requirement {requirement!r}: not a valid requirement line")
    name, specifier = match.group(1), match.group(3).strip()
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # no way to compare versions: presence is all that can be checked
        return True
    return SpecifierSet(specifier).contains(installed, prereleases=True)


def missingRequirements(requirements: list | None = None) -> list:
    """The requirements (default: the extension's file) that are not installed at a matching version."""
    importlib.invalidate_caches()
    if requirements is None:
        requirements = readRequirements()
    return [r for r in requirements if not _isSatisfied(r)]


def _pipEnsure() -> Callable | None:
    """Slicer's ``pip_ensure`` (``slicer.pydeps`` from 5.11, ``slicer.packaging`` later), if any."""
    for name in ("slicer.packaging", "slicer.pydeps"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "pip_ensure"):
            return module.pip_ensure
    return None


def _install(requirements: list, requester: str) -> None:
    import slicer

    pipEnsure = _pipEnsure()
    if pipEnsure is not None:
        from packaging.requirements import Requirement

        # The user has agreed already (see ensureRequirements); self-tests need the packages too.
        try:
            pipEnsure(
                [Requirement(r) for r in requirements], prompt_install=False, requester=requester, skip_in_testing=False
            )
            return
        except TypeError:  # an older signature: fall back to the plain installer
            pass
    slicer.util.pip_install(" ".join(r.replace(" ", "") for r in requirements))


def ensureRequirements(confirm: ConfirmCallback, requirements: list | None = None, requester: str = "QPerf") -> list:
    """Install the missing requirements after the user agrees; returns what was installed.

    Parameters
    ----------
    confirm : callable(str) -> bool
        Asked, with a message naming the packages, only when something is missing.
    requirements : list of str, optional
        Defaults to the extension's ``Resources/requirements.txt``.

    Raises
    ------
    NotAvailableError
        The Python is too old, or the user declined the installation.
    """
    checkPythonVersion()
    missing = missingRequirements(requirements)
    if not missing:
        return []
    message = (
        f"{requester} needs these Python packages, which are not installed yet:\n\n"
        + "\n".join(missing)
        + "\n\nInstall them now? This downloads them and may take a few minutes."
    )
    if not confirm(message):
        raise NotAvailableError(f"Python packages: {', '.join(missing)} are needed and were not installed")
    _install(missing, requester)
    still = missingRequirements(missing)
    if still:
        raise NotAvailableError(f"Python packages: installing {', '.join(still)} failed; see the Python console")
    return missing


def ensureTorch(confirm: ConfirmCallback, versionRequirement: str = ">=2.0") -> None:
    """Make ``import torch`` work, through the PyTorch extension when it is installed.

    Raises
    ------
    NotAvailableError
        When the user declines or the installation fails.
    """
    if not missingRequirements([f"torch{versionRequirement}"]):
        return
    try:
        import PyTorchUtils
    except ImportError:
        ensureRequirements(confirm, [f"torch{versionRequirement}"], requester="QPerf (PyTorch)")
        return
    if not confirm("QPerf's segmentation network needs PyTorch, which is not installed yet. Install it now?"):
        raise NotAvailableError("PyTorch: needed for the segmentation network and was not installed")
    if (
        PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=versionRequirement)
        is None
    ):
        raise NotAvailableError("PyTorch: the installation through the PyTorch extension failed")
