"""Progress reporting through an injected callback.

Library functions that take long accept ``progress: ProgressCallback | None`` and call it with
the fraction done (0 to 1) and a short message. The command line passes a terminal progress bar
(tqdm, only when stderr is a terminal and ``--quiet`` is not given); Slicer passes its own.

A long computation is cancelled the same way: :func:`checked_progress` wraps a callback so
that each report first checks a :class:`CancelToken` (set from the Slicer modules' Cancel
button) and raises :class:`AnalysisCancelled` once it is set; the library loops stop at their
next report without knowing about cancellation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from qperf.errors import QPerfError

ProgressCallback = Callable[[float, str], None]


class AnalysisCancelled(QPerfError):
    """The user cancelled a running computation; it returned nothing."""


class CancelToken:
    """A flag that a long computation checks at its progress reports (set by a Cancel button)."""

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        """Ask the computation to stop at its next progress report."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        """Raise :class:`AnalysisCancelled` when cancel was requested."""
        if self._cancelled:
            raise AnalysisCancelled("the analysis was cancelled")


def checked_progress(progress: ProgressCallback | None, cancel: CancelToken | None) -> ProgressCallback:
    """A progress callback that checks ``cancel`` first, then passes the fraction (clamped to 0-1) on.

    Parameters
    ----------
    progress : callable(fraction, message), optional
        Where the reports go (None: nowhere).
    cancel : CancelToken, optional
        Checked at every report.

    Raises
    ------
    AnalysisCancelled
        From the returned callback, at the first report after ``cancel`` was set.
    """

    def report(fraction: float, message: str = "") -> None:
        if cancel is not None:
            cancel.check()
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    return report


def null_progress(fraction: float, message: str = "") -> None:
    """A progress callback that does nothing."""


def scaled(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback:
    """A callback mapping 0..1 onto ``start..stop`` of ``progress`` (for nested steps)."""
    if progress is None:
        return null_progress

    def inner(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return inner


class TerminalProgress:
    """A tqdm bar driven by fraction callbacks; silent when disabled or not on a terminal."""

    def __init__(self, description: str = "", enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.description = description
        self._bar = None

    def __enter__(self) -> TerminalProgress:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=100, desc=self.description, leave=False, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}"
            )
        return self

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._bar is not None:
            target = int(round(100 * min(max(fraction, 0.0), 1.0)))
            self._bar.update(max(target - self._bar.n, 0))
            if message:
                self._bar.set_postfix_str(message, refresh=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
