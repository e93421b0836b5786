"""Progress callbacks that cancel: a token set from elsewhere stops a computation at its next report."""

from __future__ import annotations

import pytest

from qperf.errors import QPerfError
from qperf.progress import AnalysisCancelled, CancelToken, checked_progress, scaled


def test_reports_are_clamped_and_passed_on_until_cancel_is_set() -> None:
    seen: list[tuple[float, str]] = []
    token = CancelToken()
    report = checked_progress(lambda f, m: seen.append((f, m)), token)
    report(-0.5, "start")
    scaled(report, 0.5, 1.0)(0.5, "half of the second half")
    report(1.5)
    assert seen == [(0.0, "start"), (0.75, "half of the second half"), (1.0, "")]
    assert not token.cancelled
    token.cancel()
    assert token.cancelled
    with pytest.raises(AnalysisCancelled, match="cancelled"):
        report(0.9, "after cancel")
    assert len(seen) == 3, "a cancelled report reached the callback"
    assert issubclass(AnalysisCancelled, QPerfError)


def test_without_a_callback_or_a_token_reports_do_nothing() -> None:
    checked_progress(None, None)(0.3, "nothing")
    with pytest.raises(AnalysisCancelled):
        token = CancelToken()
        token.cancel()
        checked_progress(None, token)(0.3)
