"""Sub-commands of ``qperf``: one module each, discovered by :func:`qperf.cli.build_parser`.

A command module defines ``NAME`` (str), ``HELP`` (one line), optionally ``DESCRIPTION`` and
``ORDER`` (sort key in the help), ``configure(parser)`` to add its arguments, and
``run(args) -> int``. Common options (``--quiet``, ``--debug``, ``--overwrite``) are added by the
framework. Commands raise :class:`qperf.errors.QPerfError` for bad input; the framework turns it
into one line and exit status 2.
"""
