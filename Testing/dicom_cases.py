"""A synthetic DICOM perfusion study, written with pydicom, and helpers to damage its folder.

Shared by the DICOM reader's tests: 3 oblique slices with their own times on one clock, PD
frames and a two-echo AIF series (:func:`make_study`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from qperf.types import PerfusionSeries, PerfusionStudy, SliceGeometry

N_FRAMES = 12
N_PD = 3
SLICE_OFFSET_S = 0.137  # each slice is acquired this much later in the heart beat than the previous one
AIF_LEAD_S = 0.211  # the AIF image comes first in each beat
ECHO_TIMES_MS = [0.76, 1.76]


def oblique_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A double-oblique short-axis orientation (LPS unit vectors x, y and normal)."""
    x = np.array([0.81, 0.52, -0.27])
    x /= np.linalg.norm(x)
    y = np.cross(x, [0.15, -0.35, 0.92])
    y /= np.linalg.norm(y)
    return x, y, np.cross(x, y)


def make_study(
    rng: np.random.Generator,
    *,
    float_data: bool = False,
    units: str = "signal",
    aif: bool = True,
    echo_times_ms: list[float] | None = None,
) -> PerfusionStudy:
    """3 oblique slices with their own times, 3 PD frames, a two-echo AIF series."""
    x, y, normal = oblique_axes()
    beats_s = 5.0 + np.cumsum(rng.uniform(0.75, 1.15, N_FRAMES))  # irregular RR intervals
    slices = []
    for k in range(3):
        geometry = SliceGeometry(
            origin_mm=tuple(np.array([-118.25, 31.5, 42.125]) + 9.5 * k * normal),  # type: ignore[arg-type]
            x_direction=tuple(x),  # type: ignore[arg-type]
            y_direction=tuple(y),  # type: ignore[arg-type]
            slice_thickness_mm=8.0,
        )
        if float_data:
            data = rng.uniform(0.0, 6.5, (N_FRAMES, 18, 16))
        else:
            data = rng.integers(0, 4096, (N_FRAMES, 18, 16)).astype(np.float32)
        slices.append(
            PerfusionSeries(
                data,
                time_s=beats_s + SLICE_OFFSET_S * (k + 1),
                spacing_mm=(1.875, 2.125),
                geometry=geometry,
                units=units,
                n_pd_frames=N_PD,
                metadata={
                    "flip_angle_deg": 50.0,
                    "pd_flip_angle_deg": 5.0,
                    "field_strength_t": 1.5,
                    "readout": "ssfp",
                    "saturation_time_ms": 110.0,
                    "series_description": "perfusion stress",
                },
            )
        )
    aif_series: tuple[PerfusionSeries, ...] = ()
    if aif:
        tes = echo_times_ms or ECHO_TIMES_MS
        aif_geometry = SliceGeometry(origin_mm=(-110.0, 25.0, 30.0), x_direction=tuple(x), y_direction=tuple(y))  # type: ignore[arg-type]
        aif_series = tuple(
            PerfusionSeries(
                rng.integers(0, 2500, (N_FRAMES, 8, 7)).astype(np.float32),
                time_s=beats_s + SLICE_OFFSET_S - AIF_LEAD_S,
                spacing_mm=(5.5, 5.75),
                geometry=aif_geometry,
                n_pd_frames=N_PD,
                metadata={
                    "echo_times_ms": tes,
                    "flip_angle_deg": 12.0,
                    "pd_flip_angle_deg": 5.0,
                    "series_description": "AIF",
                },
            )
            for _ in tes
        )
    return PerfusionStudy(
        slices=tuple(slices), aif_series=aif_series, condition="stress", hematocrit=0.45, name="synthetic"
    )


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm"))


def edit_files(
    folder: Path, change: Callable[[Dataset], bool | None], only: Callable[[Dataset], bool] = lambda ds: True
) -> int:
    """Apply ``change`` to the files selected by ``only``; a change returning True deletes the file."""
    n = 0
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path)
        if only(ds):
            n += 1
            if change(ds) is True:
                path.unlink()
            else:
                ds.save_as(path, enforce_file_format=True)
    return n


def is_aif(ds: Dataset) -> bool:
    return "AIF" in str(ds.SeriesDescription)


def first_slice_file(folder: Path) -> Path:
    return next(p for p in dicom_files(folder) if not is_aif(pydicom.dcmread(p, stop_before_pixels=True)))


def assert_same_study(read: PerfusionStudy, study: PerfusionStudy) -> None:
    t0 = min(float(s.time_s[0]) for s in (*study.slices, *study.aif_series))
    assert read.n_slices == study.n_slices
    for i, (got, want) in enumerate(zip(read.slices, study.slices, strict=True)):
        assert got.name == f"slice {i + 1}"
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_allclose(got.time_s, want.time_s - t0, atol=1.5e-6, rtol=0)
        assert got.n_pd_frames == want.n_pd_frames
        np.testing.assert_allclose(got.spacing_mm, want.spacing_mm, rtol=1e-12)
        assert got.geometry is not None and want.geometry is not None
        np.testing.assert_allclose(got.geometry.origin_mm, want.geometry.origin_mm, atol=1e-9)
        np.testing.assert_allclose(got.geometry.x_direction, want.geometry.x_direction, atol=1e-12)
        np.testing.assert_allclose(got.geometry.y_direction, want.geometry.y_direction, atol=1e-12)
        assert got.geometry.slice_thickness_mm == pytest.approx(want.geometry.slice_thickness_mm)
        assert got.slice_position_mm == pytest.approx(float(np.dot(want.geometry.origin_mm, want.geometry.normal)))
    assert len(read.aif_series) == len(study.aif_series)
    for got, want in zip(read.aif_series, study.aif_series, strict=True):
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_allclose(got.time_s, want.time_s - t0, atol=1.5e-6, rtol=0)
        assert got.n_pd_frames == want.n_pd_frames
