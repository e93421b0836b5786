"""Reading and writing perfusion series, studies, AIF curves, maps and label maps.

>>> from qperf import io
>>> study = io.read_study("study.json")          # a manifest, a DICOM folder or one series file
>>> series = io.read_series("slice_1.seq.nrrd")
>>> io.write_series(series, "slice_1.nii.gz")

Formats, chosen by the file name:

==========================  ================================================================
``.seq.nrrd``, ``.nrrd``    2D+T series as Slicer volume sequences (times kept exactly)
``.nii``, ``.nii.gz``       NIfTI-1, ``(x, y, 1, t)``; QPerf keeps exact times in an extension
``.hdr``/``.img``           Analyze 7.5 pairs (no geometry; frame interval from pixdim or given)
``.npy``, ``.npz``          NumPy; ``.npy`` needs spacing and frame interval from the caller
folder                      DICOM (all series of an acquisition; see :mod:`qperf.io.dicom`)
``study.json``              a study manifest naming its series and AIF files
``.csv``                    an AIF curve (``time_s`` plus ``gd_mmol_l`` or ``signal``)
==========================  ================================================================

Every writer is atomic and refuses to replace an existing file unless ``overwrite=True``;
:func:`atomic_dir`, :func:`atomic_file` and :func:`check_output` (:mod:`qperf.io.atomic`) give
other outputs the same contract.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qperf.errors import FormatError, MissingMetadataError, QPerfError, ValidationError, describe
from qperf.io import schema
from qperf.io.aif_csv import read_aif_csv, write_aif_csv
from qperf.io.atomic import atomic_dir, atomic_file, check_output
from qperf.io.nifti_io import read_nifti_series, write_nifti_series
from qperf.io.nrrd_io import (
    ImageData,
    _jsonable,
    read_nrrd_image,
    read_nrrd_series,
    write_nrrd_image,
    write_nrrd_series,
)
from qperf.io.numpy_io import read_numpy_series, write_numpy_series
from qperf.io.paths import inside
from qperf.io.schema import validate
from qperf.io.seg_nrrd import write_labels_seg_nrrd
from qperf.progress import ProgressCallback
from qperf.types import AifCurve, PerfusionSeries, PerfusionStudy

__all__ = [
    "MANIFEST_NAME",
    "ImageData",
    "atomic_dir",
    "atomic_file",
    "check_output",
    "read_aif_curve",
    "read_image",
    "read_series",
    "read_study",
    "series_format",
    "write_aif_curve",
    "write_image",
    "write_labels_seg_nrrd",
    "write_series",
    "write_study",
    "write_study_into",
]

MANIFEST_NAME = "study.json"
_log = logging.getLogger(__name__)
MANIFEST_FORMAT = "qperf.study"
MANIFEST_VERSION = 1

_SERIES_SUFFIXES = {
    ".seq.nrrd": "nrrd",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".hdr": "nifti",
    ".img": "nifti",
    ".npy": "numpy",
    ".npz": "numpy",
}


def series_format(path: str | os.PathLike[str]) -> str:
    """The format name (``"nrrd"``, ``"nifti"``, ``"numpy"``, ``"dicom"``) a path is read or written as."""
    p = Path(path)
    if p.is_dir():
        return "dicom"
    name = p.name.lower()
    for suffix, fmt in _SERIES_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise FormatError(
        f"{p.name}: unknown series format; expected one of {', '.join(_SERIES_SUFFIXES)} or a DICOM folder"
    )


def read_series(
    path: str | os.PathLike[str],
    *,
    time_s: ArrayLike | None = None,
    frame_interval_s: float | None = None,
    spacing_mm: tuple[float, float] | None = None,
    units: str | None = None,
    n_pd_frames: int | None = None,
    axes: str = "tyx",
    allow_missing_time: bool = False,
) -> PerfusionSeries:
    """Read one 2D+T series.

    Parameters
    ----------
    path : path
        A series file (see the module table) or a DICOM folder holding exactly one slice.
    time_s, frame_interval_s : optional
        Frame times, or a regular interval, for files that do not record them (override otherwise).
    spacing_mm : (dy, dx), optional
        Pixel spacing for files that do not record it (``.npy``), or to override it.
    units, n_pd_frames : optional
        Override what the file records (``"gd_mmol_l"`` for series already converted).
    axes : {"tyx", "yxt"}
        Axis order of ``.npy``/``.npz`` arrays.
    allow_missing_time : bool
        Describe-only reading: when the file records no times, number the frames 0, 1, 2, ...
        and mark ``metadata["time_recorded"] = False`` instead of raising.

    Raises
    ------
    FormatError
        Missing, empty, unreadable or malformed files.
    MissingMetadataError
        The file does not record the frame times (give ``frame_interval_s``) or the spacing.
    ValidationError
        The content is not a valid series (NaN, a single frame, a 2D image, ...).
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file or folder")
    fmt = series_format(p)
    if fmt == "dicom":
        return _read_dicom_series(p, time_s, frame_interval_s, spacing_mm, units, n_pd_frames)
    if fmt == "nrrd":
        kwargs, missing = read_nrrd_series(p, time_s=time_s, frame_interval_s=frame_interval_s)
    elif fmt == "nifti":
        kwargs, missing = read_nifti_series(p, frame_interval_s=frame_interval_s, spacing_mm=spacing_mm)
    else:
        kwargs, missing = read_numpy_series(p, frame_interval_s=frame_interval_s, spacing_mm=spacing_mm, axes=axes)
    if time_s is not None:
        kwargs["time_s"] = np.asarray(time_s, dtype=float)
        missing = [m for m in missing if m != "time_s"]
    if spacing_mm is not None:
        kwargs["spacing_mm"] = spacing_mm
        missing = [m for m in missing if m != "spacing_mm"]
    _fill_missing(p, kwargs, missing, allow_missing_time)
    if units is not None:
        kwargs["units"] = units
        kwargs["metadata"].pop("units_recorded", None)
    if n_pd_frames is not None:
        kwargs["n_pd_frames"] = n_pd_frames
    kwargs["metadata"].setdefault("source", str(p))
    if not kwargs.get("name"):
        kwargs["name"] = _stem(p)
    try:
        return PerfusionSeries(**kwargs)
    except ValidationError as exc:
        raise type(exc)(f"{p.name}: {exc}") from exc


def _read_dicom_series(
    p: Path,
    time_s: ArrayLike | None,
    frame_interval_s: float | None,
    spacing_mm: tuple[float, float] | None,
    units: str | None,
    n_pd_frames: int | None,
) -> PerfusionSeries:
    """The one slice of a DICOM folder, with the caller's overrides."""
    study = read_study(p)
    if study.n_slices != 1:
        raise ValidationError(f"{p}: the folder holds {study.n_slices} slices; read it with read_study")
    series = study.slices[0]
    if time_s is not None or frame_interval_s is not None or spacing_mm is not None or units or n_pd_frames is not None:
        series = _override(series, time_s, frame_interval_s, spacing_mm, units, n_pd_frames)
    return series


def _fill_missing(p: Path, kwargs: dict[str, Any], missing: list[str], allow_missing_time: bool) -> None:
    """Raise for times or spacing the file does not record, or (describe-only) number the frames and say so."""
    if "time_s" in missing:
        if not allow_missing_time:
            raise MissingMetadataError(
                f"{p.name}: frame times are not recorded in the file; give the frame interval "
                "(--frame-interval SECONDS, or frame_interval_s=)",
                "time_s",
            )
        kwargs["time_s"] = np.arange(np.asarray(kwargs["data"]).shape[0], dtype=float)
        kwargs["metadata"]["time_recorded"] = False
    if "spacing_mm" in missing:
        if not allow_missing_time:
            raise MissingMetadataError(
                f"{p.name}: pixel spacing is not recorded in the file; give it (--spacing DY DX, or spacing_mm=)",
                "spacing_mm",
            )
        kwargs["metadata"]["spacing_recorded"] = False


def _override(
    series: PerfusionSeries,
    time_s: ArrayLike | None,
    frame_interval_s: float | None,
    spacing_mm: tuple[float, float] | None,
    units: str | None,
    n_pd_frames: int | None,
) -> PerfusionSeries:
    changes: dict[str, Any] = {}
    if time_s is not None:
        changes["time_s"] = np.asarray(time_s, dtype=float)
    elif frame_interval_s is not None:
        changes["time_s"] = np.arange(series.n_frames) * float(frame_interval_s)
    if spacing_mm is not None:
        changes["spacing_mm"] = spacing_mm
    if units:
        changes["units"] = units
    if n_pd_frames is not None:
        changes["n_pd_frames"] = n_pd_frames
    return series.replace(**changes)


def _stem(p: Path) -> str:
    name = p.name
    for suffix in sorted(_SERIES_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def write_series(series: PerfusionSeries, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a series; the format follows the file name (see the module table)."""
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {type(series).__name__}")
    p = Path(path)
    fmt = series_format(p) if not p.is_dir() else "dicom"
    if fmt == "nrrd":
        return write_nrrd_series(series, p, overwrite=overwrite)
    if fmt == "nifti":
        if p.suffix.lower() == ".img":
            p = p.with_suffix(".hdr")
        return write_nifti_series(series, p, overwrite=overwrite)
    if fmt == "numpy":
        return write_numpy_series(series, p, overwrite=overwrite)
    raise FormatError(f"{p}: write a DICOM folder with qperf.io.dicom.write_dicom_study")


def read_aif_curve(
    path: str | os.PathLike[str], *, kind: str | None = None, frame_interval_s: float | None = None
) -> AifCurve:
    """Read an AIF curve: CSV, or a 1D NIfTI/Analyze/NumPy curve (then ``frame_interval_s`` is needed)."""
    p = Path(path)
    if p.suffix.lower() == ".csv" or not p.exists():
        return read_aif_csv(p, kind=kind)
    fmt = series_format(p)
    if fmt == "nifti":
        import nibabel as nib

        try:
            values = np.asarray(nib.load(str(p)).dataobj).astype(float)  # type: ignore[attr-defined]
        except Exception as exc:
            raise FormatError(f"{p.name}: not a readable NIfTI/Analyze image ({exc})") from exc
    elif fmt == "numpy":
        try:
            values = np.asarray(np.load(str(p), allow_pickle=False), dtype=float)
        except Exception as exc:
            raise FormatError(f"{p.name}: not a readable NumPy file ({exc})") from exc
    else:
        raise FormatError(f"{p.name}: expected an AIF curve as .csv, NIfTI/Analyze or .npy")
    if values.squeeze().ndim != 1:
        raise FormatError(f"{p.name}: expected a 1D curve, found shape {values.shape}")
    if frame_interval_s is None:
        raise MissingMetadataError(
            f"{p.name}: sample times are not recorded; give the frame interval (--frame-interval SECONDS)", "time_s"
        )
    values = values.reshape(-1)
    return AifCurve(values, np.arange(values.shape[0]) * float(frame_interval_s), kind=kind or "blood")


def write_aif_curve(aif: AifCurve, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write an AIF curve as CSV."""
    return write_aif_csv(aif, path, overwrite=overwrite)


def write_image(
    array: ArrayLike,
    path: str | os.PathLike[str],
    *,
    spacing_mm: tuple[float, float],
    geometry: Any = None,
    time_s: ArrayLike | None = None,
    fields: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a map ``(y, x)`` or, with ``time_s``, a 2D+T image such as labels ``(t, y, x)`` as NRRD."""
    return write_nrrd_image(
        array, path, spacing_mm=spacing_mm, geometry=geometry, time_s=time_s, fields=fields, overwrite=overwrite
    )


def read_image(path: str | os.PathLike[str]) -> ImageData:
    """Read a map or 2D+T image written by :func:`write_image` (or Slicer)."""
    return read_nrrd_image(path)


# Studies -------------------------------------------------------------------------------------


def read_study(
    path: str | os.PathLike[str], *, progress: ProgressCallback | None = None, **series_options: Any
) -> PerfusionStudy:
    """Read a study from a manifest (``study.json`` or its folder), a DICOM folder or one series file.

    ``series_options`` (``frame_interval_s``, ``spacing_mm``, ``units``, ...) apply to every series
    read from files that need them.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file or folder")
    study = _read_study(p, progress, series_options)
    first = study.slices[0]
    _log.info(
        "read %s: %d slice(s) of %d frames of %d x %d pixels (%.2f x %.2f mm), %s",
        p.name,
        study.n_slices,
        first.n_frames,
        *first.shape,
        *first.spacing_mm,
        "AIF images" if study.aif_series else "an AIF curve" if study.aif is not None else "no AIF",
    )
    return study


def _read_study(p: Path, progress: ProgressCallback | None, series_options: dict[str, Any]) -> PerfusionStudy:
    if p.is_dir():
        if (p / MANIFEST_NAME).is_file():
            return _read_manifest(p / MANIFEST_NAME, series_options)
        from qperf.io import dicom

        return dicom.read_dicom_folder(p, progress=progress)
    if p.suffix.lower() == ".json":
        return _read_manifest(p, series_options)
    series = read_series(p, **series_options)
    return PerfusionStudy([series], name=series.name)


def _read_manifest(path: Path, series_options: dict[str, Any]) -> PerfusionStudy:
    """A study from its manifest: every field checked (:data:`qperf.io.schema.MANIFEST`), every path inside its folder."""
    doc = _manifest_document(path)
    base = path.parent
    fields = validate(doc, schema.MANIFEST, path.name, unknown="error")
    entries = fields["slices"]
    if not isinstance(entries, list) or not entries:
        raise FormatError(
            f"{path.name}: slices: expected a list of at least one series file, found {describe(entries)}"
        )
    slices = [_manifest_series(path, e, f"slices[{i}]", series_options) for i, e in enumerate(entries)]
    aif = _manifest_aif(path, fields.get("aif"))
    listed = fields.get("aif_series") or []
    if not isinstance(listed, list):
        raise FormatError(f"{path.name}: aif_series: expected a list of series files, found {describe(listed)}")
    aif_series = [_manifest_series(path, e, f"aif_series[{i}]", series_options) for i, e in enumerate(listed)]
    try:
        return PerfusionStudy(
            slices,
            aif=aif,
            aif_series=tuple(aif_series),
            condition=fields.get("condition", "unknown"),
            hematocrit=fields.get("hematocrit", 0.42),
            name=fields.get("name", base.name),
            metadata=fields.get("metadata", {}),
        )
    except ValidationError as exc:
        raise type(exc)(f"{path.name}: {exc}") from exc


def _manifest_document(path: Path) -> dict[str, Any]:
    """The manifest's JSON object, its format and version checked."""
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: empty file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{path.name}: expected UTF-8 JSON text, found a byte that is not text (at {exc.start})"
        ) from None
    doc = schema.parse_json(text, path.name)
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise FormatError(f'{path.name}: not a QPerf study manifest (expected "format": "{MANIFEST_FORMAT}")')
    version = doc.get("version")
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise FormatError(f"{path.name}: version: expected {MANIFEST_VERSION}, found {describe(version)}")
    return doc


def _manifest_series(path: Path, entry: Any, where: str, series_options: dict[str, Any]) -> PerfusionSeries:
    """One series entry (a path, or an object with a path and reading options) of a manifest."""
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise FormatError(
            f"{path.name}: {where}: expected a file name or an object with a 'path', found {describe(entry)}"
        )
    fields = validate(entry, schema.MANIFEST_SERIES, f"{path.name}: {where}", unknown="error")
    file = inside(path.parent, fields["path"], f"{path.name}: {where}.path")
    if file.is_dir() and (file / MANIFEST_NAME).exists():
        raise FormatError(
            f"{path.name}: {where}.path: {fields['path']!r} is a study folder; expected a series file or a DICOM folder"
        )
    options = dict(series_options)
    for key in ("frame_interval_s", "units", "n_pd_frames", "axes"):
        if key in fields:
            options[key] = fields[key]
    if "spacing_mm" in fields:
        options["spacing_mm"] = tuple(fields["spacing_mm"].tolist())
    with _named_in(f"{path.name}: {where}"):
        series = read_series(file, **options)
    if "slice_position_mm" in fields or "name" in fields:
        series = series.replace(
            slice_position_mm=fields.get("slice_position_mm", series.slice_position_mm),
            name=fields.get("name", series.name),
        )
    return series


def _manifest_aif(path: Path, entry: Any) -> AifCurve | None:
    """The AIF curve entry of a manifest (a file name, or an object with a path, kind and frame interval)."""
    if entry is None or entry == "":
        return None
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise FormatError(f"{path.name}: aif: expected a file name or an object with a 'path', found {describe(entry)}")
    fields = validate(entry, schema.MANIFEST_AIF, f"{path.name}: aif", unknown="error")
    file = inside(path.parent, fields["path"], f"{path.name}: aif.path")
    if file.exists() and not file.is_file():
        raise FormatError(f"{path.name}: aif.path: expected an AIF curve file, found the folder {fields['path']!r}")
    with _named_in(f"{path.name}: aif"):
        return read_aif_curve(file, kind=fields.get("kind"), frame_interval_s=fields.get("frame_interval_s"))


@contextmanager
def _named_in(where: str) -> Iterator[None]:
    """Put ``where`` (the manifest and its entry) before the message of a QPerf error raised inside."""
    try:
        yield
    except QPerfError as exc:
        exc.args = (f"{where}: {exc}", *exc.args[1:])
        raise


def write_study_into(
    study: PerfusionStudy, folder: str | os.PathLike[str], *, series_suffix: str = ".seq.nrrd"
) -> Path:
    """Write a study's files and manifest into an existing folder (no atomicity of its own).

    Writes ``slice_<n><suffix>`` per slice, ``aif.csv`` for an AIF curve, ``aif_echo<n><suffix>``
    for the AIF images and ``study.json``. Use :func:`write_study` for an atomic, new folder;
    use this to add a study to a folder being assembled inside :func:`atomic_dir`.
    """
    if not isinstance(study, PerfusionStudy):
        raise ValidationError(f"study: expected a PerfusionStudy, found {type(study).__name__}")
    base = Path(folder)
    entries = []
    for i, s in enumerate(study.slices, start=1):
        name = f"slice_{i}{series_suffix}"
        write_series(s, base / name)
        entries.append({"path": name, "name": s.name or f"slice {i}"})
    doc: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "name": study.name,
        "condition": study.condition,
        "hematocrit": study.hematocrit,
        "slices": entries,
        "aif": None,
        "aif_series": [],
        "metadata": _jsonable(study.metadata),
    }
    if study.aif is not None:
        write_aif_curve(study.aif, base / "aif.csv")
        doc["aif"] = {"path": "aif.csv", "kind": study.aif.kind}
    for j, s in enumerate(study.aif_series, start=1):
        name = f"aif_echo{j}{series_suffix}"
        write_series(s, base / name)
        doc["aif_series"].append({"path": name})
    manifest = base / MANIFEST_NAME
    check_output(manifest)
    manifest.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return manifest


def write_study(
    study: PerfusionStudy, folder: str | os.PathLike[str], *, overwrite: bool = False, series_suffix: str = ".seq.nrrd"
) -> Path:
    """Write a study as a new folder holding a ``study.json`` manifest and its files (atomically)."""
    with atomic_dir(folder, overwrite) as tmp:
        write_study_into(study, tmp, series_suffix=series_suffix)
    return Path(folder) / MANIFEST_NAME
