"""The ``qperf.report`` schema: names, map-name conventions and a validator.

The schema is documented in ``qperf/report/schema.md``. Version ``1.x`` readers accept any
``1.*`` report: minor versions only add keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qperf.aha.table import LEVELS, SEGMENTS, TERRITORIES
from qperf.errors import ValidationError, describe

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATS",
    "UNIT_SUFFIXES",
    "map_keys",
    "split_map_name",
    "validate_report",
]

SCHEMA_NAME = "qperf.report"
SCHEMA_VERSION = "1.2"

#: Map-name unit suffixes and their display units, longest first.
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_ml_min_g", "ml/min/g"),
    ("_mmol_l", "mmol/L"),
    ("_ml_g", "ml/g"),
    ("_per_min", "1/min"),
    ("_per_s", "1/s"),
    ("_deg", "deg"),
    ("_mm", "mm"),
    ("_s", "s"),
)
#: Statistics reported per map and region.
STATS: tuple[str, ...] = ("mean", "median", "sd")


def split_map_name(name: str) -> tuple[str, str]:
    """Quantity and unit suffix of a map name.

    ``"mbf_ml_min_g"`` -> ``("mbf", "_ml_min_g")``; a standard-deviation map keeps its marker
    on the quantity, ``"ps_ml_min_g_sd"`` -> ``("ps_sd", "_ml_min_g")``; a name without a unit
    suffix -> ``(name, "")``.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValidationError(f"map name: expected letters, digits and underscores, found {name!r}")
    base, marker = (name[:-3], "_sd") if name.endswith("_sd") and len(name) > 3 else (name, "")
    for suffix, _ in UNIT_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + marker, suffix
    return name, ""


def unit_label(name: str) -> str:
    """Display unit of a map name (``"ml/min/g"``), empty when dimensionless."""
    _, suffix = split_map_name(name)
    return dict(UNIT_SUFFIXES).get(suffix, "")


def map_keys(name: str) -> dict[str, str]:
    """Report keys of one map: ``{"mean": "mbf_mean_ml_min_g", ..., "n_valid": "mbf_n_valid"}``."""
    q, u = split_map_name(name)
    keys = {stat: f"{q}_{stat}{u}" for stat in STATS}
    keys["n_valid"] = f"{q}_n_valid"
    return keys


def _fail(where: str, expected: str, found: Any) -> None:
    raise ValidationError(f"report{where}: expected {expected}, found {describe(found)}")


def _number(where: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, "a finite number" + (" or null" if allow_none else ""), value)


def _count(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(where, "a non-negative integer", value)


def _mapping(where: str, value: Any, keys: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, "an object", value)
    missing = [k for k in keys if k not in value]
    if missing:
        raise ValidationError(f"report{where}: expected keys {', '.join(missing)}, found {sorted(value)}")
    return value


def _region(where: str, entry: Any, maps: list[str], layers: bool) -> None:
    _mapping(where, entry, ("n_pixels",))
    _count(f"{where}.n_pixels", entry["n_pixels"])
    for name in maps:
        keys = map_keys(name)
        _mapping(where, entry, tuple(keys.values()))
        for stat in STATS:
            _number(f"{where}.{keys[stat]}", entry[keys[stat]])
        _count(f"{where}.{keys['n_valid']}", entry[keys["n_valid"]])
    if layers:
        for layer in ("endo", "epi"):
            _region(f"{where}.{layer}", entry.get(layer), maps, False)


_TOP_KEYS = (
    "schema",
    "schema_version",
    "study",
    "maps",
    "segments",
    "territories",
    "global",
    "slices",
    "qc",
    "timings_s",
    "versions",
)
_SLICE_KEYS = (
    "index",
    "name",
    "level",
    "spacing_mm",
    "shape",
    "lv_center_yx",
    "insertion_yx",
    "septum_clockwise",
    "sense_source",
    "segments",
    "n_pixels",
)


def validate_report(report: Any) -> None:
    """Check a report against schema ``qperf.report`` 1.x; raise ValidationError naming the first problem.

    Parameters
    ----------
    report : mapping
        A report as built by :func:`qperf.report.build_report` or read back from ``report.json``.
    """
    r = _mapping("", report, _TOP_KEYS)
    if r["schema"] != SCHEMA_NAME:
        _fail(".schema", repr(SCHEMA_NAME), r["schema"])
    version = r["schema_version"]
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        _fail(".schema_version", f"a {SCHEMA_VERSION.split('.')[0]}.x version string", version)
    study = _mapping(".study", r["study"], ("name", "condition", "n_slices", "level_source"))
    _count(".study.n_slices", study["n_slices"])
    maps_section = _mapping(".maps", r["maps"])
    maps = list(maps_section)
    if "mbf_ml_min_g" not in maps:
        _fail(".maps", "an entry mbf_ml_min_g", maps)
    for name, info in maps_section.items():
        split_map_name(name)
        _mapping(f".maps.{name}", info, ("quantity", "unit"))
    _check_regions(r, maps)
    _check_slices(r["slices"], study["n_slices"], maps)
    qc = _mapping(".qc", r["qc"], ("warnings",))
    if not isinstance(qc["warnings"], list) or not all(isinstance(w, str) for w in qc["warnings"]):
        _fail(".qc.warnings", "a list of strings", qc["warnings"])
    _check_flags(qc.get("flags", []))
    if r.get("curves") is not None:
        _check_curves(r["curves"])
    for key, value in _mapping(".timings_s", r["timings_s"]).items():
        _number(f".timings_s.{key}", value, allow_none=False)
    _mapping(".versions", r["versions"], ("qperf",))
    mpr = r.get("mpr")
    if mpr is not None:
        m = _mapping(".mpr", mpr, ("map", "values"))
        values = _mapping(".mpr.values", m["values"], (*(str(n) for n in SEGMENTS), *TERRITORIES, "global"))
        for key, value in values.items():
            _number(f".mpr.values.{key}", value)


def _check_regions(r: Mapping[str, Any], maps: list[str]) -> None:
    """The 16 segments (names, levels, territories as in the AHA table), the territories and global."""
    segments = _mapping(".segments", r["segments"], tuple(str(n) for n in SEGMENTS))
    for n, seg in SEGMENTS.items():
        where = f".segments.{n}"
        entry = _mapping(where, segments[str(n)], ("name", "level", "territory", "slices"))
        if (entry["name"], entry["level"], entry["territory"]) != (seg.name, seg.level, seg.territory):
            _fail(
                where, f"{seg.name} ({seg.level}, {seg.territory})", (entry["name"], entry["level"], entry["territory"])
            )
        if not isinstance(entry["slices"], list):
            _fail(f"{where}.slices", "a list of slice indices", entry["slices"])
        if not isinstance(entry.get("low_pixel_count", False), bool):
            _fail(f"{where}.low_pixel_count", "true or false", entry["low_pixel_count"])
        _region(where, entry, maps, True)
    territories = _mapping(".territories", r["territories"], tuple(TERRITORIES))
    for t in TERRITORIES:
        _region(f".territories.{t}", territories[t], maps, True)
    _region(".global", r["global"], maps, True)


def _check_slices(slices: Any, n_slices: int, maps: list[str]) -> None:
    """One entry per slice, each with its level and global statistics."""
    if not isinstance(slices, list) or len(slices) != n_slices:
        _fail(".slices", f"a list of {n_slices} slices", slices)
    for i, s in enumerate(slices):
        where = f".slices[{i}]"
        entry = _mapping(where, s, _SLICE_KEYS)
        if entry["level"] not in LEVELS:
            _fail(f"{where}.level", f"one of {', '.join(LEVELS)}", entry["level"])
        _region(where, entry, maps, False)
        source = entry.get("source")
        if source is not None:
            for key, value in _mapping(f"{where}.source", source).items():
                if not isinstance(value, str):
                    _fail(f"{where}.source.{key}", "a UID string", value)


_FLAG_KEYS = ("flag", "where", "meaning", "source", "detail")


def _check_flags(flags: Any) -> None:
    """``qc.flags`` (1.1): a list of objects with the text fields of :data:`_FLAG_KEYS`."""
    if not isinstance(flags, list):
        _fail(".qc.flags", "a list of flags", flags)
    for i, item in enumerate(flags):
        entry = _mapping(f".qc.flags[{i}]", item, _FLAG_KEYS)
        for key in _FLAG_KEYS:
            if not isinstance(entry[key], str):
                _fail(f".qc.flags[{i}].{key}", "a string", entry[key])


def _series(where: str, values: Any, n: int | None = None) -> int:
    """A list of finite numbers or nulls (of length ``n`` when given); returns its length."""
    if not isinstance(values, list) or (n is not None and len(values) != n):
        _fail(where, "a list of numbers" + (f" of length {n}" if n is not None else ""), values)
    for v in values:
        _number(where, v)
    return len(values)


def _check_curves(curves: Any) -> None:
    """``curves`` (1.1): per slice a time grid, the plasma AIF and segment curves of that length."""
    c = _mapping(".curves", curves, ("model", "slices"))
    if not isinstance(c["slices"], list):
        _fail(".curves.slices", "a list", c["slices"])
    for i, sl in enumerate(c["slices"]):
        where = f".curves.slices[{i}]"
        entry = _mapping(where, sl, ("index", "time_s", "aif_plasma_mmol_l", "segments"))
        n = _series(f"{where}.time_s", entry["time_s"])
        _series(f"{where}.aif_plasma_mmol_l", entry["aif_plasma_mmol_l"], n)
        for seg, curve in _mapping(f"{where}.segments", entry["segments"]).items():
            cw = f"{where}.segments.{seg}"
            cv = _mapping(cw, curve, ("n_pixels", "tissue_mmol_l", "fit_mmol_l"))
            _count(f"{cw}.n_pixels", cv["n_pixels"])
            _series(f"{cw}.tissue_mmol_l", cv["tissue_mmol_l"], n)
            if cv["fit_mmol_l"] is not None:
                _series(f"{cw}.fit_mmol_l", cv["fit_mmol_l"], n)
