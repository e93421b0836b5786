"""QPerf's log: the standard :mod:`logging` loggers ``qperf.<module>`` of the steps.

Every step logs through ``logging.getLogger(__name__)`` (a child of :data:`LOGGER_NAME`):
reading a study (:mod:`qperf.io`), motion correction (:mod:`qperf.motion`), segmentation
(:mod:`qperf.segmentation`), the analysis steps (:mod:`qperf.workflow`) and writing the results.
``INFO`` says what a step did (sizes, decisions, times), ``DEBUG`` gives details. QPerf adds no
handler: a script configures :mod:`logging` as it likes (``logging.basicConfig(level="INFO")``),
the command line shows the log on stderr (``-v``, ``--debug``, ``-q``), and the Slicer modules
pass it to their status line with :func:`forward_log`.

>>> with forward_log(print):            # every INFO record of QPerf printed while it runs
...     analyze_study(study)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Name of the logger above every QPerf logger.
LOGGER_NAME = "qperf"


class CallbackHandler(logging.Handler):
    """A :class:`logging.Handler` that passes each record's one-line message to ``callback``.

    Parameters
    ----------
    callback : callable(str)
        Receives ``"<message>"`` (warnings and errors as ``"warning: <message>"``); a callback that
        raises does not stop the step that logged.
    level : int
        Lowest level passed on.
    """

    def __init__(self, callback: Callable[[str], None], level: int = logging.INFO) -> None:
        super().__init__(level)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().split())
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            self.callback(text)
        except Exception:  # a log line must never break the computation
            self.handleError(record)


@contextmanager
def forward_log(callback: Callable[[str], None] | None, level: int = logging.INFO) -> Iterator[CallbackHandler | None]:
    """Pass QPerf's log records of ``level`` and above to ``callback`` while the block runs.

    The ``qperf`` logger's level is lowered to ``level`` for the block when it is higher (or
    unset) and restored afterwards. A ``callback`` of None changes nothing.
    """
    if callback is None:
        yield None
        return
    logger = logging.getLogger(LOGGER_NAME)
    handler = CallbackHandler(callback, level)
    before = logger.level
    logger.addHandler(handler)
    if before == logging.NOTSET or before > level:
        logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
