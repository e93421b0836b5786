"""Writing a report folder: report.json, report.csv, report.html and the figures."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qperf.errors import FormatError, ValidationError, describe
from qperf.io import atomic_file, check_output
from qperf.report.build import jsonable, report_rows
from qperf.report.figures import ReportFigures
from qperf.report.html import render_html
from qperf.report.pdf import render_pdf
from qperf.report.schema import validate_report

__all__ = ["REPORT_FILES", "read_report", "write_report"]

#: Fixed file names of a report folder (plus one ``flowmap_<n>_<level>.png`` per slice,
#: ``mpr_bullseye.png`` for a report with a perfusion reserve, and for a report with curves
#: ``aif_curves.png`` and one ``curves_<n>_<level>.png`` per slice, ``motion.png`` when a slice was
#: motion-corrected).
REPORT_FILES = ("report.json", "report.csv", "report.html", "report.pdf", "bullseye.png", "bullseye.svg")


def write_report(
    report: Mapping[str, Any],
    figures: ReportFigures,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the report files into a folder, each atomically: JSON, CSV, HTML, PDF and figures.

    Parameters
    ----------
    report : mapping
        From :func:`qperf.report.build_report` (validated again here).
    figures : ReportFigures
        From :func:`qperf.report.render_figures`.
    out_dir : path
        Folder to write into; created when missing (its parent must exist). Other files in it
        are left alone.
    overwrite : bool
        Replace existing report files; otherwise any existing one stops the write before
        anything is written.

    Returns
    -------
    dict of str to Path
        File name -> written path.

    Raises
    ------
    OutputExistsError
        When a report file exists and ``overwrite`` is False.
    """
    report = jsonable(report)  # values added after building (timings, QC) may be NumPy or NaN
    validate_report(report)
    if not isinstance(figures, ReportFigures):
        raise ValidationError(f"figures: expected ReportFigures, found {describe(figures)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValidationError(f"out_dir: expected a folder, found the file {out}")
    if not out.exists():
        if not out.parent.exists():
            raise ValidationError(f"out_dir: the parent folder {out.parent} does not exist")
        out.mkdir()
    rows = report_rows(report)
    contents: dict[str, bytes] = {
        "report.json": (json.dumps(report, indent=2, allow_nan=False) + "\n").encode("utf-8"),
        "report.html": render_html(report, figures).encode("utf-8"),
        "report.pdf": render_pdf(report, figures),
        "bullseye.png": figures.bullseye_png,
        "bullseye.svg": figures.bullseye_svg,
    }
    if figures.mpr_bullseye_png is not None:
        contents["mpr_bullseye.png"] = figures.mpr_bullseye_png
    if figures.aif_png is not None:
        contents["aif_curves.png"] = figures.aif_png
    if figures.motion_png is not None:
        contents["motion.png"] = figures.motion_png
    for field, named in (("flowmaps_png", figures.flowmaps_png), ("curves_png", figures.curves_png)):
        for name, png in named:
            if os.path.basename(name) != name or not name.endswith(".png") or name in contents:
                raise ValidationError(f"figures.{field}: expected distinct plain .png file names, found {name!r}")
            contents[name] = png
    for name in [*contents, "report.csv"]:
        check_output(out / name, overwrite)
    written: dict[str, Path] = {}
    with atomic_file(out / "report.csv", overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    written["report.csv"] = out / "report.csv"
    for name, data in contents.items():
        with atomic_file(out / name, overwrite) as tmp:
            tmp.write_bytes(data)
        written[name] = out / name
    return written


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a ``report.json`` (or the folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FormatError(f"path: expected a report.json, found nothing at {p}") from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"path: expected JSON in {p}, found a syntax error ({exc})") from exc
    validate_report(data)
    return dict(data)
