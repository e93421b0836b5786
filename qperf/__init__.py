"""QPerf: automated quantitative myocardial perfusion MRI.

The core library: arrays in, arrays and result dataclasses out; reading and writing files
lives in :mod:`qperf.io`, the command line in :mod:`qperf.cli`. It never imports Slicer.
"""

from qperf._version import __version__
from qperf.errors import FormatError, NotAvailableError, OutputExistsError, QPerfError, ValidationError
from qperf.types import AifCurve, PerfusionSeries, PerfusionStudy, SliceGeometry

__all__ = [
    "AifCurve",
    "FormatError",
    "NotAvailableError",
    "OutputExistsError",
    "PerfusionSeries",
    "PerfusionStudy",
    "QPerfError",
    "SliceGeometry",
    "ValidationError",
    "__version__",
]
