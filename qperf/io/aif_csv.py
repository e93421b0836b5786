"""Arterial input curves as CSV.

A header row, then one sample per row. Columns: ``time_s`` and one of ``gd_mmol_l`` (kind given
by the caller, blood by default), ``blood_gd_mmol_l``, ``plasma_gd_mmol_l`` or ``signal``.
Other columns are ignored.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from qperf.errors import FormatError, ValidationError
from qperf.io.atomic import atomic_file
from qperf.types import AifCurve

_VALUE_COLUMNS = {
    "gd_mmol_l": ("gd_mmol_l", None),
    "blood_gd_mmol_l": ("gd_mmol_l", "blood"),
    "plasma_gd_mmol_l": ("gd_mmol_l", "plasma"),
    "signal": ("signal", None),
}


def read_aif_csv(path: str | os.PathLike[str], *, kind: str | None = None) -> AifCurve:
    """Read an AIF curve from CSV.

    Parameters
    ----------
    path : path
    kind : {"blood", "plasma"}, optional
        Overrides the kind implied by the column name; ``gd_mmol_l`` and ``signal`` default to blood.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise FormatError(f"{p}: empty file")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(row for row in fh if row.strip() and not row.lstrip().startswith("#"))
            fieldnames = [f.strip() for f in (reader.fieldnames or [])]
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"{p.name}: not a readable CSV file ({exc})") from exc
    if "time_s" not in fieldnames:
        raise FormatError(f"{p.name}: expected a header with a 'time_s' column, found {fieldnames or 'no header'}")
    value_col = next((c for c in _VALUE_COLUMNS if c in fieldnames), None)
    if value_col is None:
        raise FormatError(f"{p.name}: expected a value column ({', '.join(_VALUE_COLUMNS)}), found {fieldnames}")
    try:
        t = np.array([float(r["time_s"]) for r in rows])
        v = np.array([float(r[value_col]) for r in rows])
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{p.name}: non-numeric value in columns time_s/{value_col} ({exc})") from exc
    units, implied = _VALUE_COLUMNS[value_col]
    try:
        return AifCurve(v, t, units=units, kind=kind or implied or "blood")
    except ValidationError as exc:
        raise FormatError(f"{p.name}: {exc}") from exc


def write_aif_csv(aif: AifCurve, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write an AIF curve as CSV with explicit units and kind in the column name."""
    column = "signal" if aif.units == "signal" else f"{aif.kind}_gd_mmol_l"
    with atomic_file(path, overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["time_s", column])
            for t, v in zip(aif.time_s, aif.values, strict=True):
                writer.writerow([repr(float(t)), repr(float(v))])
    return Path(path)
