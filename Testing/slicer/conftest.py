"""Fixtures for the Slicer layer, tested against the real MRML of the ``slicer-core`` wheel.

Slicer finds a scripted module's library (``QPerfCommonLib``, ``QPerfSegLib``,
``QPerfFlowLib``) because the module's folder is on its module path; pytest's ``pythonpath``
setting (pyproject.toml) puts the same folders on the import path for the tests.
Everything here skips, with the reason, only when ``slicer-core`` is not installed.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def slicer_core():
    """The ``slicer`` package of the slicer-core wheel (MRML scene, nodes, slicer.util)."""
    return pytest.importorskip(
        "slicer", reason="the slicer-core wheel is not installed (pip install slicer-core); it runs the MRML glue"
    )


@pytest.fixture
def scene(slicer_core):
    """A fresh, empty MRML scene."""
    return slicer_core.vtkMRMLScene()
