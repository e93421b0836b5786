"""Annotated cases on disk: the folder format that annotators write and training and evaluation read.

A case is one folder ``<case>/`` holding:

- ``series.*``: the 2D+T series as acquired (any format :func:`qperf.io.read_series` reads:
  ``.seq.nrrd``, ``.nrrd``, ``.nii(.gz)``, ``.npz``, ``.npy``, a DICOM folder named ``series``);
- ``labels.nrrd`` (or ``.nii``/``.nii.gz``): labels 0-3 (0 background, 1 LV blood pool,
  2 myocardium, 3 RV blood pool) on the series' grid, ``(y, x)`` for one frame or ``(t, y, x)``
  per frame; a frame left all zero is unlabelled (not background);
- ``insertion.json`` (optional): RV insertion points, as ``qperf segment`` writes them or the
  plain ``{"anterior": [y, x], "inferior": [y, x]}`` (pixels of the labelled frame);
- ``case.json`` (optional): ``{"classes": ["lv_blood_pool", "lv_myocardium"], "patient": "P01"}``
  (class names as in :data:`qperf.types.LABELS`): the classes that were drawn (a class not
  drawn is left out of the training loss and of the evaluation); without it, the classes that
  appear in any frame. ``patient`` groups cases of one patient for the held-out split.

A folder of cases is a folder of such folders (or one case folder).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import FormatError, ValidationError, describe
from qperf.io.schema import Field, text, validate
from qperf.types import LABELS, PerfusionSeries

LABEL_FILES = ("labels.nrrd", "labels.seq.nrrd", "labels.nii.gz", "labels.nii")
CLASS_NAMES = {name: value for value, name in LABELS.items() if value > 0}
#: The fields of ``case.json`` (``classes`` is checked against :data:`CLASS_NAMES` by name).
CASE_FIELDS: dict[str, Field] = {"classes": Field(lambda v: v), "patient": Field(text(empty=False))}


@dataclass(frozen=True, eq=False)
class AnnotatedCase:
    """One annotated series.

    Attributes
    ----------
    name : str
        The case folder's name.
    series : PerfusionSeries
        As acquired.
    labels : ndarray, uint8, shape (y, x) or (t, y, x)
    drawn : frozenset of int
        Labelled classes (1-3) that were drawn.
    points_yx : mapping
        RV insertion points on the labelled frame (or the reference frame of a 2D map).
    patient : str
        Patient identifier (the case name when not given).
    """

    name: str
    series: PerfusionSeries
    labels: NDArray[np.uint8]
    drawn: frozenset[int]
    points_yx: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    patient: str = ""

    @property
    def labelled_frames(self) -> tuple[int, ...]:
        """Frames with labels (``()`` for a single (y, x) map)."""
        if self.labels.ndim == 2:
            return ()
        return tuple(int(k) for k in np.nonzero(self.labels.reshape(self.labels.shape[0], -1).any(axis=1))[0])


def _label_file(folder: Path) -> Path:
    for name in LABEL_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FormatError(f"case {folder.name}: expected a labels file ({', '.join(LABEL_FILES)}), found none")


def _series_file(folder: Path) -> Path:
    found = sorted(p for p in folder.iterdir() if p.name.startswith("series") and not p.name.endswith(".json"))
    if not found:
        raise FormatError(
            f"case {folder.name}: expected a series file (series.seq.nrrd, series.nii.gz, ...), found none"
        )
    return found[0]


def _read_json(path: Path) -> Any:
    from qperf.io.insertion import read_json

    try:
        return read_json(path)
    except FormatError as exc:
        raise FormatError(f"case {path.parent.name}/{exc}") from None


def _drawn(doc: Any, labels: NDArray[np.uint8], where: str) -> frozenset[int]:
    if doc is None or "classes" not in doc:
        return frozenset(int(c) for c in np.unique(labels) if 0 < c <= 3)
    names = doc["classes"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{where}: expected 'classes' to be a list of class names, found {names!r}")
    unknown = [n for n in names if n not in CLASS_NAMES]
    if unknown:
        raise FormatError(f"{where}: expected class names among {', '.join(CLASS_NAMES)}, found {', '.join(unknown)}")
    return frozenset(CLASS_NAMES[n] for n in names)


def _points(path: Path, shape: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """The named insertion points of ``insertion.json`` (plain, or as qperf segment writes them), inside the image."""
    from qperf.checks import check_point_yx
    from qperf.io.insertion import point_yx

    if not path.is_file():
        return {}
    where = f"case {path.parent.name}/insertion.json"
    doc = _read_json(path)
    if isinstance(doc, dict) and "slices" in doc:
        slices = doc["slices"]
        first = slices[0] if isinstance(slices, list) and slices else None
        reference = first.get("reference") if isinstance(first, dict) else None
        if not isinstance(reference, dict) or not all(isinstance(v, dict) for v in reference.values()):
            raise FormatError(f"{where}: expected slices[0].reference with named points, found {describe(first)}")
        doc = {k: v.get("pixel_yx") for k, v in reference.items()}
        where += ": slices[0].reference"
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: expected an object of named points, found {type(doc).__name__}")
    out = {}
    for name in ("anterior", "inferior"):
        if name in doc:
            point = point_yx(doc[name], f"{where}: {name}")
            try:
                out[name] = check_point_yx(point, shape, f"{where}: {name}")
            except ValidationError as exc:
                raise FormatError(str(exc)) from None
    return out


def read_case(folder: str | os.PathLike[str], **series_options: Any) -> AnnotatedCase:
    """One case folder (see the module docstring); ``series_options`` as :func:`qperf.io.read_series`.

    Raises
    ------
    FormatError
        A file missing or unreadable, labels off the series' grid or outside 0-3.
    """
    from qperf import io

    root = Path(folder)
    if not root.is_dir():
        raise FormatError(f"case {root}: expected a folder, found none")
    series = io.read_series(_series_file(root), **series_options)
    image = io.read_image(_label_file(root))
    labels = np.asarray(image.array)
    if labels.shape not in (series.shape, (series.n_frames, *series.shape)):
        raise FormatError(
            f"case {root.name}: expected labels of shape {series.shape} or {(series.n_frames, *series.shape)} "
            f"(the series' grid), found {labels.shape}"
        )
    if labels.size and (not np.all(np.isfinite(labels)) or labels.min() < 0 or labels.max() > 3 or np.any(labels % 1)):
        raise FormatError(f"case {root.name}: expected labels 0-3, found values {labels.min()} to {labels.max()}")
    labels = labels.astype(np.uint8)
    if not labels.any():
        raise FormatError(f"case {root.name}: expected labels drawn on at least one frame, found every label 0")
    from qperf.checks import series_problem

    problem = series_problem(series)
    if problem:
        raise FormatError(f"case {root.name}: series: {problem}")
    doc = _read_json(root / "case.json") if (root / "case.json").is_file() else None
    if doc is not None and not isinstance(doc, dict):
        raise FormatError(f"case {root.name}/case.json: expected an object, found {type(doc).__name__}")
    if doc:
        validate(doc, CASE_FIELDS, f"case {root.name}/case.json", unknown="error")
    patient = str(doc.get("patient", root.name)) if doc else root.name
    drawn = _drawn(doc, labels, f"case {root.name}/case.json")
    return AnnotatedCase(root.name, series, labels, drawn, _points(root / "insertion.json", series.shape), patient)


def read_cases(folder: str | os.PathLike[str], **series_options: Any) -> list[AnnotatedCase]:
    """Every case of a folder of case folders (or the one case a case folder is), sorted by name.

    Raises
    ------
    FormatError
        No case found, or a case that cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FormatError(f"{root}: expected a folder of annotated cases, found no folder")
    if any(root.glob("series*")):
        return [read_case(root, **series_options)]
    cases = [read_case(p, **series_options) for p in sorted(root.iterdir()) if p.is_dir()]
    if not cases:
        raise FormatError(f"{root}: expected case folders (series.* and labels.nrrd), found none")
    return cases


def write_case(
    folder: str | os.PathLike[str],
    series: PerfusionSeries,
    labels: NDArray[Any],
    *,
    points_yx: Mapping[str, Any] | None = None,
    classes: Sequence[int] | None = None,
    patient: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one case folder (atomically): ``series.seq.nrrd``, ``labels.nrrd``, ``insertion.json``
    (when points are given) and ``case.json`` (the classes drawn, the patient).

    Parameters
    ----------
    labels : ndarray, (y, x) or (t, y, x)
        On the series' grid; per-frame frames left all zero are unlabelled.
    classes : sequence of int, optional
        Classes drawn (1-3); default: those present.
    """
    from qperf import io

    lab = np.asarray(labels)
    if lab.shape not in (series.shape, (series.n_frames, *series.shape)):
        raise ValidationError(
            f"labels: expected shape {series.shape} or {(series.n_frames, *series.shape)}, found {lab.shape}"
        )
    if lab.size and (lab.min() < 0 or lab.max() > 3):
        raise ValidationError(f"labels: expected values 0-3, found {lab.min()} to {lab.max()}")
    drawn = sorted(int(c) for c in (classes if classes is not None else np.unique(lab)) if 0 < int(c) <= 3)
    doc: dict[str, Any] = {"classes": [LABELS[c] for c in drawn]}
    if patient:
        doc["patient"] = str(patient)
    Path(folder).parent.mkdir(parents=True, exist_ok=True)  # the folder of cases
    with io.atomic_dir(folder, overwrite) as tmp:
        io.write_series(series, tmp / "series.seq.nrrd")
        time_s = series.time_s if lab.ndim == 3 else None
        io.write_image(
            lab.astype(np.uint8),
            tmp / "labels.nrrd",
            spacing_mm=series.spacing_mm,
            geometry=series.geometry,
            time_s=time_s,
        )
        if points_yx:
            named = {k: [float(v[0]), float(v[1])] for k, v in points_yx.items() if v is not None}
            (tmp / "insertion.json").write_text(json.dumps(named, indent=2) + "\n", encoding="utf-8")
        (tmp / "case.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return Path(folder)


def split_patients(
    cases: Sequence[AnnotatedCase], fraction: float = 0.2
) -> tuple[list[AnnotatedCase], list[AnnotatedCase]]:
    """Training and held-out cases, split by patient (a stable hash of the patient identifier),
    about ``fraction`` of the patients held out, at least one when there are two or more."""
    patients = sorted({c.patient for c in cases})
    if len(patients) < 2 or fraction <= 0:
        return list(cases), []
    ranked = sorted(patients, key=lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest())
    n_held = max(1, int(round(fraction * len(patients))))
    held = set(ranked[:n_held])
    return [c for c in cases if c.patient not in held], [c for c in cases if c.patient in held]
