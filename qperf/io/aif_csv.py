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
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{p.name}: expected CSV text, found a byte that is not UTF-8 text (at {exc.start})"
        ) from None
    except csv.Error as exc:
        raise FormatError(f"{p.name}: not a readable CSV file ({exc})") from exc
    if "time_s" not in fieldnames:
        raise FormatError(f"{p.name}: expected a header with a 'time_s' column, found {fieldnames or 'no header'}")
    value_col = next((c for c in _VALUE_COLUMNS if c in fieldnames), None)
    if value_col is None:
        raise FormatError(f"{p.name}: expected a value column ({', '.join(_VALUE_COLUMNS)}), found {fieldnames}")
    t = _column(rows, "time_s", p.name)
    v = _column(rows, value_col, p.name)
    units, implied = _VALUE_COLUMNS[value_col]
    try:
        return AifCurve(v, t, units=units, kind=kind or implied or "blood")
    except ValidationError as exc:
        raise FormatError(f"{p.name}: {exc}") from exc


def _column(rows: list[dict[str, str]], column: str, name: str) -> np.ndarray:
    """The numbers of one column; a cell that is not a number is refused with its row (the header is row 1)."""
    values = []
    for i, row in enumerate(rows, start=2):
        cell = row.get(column)
        try:
            values.append(float(cell))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            found = "nothing" if cell is None or not str(cell).strip() else repr(cell)
            raise FormatError(
                f"{name}: row {i}: {column}: non-numeric value; expected a number, found {found}"
            ) from None
    return np.asarray(values, dtype=float)


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
