"""Writing a perfusion study as a folder of MR DICOM files.

The output is synthetic but standards-shaped: MR Image Storage, one file per frame, Explicit
VR Little Endian, 16-bit unsigned pixels with RescaleSlope/Intercept, the slice geometry in
ImagePositionPatient/ImageOrientationPatient/PixelSpacing, frame times in
AcquisitionDateTime. It serves as test fixtures and for exporting to PACS-like tools;
:func:`qperf.io.dicom.read_dicom_folder` reads it back.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from qperf.errors import ValidationError, describe
from qperf.io.atomic import atomic_dir
from qperf.io.dicom_read import COMMENT_PREFIX
from qperf.types import PerfusionSeries, PerfusionStudy, SliceGeometry

__all__ = ["quantize_uint16", "write_dicom_study"]

#: Flip angles written when the metadata does not give them but PD frames must be marked.
DEFAULT_PD_FLIP_DEG = 5.0
DEFAULT_FLIP_DEG = 15.0
_UINT16_MAX = 65535
_LOSSY_LEVELS = 65000.0  # leaves room for the rounding of the slope to a 16-character DS


def _ds(value: float) -> str:
    """A number as a DICOM decimal string (at most 16 characters)."""
    return format_number_as_ds(float(value))


def quantize_uint16(frame: NDArray[Any]) -> tuple[NDArray[np.uint16], str, str]:
    """Stored uint16 values and RescaleSlope/Intercept strings for one image.

    Parameters
    ----------
    frame : ndarray, any shape, float
        Finite values.

    Returns
    -------
    stored : ndarray of uint16, same shape
    slope, intercept : str
        Decimal strings; ``stored * slope + intercept`` gives the values back exactly when
        they are integers spanning at most 65535, and to within half a quantisation step
        (range / 130000) otherwise.
    """
    x = np.asarray(frame, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if np.array_equal(x, np.round(x)) and abs(lo) < 1e15 and abs(hi) < 1e15:
        intercept = 0.0 if lo >= 0 and hi <= _UINT16_MAX else lo
        if hi - intercept <= _UINT16_MAX:
            return (x - intercept).astype(np.uint16), "1", str(int(intercept))
    if hi == lo:
        return np.zeros(x.shape, dtype=np.uint16), "1", _ds(lo)
    slope_text = _ds((hi - lo) / _LOSSY_LEVELS)
    slope = float(slope_text)
    intercept_text = _ds(lo)
    if float(intercept_text) > lo:
        intercept_text = _ds(lo - 0.5 * slope)
    stored = np.clip(np.rint((x - float(intercept_text)) / slope), 0, _UINT16_MAX)
    return stored.astype(np.uint16), slope_text, intercept_text


@dataclass
class _SeriesPlan:
    """What one DICOM series of the output holds."""

    number: int
    description: str
    series: list[PerfusionSeries]  # slices, or echoes of one AIF slice
    geometries: list[SliceGeometry]
    echo_times_ms: list[float | None]
    echo_numbers: list[int | None]
    uid: str = ""


def _geometry(series: PerfusionSeries, index: int) -> SliceGeometry:
    if series.geometry is not None:
        return series.geometry
    position = series.slice_position_mm if series.slice_position_mm is not None else 8.0 * index
    return SliceGeometry(origin_mm=(0.0, 0.0, float(position)))


def _check_distinct_positions(slices: Sequence[PerfusionSeries], geometries: list[SliceGeometry]) -> None:
    for i in range(len(slices)):
        for j in range(i):
            gi, gj = geometries[i], geometries[j]
            same_plane = np.allclose(gi.x_direction, gj.x_direction, atol=1e-3) and np.allclose(
                gi.y_direction, gj.y_direction, atol=1e-3
            )
            gap = float(np.dot(np.subtract(gi.origin_mm, gj.origin_mm), gi.normal))
            if same_plane and abs(gap) < 0.1:
                raise ValidationError(
                    f"study.slices: expected slices at distinct positions, found slices {j + 1} and {i + 1} in the same "
                    "plane (DICOM readers would merge them)"
                )


def _echo_time(series: PerfusionSeries, first: PerfusionSeries, index: int, n: int) -> float | None:
    own = series.metadata.get("echo_time_ms")
    if own is not None:
        return float(own)
    listed = first.metadata.get("echo_times_ms")
    if isinstance(listed, (list, tuple)) and len(listed) == n and listed[index] is not None:
        return float(listed[index])
    return None


def _comment(study: PerfusionStudy, series: PerfusionSeries) -> str:
    parts = [f"units={series.units}", f"condition={study.condition}", f"hematocrit={study.hematocrit:.6g}"]
    for key in ("saturation_time_ms", "echo_spacing_ms", "n_pe_to_center", "heart_rate_bpm"):
        value = series.metadata.get(key)
        if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            parts.append(f"{key}={float(value):.10g}")
    return COMMENT_PREFIX + " " + "; ".join(parts)


def _flip_angles(series: PerfusionSeries) -> tuple[float | None, float | None]:
    """(PD, dynamic) flip angles in degrees; defaults only where PD frames must be marked."""
    flip = series.metadata.get("flip_angle_deg")
    pd_flip = series.metadata.get("pd_flip_angle_deg")
    if series.n_pd_frames:
        return (
            float(pd_flip) if pd_flip is not None else DEFAULT_PD_FLIP_DEG,
            float(flip) if flip is not None else DEFAULT_FLIP_DEG,
        )
    return None, (float(flip) if flip is not None else None)


def _dt_text(when: dt.datetime) -> tuple[str, str]:
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")


def _common(study: PerfusionStudy, base: dt.datetime, study_uid: str, frame_uid: str) -> Dataset:
    first = study.slices[0]
    patient_id = study.metadata.get("patient_id") or first.metadata.get("patient_id") or "QPERF"
    date, time = _dt_text(base)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "PRIMARY", "PERFUSION"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate, ds.StudyTime, ds.SeriesDate, ds.SeriesTime = date, time, date, time
    ds.AccessionNumber = ""
    ds.Modality = "MR"
    ds.Manufacturer = "QPerf"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.name[:64]
    ds.PatientName = "QPerf^Synthetic"
    ds.PatientID = str(patient_id)[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    field_t = first.metadata.get("field_strength_t")
    if field_t is not None:
        ds.MagneticFieldStrength = _ds(field_t)
    ds.MRAcquisitionType = "2D"
    ds.ScanOptions = ""
    ds.RepetitionTime = None
    ds.EchoTrainLength = None
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleType = "US"
    return ds


def _sequence_fields(ds: Dataset, readout: Any) -> None:
    ds.ScanningSequence = "GR"
    if readout == "ssfp":
        ds.SequenceVariant, ds.SequenceName = "SS", "qperf_ssfp"
    elif readout == "flash":
        ds.SequenceVariant, ds.SequenceName = "SP", "qperf_flash"
    else:
        ds.SequenceVariant = "NONE"


def _frame_file(
    common: Dataset,
    plan: _SeriesPlan,
    k: int,
    frame: int,
    instance: int,
    when: dt.datetime,
    comment: str,
) -> Dataset:
    series = plan.series[k]
    geometry = plan.geometries[k]
    ds = copy.deepcopy(common)
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_uid
    date, time = _dt_text(when)
    ds.AcquisitionDate, ds.AcquisitionTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.SeriesDescription = plan.description[:64]
    ds.SeriesInstanceUID = plan.uid
    ds.SeriesNumber = plan.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    _sequence_fields(ds, series.metadata.get("readout"))
    ds.SliceThickness = _ds(geometry.slice_thickness_mm)
    te = plan.echo_times_ms[k]
    ds.EchoTime = _ds(te) if te is not None else None
    if plan.echo_numbers[k] is not None:
        ds.EchoNumbers = plan.echo_numbers[k]
    pd_flip, flip = _flip_angles(series)
    angle = pd_flip if frame < series.n_pd_frames else flip
    if angle is not None:
        ds.FlipAngle = _ds(angle)
    heart_rate = series.metadata.get("heart_rate_bpm")
    if isinstance(heart_rate, (int, float)) and heart_rate > 0:
        ds.HeartRate = int(round(heart_rate))
    ds.ImagePositionPatient = [_ds(v) for v in geometry.origin_mm]
    ds.ImageOrientationPatient = [_ds(v) for v in (*geometry.x_direction, *geometry.y_direction)]
    ds.SliceLocation = _ds(float(np.dot(geometry.origin_mm, geometry.normal)))
    ds.PixelSpacing = [_ds(series.spacing_mm[0]), _ds(series.spacing_mm[1])]
    ny, nx = series.shape
    ds.Rows, ds.Columns = ny, nx
    values = series.data[frame]
    stored, slope, intercept = quantize_uint16(values)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    lo, hi = float(values.min()), float(values.max())
    ds.WindowCenter = _ds((lo + hi) / 2.0)
    ds.WindowWidth = _ds(max(hi - lo, 1.0))
    ds.ImageComments = comment
    ds.PixelData = stored.astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _plans(study: PerfusionStudy) -> list[_SeriesPlan]:
    geometries = [_geometry(s, i) for i, s in enumerate(study.slices)]
    _check_distinct_positions(study.slices, geometries)
    first = study.slices[0]
    n = len(study.slices)
    slice_te = [_echo_time(s, s, 0, 1) for s in study.slices]
    plans = [
        _SeriesPlan(
            number=1,
            description=str(first.metadata.get("series_description") or f"QPerf perfusion {study.condition}"),
            series=list(study.slices),
            geometries=geometries,
            echo_times_ms=slice_te,
            echo_numbers=[None] * n,
        )
    ]
    if study.aif_series:
        echoes = list(study.aif_series)
        description = str(echoes[0].metadata.get("series_description") or f"QPerf perfusion {study.condition}")
        if "aif" not in description.lower():
            description = f"{description} AIF"
        geometry = _geometry(echoes[0], 0)
        plans.append(
            _SeriesPlan(
                number=2,
                description=description,
                series=echoes,
                geometries=[geometry] * len(echoes),
                echo_times_ms=[_echo_time(s, echoes[0], i, len(echoes)) for i, s in enumerate(echoes)],
                echo_numbers=list(range(1, len(echoes) + 1)),
            )
        )
    return plans


def write_dicom_study(study: PerfusionStudy, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a study as a folder of MR DICOM files, one file per frame.

    Parameters
    ----------
    study : PerfusionStudy
        The myocardial slices become series 1 (all slices in one series); the AIF image
        series, when present, become series 2 with one echo per ``EchoNumbers`` and "AIF" in
        the series description. An AIF curve (``study.aif``) has no place in MR image
        storage and is not written.
    folder : path
        Output folder; its parent must exist. Written atomically.
    overwrite : bool
        Replace an existing folder as a whole.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    ValidationError
        ``study`` is not a PerfusionStudy, or two slices lie in the same plane.
    OutputExistsError
        ``folder`` exists and ``overwrite`` is False.

    Notes
    -----
    Pixels are uint16 with a RescaleSlope/Intercept per frame: integer-valued data (range at
    most 65535) are kept exactly, other data to within range / 130000. Frame times are
    AcquisitionDateTime = now + ``time_s`` (microsecond resolution). A slice without geometry
    gets the identity orientation at ``(0, 0, slice_position_mm)`` (or 8 mm per slice index).
    Flip angles come from ``metadata["flip_angle_deg"]`` and ``["pd_flip_angle_deg"]``; where
    PD frames exist and these are missing, 5 and 15 degrees are written so that the PD frames
    stay recognisable. Units, condition, hematocrit and known acquisition values
    (``saturation_time_ms`` ...) are carried in ImageComments (``"qperf: key=value; ..."``).
    """
    if not isinstance(study, PerfusionStudy):
        raise ValidationError(f"study: expected a PerfusionStudy, found {describe(study)}")
    plans = _plans(study)
    base = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    study_uid, frame_uid = generate_uid(), generate_uid()
    common = _common(study, base, study_uid, frame_uid)
    with atomic_dir(folder, overwrite) as tmp:
        for plan in plans:
            plan.uid = generate_uid()
            order = sorted(
                ((float(s.time_s[f]), k, f) for k, s in enumerate(plan.series) for f in range(s.n_frames)),
                key=lambda item: (item[0], item[1], item[2]),
            )
            comments = [_comment(study, s) for s in plan.series]
            for instance, (time_s, k, f) in enumerate(order, start=1):
                when = base + dt.timedelta(microseconds=int(round(time_s * 1e6)))
                ds = _frame_file(common, plan, k, f, instance, when, comments[k])
                ds.save_as(tmp / f"MR_{plan.number:02d}_{instance:05d}.dcm", enforce_file_format=True)
    return Path(folder)
