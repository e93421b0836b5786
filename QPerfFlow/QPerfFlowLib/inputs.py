"""The inputs of flow quantification, gathered from the scene.

A study browser (loaded by QPerf Seg, or any browser of single-slice volume sequences), an AIF
curve table, the hematocrit and the condition become one validated :class:`qperf.PerfusionStudy`
that the core library's kinetic models take. This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from typing import Any

from QPerfCommonLib.study import (
    ATTR_CONDITION,
    ATTR_HEMATOCRIT,
    REFERENCE_AIF_TABLE,
    checkBrowserNode,
    studyFromBrowserNode,
)

from qperf.errors import ValidationError
from qperf.types import CONDITIONS, DEFAULT_HEMATOCRIT, PerfusionStudy


def studySettings(browserNode: Any) -> dict:
    """What a study browser records: ``{"aifTable": node or None, "hematocrit": float, "condition": str}``."""
    checkBrowserNode(browserNode)
    hematocrit = browserNode.GetAttribute(ATTR_HEMATOCRIT)
    condition = browserNode.GetAttribute(ATTR_CONDITION)
    return {
        "aifTable": browserNode.GetNodeReference(REFERENCE_AIF_TABLE),
        "hematocrit": float(hematocrit) if hematocrit else DEFAULT_HEMATOCRIT,
        "condition": condition if condition in CONDITIONS else "unknown",
    }


def studyInputs(
    browserNode: Any,
    aifTableNode: Any | None = None,
    hematocrit: float | None = None,
    condition: str | None = None,
) -> PerfusionStudy:
    """The study to quantify: the browser's slices with the chosen AIF, hematocrit and condition.

    Parameters
    ----------
    browserNode : vtkMRMLSequenceBrowserNode
        The study's sequence browser; one single-slice volume sequence per slice.
    aifTableNode : vtkMRMLTableNode, optional
        AIF curve (``time_s`` plus ``gd_mmol_l`` or ``signal``); defaults to the browser's.
    hematocrit : float, optional
        Fraction in (0, 1); defaults to the browser's record, else 0.42.
    condition : {"stress", "rest", "unknown"}, optional

    Raises
    ------
    ValidationError
        No slices; no AIF curve and no AIF image series; an AIF that does not cover the
        slices' times; a hematocrit outside (0, 1); an unknown condition.
    """
    study = studyFromBrowserNode(browserNode, aifTableNode=aifTableNode, hematocrit=hematocrit, condition=condition)
    if study.aif is None and not study.aif_series:
        raise ValidationError(
            f"aif: expected an AIF curve table or AIF image series for {browserNode.GetName()!r}, found neither"
        )
    return study


def describeInputs(study: PerfusionStudy) -> str:
    """A text summary of the inputs: slices, times, AIF coverage, hematocrit and condition."""
    lines = [study.summary()]
    if study.aif is not None:
        first = min(float(s.dynamic_time_s[0]) for s in study.slices)
        last = max(float(s.dynamic_time_s[-1]) for s in study.slices)
        lines.append(
            f"AIF covers {study.aif.time_s[0]:.2f} to {study.aif.time_s[-1]:.2f} s; "
            f"dynamic frames span {first:.2f} to {last:.2f} s"
        )
    return "\n".join(lines)
