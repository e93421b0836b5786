"""Analysis results as DICOM, referencing the source series: Parametric Maps and a Segmentation.

For every slice read from a DICOM folder, :func:`write_dicom_results` writes one DICOM
Parametric Map per parameter map (float pixels, the unit as a coded UCUM concept, e.g. MBF in
``ml/min/g``) and one DICOM Segmentation (SEG) of the labels (1 LV blood pool, 2 myocardium,
3 RV blood pool, with SNOMED CT property types), made with highdicom (the ``dicom`` extra).
The maps and labels lie on the grid of the motion-correction key frame, so that frame's source
instance is the source image; the slice's other frames are referenced as further sources. Each
result is a new series in the source study (same Study Instance UID and Frame of Reference).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from qperf.errors import NotAvailableError, ValidationError
from qperf.io.atomic import atomic_dir
from qperf.io.dicom_read import dicom_files, read_dataset
from qperf.io.seg_nrrd import CATEGORY_CODE, LABEL_SEGMENTS
from qperf.types import PerfusionSeries

__all__ = ["LABEL_SEGMENTS", "SliceResults", "map_stem", "map_unit", "write_dicom_results"]

#: Unit suffixes of the map names and their UCUM codes (code, meaning).
_UNITS = (
    ("_ml_min_g", ("ml/min/g", "Milliliter/minute/gram")),
    ("_ml_g", ("ml/g", "Milliliter/gram")),
    ("_per_min", ("/min", "Per minute")),
    ("_per_s", ("/s", "Per second")),
    ("_mmol_l", ("mmol/L", "Millimole/liter")),
    ("_s", ("s", "Second")),
)
_MANUFACTURER = "QPerf"


@dataclass(frozen=True)
class SliceResults:
    """The results of one slice to write.

    Attributes
    ----------
    series : PerfusionSeries
        The slice as read from DICOM (its metadata holds ``sop_instance_uids``, one per frame).
    maps : mapping of str to ndarray, float, shape (y, x)
        Parameter maps named with their units (``mbf_ml_min_g``, ``delay_s``, ...).
    labels : ndarray, integer, shape (y, x)
        0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.
    key_frame : int
        The frame (PD frames included) whose grid the maps and labels lie on.
    """

    series: PerfusionSeries
    maps: Mapping[str, NDArray[Any]]
    labels: NDArray[Any]
    key_frame: int = 0


def map_stem(name: str) -> str:
    """File stem of a map: its name without the unit (``"mbf_ml_min_g_sd"`` -> ``"mbf_sd"``)."""
    base, sd = (name[:-3], "_sd") if name.endswith("_sd") else (name, "")
    for suffix, _ in _UNITS:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + sd
    return base + sd


def map_unit(name: str) -> tuple[str, str]:
    """UCUM code and meaning of a map named with its unit (``"mbf_ml_min_g"`` -> ``("ml/min/g", ...)``)."""
    base = name[:-3] if name.endswith("_sd") else name
    for suffix, unit in _UNITS:
        if base.endswith(suffix) and len(base) > len(suffix):
            return unit
    return ("1", "no units")


def _highdicom() -> Any:
    try:
        import highdicom
    except ImportError as exc:
        raise NotAvailableError(
            "DICOM results: expected highdicom, found it not installed (pip install 'qperf[dicom]')"
        ) from exc
    return highdicom


def _source_datasets(folder: Path, wanted: set[str]) -> dict[str, Dataset]:
    """The headers of the source instances named in ``wanted``, by SOP Instance UID."""
    found: dict[str, Dataset] = {}
    for path in dicom_files(folder):
        ds = read_dataset(path)
        if ds is not None and str(ds.get("SOPInstanceUID", "")) in wanted:
            found[str(ds.SOPInstanceUID)] = ds
    return found


def _instances(sl: SliceResults, index: int) -> list[str]:
    uids = sl.series.metadata.get("sop_instance_uids")
    name = sl.series.name or f"slice {index + 1}"
    if not isinstance(uids, list) or len(uids) != sl.series.n_frames or not all(uids):
        raise ValidationError(
            f"{name}: DICOM results reference the source images; expected a series read from DICOM "
            "(qperf.io.read_dicom_folder), found no source instance UIDs"
        )
    if not 0 <= sl.key_frame < len(uids):
        raise ValidationError(f"{name}: key_frame: expected 0 to {len(uids) - 1}, found {sl.key_frame}")
    return [str(u) for u in uids]


def _geometry(hd: Any, series: PerfusionSeries) -> dict[str, Any]:
    """Pixel measures, orientation and position of the result's single frame (the slice's grid)."""
    geometry = series.geometry
    if geometry is None:
        raise ValidationError(f"{series.name or 'slice'}: DICOM results need the slice geometry, found none")
    return {
        "pixel_measures": hd.PixelMeasuresSequence(
            pixel_spacing=[float(v) for v in series.spacing_mm], slice_thickness=float(geometry.slice_thickness_mm)
        ),
        "plane_orientation": hd.PlaneOrientationSequence(
            coordinate_system="PATIENT",
            image_orientation=[float(v) for v in (*geometry.x_direction, *geometry.y_direction)],
        ),
        "plane_positions": [
            hd.PlanePositionSequence(coordinate_system="PATIENT", image_position=[float(v) for v in geometry.origin_mm])
        ],
    }


def _parametric_map(
    hd: Any, name: str, values: NDArray[Any], sources: list[Dataset], series: PerfusionSeries, number: int, version: str
) -> Dataset:
    from pydicom.sr.coding import Code

    pixels = np.asarray(values, dtype=np.float32)
    finite = pixels[np.isfinite(pixels)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    code, meaning = map_unit(name)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=name[:16],
        lut_explanation=name,
        unit=Code(code, "UCUM", meaning),
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
    )
    return hd.pm.ParametricMap(
        pixel_array=pixels,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            hd.VOILUTTransformation(window_center=(low + high) / 2.0, window_width=max(high - low, 1e-6))
        ],
        content_label=name.upper().replace("-", "_")[:16].rstrip("_") or "MAP",  # CS: no trailing "_"
        content_description=f"QPerf {name}",
        **_new_series(hd, sources, series, number, version),
    )


def _new_series(hd: Any, sources: list[Dataset], series: PerfusionSeries, number: int, version: str) -> dict[str, Any]:
    """The arguments every derived object shares: its sources, a new series and instance, the
    device, and the source's geometry."""
    return {
        "source_images": sources[:1],
        "further_source_images": sources[1:],
        "series_instance_uid": hd.UID(),
        "series_number": number,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": _MANUFACTURER,
        "manufacturer_model_name": "qperf",
        "software_versions": version,
        "device_serial_number": "none",
        **_geometry(hd, series),
    }


def _segmentation(
    hd: Any, labels: NDArray[Any], sources: list[Dataset], series: PerfusionSeries, number: int, version: str
) -> Dataset:
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    algorithm = hd.AlgorithmIdentificationSequence(
        name="QPerf", family=codes.cid7162.ArtificialIntelligence, version=version
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=seg.label,
            segment_label=seg.name,
            segmented_property_category=Code(CATEGORY_CODE[0], "SCT", CATEGORY_CODE[1]),
            segmented_property_type=Code(seg.type_code[0], "SCT", seg.type_code[1]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[Code(seg.region_code[0], "SCT", seg.region_code[1])] if seg.region_code else None,
        )
        for seg in LABEL_SEGMENTS
    ]
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() > 3:
        raise ValidationError(
            f"labels: expected integer (y, x) labels 0-3, found {lab.dtype} shape {lab.shape}"
            + (f" values {lab.min()} to {lab.max()}" if lab.size else "")
        )
    return hd.seg.Segmentation(
        pixel_array=lab.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_description="QPerf labels",
        omit_empty_frames=False,
        **_new_series(hd, sources, series, number, version),
    )


def write_dicom_results(
    source: str | os.PathLike[str],
    slices: Sequence[SliceResults],
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    series_number: int = 9000,
) -> list[Path]:
    """Write each slice's parameter maps as DICOM Parametric Maps and its labels as a DICOM SEG.

    Parameters
    ----------
    source : path
        The DICOM folder the slices were read from (the instances the results reference).
    slices : sequence of SliceResults
    folder : path
        Output folder (written atomically): ``slice_<n>/<stem>.dcm`` per map (``mbf.dcm``,
        ``mbf_sd.dcm``, ...) and ``slice_<n>/labels.seg.dcm``.
    overwrite : bool
        Whether an existing ``folder`` may be replaced.
    series_number : int
        Series Number of the first result series; each result takes the next.

    Returns
    -------
    list of Path
        The files written, in their final place.

    Raises
    ------
    NotAvailableError
        highdicom is not installed.
    ValidationError
        A slice was not read from DICOM, or its source instances are no longer in ``source``.
    """
    from qperf import __version__

    hd = _highdicom()
    root = Path(source)
    uids = [_instances(sl, i) for i, sl in enumerate(slices)]
    found = _source_datasets(root, {u for per in uids for u in per})
    written: list[Path] = []
    number = series_number
    with atomic_dir(folder, overwrite=overwrite, inputs=[root]) as tmp:
        for index, (sl, per) in enumerate(zip(slices, uids, strict=True)):
            missing = [u for u in per if u not in found]
            if missing:
                raise ValidationError(
                    f"{root}: expected the source instances of {sl.series.name or f'slice {index + 1}'}, "
                    f"found {len(missing)} of {len(per)} missing (e.g. SOP Instance UID {missing[0]})"
                )
            key = per[sl.key_frame]
            ordered = [found[key]] + [found[u] for u in dict.fromkeys(per) if u != key]
            out = tmp / f"slice_{index + 1}"
            out.mkdir()
            for name, values in sl.maps.items():
                ds = _parametric_map(hd, name, values, ordered, sl.series, number, __version__)
                number += 1
                path = out / f"{map_stem(name)}.dcm"
                ds.save_as(path, enforce_file_format=True)
                written.append(Path(folder) / path.relative_to(tmp))
            seg = _segmentation(hd, sl.labels, ordered, sl.series, number, __version__)
            number += 1
            seg.save_as(out / "labels.seg.dcm", enforce_file_format=True)
            written.append(Path(folder) / out.relative_to(tmp) / "labels.seg.dcm")
    return written
