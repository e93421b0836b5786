"""Predicted labels against manual ones, per class and per frame, as the segmentation paper reports them.

Figures per class and labelled frame (Xue et al., Radiology: AI 2020): Dice, the false-positive
and false-negative areas as percentages of the manual area, precision, recall, the mean surface
distance and the 95 % Hausdorff distance in mm (:func:`qperf.metrics.surface_distances_mm`),
and the RV insertion direction error in degrees seen from the manual LV centre. Only the classes
a case drew (its ``case.json``) are scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf import metrics
from qperf.errors import FormatError
from qperf.segmentation.cases import AnnotatedCase
from qperf.types import LABELS

LABEL_FILES = ("labels.nrrd", "labels.seq.nrrd", "labels.nii.gz", "labels.nii")


@dataclass(frozen=True, eq=False)
class Predicted:
    """Labels predicted for one series: ``(t, y, x)`` over the acquired frames or ``(y, x)``,
    the reference-grid map when known, and the insertion points per frame."""

    labels: NDArray[np.uint8]
    labels_ref: NDArray[np.uint8] | None = None
    points_per_frame: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    source: str = ""


def _read_labels(path: Path) -> NDArray[np.uint8]:
    from qperf import io

    array = np.asarray(io.read_image(path).array)
    if array.size and (array.min() < 0 or array.max() > 3):
        raise FormatError(f"{path}: expected labels 0-3, found values {array.min()} to {array.max()}")
    return array.astype(np.uint8)


def read_predicted(path: str | Path) -> Predicted:
    """Predicted labels from a labels file or a ``qperf segment`` output folder (one slice)."""
    p = Path(path)
    if p.is_file():
        return Predicted(_read_labels(p), source=str(p))
    if not p.is_dir():
        raise FormatError(f"{p}: expected a labels file or a qperf segment output folder, found nothing")
    found = [p / n for n in LABEL_FILES if (p / n).is_file()] or sorted(p.glob("labels_1.*"))
    if not found:
        raise FormatError(f"{p}: expected labels.nrrd (a qperf segment output folder), found none")
    labels = _read_labels(found[0])
    ref = _read_labels(p / "labels_ref.nrrd") if (p / "labels_ref.nrrd").is_file() else None
    points: dict[str, NDArray[np.float64]] = {}
    if (p / "insertion.json").is_file():
        record = _first_record(p / "insertion.json")
        per_frame = record.get("per_frame", {})
        if not isinstance(per_frame, dict):
            raise FormatError(f"{p / 'insertion.json'}: per_frame: expected named point lists, found {per_frame!r}")
        for name, entries in per_frame.items():
            points[name] = _frame_points(entries, f"{p / 'insertion.json'}: per_frame.{name}")
        qc = record.get("qc", {})
        repeated = isinstance(qc, dict) and qc.get("labels_per_frame") == "repeated"
        if ref is None and repeated and labels.ndim == 3:
            ref = labels[0]
    return Predicted(labels, ref, points, str(p))


def _first_record(path: Path) -> dict[str, Any]:
    """The first slice record of a ``qperf segment`` insertion.json (an empty one when it has none)."""
    from qperf.io.insertion import read_json

    doc = read_json(path)
    records = doc.get("slices", [{}]) if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise FormatError(f"{path}: expected an object with a list of 'slices', found {type(doc).__name__}")
    record = records[0] if records else {}
    if not isinstance(record, dict):
        raise FormatError(f"{path}: slices[0]: expected a slice record, found {record!r}")
    return record


def _frame_points(entries: Any, where: str) -> NDArray[np.float64]:
    """``(t, 2)`` points from a list of per-frame records ``{"pixel_yx": [y, x], ...}``."""
    from qperf.io.insertion import point_yx

    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FormatError(f"{where}: expected a list of per-frame records, found {entries!r}"[:200])
    return np.array([point_yx(e.get("pixel_yx"), f"{where}[{i}].pixel_yx") for i, e in enumerate(entries)], float)


def _frame_rows(pred: NDArray[Any], manual: NDArray[Any], spacing: Any, label: int) -> dict[str, float]:
    p, m = pred == label, manual == label
    ov = metrics.overlap(p, m)
    msd, hd95, _ = metrics.surface_distances_mm(p, m, spacing)
    return {
        "dice": ov.dice,
        "fp_area_pct": 100.0 * ov.false_positive_rate,
        "fn_area_pct": 100.0 * ov.false_negative_rate,
        "precision": ov.precision,
        "recall": ov.recall,
        "msd_mm": msd,
        "hd95_mm": hd95,
    }


def _pairs(case: AnnotatedCase, predicted: Predicted) -> list[tuple[int, NDArray[Any], NDArray[Any]]]:
    """(frame, predicted, manual) maps to compare: every labelled frame, or the reference map."""
    manual, pred = case.labels, predicted.labels
    if manual.ndim == 3:
        if pred.shape != manual.shape:
            raise FormatError(
                f"case {case.name}: expected predicted labels of shape {manual.shape}, found {pred.shape}"
            )
        return [(k, pred[k], manual[k]) for k in case.labelled_frames]
    ref = predicted.labels_ref if predicted.labels_ref is not None else (pred if pred.ndim == 2 else None)
    if ref is None:
        raise FormatError(
            f"case {case.name}: a (y, x) manual map needs the predicted reference-grid map (labels_ref.nrrd) or "
            "labels repeated over the frames"
        )
    if ref.shape != manual.shape:
        raise FormatError(f"case {case.name}: expected predicted labels of shape {manual.shape}, found {ref.shape}")
    return [(0, ref, manual)]


def compare_case(case: AnnotatedCase, predicted: Predicted) -> list[dict[str, Any]]:
    """One row per drawn class: the per-frame figures averaged over the labelled frames (NaNs
    ignored), with the frames counted, and per-frame values under ``frames``."""
    spacing = case.series.spacing_mm
    pairs = _pairs(case, predicted)
    rows = []
    for label in sorted(case.drawn):
        per_frame = [{"frame": k, **_frame_rows(p, m, spacing, label)} for k, p, m in pairs]
        row: dict[str, Any] = {
            "case": case.name,
            "patient": case.patient,
            "class": LABELS[label],
            "n_frames": len(pairs),
        }
        for key in ("dice", "fp_area_pct", "fn_area_pct", "precision", "recall", "msd_mm", "hd95_mm"):
            values = np.array([f[key] for f in per_frame], dtype=float)
            row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        row["frames"] = per_frame
        rows.append(row)
    rows.extend(_insertion_rows(case, predicted, pairs))
    return rows


def _insertion_rows(
    case: AnnotatedCase, predicted: Predicted, pairs: list[tuple[int, Any, Any]]
) -> list[dict[str, Any]]:
    """RV insertion direction error (degrees) of each named point, at the first labelled frame."""
    rows: list[dict[str, Any]] = []
    frame, _, manual = pairs[0]
    if not (manual == 1).any():
        return rows
    centre = metrics.lv_centre(manual)
    for name, ref in case.points_yx.items():
        track = predicted.points_per_frame.get(name)
        if track is None or track.shape[0] <= frame:
            continue
        error = metrics.insertion_angle_error(track[frame], ref, centre, case.series.spacing_mm)
        rows.append(
            {"case": case.name, "patient": case.patient, "class": f"insertion_{name}", "angle_error_deg": error}
        )
    return rows
