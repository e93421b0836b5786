"""DICOM files to frames: the file-level half of the DICOM reader.

Reads classic single-frame MR images and Enhanced MR multi-frame files into :class:`Frame`
records (one per 2D image) carrying what grouping and ordering need: series, geometry,
acquisition and trigger times, flip angle, echo, rescaling. :mod:`qperf.io.dicom` groups
them into a study.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from qperf.errors import FormatError, MissingMetadataError, NotAvailableError

__all__ = [
    "COMMENT_PREFIX",
    "Frame",
    "as_float",
    "as_int",
    "comment_values",
    "dicom_files",
    "frame_pixels",
    "frames_of",
    "read_dataset",
    "readout_guess",
]

#: ImageComments written by :func:`qperf.io.dicom.write_dicom_study` start with this.
COMMENT_PREFIX = "qperf:"

_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_MR_IMAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COMMENT_NUMBERS = ("hematocrit", "saturation_time_ms", "echo_spacing_ms", "n_pe_to_center", "heart_rate_bpm")
_SATURATION_RE = re.compile(
    r"(?i)(?<![a-z])(?:TS|T_?sat|sat(?:uration)?[ _-]?(?:recovery[ _-]?)?(?:time|delay))\s*[=:]\s*([0-9]+(?:\.[0-9]+)?)"
)


@dataclass
class Frame:
    """One 2D image of the folder with what grouping and ordering need."""

    path: Path
    ds: Dataset
    frame_index: int  # index in a multi-frame file, -1 for a single-frame file
    series_uid: str
    description: str
    rows: int
    cols: int
    position: NDArray[np.float64]
    x_dir: NDArray[np.float64]
    y_dir: NDArray[np.float64]
    spacing_mm: tuple[float, float]
    thickness_mm: float | None
    acq_date: int | None  # proleptic ordinal of the acquisition date
    acq_time_s: float | None  # seconds since midnight
    trigger_s: float | None
    instance: int | None
    flip_deg: float | None
    echo_time_ms: float | None
    echo_number: int | None
    slope: float
    intercept: float
    clock_s: float = 0.0
    time_tag: str = ""  # the attribute acq_time_s came from, with its tag

    @property
    def normal(self) -> NDArray[np.float64]:
        return np.cross(self.x_dir, self.y_dir)

    def label(self) -> str:
        return self.path.name + (f" frame {self.frame_index + 1}" if self.frame_index >= 0 else "")


# --- small parsers -----------------------------------------------------------------------


def as_float(value: Any) -> float | None:
    """A finite float from a DICOM value (DS, IS, str, number), else None."""
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def as_int(value: Any) -> int | None:
    """The nearest integer of a DICOM value, else None."""
    f = as_float(value)
    return None if f is None else int(round(f))


def _parse_tm(text: Any) -> float | None:
    """DICOM TM (``HHMMSS.FFFFFF``, or the old ``HH:MM:SS.frac``) to seconds since midnight."""
    if text is None:
        return None
    s = str(text).strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?", s)
    if not m:
        return None
    hours, minutes, seconds = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    frac = float(m.group(4)) if m.group(4) else 0.0
    return hours * 3600.0 + minutes * 60.0 + seconds + frac


def _parse_da(text: Any) -> int | None:
    if text is None:
        return None
    s = str(text).strip().replace(".", "")
    try:
        return dt.date(int(s[0:4]), int(s[4:6]), int(s[6:8])).toordinal() if len(s) == 8 else None
    except ValueError:
        return None


def _parse_dt(text: Any) -> tuple[int | None, float | None]:
    """DICOM DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``) to (date ordinal, seconds since midnight)."""
    if text is None:
        return None, None
    s = re.split(r"[+-]", str(text).strip())[0]
    if len(s) < 10:
        return None, None
    return _parse_da(s[:8]), _parse_tm(s[8:])


def _get(ds: Dataset, frame_index: int, sequence: str, keyword: str) -> Any:
    """An attribute of a frame: per-frame functional group, shared group, then the top level."""
    if frame_index >= 0:
        for groups_kw, idx in (
            ("PerFrameFunctionalGroupsSequence", frame_index),
            ("SharedFunctionalGroupsSequence", 0),
        ):
            groups = ds.get(groups_kw)
            if groups is not None and len(groups) > idx:
                seq = groups[idx].get(sequence)
                if seq is not None and len(seq) > 0 and keyword in seq[0] and seq[0].get(keyword) not in (None, ""):
                    return seq[0].get(keyword)
    value = ds.get(keyword)
    return None if value == "" else value


def _vector(value: Any, n: int) -> NDArray[np.float64] | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


# --- reading files -----------------------------------------------------------------------


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A DICOM data set written without the 128-byte preamble (group 0008 or 0002 first)."""
    return (
        len(head) >= 8
        and head[:2] in (b"\x08\x00", b"\x02\x00")
        and head[2:4] in (b"\x00\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x01\x00", b"\x10\x00")
    )


def read_dataset(path: Path) -> Dataset | None:
    """The data set of a DICOM image file, or None for anything else (skipped silently)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if head[128:132] == b"DICM":
        force = False
    elif _looks_like_raw_dataset(head):
        force = True
    else:
        return None
    try:
        ds = pydicom.dcmread(path, force=force)
    except InvalidDicomError as exc:
        if force:
            return None
        raise FormatError(
            f"{path}: cannot read the DICOM file ({str(exc).splitlines()[0] if str(exc) else 'invalid'})"
        ) from exc
    except Exception as exc:  # a damaged DICOM file: say which and why
        if force:
            return None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{path}: cannot read the DICOM file ({reason})") from exc
    if not any(kw in ds for kw in _PIXEL_KEYWORDS):
        sop_class = str(
            ds.get("SOPClassUID", "") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "")
        )
        if sop_class in _MR_IMAGE_CLASSES or (not force and not sop_class):
            raise FormatError(f"{path}: a DICOM file without pixel data (is the file truncated?)")
        return None  # presentation states, structured reports, raw data
    if str(ds.get("SOPClassUID", "")).startswith(_SECONDARY_CAPTURE_PREFIX):
        return None  # screenshots and reports, not acquisitions
    return ds


def frames_of(path: Path, ds: Dataset) -> list[Frame]:
    """The 2D frames of one image file (several for an Enhanced MR multi-frame file)."""
    n_frames = as_int(ds.get("NumberOfFrames")) or 1
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    if n_frames > 1 and not enhanced:
        raise FormatError(
            f"{path}: a multi-frame image without functional groups ({n_frames} frames); expected single-frame MR "
            "images or Enhanced MR"
        )
    rows, cols = as_int(ds.get("Rows")), as_int(ds.get("Columns"))
    if not rows or not cols:
        raise MissingMetadataError(f"{path}: missing Rows/Columns (0028,0010/0011)", "Rows")
    frames = []
    for fi in range(n_frames) if enhanced else (-1,):
        position, x_dir, y_dir, spacing = _frame_geometry(path, ds, fi)
        a = _enhanced_acquisition(ds, fi) if enhanced else _classic_acquisition(ds)
        frames.append(
            Frame(
                path=path,
                ds=ds,
                frame_index=fi,
                series_uid=str(ds.get("SeriesInstanceUID", "")) or f"(no series UID) {path.parent}",
                description=str(ds.get("SeriesDescription", "") or ""),
                rows=rows,
                cols=cols,
                position=position,
                x_dir=x_dir / np.linalg.norm(x_dir),
                y_dir=y_dir / np.linalg.norm(y_dir),
                spacing_mm=(float(spacing[0]), float(spacing[1])),
                thickness_mm=as_float(_get(ds, fi, "PixelMeasuresSequence", "SliceThickness")),
                acq_date=a.acq_date,
                acq_time_s=a.acq_time_s,
                trigger_s=None if a.trigger_ms is None else a.trigger_ms / 1000.0,
                time_tag=a.time_tag,
                instance=a.instance,
                flip_deg=a.flip_deg,
                echo_time_ms=a.echo_time_ms,
                echo_number=a.echo_number,
                slope=1.0 if a.slope is None or a.slope == 0 else a.slope,
                intercept=0.0 if a.intercept is None else a.intercept,
            )
        )
    return frames


_Geometry = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


class _Acquired(NamedTuple):
    """What one frame records of its acquisition (None where it records nothing)."""

    acq_date: int | None
    acq_time_s: float | None
    trigger_ms: float | None
    instance: int | None
    flip_deg: float | None
    echo_time_ms: float | None
    echo_number: int | None
    slope: float | None
    intercept: float | None
    time_tag: str = ""


def _frame_geometry(path: Path, ds: Dataset, fi: int) -> _Geometry:
    """Position, row and column directions (not yet normalised) and spacing of frame ``fi``."""
    position = _vector(_get(ds, fi, "PlanePositionSequence", "ImagePositionPatient") or [], 3)
    orientation = _vector(_get(ds, fi, "PlaneOrientationSequence", "ImageOrientationPatient") or [], 6)
    spacing = _vector(_get(ds, fi, "PixelMeasuresSequence", "PixelSpacing") or [], 2)
    for value, tag, keyword in (
        (position, "(0020,0032)", "ImagePositionPatient"),
        (orientation, "(0020,0037)", "ImageOrientationPatient"),
        (spacing, "(0028,0030)", "PixelSpacing"),
    ):
        if value is None:
            raise MissingMetadataError(
                f"{path}: missing or malformed {keyword} {tag}; QPerf needs the slice geometry", keyword
            )
    assert position is not None and orientation is not None and spacing is not None
    x_dir, y_dir = orientation[:3], orientation[3:]
    if not (np.linalg.norm(x_dir) > 0 and np.linalg.norm(y_dir) > 0) or not np.all(spacing > 0):
        raise FormatError(f"{path}: degenerate ImageOrientationPatient or PixelSpacing")
    return position, x_dir, y_dir, spacing


def _enhanced_acquisition(ds: Dataset, fi: int) -> _Acquired:
    """Times, flip angle, echo and rescaling of frame ``fi`` of an Enhanced MR file (functional groups)."""
    acq_date, acq_time = _parse_dt(_get(ds, fi, "FrameContentSequence", "FrameAcquisitionDateTime"))
    trigger = as_float(_get(ds, fi, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"))
    instance = as_int(_get(ds, fi, "FrameContentSequence", "TemporalPositionIndex"))
    flip = as_float(_get(ds, fi, "MRTimingAndRelatedParametersSequence", "FlipAngle"))
    echo = as_float(_get(ds, fi, "MREchoSequence", "EffectiveEchoTime"))
    slope = as_float(_get(ds, fi, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = as_float(_get(ds, fi, "PixelValueTransformationSequence", "RescaleIntercept"))
    tag = "FrameAcquisitionDateTime (0018,9074)"
    return _Acquired(acq_date, acq_time, trigger, instance, flip, echo, None, slope, intercept, tag)


def _classic_acquisition(ds: Dataset) -> _Acquired:
    """Times, flip angle, echo and rescaling of a single-frame image (AcquisitionDateTime, else Date and Time)."""
    acq_date, acq_time = _parse_dt(ds.get("AcquisitionDateTime"))
    tag = "AcquisitionDateTime (0008,002A)"
    if acq_time is None:
        acq_date, acq_time = _parse_da(ds.get("AcquisitionDate")), _parse_tm(ds.get("AcquisitionTime"))
        tag = "AcquisitionTime (0008,0032)"
    trigger = as_float(ds.get("TriggerTime"))
    instance = as_int(ds.get("InstanceNumber"))
    flip = as_float(ds.get("FlipAngle"))
    echo = as_float(ds.get("EchoTime"))
    echo_number = as_int(ds.get("EchoNumbers")) if not isinstance(ds.get("EchoNumbers"), list) else None
    slope, intercept = as_float(ds.get("RescaleSlope")), as_float(ds.get("RescaleIntercept"))
    return _Acquired(acq_date, acq_time, trigger, instance, flip, echo, echo_number, slope, intercept, tag)


def dicom_files(folder: Path) -> list[Path]:
    """Every file below ``folder`` in a stable order, DICOMDIR excepted."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        files += [Path(root) / n for n in sorted(names) if n.upper() != "DICOMDIR"]
    return files


def _missing_decoder(ds: Dataset) -> str | None:
    """What is missing to decode a compressed transfer syntax, or None when a decoder is installed."""
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_compressed:
        return None
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return f"pixel data compressed as {syntax.name} ({syntax}), which pydicom cannot decode"
    if decoder.is_available:
        return None
    options = "; ".join(decoder.missing_dependencies) or "none known"
    return (
        f"pixel data compressed as {syntax.name}: expected an installed decoder, found none ({options}); "
        "QPerf's dicom extra (pip install 'qperf[dicom]') decodes JPEG-LS and JPEG 2000"
    )


def frame_pixels(f: Frame) -> NDArray[np.float64]:
    """The frame's pixels ``(rows, columns)`` as float64 after RescaleSlope/Intercept.

    Compressed transfer syntaxes are decoded by pydicom's plugins: JPEG-LS by pyjpegls and
    JPEG 2000 by pylibjpeg-openjpeg (or Pillow), both in the ``dicom`` extra.

    Raises
    ------
    NotAvailableError
        The pixel data are compressed and no decoder for their transfer syntax is installed.
    FormatError
        The pixel data cannot be decoded or is not a grey image of the recorded matrix.
    """
    try:
        arr = f.ds.pixel_array
    except Exception as exc:
        missing = _missing_decoder(f.ds)
        if missing is not None:
            raise NotAvailableError(f"{f.path}: {missing}") from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{f.path}: unreadable pixel data ({reason})") from exc
    if f.frame_index >= 0 and arr.ndim == 3 and (as_int(f.ds.get("NumberOfFrames")) or 1) > 1:
        arr = arr[f.frame_index]
    if arr.shape != (f.rows, f.cols):
        raise FormatError(
            f"{f.path}: unreadable pixel data (expected a {f.rows} x {f.cols} grey image, found {arr.shape})"
        )
    return np.asarray(arr, dtype=np.float64) * f.slope + f.intercept


def readout_guess(ds: Dataset) -> str | None:
    """``"ssfp"`` or ``"flash"`` when SequenceName/PulseSequenceName say so clearly, else None."""
    names = " ".join(str(ds.get(k, "") or "") for k in ("SequenceName", "PulseSequenceName")).lower()
    if re.search(r"tfi|trufi|ssfp|fiesta|bffe|b-tfe|balanced", names):
        return "ssfp"
    if re.search(r"tfl|flash|fl2d|fgre|spgr|tfe|ffe|turbo.?fl", names):
        return "flash"
    return None


def comment_values(ds: Dataset) -> dict[str, Any]:
    """Values a QPerf-written ImageComments carries, or a saturation time stated in free text."""
    text = str(ds.get("ImageComments", "") or "")
    out: dict[str, Any] = {}
    if text.lower().startswith(COMMENT_PREFIX):
        for part in text[len(COMMENT_PREFIX) :].split(";"):
            key, _, value = (s.strip() for s in part.partition("="))
            if key in _COMMENT_NUMBERS and as_float(value) is not None:
                out[key] = int(float(value)) if key == "n_pe_to_center" else float(value)
            elif key in ("units", "condition") and value:
                out[key] = value
    else:
        m = _SATURATION_RE.search(text)
        if m:
            out["saturation_time_ms"] = float(m.group(1))
    return out
