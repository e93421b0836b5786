"""The ``qperf`` command line.

Every sub-command is a module in :mod:`qperf.cli.commands` defining ``NAME``, ``HELP``,
``configure(parser)`` and ``run(args) -> int``; they are discovered at start-up, so adding a
command is adding a file. Command modules keep their heavy imports inside ``run``, so building
the parser (``qperf --help``) imports little beyond numpy. One error contract for all of them: a :class:`~qperf.errors.QPerfError`
(or any bad-input ``ValueError``/``OSError``) prints ``qperf: error: <one line>`` and exits 2,
with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from qperf import __version__
from qperf.errors import QPerfError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


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


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command accepts."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors; no progress bars")
    parent.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parent.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qperf`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args._run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("qperf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of our output went away (e.g. `qperf info ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (QPerfError, ValueError, OSError, MemoryError) as exc:
        if args.debug:
            raise
        print(f"qperf: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
