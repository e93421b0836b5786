"""What makes a finished study finished: the checksums of its inputs and its options.

A study's key is the SHA-256 of: every file it reads (a manifest and the files it names, all
files of a DICOM folder, a series file), its AIF curve file, its reading options, condition and
analysis options, the QPerf version and the segmentation model's checksum. ``qperf batch
--resume`` skips a study only when its result folder holds a marker with the same key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from qperf import __version__
from qperf.batch.plan import StudyTask

_CHUNK = 1 << 20
#: Options that do not change the numbers (threads, device) or that a batch never sets.
_OPTIONS_LEFT_OUT = ("threads", "device", "labels", "insertion_points_yx", "label_frames", "aif")


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_files(manifest: Path) -> list[Path]:
    """The manifest and the files it names (those that exist)."""
    files = [manifest]
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return files
    if not isinstance(doc, dict):
        return files
    entries: list[Any] = []
    for key in ("slices", "aif_series"):
        if isinstance(doc.get(key), list):
            entries.extend(doc[key])
    if doc.get("aif"):
        entries.append(doc["aif"])
    for entry in entries:
        name = entry.get("path") if isinstance(entry, dict) else entry
        if isinstance(name, str) and (manifest.parent / name).is_file():
            files.append(manifest.parent / name)
    return files


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a study path reads, in a fixed order (empty when the path does not exist)."""
    p = Path(path)
    if p.is_dir():
        if (p / "study.json").is_file():
            return _manifest_files(p / "study.json")
        return sorted(q for q in p.rglob("*") if q.is_file())
    if not p.is_file():
        return []
    if p.suffix.lower() == ".json":
        return _manifest_files(p)
    companions = {".hdr": ".img", ".img": ".hdr"}
    other = p.with_suffix(companions[p.suffix.lower()]) if p.suffix.lower() in companions else None
    return [p] + ([other] if other is not None and other.is_file() else [])


def model_checksum(segmenter: str | os.PathLike[str] | None) -> str:
    """The checksum its model card records for the segmentation model (``"unavailable"`` without one)."""
    try:
        from qperf.segmentation import model_store

        _, card = model_store.resolve(None if segmenter is None else os.fspath(segmenter))
        return str(model_store.read_card(card)["sha256"])
    except Exception:  # a missing model fails the analysis itself, with its own message
        return "unavailable"


def study_key(task: StudyTask, model: str | None = None) -> str:
    """The SHA-256 that identifies a study's inputs and options (see the module notes).

    ``model`` is :func:`model_checksum` of the task's segmenter when the caller already has it.
    """
    source = task.source
    base = Path(source.path)
    root = base if base.is_dir() else base.parent
    files = []
    for f in input_files(source.path):
        name = os.path.relpath(f, root)
        files.append([name, file_sha256(f)])
    options = {
        k: v for k, v in dataclasses.asdict(task.options).items() if k not in _OPTIONS_LEFT_OUT and v is not None
    }
    doc = {
        "files": files,
        "aif": file_sha256(source.aif) if source.aif and Path(source.aif).is_file() else source.aif,
        "aif_kind": source.aif_kind,
        "series_options": dict(source.series_options),
        "condition": source.condition,
        "options": options,
        "qperf": __version__,
        "model": model if model is not None else model_checksum(task.options.segmenter),
    }
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
