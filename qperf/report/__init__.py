"""The QPerf report: per-segment tables, bull's-eye, flow-map figures, JSON, CSV and HTML.

>>> from qperf import aha, report
>>> sectors = aha.analyse_slice(labels, insertion_yx, "mid", spacing_mm=(1.5, 1.5), geometry=geometry)
>>> rep = report.build_report([report.SliceResult(sectors, {"mbf_ml_min_g": mbf})], condition="stress")
>>> figs = report.render_figures(rep, slices)
>>> report.write_report(rep, figs, "out/")

For a whole study (levels, segments and report in one call, as the one-click analysis does):

>>> rep, slices = report.report_study(study.slices, labels, insertion_points, maps, condition="stress")

The JSON schema (``qperf.report`` 1.1) is documented in ``qperf/report/schema.md`` and checked
by :func:`validate_report`.
"""

from qperf.report.build import (
    PRIMARY_MAP,
    SliceResult,
    add_perfusion_reserve,
    build_report,
    report_rows,
    source_uids,
    versions,
)
from qperf.report.curves import aif_figure, curves_figure, motion_figure, segment_curves
from qperf.report.figures import (
    ReportFigures,
    bullseye_figure,
    bullseye_point,
    figure_bytes,
    render_figures,
)
from qperf.report.flowmap import display_orientation, flowmap_figure
from qperf.report.html import render_html
from qperf.report.schema import SCHEMA_NAME, SCHEMA_VERSION, map_keys, split_map_name, validate_report
from qperf.report.study import report_study
from qperf.report.write import REPORT_FILES, read_report, write_report

__all__ = [
    "PRIMARY_MAP",
    "REPORT_FILES",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "ReportFigures",
    "SliceResult",
    "add_perfusion_reserve",
    "aif_figure",
    "build_report",
    "bullseye_figure",
    "bullseye_point",
    "curves_figure",
    "display_orientation",
    "figure_bytes",
    "flowmap_figure",
    "map_keys",
    "motion_figure",
    "read_report",
    "render_figures",
    "render_html",
    "source_uids",
    "report_rows",
    "report_study",
    "segment_curves",
    "split_map_name",
    "validate_report",
    "versions",
    "write_report",
]
