"""The ``qperf`` command line.

Every sub-command is a module in :mod:`qperf.cli.commands` defining ``NAME``, ``HELP``,
``configure(parser)`` and ``run(args) -> int``; they are discovered at start-up, so adding a
command is adding a file. Command modules keep their heavy imports inside ``run``, so building
the parser (``qperf --help``) imports little beyond numpy.

One error contract for all of them, kept here, at the entry, for any exception: a refused
input exits with status 2 and stderr holds exactly one line ``qperf <command>: error: ...``
(after argparse's usage block for a bad option) naming the option, field or file and what was
expected and found; the traceback only with ``--debug``. Option values are checked when the
command line is read (:mod:`qperf.cli.argtypes`), inputs before any output is written. Python's
warnings are not printed: a :class:`~qperf.errors.QPerfWarning` (a number that can be read but
is probably wrong) becomes a line ``qperf <command>: warning: ...`` once the command has
succeeded, and the outputs' QC records it; other warnings (NumPy's numerical ones) and log
records of the libraries QPerf uses appear only with ``--debug``.

QPerf's own log (the ``qperf`` loggers of the steps: reading, motion correction, segmentation,
the fit, writing) goes to stderr: warnings by default, what each step did with ``-v``, details
with ``--debug``, nothing with ``-q``. ``--threads`` (default: ``QPERF_THREADS``) sizes every
step's thread pools (:func:`qperf.runtime.set_threads`) before the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from qperf import __version__
from qperf.cli.argtypes import NEGATIVE_VALUE, positive_int
from qperf.errors import QPerfError, QPerfWarning

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse with QPerf's rules: one-line errors, and ``-3,4`` or ``-1e-3`` read as values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(NEGATIVE_VALUE)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)}\n")


def _command_modules() -> list[ModuleType]:
    from qperf.cli import commands

    modules = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def common_options() -> ArgumentParser:
    """Options every sub-command accepts."""
    parent = ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and warnings")
    parent.add_argument("-v", "--verbose", action="store_true", help="log what each step does on stderr")
    parent.add_argument(
        "--debug", action="store_true", help="show the full traceback, every warning and the detailed log"
    )
    parent.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="threads of every step (default: the QPERF_THREADS environment variable, else the libraries' own)",
    )
    parent.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="qperf",
        description="Automated quantitative myocardial perfusion MRI.",
    )
    parser.add_argument("--version", action="version", version=f"qperf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = common_options()
    for module in _command_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            parents=[parent],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def one_line(text: str) -> str:
    """``text`` with every run of white space (new lines included) made one space."""
    return " ".join(str(text).split())


def describe_error(exc: BaseException) -> str:
    """The error line's text for any exception: QPerf's own message, or one that says what happened."""
    if isinstance(exc, QPerfError):
        return one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, OSError):
        reason = (exc.strerror or one_line(str(exc)) or type(exc).__name__).lower()
        target = exc.filename if exc.filename is not None else "input or output"
        return f"{target}: cannot read or write ({reason})"
    if isinstance(exc, MemoryError):
        return "not enough memory for this input (is it far larger than a perfusion study?)"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read"
    text = one_line(str(exc))
    if isinstance(exc, ValueError) and text:
        return text
    return (
        f"unexpected {type(exc).__name__}{': ' + text if text else ''} "
        "(a defect in QPerf; --debug shows where, please report it)"
    )


@contextmanager
def _quiet_libraries(debug: bool) -> Iterator[list[warnings.WarningMessage]]:
    """Record Python's warnings instead of printing them; hold back library log records unless ``debug``."""
    levels = {}
    if not debug:
        for name in ("nibabel", "nibabel.global", "pydicom", "SimpleITK", "matplotlib"):
            logger = logging.getLogger(name)
            levels[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _print_warnings(prog: str, caught: list[warnings.WarningMessage], debug: bool) -> None:
    seen: set[str] = set()
    for w in caught:
        ours = issubclass(w.category, QPerfWarning)
        if not ours and not debug:
            continue
        text = one_line(str(w.message)) if ours else f"{w.category.__name__}: {one_line(str(w.message))}"
        if text not in seen:
            seen.add(text)
            print(f"{prog}: warning: {text}", file=sys.stderr)


class _LogFormatter(logging.Formatter):
    """``qperf <command>: <level>: <message>`` on one line (``[logger]`` added with ``--debug``)."""

    def __init__(self, prog: str, debug: bool) -> None:
        super().__init__()
        self.prog, self.debug = prog, debug

    def format(self, record: logging.LogRecord) -> str:
        where = f" [{record.name}]" if self.debug else ""
        return f"{self.prog}: {record.levelname.lower()}{where}: {one_line(record.getMessage())}"


@contextmanager
def _log_to_stderr(prog: str, args: argparse.Namespace) -> Iterator[None]:
    """QPerf's log on stderr while the command runs, at the level its options ask for."""
    from qperf.logs import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    if args.quiet:
        level = logging.CRITICAL + 1
    elif args.debug:
        level = logging.DEBUG
    elif args.verbose:
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter(prog, args.debug))
    handler.setLevel(level)
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, before) if before != logging.NOTSET else level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qperf`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    prog = f"qperf {args.command}"
    with _quiet_libraries(args.debug) as caught, _log_to_stderr(prog, args):
        try:
            from qperf.runtime import env_threads, set_threads

            if args.threads is None:
                args.threads = env_threads()
            set_threads(args.threads)
            status = int(args._run(args) or EXIT_OK)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # the reader of our output went away (e.g. `qperf info ... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except Exception as exc:
            if args.debug:
                _print_warnings(prog, caught, debug=True)
                raise
            print(f"{prog}: error: {describe_error(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
    _print_warnings(prog, caught, args.debug)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
