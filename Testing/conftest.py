"""Shared pytest fixtures.

``shared_data`` points at the reference data beside the repository (``../shared/data``); tests
that use it skip with a clear reason where it is absent (a user's fresh clone).

Tests marked ``slow`` (training, whole Slicer sessions, end-to-end identity checks) run with
``--slow``, as CI does (the README's test command); a plain ``pytest`` leaves them out (they are
reported as deselected, not skipped) so that a developer's run stays under three minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QPERF_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real reference cases; skips the test where it is not available."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is not available (set QPERF_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
