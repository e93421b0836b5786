"""Saving the work: the report files and DICOM results (the scene is saved with ``QPerfCommonLib.scene.saveScene``).

:func:`exportReport` writes the core library's report (``report.json``, ``report.csv``,
``report.html``, bull's-eye and flow-map figures; ``qperf.report.write_report``) and, with
``withMaps=True``, the whole analysis folder (``qperf.workflow.write_analysis``: corrected
series, labels, segments, maps and insertion points per slice), as ``qperf analyze`` writes
it. :func:`exportDicom` writes the maps and labels of a study loaded from DICOM as DICOM
Parametric Maps and a DICOM SEG referencing the source images
(``qperf.workflow.write_analysis_dicom``), as ``qperf analyze --dicom`` does. This file imports
neither ``slicer`` nor ``qt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def exportReport(result: Any, folder: str | os.PathLike, overwrite: bool = False, withMaps: bool = False) -> Path:
    """Write the report of a flow result (``qperf.workflow.StudyAnalysis``) into ``folder``.

    Returns the folder. Raises ``OutputExistsError`` when report files exist and ``overwrite``
    is False.
    """
    from qperf.report import write_report
    from qperf.workflow import write_analysis

    folder = Path(folder)
    if withMaps:
        return write_analysis(result, folder, overwrite=overwrite)
    write_report(result.report, result.figures, folder, overwrite=overwrite)
    return folder


def exportDicom(result: Any, source: str | os.PathLike, folder: str | os.PathLike, overwrite: bool = False) -> list:
    """Write a flow result's maps and labels as DICOM results of the source study into ``folder``.

    ``source`` is the DICOM folder the study was loaded from. Returns the files written
    (``slice_<n>/<map>.dcm`` Parametric Maps, ``slice_<n>/labels.seg.dcm``). Raises
    ``ValidationError`` when the study was not read from DICOM or its images are not in
    ``source``, ``NotAvailableError`` without highdicom, ``OutputExistsError`` when ``folder``
    exists and ``overwrite`` is False.
    """
    from qperf.workflow import write_analysis_dicom

    return write_analysis_dicom(result, source, folder, overwrite=overwrite)
