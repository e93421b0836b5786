"""Reading and writing perfusion acquisitions as folders of DICOM files.

:func:`read_dicom_folder` reads a folder (recursively) holding the myocardial short-axis
slices and the low-resolution dual-sequence AIF images (one or two echoes) of one
acquisition. Frames are grouped by series, slice orientation, position along the slice normal
and echo; each group becomes one :class:`~qperf.types.PerfusionSeries` with its own time
vector, on one clock shared by the whole study. :func:`write_dicom_study` writes a study as a
standards-shaped MR DICOM folder (one file per frame).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import FormatError, ValidationError, warn
from qperf.io.dicom_group import (
    ORIENTATION_TOL,
    POSITION_TOL_MM,
    Group,
    check_group,
    choose_clock,
    drop_copies,
    drop_still_series,
    group_frames,
)
from qperf.io.dicom_read import (
    Frame,
    as_float,
    comment_values,
    dicom_files,
    frame_pixels,
    frames_of,
    read_dataset,
    readout_guess,
)
from qperf.io.dicom_write import write_dicom_study
from qperf.progress import ProgressCallback, null_progress
from qperf.types import DEFAULT_HEMATOCRIT, PerfusionSeries, PerfusionStudy, SliceGeometry

__all__ = ["read_dicom_folder", "write_dicom_study"]

_PD_FLIP_RATIO = 0.75
_DEFAULT_THICKNESS_MM = 8.0


def _classify_aif(groups: list[Group]) -> None:
    """Mark the AIF groups: "AIF" in the series description, else clearly lower resolution.

    When every group is named AIF and resolution does not split them, all stay AIF (a folder
    holding only the AIF images).
    """
    by_name = [("aif" in g.first.description.lower()) for g in groups]
    if any(by_name) and not all(by_name):
        for g, flag in zip(groups, by_name, strict=True):
            g.is_aif = flag
        return
    reference = max(groups, key=lambda g: (g.matrix_pixels, -g.pixel_area_mm2))
    for g in groups:
        lower = g.matrix_pixels <= 0.6 * reference.matrix_pixels or g.pixel_area_mm2 >= 1.8 * reference.pixel_area_mm2
        g.is_aif = lower and len(g.frames) == len(reference.frames)
    if not any(g.is_aif for g in groups):
        for g, flag in zip(groups, by_name, strict=True):
            g.is_aif = flag


# --- building series ---------------------------------------------------------------------


def _n_pd_frames(flips: list[float | None]) -> int:
    """Leading frames with a clearly lower flip angle than the dynamic frames (0 if none)."""
    if any(a is None for a in flips) or len(flips) < 3:
        return 0
    angles = np.asarray(flips, dtype=float)
    dynamic = float(np.median(angles[len(angles) // 2 :]))
    low = angles < _PD_FLIP_RATIO * dynamic
    n = int(np.argmin(low)) if not np.all(low) else len(angles)
    return n if 0 < n <= len(angles) - 2 else 0


def _metadata(group: Group, n_pd: int, comments: dict[str, Any], source: Path, time_source: str) -> dict[str, Any]:
    ds = group.first.ds
    meta: dict[str, Any] = {
        "series_description": group.first.description,
        "series_uid": group.first.series_uid,
        "source": str(source),
        "time_source": time_source,
        # the source instances, frame by frame, for results that reference them (DICOM SEG, Parametric Map)
        "sop_instance_uids": [str(f.ds.get("SOPInstanceUID", "")) for f in group.frames],
    }
    if ds.get("StudyInstanceUID"):
        meta["study_uid"] = str(ds.StudyInstanceUID)
    if ds.get("PatientID"):
        meta["patient_id"] = str(ds.PatientID)
    field_t = as_float(ds.get("MagneticFieldStrength"))
    if field_t is not None:
        meta["field_strength_t"] = field_t
    flips = [f.flip_deg for f in group.frames]
    if all(a is not None for a in flips):
        meta["flip_angle_deg"] = float(np.median(np.asarray(flips[n_pd:], dtype=float)))
        if n_pd:
            meta["pd_flip_angle_deg"] = float(np.median(np.asarray(flips[:n_pd], dtype=float)))
    if group.first.echo_time_ms is not None:
        meta["echo_times_ms"] = [group.first.echo_time_ms]
    readout = readout_guess(ds)
    if readout:
        meta["readout"] = readout
    heart_rate = [as_float(f.ds.get("HeartRate")) for f in group.frames]
    rates = [v for v in heart_rate if v]
    if rates:
        meta["heart_rate_bpm"] = float(np.median(rates))
    for key in ("saturation_time_ms", "echo_spacing_ms", "n_pe_to_center", "heart_rate_bpm"):
        if key in comments:
            meta[key] = comments[key]
    if time_source == "instance_number":
        meta["time_recorded"] = False
    return meta


def _build_series(
    group: Group, t0: float, name: str, position_mm: float, source: Path, time_source: str, thickness_mm: float
) -> PerfusionSeries:
    frames = sorted(group.frames, key=lambda f: (f.clock_s, f.instance or 0, str(f.path), f.frame_index))
    group.frames = frames
    first = frames[0]
    data = np.stack([frame_pixels(f) for f in frames]).astype(np.float32)
    n_pd = _n_pd_frames([f.flip_deg for f in frames])
    comments = comment_values(first.ds)
    geometry = SliceGeometry(
        origin_mm=tuple(first.position),  # type: ignore[arg-type]
        x_direction=tuple(first.x_dir),  # type: ignore[arg-type]
        y_direction=tuple(first.y_dir),  # type: ignore[arg-type]
        slice_thickness_mm=first.thickness_mm if first.thickness_mm and first.thickness_mm > 0 else thickness_mm,
    )
    units = comments.get("units", "signal")
    return PerfusionSeries(
        data=data,
        time_s=np.array([f.clock_s - t0 for f in frames]),
        spacing_mm=first.spacing_mm,
        geometry=geometry,
        units=units if units in ("signal", "gd_mmol_l") else "signal",
        n_pd_frames=n_pd,
        slice_position_mm=position_mm,
        name=name,
        metadata=_metadata(group, n_pd, comments, source, time_source),
    )


def _condition(texts: list[str]) -> str:
    joined = " ".join(texts).lower()
    stress = re.search(r"(?<![a-z])stress(?![a-z])", joined) is not None
    rest = re.search(r"(?<![a-z])rest(?![a-z])", joined) is not None
    return "stress" if stress and not rest else "rest" if rest and not stress else "unknown"


def _fail_on_overlap(groups: list[Group], what: str) -> None:
    ordered = sorted(groups, key=lambda g: g.position_mm)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if abs(a.position_mm - b.position_mm) < POSITION_TOL_MM and np.allclose(
            a.first.normal, b.first.normal, atol=ORIENTATION_TOL
        ):
            raise FormatError(
                f"{what}: two image groups at slice position {a.position_mm:.1f} mm ({a.where()} and {b.where()}); "
                "keep one acquisition per folder"
            )


def _build_aif(aif: list[Group], t0: float, root: Path, time_source: str, thickness: float) -> list[PerfusionSeries]:
    """One series per AIF echo, in order of echo time, all on the first echo's times."""
    if not aif:
        return []
    positions = sorted(g.position_mm for g in aif)
    if positions[-1] - positions[0] >= POSITION_TOL_MM:
        raise FormatError(
            f"{root}: AIF images at several slice positions ({positions[0]:.1f} to {positions[-1]:.1f} mm); "
            "expected one AIF slice"
        )
    aif.sort(key=lambda g: g.echo_key)
    for a, b in zip(aif, aif[1:], strict=False):
        if a.echo_key == b.echo_key:
            raise FormatError(
                f"{root}: two AIF image groups with the same echo ({a.where()} and {b.where()}); "
                "keep one acquisition per folder"
            )
    counts = sorted({len(g.frames) for g in aif})
    if len(counts) > 1:
        raise FormatError(f"{root}: the AIF echoes have differing frame counts {counts}")
    echoes = [
        _build_series(g, t0, f"AIF echo {i + 1}", g.position_mm, root, time_source, thickness)
        for i, g in enumerate(aif)
    ]
    echo_times = [g.first.echo_time_ms for g in aif]
    out = []
    for s, te in zip(echoes, echo_times, strict=True):
        meta = dict(s.metadata)
        if all(v is not None for v in echo_times):
            meta["echo_times_ms"] = list(echo_times)
        if te is not None:
            meta["echo_time_ms"] = te
        meta["n_echoes"] = len(echoes)
        out.append(s.replace(time_s=echoes[0].time_s, metadata=meta))
    return out


def read_dicom_folder(folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None) -> PerfusionStudy:
    """Read a perfusion acquisition from a folder of DICOM files.

    Parameters
    ----------
    folder : path
        Folder searched recursively. Files that are not DICOM images (text, DICOMDIR,
        presentation states, secondary captures) are skipped silently.
    progress : callable, optional
        ``progress(fraction, message)`` while files are read.

    Returns
    -------
    PerfusionStudy
        ``slices``: one :class:`PerfusionSeries` per myocardial slice position, ordered by
        position along the slice normal and named ``"slice 1"``, ``"slice 2"``...; data
        float32 ``(t, y, x)`` after RescaleSlope/Intercept; ``time_s`` per slice from the
        acquisition times, relative to the earliest frame of the whole study (slices and AIF
        share this clock); ``n_pd_frames`` the leading low-flip-angle proton-density frames.
        ``aif_series``: the AIF images (series description containing "AIF", else a series
        of clearly lower resolution with as many frames as the slices), one series per echo
        in order of echo time, all on the first echo's times.

    Raises
    ------
    FormatError
        Missing folder, no DICOM images, differing matrix within a slice, a slice with a
        single frame, unreadable pixel data, overlapping series.
    MissingMetadataError
        (a ``FormatError``) ImagePositionPatient, ImageOrientationPatient or PixelSpacing is
        missing; ``field`` names the tag.

    Notes
    -----
    Series made only of single images (localizers, parametric maps) are left out when other
    series hold dynamic slices; ``metadata["ignored_series"]`` lists them.
    Frames are ordered by AcquisitionDateTime (or AcquisitionDate/AcquisitionTime), else by
    TriggerTime when it increases with InstanceNumber, else by InstanceNumber alone; in the
    last case times are frame counts times the nominal RR interval (or 1 s) and
    ``metadata["time_recorded"]`` is False. ``metadata["time_source"]`` says which was used.

    Frame times that disagree are never passed over silently. A frame that repeats another of
    its slice (same time, InstanceNumber and pixel data: a file exported twice) is left out.
    When other frames of one slice share an acquisition time, the acquisition times cannot
    order them and the next source above is used for the whole study. Acquisition times that
    go back while InstanceNumber goes up are kept (they order the frames). Each case is a
    :class:`~qperf.errors.QPerfWarning` naming the slice, the frames (files) and the tag, and
    is listed in the study's ``metadata["warnings"]``.
    """
    report: Callable[[float, str], None] = progress or null_progress
    root = Path(folder)
    if not root.exists():
        raise FormatError(f"{root}: no such folder")
    if not root.is_dir():
        raise FormatError(f"{root}: expected a folder of DICOM files, found a file")
    groups = group_frames(_read_frames(root, report))
    for g in groups:
        check_group(g)
    notes = drop_copies(groups)
    groups, ignored = drop_still_series(groups)
    frames = [f for g in groups for f in g.frames]
    time_source, clock_notes = choose_clock(groups)
    notes += clock_notes
    for note in notes:
        warn(note)
    t0 = min(f.clock_s for f in frames)
    _classify_aif(groups)
    myo = [g for g in groups if not g.is_aif]
    aif = [g for g in groups if g.is_aif]
    thickness = _place_slices(groups, myo, aif, root)

    report(0.85, "assembling slices")
    slices = [
        _build_series(g, t0, f"slice {i + 1}", g.position_mm, root, time_source, thickness) for i, g in enumerate(myo)
    ]
    aif_series = _build_aif(aif, t0, root, time_source, thickness)
    if not slices:  # only AIF images in the folder: they are the slices
        slices, aif_series = aif_series, []
    aif_series = _match_pd_frames(slices, aif_series)
    report(1.0, "done")
    return _study(root, myo or aif, slices, aif_series, time_source, ignored, notes)


def _read_frames(root: Path, report: Callable[[float, str], None]) -> list[Frame]:
    """Every 2D frame of the DICOM images below ``root``, each SOP instance once."""
    paths = dicom_files(root)
    frames: list[Frame] = []
    seen: set[str] = set()
    for i, path in enumerate(paths):
        ds = read_dataset(path)
        if ds is not None:
            sop = str(ds.get("SOPInstanceUID", "")) or str(path)
            if sop not in seen:
                seen.add(sop)
                frames += frames_of(path, ds)
        if i % 20 == 0:
            report(0.8 * (i + 1) / len(paths), f"reading DICOM files ({i + 1}/{len(paths)})")
    if not frames:
        raise FormatError(f"{root}: no DICOM images found ({len(paths)} files searched)")
    return frames


def _place_slices(groups: list[Group], myo: list[Group], aif: list[Group], root: Path) -> float:
    """Set every group's position along the normal of the longest series and sort ``myo`` by it.

    Returns the slice thickness: the smallest gap between slices, else 8 mm.
    """
    reference_normal = max(myo or aif, key=lambda g: len(g.frames)).first.normal
    for g in groups:
        g.position_mm = float(np.dot(g.first.position, reference_normal))
    _fail_on_overlap(myo, f"{root}")
    myo.sort(key=lambda g: g.position_mm)
    gaps = np.abs(np.diff([g.position_mm for g in myo]))
    return float(np.min(gaps)) if gaps.size and np.min(gaps) > 0 else _DEFAULT_THICKNESS_MM


def _match_pd_frames(slices: list[PerfusionSeries], aif_series: list[PerfusionSeries]) -> list[PerfusionSeries]:
    """AIF series with no more PD frames than the slice with the fewest.

    PD frames are acquired in the same beats for AIF and slices: when the flip angles of the
    slices do not show them, the AIF keeps as few so its dynamic part covers theirs.
    """
    fewest_pd = min(s.n_pd_frames for s in slices)
    if aif_series and aif_series[0].n_pd_frames > fewest_pd:
        return [
            s.replace(n_pd_frames=fewest_pd, metadata={**s.metadata, "n_pd_frames_detected": s.n_pd_frames})
            for s in aif_series
        ]
    return aif_series


def _study(
    root: Path,
    named: list[Group],
    slices: list[PerfusionSeries],
    aif_series: list[PerfusionSeries],
    time_source: str,
    ignored: list[str],
    notes: list[str],
) -> PerfusionStudy:
    """The study, its condition and hematocrit from the first group of ``named`` (QPerf comments or names)."""
    first_ds = named[0].first.ds
    comments = comment_values(first_ds)
    condition = comments.get("condition")
    if condition not in ("stress", "rest", "unknown"):
        condition = _condition([g.first.description for g in named])
    hematocrit = comments.get("hematocrit", DEFAULT_HEMATOCRIT)
    study_meta: dict[str, Any] = {"source": str(root), "time_source": time_source}
    if ignored:
        study_meta["ignored_series"] = ignored
    if notes:
        study_meta["warnings"] = list(notes)
    for key, keyword in (("patient_id", "PatientID"), ("study_uid", "StudyInstanceUID"), ("study_date", "StudyDate")):
        if first_ds.get(keyword):
            study_meta[key] = str(first_ds.get(keyword))
    try:
        return PerfusionStudy(
            slices=tuple(slices),
            aif_series=tuple(aif_series),
            condition=condition,
            hematocrit=hematocrit if 0.0 < hematocrit < 1.0 else DEFAULT_HEMATOCRIT,
            name=str(first_ds.get("StudyDescription", "") or ""),
            metadata=study_meta,
        )
    except ValidationError as exc:
        raise FormatError(f"{root}: {exc}") from exc
