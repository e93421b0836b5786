"""Evaluation of predicted labels (and the flow they give) against an annotator's, per class and frame.

>>> from qperf.evaluation import evaluate
>>> result = evaluate("predicted/", "cases/")      # qperf segment outputs, case folders
>>> result.summary["lv_myocardium"]["dice"]["mean"]
>>> write_evaluation(result, "evaluation/")         # evaluation.json, evaluation.csv, evaluation.html

Predicted labels are a ``qperf segment`` output folder or a labels file, or a folder of them
named like the case folders; manual labels are a case folder or a folder of case folders
(:mod:`qperf.segmentation.cases`). Where both sides of a case hold a ``report.json`` (``qperf
analyze`` outputs), their MBF is compared too (:mod:`qperf.evaluation.flow`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import FormatError
from qperf.evaluation.flow import agreement, compare_reports
from qperf.evaluation.labels import Predicted, compare_case, read_predicted

__all__ = [
    "Evaluation",
    "Predicted",
    "agreement",
    "compare_case",
    "compare_reports",
    "evaluate",
    "read_predicted",
    "write_evaluation",
]

FIGURES = ("dice", "fp_area_pct", "fn_area_pct", "precision", "recall", "msd_mm", "hd95_mm", "angle_error_deg")


@dataclass(frozen=True)
class Evaluation:
    """Rows per case and class, their summary per class, and the flow agreement when measured."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    flow: dict[str, Any] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def _predicted_for(root: Path, case_name: str, single: bool) -> Path | None:
    if single:
        return root
    for candidate in (root / case_name, *sorted(root.glob(f"{case_name}.*"))):
        if candidate.exists():
            return candidate
    return None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, SD, median, minimum and count of every figure per class (NaNs ignored)."""
    out: dict[str, Any] = {}
    for name in sorted({r["class"] for r in rows}):
        entry: dict[str, Any] = {}
        for key in FIGURES:
            values = np.array([r[key] for r in rows if r["class"] == name and key in r], dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                entry[key] = {
                    "mean": float(values.mean()),
                    "sd": float(values.std()),
                    "median": float(np.median(values)),
                    "min": float(values.min()),
                    "n": int(values.size),
                }
        out[name] = entry
    return out


def evaluate(predicted: str | os.PathLike[str], manual: str | os.PathLike[str], **series_options: Any) -> Evaluation:
    """Compare predicted labels with manual ones (see the module docstring).

    Raises
    ------
    FormatError
        Unreadable inputs, or no case with a prediction.
    """
    from qperf.segmentation.cases import read_cases

    cases = read_cases(manual, **series_options)
    root = Path(predicted)
    single = len(cases) == 1 and (root.is_file() or any(root.glob("labels*")))
    rows, unmatched, reports = [], [], []
    for case in cases:
        path = _predicted_for(root, case.name, single)
        if path is None:
            unmatched.append(case.name)
            continue
        rows.extend(compare_case(case, read_predicted(path)))
        manual_dir = Path(manual) if single else Path(manual) / case.name
        pred_dir = path if path.is_dir() else path.parent
        if (pred_dir / "report.json").is_file() and (manual_dir / "report.json").is_file():
            reports.append((case.name, _json(pred_dir / "report.json"), _json(manual_dir / "report.json")))
    if not rows:
        raise FormatError(f"{root}: expected predicted labels for the cases of {manual}, found none")
    flow = compare_reports(reports) if reports else {}
    return Evaluation(rows, summarise(rows), flow, unmatched)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: expected a report (JSON), found {exc}") from exc


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_evaluation(result: Evaluation, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``evaluation.json``, ``evaluation.csv`` (one row per case and class) and
    ``evaluation.html`` (tables and plots) into a new folder (atomically)."""
    from qperf.evaluation.html import render_html
    from qperf.io import atomic_dir

    with atomic_dir(out_dir, overwrite) as tmp:
        doc = {"summary": result.summary, "flow": result.flow, "unmatched": result.unmatched, "rows": result.rows}
        (tmp / "evaluation.json").write_text(json.dumps(_clean(doc), indent=2) + "\n", encoding="utf-8")
        columns = ["case", "patient", "class", "n_frames", *FIGURES]
        with open(tmp / "evaluation.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in result.rows:
                writer.writerow({k: row.get(k, "") for k in columns})
        (tmp / "evaluation.html").write_text(render_html(result), encoding="utf-8")
    return Path(out_dir)
