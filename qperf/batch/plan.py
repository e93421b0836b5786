"""What a batch will do: the studies it lists, their ids and options, and where each result goes.

INPUTS are study folders, ``study.json`` manifests, DICOM folders, series files, or lists of
them: a ``.txt`` file (one path per line, ``#`` comments) or a ``.csv`` file with a header row,
a ``path`` column and optional per-study columns (:data:`LIST_COLUMNS`). Paths in a list are
relative to the list's folder. A study's id names its result folder ``OUT/<id>/``: the ``id``
column, else the study's folder or file name, extended by its parent folders' names until the
ids of the batch are unique. Two entries that would write to the same folder are refused.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qperf.errors import ValidationError
from qperf.types import CONDITIONS
from qperf.workflow import AnalysisOptions, StudySource
from qperf.workflow.files import AIF_KINDS

#: Per-study columns of a ``.csv`` list (``hct`` is accepted for ``hematocrit``).
LIST_COLUMNS = ("path", "id", "condition", "hematocrit", "aif", "aif_kind")
LIST_SUFFIXES = (".txt", ".csv")
#: Names in the batch folder that a study id may not take (compared without case).
RESERVED_IDS = ("summary.csv", "summary.parquet", "index.html")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_SERIES_SUFFIXES = (".seq.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".hdr", ".img", ".npy", ".npz")


@dataclass(frozen=True)
class ListedStudy:
    """One entry of the batch's inputs, before ids are given.

    ``where`` says where it was listed (``"argument 2"``, ``"cases.csv line 4"``).
    """

    path: str
    where: str
    study_id: str | None = None
    condition: str | None = None
    hematocrit: float | None = None
    aif: str | None = None
    aif_kind: str | None = None


@dataclass(frozen=True)
class StudyTask:
    """One study of a batch: how to read and analyse it and where its result folder goes.

    Attributes
    ----------
    study_id : str
        Unique within the batch; the result folder is ``out_dir``.
    source : StudySource
    options : AnalysisOptions
        The analysis options of this study (the batch's, with its own hematocrit).
    out_dir : str
        Absolute path of the result folder, ``<batch folder>/<study_id>``.
    where : str
        Where the study was listed.
    overwrite : bool
        Whether an existing result folder may be replaced.
    threads : int, optional
        Torch threads in the worker that runs it (None: as the worker is set up).
    """

    study_id: str
    source: StudySource
    options: AnalysisOptions
    out_dir: str
    where: str
    overwrite: bool = False
    threads: int | None = None


def read_list(path: str | os.PathLike[str]) -> list[ListedStudy]:
    """The studies of a ``.txt`` or ``.csv`` list file.

    Raises
    ------
    ValidationError
        An unreadable list, an unknown column, a row without a path or with a bad value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{p}: expected a study list as UTF-8 text, found a byte that is not text (at {exc.start})"
        ) from None
    except OSError as exc:
        raise ValidationError(f"{p}: cannot read the study list ({exc.strerror or exc})") from exc
    if p.suffix.lower() == ".txt":
        return [
            ListedStudy(_relative_to(p, line.strip()), f"{p.name} line {n}")
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    return _read_csv_list(p, text)


def _read_csv_list(p: Path, text: str) -> list[ListedStudy]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    header = ["hematocrit" if h == "hct" else h for h in header]
    unknown = [h for h in header if h not in LIST_COLUMNS]
    if "path" not in header or unknown:
        raise ValidationError(
            f"{p.name}: expected a header row with a 'path' column and optionally {', '.join(LIST_COLUMNS[1:])}"
            + (f"; found unknown columns {unknown}" if unknown else f"; found {header}")
        )
    out = []
    for n, row in enumerate(csv.reader(lines[1:]), start=2):
        values = {h: (v.strip() or None) for h, v in zip(header, row, strict=False)}
        where = f"{p.name} row {n}"
        if not values.get("path"):
            raise ValidationError(f"{where}: expected a study path, found none")
        out.append(_listed(p, values, where))
    return out


def _listed(list_file: Path, values: Mapping[str, str | None], where: str) -> ListedStudy:
    condition, kind = values.get("condition"), values.get("aif_kind")
    if condition is not None and condition not in CONDITIONS:
        raise ValidationError(f"{where}: condition: expected one of {', '.join(CONDITIONS)}, found {condition!r}")
    if kind is not None and kind not in AIF_KINDS:
        raise ValidationError(f"{where}: aif_kind: expected one of {', '.join(AIF_KINDS)}, found {kind!r}")
    if kind is not None and not values.get("aif"):
        raise ValidationError(f"{where}: aif_kind: give it with an AIF curve (aif column)")
    hct = values.get("hematocrit")
    hematocrit = None
    if hct is not None:
        try:
            hematocrit = float(hct)
        except ValueError:
            hematocrit = math.nan
        if not 0.0 < hematocrit < 1.0:
            raise ValidationError(f"{where}: hematocrit: expected a fraction between 0 and 1, found {hct!r}")
    study_id = values.get("id")
    if study_id is not None:
        check_study_id(study_id, where)
    aif = values.get("aif")
    return ListedStudy(
        _relative_to(list_file, str(values["path"])),
        where,
        study_id,
        condition,
        hematocrit,
        _relative_to(list_file, aif) if aif else None,
        kind,
    )


def _relative_to(list_file: Path, path: str) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else list_file.parent / p)


def check_study_id(study_id: str, where: str = "id") -> None:
    """Refuse an id that cannot name a result folder in the batch folder."""
    if not _ID_PATTERN.match(study_id) or study_id.lower() in RESERVED_IDS:
        raise ValidationError(
            f"{where}: study id: expected letters, digits, '.', '_' or '-' (not first), at most 120, "
            f"and none of {', '.join(RESERVED_IDS)}; found {study_id!r}"
        )


def expand_inputs(inputs: Sequence[str]) -> list[ListedStudy]:
    """The studies named by the command line's INPUTS, lists read."""
    out: list[ListedStudy] = []
    for i, item in enumerate(inputs, start=1):
        p = Path(item)
        if p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            out.extend(read_list(p))
        else:
            out.append(ListedStudy(str(p.expanduser()), f"argument {i}"))
    return out


def _name_parts(path: str) -> list[str]:
    """Path components from the study's own name outwards (``study.json`` names its folder)."""
    p = Path(os.path.abspath(path))
    name = p.name
    lower = name.lower()
    if lower == "study.json":
        p, name = p.parent, p.parent.name
    elif lower.endswith(".json"):
        name = name[:-5]
    else:
        for suffix in _SERIES_SUFFIXES:
            if lower.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
    return [name] + [q.name for q in p.parents if q.name]


def _clean(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip("._-")
    return text[:120] or "study"


def assign_ids(studies: Sequence[ListedStudy]) -> list[str]:
    """A unique id per study (see the module notes).

    Raises
    ------
    ValidationError
        Two studies with the same id, or the same study listed twice without ids to tell them apart.
    """
    parts = [_name_parts(s.path) for s in studies]
    depth = [1] * len(studies)
    ids = [s.study_id or _clean("_".join(reversed(parts[i][:1]))) for i, s in enumerate(studies)]
    for _ in range(max((len(p) for p in parts), default=1)):
        groups: dict[str, list[int]] = {}
        for i, study_id in enumerate(ids):
            groups.setdefault(study_id.lower(), []).append(i)
        # a longer name tells apart only different paths (the same study listed twice stays a clash)
        clashes = [g for g in groups.values() if len({tuple(parts[i]) for i in g}) > 1]
        extendable = [i for g in clashes for i in g if studies[i].study_id is None and depth[i] < len(parts[i])]
        if not extendable:
            break
        for i in extendable:
            depth[i] += 1
            ids[i] = _clean("_".join(reversed(parts[i][: depth[i]])))
    seen: dict[str, int] = {}
    for i, study_id in enumerate(ids):
        j = seen.setdefault(study_id.lower(), i)
        if j != i:
            raise ValidationError(
                f"{studies[j].where} and {studies[i].where} would both write to the folder {study_id!r}; "
                "list each study once, or give them ids (an 'id' column in a .csv list)"
            )
    return ids


def _check_out_dir(out: Path, studies: Sequence[ListedStudy]) -> None:
    for s in studies:
        for inp in filter(None, (s.path, s.aif)):
            p = Path(os.path.abspath(inp))
            if p == out or out in p.parents or p in out.parents:
                raise ValidationError(
                    f"output folder {out} is, contains or lies inside the input {inp} ({s.where}); choose another --out"
                )


def plan_batch(
    inputs: Sequence[str],
    out_dir: str | os.PathLike[str],
    options: AnalysisOptions,
    *,
    series_options: Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> list[StudyTask]:
    """The tasks of a batch, in the order listed.

    Parameters
    ----------
    inputs : sequence of str
        Study paths and list files (``.txt``, ``.csv``).
    out_dir : path
        The batch folder; study ``i`` writes ``out_dir/<id_i>/``.
    options : AnalysisOptions
        The analysis of every study; a list's ``hematocrit`` column replaces its hematocrit.
    series_options : mapping, optional
        Reading options of every study (:class:`qperf.workflow.StudySource`).
    condition : str, optional
        Replaces the studies' conditions (a list's ``condition`` column comes first).

    Raises
    ------
    ValidationError
        No studies, a bad list, clashing ids, or an output folder that is or holds an input.
    """
    studies = expand_inputs(inputs)
    if not studies:
        raise ValidationError("inputs: expected at least one study, found none")
    out = Path(os.path.abspath(out_dir))
    _check_out_dir(out, studies)
    tasks = []
    for s, study_id in zip(studies, assign_ids(studies), strict=True):
        source = StudySource(
            os.path.abspath(s.path),
            dict(series_options or {}),
            aif=os.path.abspath(s.aif) if s.aif else None,
            aif_kind=s.aif_kind,
            condition=s.condition or condition,
        )
        study_options = options if s.hematocrit is None else dataclasses.replace(options, hematocrit=s.hematocrit)
        tasks.append(StudyTask(study_id, source, study_options, str(out / study_id), s.where))
    return tasks
