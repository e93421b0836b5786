"""The batch's tables and index: ``summary.csv``, ``summary.parquet`` and ``index.html``.

One row per study and AHA segment present in its slices (with the slice that holds it), one
``global`` row per study, and for a failed study a single row with its error. The numbers come
from each study's ``report.json`` (the same file ``qperf analyze`` writes), so the table and
the reports cannot disagree. Columns: see :data:`BASE_COLUMNS` (``low_pixel_count``: the
segment has fewer than :data:`qperf.aha.MIN_SEGMENT_PIXELS` pixels, as the report's bull's-eye
hatches it; empty on global rows); after them the mean of every
parameter map (``<quantity>_mean<_unit>``), and for MBF its median, SD and valid pixel count.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qperf import __version__
from qperf.batch.plan import StudyTask
from qperf.batch.worker import StudyRecord

SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
INDEX_HTML = "index.html"
PRIMARY_MAP = "mbf_ml_min_g"
MBF_MEAN = "mbf_mean_ml_min_g"

#: Columns before the map statistics, and their types.
BASE_COLUMNS: tuple[tuple[str, type], ...] = (
    ("study_id", str),
    ("status", str),
    ("error", str),
    ("region", str),
    ("segment", int),
    ("segment_name", str),
    ("level", str),
    ("territory", str),
    ("slice", str),
    ("slice_name", str),
    ("n_pixels", int),
    ("low_pixel_count", bool),
)
#: Columns after the map statistics: QC, provenance and cost.
TAIL_COLUMNS: tuple[tuple[str, type], ...] = (
    ("qc_ok", bool),
    ("qc_flags", str),
    ("qc_warnings", str),
    ("motion_score", float),
    ("frames_left_out", int),
    ("condition", str),
    ("hematocrit", float),
    ("model", str),
    ("study_delay_s", float),
    ("run_time_s", float),
    ("resumed", bool),
    ("input", str),
    ("report", str),
    ("qperf_version", str),
    ("versions", str),
)


def _map_columns(report: Mapping[str, Any]) -> list[str]:
    from qperf.report import map_keys

    out = []
    for name in report["maps"]:
        keys = map_keys(name)
        out.append(keys["mean"])
        if name == PRIMARY_MAP:
            out.extend([keys["median"], keys["sd"], keys["n_valid"]])
    return out


def _slice_qc(entry: Mapping[str, Any]) -> tuple[list[str], float | None, int]:
    qc = entry.get("qc") or {}
    flags = [str(f) for f in (qc.get("segmentation") or {}).get("flags") or []]
    score = qc.get("motion_score")
    return flags, (float(score) if score is not None else None), len(qc.get("frames_left_out_of_fit") or [])


def _study_columns(task: StudyTask, record: StudyRecord, report: Mapping[str, Any], out: Path) -> dict[str, Any]:
    qc = report["qc"]
    return {
        "study_id": task.study_id,
        "status": record.status,
        "error": record.error,
        "qc_ok": bool(qc.get("ok", not qc.get("warnings"))),
        "qc_warnings": "; ".join(str(w) for w in qc.get("warnings") or []),
        "condition": report["study"]["condition"],
        "hematocrit": qc.get("hematocrit"),
        "model": qc.get("model"),
        "study_delay_s": (qc.get("delay") or {}).get("study_delay_s"),
        "run_time_s": record.run_time_s,
        "resumed": record.resumed,
        "input": task.source.path,
        "report": os.path.relpath(Path(task.out_dir) / "report.html", out).replace(os.sep, "/"),
        "qperf_version": report["versions"].get("qperf", __version__),
        "versions": json.dumps(report["versions"], sort_keys=True),
    }


def _qc_columns(held: Sequence[Mapping[str, Any]], numbered: bool) -> dict[str, Any]:
    """QC flags, the lowest motion score and the frames left out, over the slices ``held``."""
    qcs = [(s["index"] + 1, *_slice_qc(s)) for s in held]
    return {
        "qc_flags": "; ".join(f"slice {n}: {f}" if numbered else f for n, flags, _, _ in qcs for f in flags),
        "motion_score": min((q[2] for q in qcs if q[2] is not None), default=None),
        "frames_left_out": sum(q[3] for q in qcs),
    }


def _segment_row(number: str, seg: Mapping[str, Any], slices: Sequence[Any], maps: list[str]) -> dict[str, Any]:
    held = [slices[i] for i in seg["slices"]]
    return {
        "region": number,
        "segment": int(number),
        "segment_name": seg["name"],
        "level": seg["level"],
        "territory": seg["territory"],
        "slice": ";".join(str(s["index"] + 1) for s in held),
        "slice_name": "; ".join(s["name"] for s in held),
        "n_pixels": seg["n_pixels"],
        "low_pixel_count": seg.get("low_pixel_count"),  # absent from reports before schema 1.1
        **{k: seg.get(k) for k in maps},
        **_qc_columns(held, numbered=False),
    }


def study_rows(
    task: StudyTask, record: StudyRecord, report: Mapping[str, Any] | None, out: Path
) -> list[dict[str, Any]]:
    """The summary rows of one study (a single row with the error when it failed)."""
    if report is None or not record.ok:
        return [
            {
                "study_id": task.study_id,
                "status": record.status,
                "error": record.error,
                "condition": task.source.condition,
                "run_time_s": record.run_time_s,
                "resumed": record.resumed,
                "input": task.source.path,
                "qperf_version": __version__,
            }
        ]
    study = _study_columns(task, record, report, out)
    maps = _map_columns(report)
    rows = [
        {**study, **_segment_row(number, seg, report["slices"], maps)}
        for number, seg in report["segments"].items()
        if seg["slices"]
    ]
    glob = report["global"]
    totals = {"region": "global", "n_pixels": glob["n_pixels"], **{k: glob.get(k) for k in maps}}
    rows.append({**study, **totals, **_qc_columns(report["slices"], numbered=True)})
    return rows


def read_study_report(task: StudyTask) -> dict[str, Any] | None:
    """A finished study's report, or None when it cannot be read."""
    from qperf.report import read_report

    try:
        return read_report(Path(task.out_dir) / "report.json")
    except (OSError, ValueError):
        return None


def summary_rows(
    results: Sequence[tuple[StudyTask, StudyRecord]], out: Path
) -> tuple[list[dict[str, Any]], list[tuple[str, type]]]:
    """All rows of the summary, in the order of ``results``, and the columns with their types."""
    rows: list[dict[str, Any]] = []
    map_columns: list[str] = []
    for task, record in results:
        report = read_study_report(task) if record.ok else None
        if report is not None:
            map_columns.extend(c for c in _map_columns(report) if c not in map_columns)
        rows.extend(study_rows(task, record, report, out))
    primary = [c for c in map_columns if c.startswith("mbf_")]
    columns = [
        *BASE_COLUMNS,
        *((c, int if c.endswith("_n_valid") else float) for c in primary),
        *((c, float) for c in map_columns if c not in primary),
        *TAIL_COLUMNS,
    ]
    return rows, columns


def write_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, type]], path: Path) -> None:
    from qperf.io import atomic_file

    with atomic_file(path, overwrite=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([name for name, _ in columns])
        for row in rows:
            writer.writerow(["" if row.get(name) is None else row[name] for name, _ in columns])


def write_parquet(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, type]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qperf.io import atomic_file

    types = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    table = pa.Table.from_pylist([{name: row.get(name) for name, _ in columns} for row in rows], schema=schema)
    with atomic_file(path, overwrite=True) as tmp:
        pq.write_table(table, tmp)


def _cell(value: Any, decimals: int = 2) -> str:
    if value is None or value == "":
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return html.escape(str(value))


def render_index(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    """The batch's ``index.html``: one line per study, linking its report."""
    studies = [r for r in rows if r.get("region") in ("global", None)]
    n_failed = sum(1 for r in studies if r["status"] != "ok")
    lines = []
    for r in studies:
        name = html.escape(r["study_id"])
        link = f'<a href="{html.escape(r["report"], quote=True)}">{name}</a>' if r.get("report") else name
        lines.append(
            f"<tr class='{html.escape(r['status'])}'><td>{link}</td><td>{html.escape(r['status'])}</td>"
            f"<td>{_cell(r.get(MBF_MEAN))}</td><td>{_cell(r.get('n_pixels'))}</td>"
            f"<td>{_cell(r.get('qc_ok'))}</td><td>{_cell(r.get('run_time_s'), 1)}</td>"
            f"<td>{_cell(r.get('error') or r.get('qc_warnings'))}</td></tr>"
        )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}tr.failed{background:#fdd}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{len(studies)} studies, {n_failed} failed. "
        f"Tables: <a href='{SUMMARY_CSV}'>{SUMMARY_CSV}</a>, <a href='{SUMMARY_PARQUET}'>{SUMMARY_PARQUET}</a>.</p>"
        "<table><tr><th>study</th><th>status</th><th>global MBF (ml/min/g)</th><th>pixels</th>"
        "<th>QC ok</th><th>time (s)</th><th>error or warnings</th></tr>\n"
        + "\n".join(lines)
        + "\n</table></body></html>\n"
    )


def write_summary(results: Sequence[tuple[StudyTask, StudyRecord]], out: Path) -> list[Path]:
    """Write ``summary.csv``, ``summary.parquet`` and ``index.html`` into the batch folder ``out``."""
    from qperf.io import atomic_file

    rows, columns = summary_rows(results, out)
    write_csv(rows, columns, out / SUMMARY_CSV)
    write_parquet(rows, columns, out / SUMMARY_PARQUET)
    with atomic_file(out / INDEX_HTML, overwrite=True) as tmp:
        tmp.write_text(render_index(rows, f"qperf batch: {out.name}"), encoding="utf-8")
    return [out / SUMMARY_CSV, out / SUMMARY_PARQUET, out / INDEX_HTML]
