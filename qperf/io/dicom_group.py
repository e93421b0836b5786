"""DICOM frames grouped into slices and put on one clock: the middle of the DICOM reader.

:mod:`qperf.io.dicom_read` turns files into :class:`~qperf.io.dicom_read.Frame` records; here
they are grouped by series, orientation, position and echo (:class:`Group`), single-image
series are left out, repeated frames dropped, and one time source is chosen for the study
(:func:`choose_clock`), with a note for every disagreement of the frame times.
:mod:`qperf.io.dicom` builds the series and the study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import FormatError
from qperf.io.dicom_read import Frame, as_float

__all__ = [
    "ORIENTATION_TOL",
    "POSITION_TOL_MM",
    "Group",
    "check_group",
    "choose_clock",
    "drop_copies",
    "drop_still_series",
    "group_frames",
]

#: Frames within this distance along the slice normal (mm) are one slice position.
POSITION_TOL_MM = 0.1
#: Orientations within this (direction cosines) are one orientation.
ORIENTATION_TOL = 1e-3


@dataclass
class Group:
    """The frames of one slice position (and echo) of one series."""

    frames: list[Frame]
    position_mm: float = 0.0
    echo_key: tuple[float, float] = (np.inf, np.inf)
    is_aif: bool = False

    @property
    def first(self) -> Frame:
        return self.frames[0]

    @property
    def matrix_pixels(self) -> int:
        return self.first.rows * self.first.cols

    @property
    def pixel_area_mm2(self) -> float:
        return self.first.spacing_mm[0] * self.first.spacing_mm[1]

    def where(self) -> str:
        desc = self.first.description or self.first.series_uid
        return f"series {desc!r}, slice at {self.position_mm:.1f} mm"


# --- grouping ----------------------------------------------------------------------------


def group_frames(frames: list[Frame]) -> list[Group]:
    """Cluster frames by series, orientation, position along the normal and echo."""
    keyed: dict[tuple[Any, ...], list[Frame]] = {}
    orientations: list[NDArray[np.float64]] = []
    positions: dict[tuple[str, int], list[float]] = {}
    for f in frames:
        orient = np.concatenate([f.x_dir, f.y_dir])
        oid = next((i for i, o in enumerate(orientations) if np.max(np.abs(o - orient)) < ORIENTATION_TOL), None)
        if oid is None:
            orientations.append(orient)
            oid = len(orientations) - 1
        d = float(np.dot(f.position, f.normal))
        known = positions.setdefault((f.series_uid, oid), [])
        pid = next((i for i, p in enumerate(known) if abs(p - d) < POSITION_TOL_MM), None)
        if pid is None:
            known.append(d)
            pid = len(known) - 1
        key = (f.series_uid, oid, pid, None if f.echo_time_ms is None else round(f.echo_time_ms, 3), f.echo_number)
        keyed.setdefault(key, []).append(f)
    groups = []
    for key, members in keyed.items():
        te = key[3]
        groups.append(
            Group(frames=members, echo_key=(np.inf if te is None else te, np.inf if key[4] is None else key[4]))
        )
    return groups


def check_group(group: Group) -> None:
    first = group.first
    for f in group.frames[1:]:
        if (f.rows, f.cols) != (first.rows, first.cols):
            raise FormatError(
                f"{group.where()}: images of differing matrix (Rows x Columns, (0028,0010) x (0028,0011)), "
                f"{first.rows} x {first.cols} in {first.label()} and {f.rows} x {f.cols} in {f.label()}"
            )
        if not np.allclose(f.spacing_mm, first.spacing_mm, rtol=1e-3, atol=1e-4):
            raise FormatError(
                f"{group.where()}: images of differing PixelSpacing, {first.spacing_mm} in {first.label()} and "
                f"{f.spacing_mm} in {f.label()}"
            )


def drop_still_series(groups: list[Group]) -> tuple[list[Group], list[str]]:
    """Leave out series made only of single images (localizers, maps) beside perfusion series.

    A slice with a single frame in a series that has dynamic slices, or a folder with no
    dynamic slice at all, is an error.
    """
    by_series: dict[str, list[Group]] = {}
    for g in groups:
        by_series.setdefault(g.first.series_uid, []).append(g)
    still = {uid for uid, gs in by_series.items() if all(len(g.frames) < 2 for g in gs)}
    if len(still) == len(by_series):
        still = set()
    kept = [g for g in groups if g.first.series_uid not in still]
    for g in kept:
        if len(g.frames) < 2:
            raise FormatError(
                f"{g.where()}: a single frame ({g.first.label()}); a perfusion slice needs at least 2 frames "
                "(keep one acquisition per folder)"
            )
    ignored = sorted({by_series[uid][0].first.description or uid for uid in still})
    return kept, ignored


def choose_clock(groups: list[Group]) -> tuple[str, list[str]]:
    """Pick one time source for the whole study: acquisition time, trigger time, else instance number.

    Returns the source and the warnings: frames of one slice that share a time (which frames,
    which tag) and frames whose acquisition times run against their InstanceNumber.
    """
    frames = [f for g in groups for f in g.frames]
    notes: list[str] = []
    if all(f.acq_time_s is not None for f in frames):
        _set_acquisition_clock(frames)
        shared = _shared_times(groups, lambda f: f.clock_s, lambda f: f.time_tag)
        if not shared:
            return "acquisition_time", _against_instance(groups)
        notes += shared
    if all(f.trigger_s is not None and f.instance is not None for f in frames):
        increasing = True
        for g in groups:
            trig = np.array([f.trigger_s for f in sorted(g.frames, key=lambda f: int(f.instance or 0))], dtype=float)
            increasing &= bool(np.all(np.diff(trig) > 0))
        if increasing:
            for f in frames:
                f.clock_s = float(f.trigger_s or 0.0)
            return "trigger_time", [n + "; frame times taken from TriggerTime (0018,1060)" for n in notes]
    for g in groups:
        numbers = [f.instance for f in g.frames]
        if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
            raise FormatError(
                f"{g.where()}: cannot order the frames: no distinct AcquisitionTime, TriggerTime or InstanceNumber"
                + (f" ({notes[0]})" if notes else "")
            )
    interval = _assumed_interval_s(frames)
    for g in groups:
        for rank, f in enumerate(sorted(g.frames, key=lambda f: int(f.instance or 0))):
            f.clock_s = rank * interval
    suffix = f"; frames ordered by InstanceNumber (0020,0013), {interval:.3g} s apart (the times are not recorded)"
    return "instance_number", [n + suffix for n in notes]


def _set_acquisition_clock(frames: list[Frame]) -> None:
    """Every frame's clock from its acquisition date and time (days counted from the first)."""
    with_dates = all(f.acq_date is not None for f in frames)
    first_day = min(int(f.acq_date or 0) for f in frames) if with_dates else 0
    for f in frames:
        # days counted from the first day keep microseconds exact in float64
        f.clock_s = (int(f.acq_date or 0) - first_day) * 86400.0 + float(f.acq_time_s or 0.0)
    if not with_dates:
        clocks = np.array([f.clock_s for f in frames])
        if clocks.max() - clocks.min() > 43200.0:  # the acquisition crossed midnight
            for f in frames:
                f.clock_s += 86400.0 if f.clock_s < 43200.0 else 0.0


def _shared_times(groups: list[Group], time: Callable[[Frame], float], tag: Callable[[Frame], str]) -> list[str]:
    """One line per slice whose frames share a time: the frames (files) and the tag."""
    out = []
    for g in groups:
        seen: dict[float, Frame] = {}
        pairs = []
        for f in g.frames:
            key = round(time(f), 6)
            if key in seen:
                pairs.append((seen[key], f))
            seen.setdefault(key, f)
        if pairs:
            a, b = pairs[0]
            more = f" (and {len(pairs) - 1} more pairs)" if len(pairs) > 1 else ""
            out.append(f"{g.where()}: frames {a.label()} and {b.label()} share {tag(b)} {_clock(time(b))}{more}")
    return out


def _clock(seconds: float) -> str:
    """A clock reading as ``HH:MM:SS.ffffff`` (seconds past the first day's midnight)."""
    day, rest = divmod(seconds, 86400.0)
    text = f"{int(rest // 3600):02d}:{int(rest % 3600 // 60):02d}:{rest % 60:09.6f}"
    return text + (f" (day {int(day) + 1})" if day else "")


def _against_instance(groups: list[Group]) -> list[str]:
    """One line per slice whose acquisition times go back while InstanceNumber goes up (times win)."""
    out = []
    for g in groups:
        if any(f.instance is None for f in g.frames) or len({f.instance for f in g.frames}) < len(g.frames):
            continue
        ordered = sorted(g.frames, key=lambda f: int(f.instance or 0))
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.clock_s < a.clock_s:
                out.append(
                    f"{g.where()}: {b.label()} (InstanceNumber {b.instance}) was acquired before {a.label()} "
                    f"(InstanceNumber {a.instance}) by {b.time_tag}; frames ordered by acquisition time"
                )
                break
    return out


def drop_copies(groups: list[Group]) -> list[str]:
    """Leave out frames that repeat another of their slice (same time, InstanceNumber and pixels); say which."""
    out = []
    for g in groups:
        kept: dict[tuple[Any, ...], Frame] = {}
        dropped = []
        for f in g.frames:
            pixels = f.ds.get("PixelData") if f.frame_index < 0 else None
            key = (f.acq_date, f.acq_time_s, f.trigger_s, f.instance, pixels)
            if pixels is not None and key in kept:
                dropped.append((kept[key], f))
            else:
                kept.setdefault(key, f)
        if dropped:
            g.frames = [f for f in g.frames if all(f is not d for _, d in dropped)]
            a, b = dropped[0]
            out.append(
                f"{g.where()}: {len(dropped)} frame(s) repeat another (same {b.time_tag or 'time'}, InstanceNumber "
                f"and pixels), e.g. {b.label()} repeats {a.label()}; the repeats are left out"
            )
    return out


def _assumed_interval_s(frames: list[Frame]) -> float:
    """Frame interval when no times are recorded: the nominal RR interval, else the heart rate, else 1 s."""
    rr = [as_float(f.ds.get("NominalInterval")) for f in frames]
    rr_ms = [v for v in rr if v]
    if rr_ms:
        return float(np.median(rr_ms)) / 1000.0
    hr = [as_float(f.ds.get("HeartRate")) for f in frames]
    hr_bpm = [v for v in hr if v]
    return 60.0 / float(np.median(hr_bpm)) if hr_bpm else 1.0
