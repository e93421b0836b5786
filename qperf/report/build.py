"""Building the report dictionary (schema ``qperf.report``) from analysed slices."""

from __future__ import annotations

import copy
import datetime as _dt
import importlib.metadata
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf._version import __version__
from qperf.aha.sectors import SliceSectors
from qperf.aha.stats import MIN_SEGMENT_PIXELS, REGIONS, RegionStats, SegmentStats, perfusion_reserve, segment_stats
from qperf.aha.table import LEVEL_SEGMENTS, LEVELS, SEGMENTS, TERRITORIES
from qperf.errors import ValidationError, describe
from qperf.report.qc import flag, slice_flags
from qperf.report.schema import SCHEMA_NAME, SCHEMA_VERSION, map_keys, split_map_name, unit_label, validate_report
from qperf.types import CONDITIONS, SliceGeometry

__all__ = [
    "PRIMARY_MAP",
    "SliceResult",
    "add_perfusion_reserve",
    "build_report",
    "jsonable",
    "report_rows",
    "slice_title",
    "versions",
]

#: The map the bull's-eye, the flow-map figures and the MPR use.
PRIMARY_MAP = "mbf_ml_min_g"
#: Insertion-point angles from anterior (towards the septum) outside this range raise a QC warning.
INSERTION_FROM_ANTERIOR_RANGE_DEG = (-30.0, 110.0)
#: Fraction of myocardial pixels without a valid MBF above which a QC warning is raised.
MAX_INVALID_FRACTION = 0.1


@dataclass(frozen=True, eq=False)
class SliceResult:
    """What the report needs from one analysed slice.

    Attributes
    ----------
    sectors : SliceSectors
        From :func:`qperf.aha.analyse_slice` (level, frame, segments, layers).
    maps : mapping of str to ndarray, each (y, x)
        Parameter maps named with their units, e.g. ``"mbf_ml_min_g"``, ``"ps_ml_min_g"``,
        ``"vp_ml_g"``; must include ``"mbf_ml_min_g"``. NaN marks failed fits.
    labels : ndarray of int, shape (y, x), optional
        Label map (0 background, 1 LV, 2 myocardium, 3 RV), for the figures.
    name : str
    geometry : SliceGeometry, optional
    qc : mapping, optional
        Per-slice quality values of earlier steps (for example a motion-correction score),
        reported as the slice's ``"qc"`` object.
    source : mapping, optional
        Identifiers of the source images, reported as the slice's ``"source"``:
        ``study_instance_uid`` and ``series_instance_uid`` for a series read from DICOM
        (:func:`source_uids`).
    """

    sectors: SliceSectors
    maps: Mapping[str, NDArray[Any]]
    labels: NDArray[Any] | None = None
    name: str = ""
    geometry: SliceGeometry | None = None
    qc: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)


def source_uids(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The DICOM Study and Series Instance UIDs a reader recorded in a series' metadata (empty for other files)."""
    out = {}
    for key, name in (("study_uid", "study_instance_uid"), ("series_uid", "series_instance_uid")):
        value = metadata.get(key)
        if isinstance(value, str) and value and not value.startswith("("):  # "(no series UID) ..." is no UID
            out[name] = value
    return out


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: NumPy scalars and arrays to Python numbers and lists, tuples to
    lists, NaN and infinities to None, mapping keys to strings, other objects to their text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _num(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _region_entry(stats: SegmentStats, layer: str, region: str) -> dict[str, Any]:
    first = stats.table[layer][region][stats.map_names[0]]
    entry: dict[str, Any] = {"n_pixels": first.n_pixels}
    for name in stats.map_names:
        s: RegionStats = stats.table[layer][region][name]
        keys = map_keys(name)
        entry[keys["mean"]] = _num(s.mean)
        entry[keys["median"]] = _num(s.median)
        entry[keys["sd"]] = _num(s.sd)
        entry[keys["n_valid"]] = s.n_valid
    return entry


def _region_with_layers(stats: SegmentStats, region: str) -> dict[str, Any]:
    entry = _region_entry(stats, "all", region)
    entry["endo"] = _region_entry(stats, "endo", region)
    entry["epi"] = _region_entry(stats, "epi", region)
    return entry


def versions() -> dict[str, str]:
    """Versions of QPerf, Python and the numerical packages, for provenance."""
    out = {"qperf": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "matplotlib", "torch"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _check_slices(slices: Sequence[SliceResult]) -> list[str]:
    if isinstance(slices, SliceResult):
        slices = [slices]
    if not isinstance(slices, Sequence) or not slices:
        raise ValidationError(f"slices: expected a non-empty list of SliceResult, found {describe(slices)}")
    names: list[str] | None = None
    for i, s in enumerate(slices):
        if not isinstance(s, SliceResult) or not isinstance(s.sectors, SliceSectors):
            raise ValidationError(f"slices[{i}]: expected a SliceResult with SliceSectors, found {describe(s)}")
        these = sorted(str(k) for k in s.maps)
        if PRIMARY_MAP not in these:
            raise ValidationError(f"slices[{i}].maps: expected a map named {PRIMARY_MAP}, found {these}")
        for name in these:
            split_map_name(name)
            shape = np.shape(s.maps[name])
            if shape != s.sectors.segments.shape:
                raise ValidationError(
                    f"slices[{i}].maps[{name!r}]: expected shape {s.sectors.segments.shape}, found {shape}"
                )
        stems = [split_map_name(n) for n in these]
        if len(set(stems)) != len(stems):
            raise ValidationError(f"slices[{i}].maps: expected names giving distinct report keys, found {these}")
        if names is not None and these != names:
            raise ValidationError(f"slices[{i}].maps: expected the same maps as slice 0 {names}, found {these}")
        names = these
    assert names is not None
    return [PRIMARY_MAP, *[n for n in names if n != PRIMARY_MAP]]


def build_report(
    slices: Sequence[SliceResult],
    *,
    study_name: str = "",
    condition: str = "unknown",
    level_source: str = "unknown",
    qc: Mapping[str, Any] | None = None,
    timings_s: Mapping[str, float] | None = None,
    extra_versions: Mapping[str, str] | None = None,
    min_segment_pixels: int = MIN_SEGMENT_PIXELS,
    curves: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one study: per-segment, per-territory, global and per-slice statistics.

    Parameters
    ----------
    slices : sequence of SliceResult, or one SliceResult
        The analysed slices, each with the same set of maps.
    study_name : str
    condition : {"stress", "rest", "unknown"}
    level_source : str
        How the slice levels were decided (:attr:`qperf.aha.LevelAssignment.source`).
    qc : mapping, optional
        Quality-control values of earlier steps (for example motion-correction scores); a
        ``"warnings"`` list is merged with the report's own warnings.
    timings_s : mapping of str to float, optional
        Seconds per processing step.
    extra_versions : mapping of str to str, optional
        Further provenance (for example the CNN model's checksum).
    min_segment_pixels : int
        Segments of an imaged level with fewer valid MBF pixels are flagged ``low_pixel_count``
        (:data:`qperf.aha.MIN_SEGMENT_PIXELS`).
    curves : mapping, optional
        The AIF and segment curves with their fits (:func:`qperf.report.segment_curves`).

    Returns
    -------
    dict
        JSON-ready report following schema ``qperf.report`` 1.x (``qperf/report/schema.md``);
        statistics that cannot be computed (no pixels) are None.
    """
    if isinstance(slices, SliceResult):
        slices = [slices]
    map_names = _check_slices(slices)
    if condition not in CONDITIONS:
        raise ValidationError(f"condition: expected one of {', '.join(CONDITIONS)}, found {condition!r}")
    if isinstance(min_segment_pixels, bool) or not isinstance(min_segment_pixels, int) or min_segment_pixels < 0:
        raise ValidationError(f"min_segment_pixels: expected a non-negative integer, found {min_segment_pixels!r}")
    stats = segment_stats(
        {n: [np.asarray(s.maps[n], dtype=np.float64) for s in slices] for n in map_names},
        [s.sectors.segments for s in slices],
        layers=[s.sectors.layers for s in slices],
    )
    imaged = {s.sectors.level for s in slices}
    n_valid_key = map_keys(PRIMARY_MAP)["n_valid"]
    segments: dict[str, Any] = {}
    for n, seg in SEGMENTS.items():
        entry: dict[str, Any] = {"name": seg.name, "level": seg.level, "territory": seg.territory}
        entry["slices"] = list(stats.slices[n])
        entry.update(_region_with_layers(stats, str(n)))
        entry["low_pixel_count"] = seg.level in imaged and entry[n_valid_key] < min_segment_pixels
        segments[str(n)] = entry
    territories = {
        t: {"segments": list(members), **_region_with_layers(stats, t)} for t, members in TERRITORIES.items()
    }
    slice_entries = []
    flags: list[dict[str, str]] = []
    for i, s in enumerate(slices):
        slice_entries.append(_slice_entry(i, s, map_names))
        flags += _slice_warnings(slice_entries[-1], s.sectors)
        flags += slice_flags(slice_title(slice_entries[-1]), s.qc)
    study_uids = {s.source.get("study_instance_uid") for s in slices}
    study_entry: dict[str, Any] = {
        "name": study_name,
        "condition": condition,
        "n_slices": len(slices),
        "level_source": level_source,
    }
    if len(study_uids) == 1 and None not in study_uids:
        study_entry["study_instance_uid"] = study_uids.pop()
    report: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "study": study_entry,
        "maps": {n: {"quantity": split_map_name(n)[0], "unit": unit_label(n)} for n in map_names},
        "segments": segments,
        "territories": territories,
        "global": _region_with_layers(stats, "global"),
        "slices": slice_entries,
        "mpr": None,
        "qc": _study_qc(stats, slices, flags, qc, segments, min_segment_pixels),
        "timings_s": {str(k): float(v) for k, v in (timings_s or {}).items()},
        "versions": {**versions(), **{str(k): str(v) for k, v in (extra_versions or {}).items()}},
    }
    if curves is not None:
        report["curves"] = jsonable(curves)
    validate_report(report)
    return report


def _slice_entry(i: int, s: SliceResult, map_names: list[str]) -> dict[str, Any]:
    """The report's entry of slice ``i``: geometry, orientation, present segments, global statistics."""
    sec = s.sectors
    one = segment_stats({n: np.asarray(s.maps[n], dtype=np.float64) for n in map_names}, sec.segments)
    frame = sec.frame
    geom = s.geometry
    return {
        "index": i,
        "name": s.name or f"slice {i + 1}",
        "level": sec.level,
        "spacing_mm": list(frame.spacing_mm),
        "shape": list(sec.segments.shape),
        "geometry": None
        if geom is None
        else {
            "origin_mm": list(geom.origin_mm),
            "x_direction": list(geom.x_direction),
            "y_direction": list(geom.y_direction),
        },
        "lv_center_yx": list(frame.center_yx),
        "insertion_yx": list(sec.insertion_yx),
        "insertion_angle_deg": frame.insertion_angle_deg,
        "anterior_angle_deg": frame.anterior_angle_deg,
        "insertion_from_anterior_deg": frame.insertion_from_anterior_deg,
        "septum_clockwise": frame.septum_clockwise,
        "sense_source": frame.sense_source,
        "segments": sorted(int(v) for v in np.unique(sec.segments) if v > 0),
        **_region_entry(one, "all", "global"),
        "qc": jsonable(dict(s.qc)),
        "source": dict(s.source) or None,
    }


def slice_title(entry: Mapping[str, Any]) -> str:
    """Display name of a report slice entry with its level (once)."""
    name, level = str(entry["name"]), str(entry["level"])
    return name if level in name else f"{name} ({level})"


def _slice_warnings(entry: Mapping[str, Any], sec: SliceSectors) -> list[dict[str, str]]:
    """QC flags of one slice: segments without pixels, an unlikely insertion point, invalid MBF."""
    where = slice_title(entry)
    flags = []
    missing = [n for n in LEVEL_SEGMENTS[sec.level] if n not in entry["segments"]]
    if missing:
        text = f"{entry['name']} ({sec.level}): segments {missing} have no myocardial pixels"
        flags.append(flag("segment_without_pixels", where, text))
    lo, hi = INSERTION_FROM_ANTERIOR_RANGE_DEG
    from_anterior = entry["insertion_from_anterior_deg"]
    if from_anterior is not None and not lo <= from_anterior <= hi:
        text = (
            f"{entry['name']}: the anterior RV insertion point lies {from_anterior:.0f} degrees from anterior "
            f"towards the septum (expected {lo:.0f} to {hi:.0f}); check the insertion point and orientation"
        )
        flags.append(flag("insertion_point_unlikely", where, text))
    n_pix = entry["n_pixels"]
    n_valid = entry[map_keys(PRIMARY_MAP)["n_valid"]]
    if n_pix and (n_pix - n_valid) / n_pix > MAX_INVALID_FRACTION:
        text = f"{entry['name']}: {n_pix - n_valid} of {n_pix} myocardial pixels have no valid MBF"
        flags.append(flag("invalid_mbf_pixels", where, text))
    return flags


def _study_qc(
    stats: SegmentStats,
    slices: Sequence[SliceResult],
    flags: list[dict[str, str]],
    qc: Mapping[str, Any] | None,
    segments: Mapping[str, Any],
    min_segment_pixels: int,
) -> dict[str, Any]:
    """The report's ``qc``: warnings and flags (of the caller's ``qc``, then of the slices, levels
    and segments), levels present, pixel counts, then the other values of ``qc``."""
    levels_present = sorted({s.sectors.level for s in slices}, key=LEVELS.index)
    for level in LEVELS:
        if level not in levels_present:
            text = f"no {level} slice: segments {list(LEVEL_SEGMENTS[level])} are not reported"
            flags.append(flag("level_not_imaged", level, text))
    n_valid_key = map_keys(PRIMARY_MAP)["n_valid"]
    low = [int(n) for n, e in segments.items() if e["low_pixel_count"]]
    if low:
        counts = ", ".join(f"{n}: {segments[str(n)][n_valid_key]}" for n in low)
        text = (
            f"segments {low} have fewer than {min_segment_pixels} valid myocardial pixels ({counts}); "
            "their values are uncertain (hatched on the bull's-eye)"
        )
        flags.append(flag("low_pixel_count", "segments " + ", ".join(str(n) for n in low), text))
    g = stats.get("global", PRIMARY_MAP)
    user = dict(qc or {})
    extra_warnings = [str(w) for w in user.pop("warnings", [])]
    user.pop("flags", None)
    all_flags = [flag("warning", "study", w) for w in extra_warnings] + flags
    qc_out: dict[str, Any] = {
        "warnings": extra_warnings + [f["detail"] for f in flags],
        "flags": all_flags,
        "levels_present": levels_present,
        "n_myocardium_pixels": g.n_pixels,
        "n_invalid_pixels": g.n_pixels - g.n_valid,
        "min_segment_pixels": min_segment_pixels,
        "low_pixel_segments": low,
    }
    qc_out.update(jsonable(user))
    return qc_out


def add_perfusion_reserve(stress_report: Mapping[str, Any], rest_report: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the stress report with its ``"mpr"`` section: stress / rest mean MBF per region.

    Parameters
    ----------
    stress_report, rest_report : mapping
        Reports of the stress and the rest study of one patient.
    """
    validate_report(stress_report)
    validate_report(rest_report)
    for name, rep, want in (("stress_report", stress_report, "stress"), ("rest_report", rest_report, "rest")):
        cond = rep["study"]["condition"]
        if cond not in (want, "unknown"):
            raise ValidationError(f"{name}: expected a {want} study, found condition {cond!r}")
    key = map_keys(PRIMARY_MAP)["mean"]

    def region_means(rep: Mapping[str, Any]) -> dict[str, float]:
        out = {}
        for region in REGIONS:
            src = (
                rep["global"]
                if region == "global"
                else (rep["territories"][region] if region in TERRITORIES else rep["segments"][region])
            )
            v = src[key]
            out[region] = math.nan if v is None else float(v)
        return out

    mpr = perfusion_reserve(region_means(stress_report), region_means(rest_report))
    out = copy.deepcopy(dict(stress_report))
    out["mpr"] = {
        "map": PRIMARY_MAP,
        "rest_study": rest_report["study"]["name"],
        "rest_mbf_mean_ml_min_g": {k: _num(v) for k, v in region_means(rest_report).items()},
        "values": {k: _num(v) for k, v in mpr.items()},
    }
    validate_report(out)
    return out


def report_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report as table rows (one per region and layer), the content of ``report.csv``.

    Columns: ``region``, ``name``, ``level``, ``territory``, ``layer`` (all, endo, epi),
    ``n_pixels``, ``low_pixel_count`` (segment rows of layer all; None elsewhere), then mean,
    median, SD and valid count of every map, and ``mpr`` when the report has a perfusion
    reserve.
    """
    validate_report(report)
    map_names = list(report["maps"])
    mpr = (report.get("mpr") or {}).get("values", {})
    rows = []
    for region in REGIONS:
        if region in TERRITORIES:
            src, name, level, territory = report["territories"][region], f"{region} territory", "", region
        elif region == "global":
            src, name, level, territory = report["global"], "global", "", ""
        else:
            seg = report["segments"][region]
            src, name, level, territory = seg, seg["name"], seg["level"], seg["territory"]
        for layer in ("all", "endo", "epi"):
            entry = src if layer == "all" else src[layer]
            row: dict[str, Any] = {
                "region": region,
                "name": name,
                "level": level,
                "territory": territory,
                "layer": layer,
                "n_pixels": entry["n_pixels"],
                "low_pixel_count": src.get("low_pixel_count") if layer == "all" else None,
            }
            for m in map_names:
                for key in map_keys(m).values():
                    row[key] = entry[key]
            if mpr:
                row["mpr"] = mpr.get(region) if layer == "all" else None
            rows.append(row)
    return rows
