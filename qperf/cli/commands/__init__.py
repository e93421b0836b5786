"""Sub-commands of ``qperf``: one module each, discovered by :func:`qperf.cli.build_parser`.

A command module defines ``NAME`` (str), ``HELP`` (one line), optionally ``DESCRIPTION`` and
``ORDER`` (sort key in the help), ``configure(parser)`` to add its arguments, and
``run(args) -> int``. Common options (``--quiet``, ``--debug``, ``--overwrite``) are added by the
framework. Commands raise :class:`qperf.errors.QPerfError` for bad input; the framework turns it
into one line and exit status 2.

Every command module is imported to build the parser (``qperf --help`` included), so at module
level a command imports only what its arguments need (``argparse``, numpy, :mod:`qperf.errors`,
:mod:`qperf.types`, :mod:`._options`); everything else (:mod:`qperf.io`, the workflow, torch,
matplotlib) is imported inside ``run`` and its helpers. ``Testing/test_imports.py`` checks that
building the parser loads none of the heavy packages.
"""
