"""The one-click analysis from files to a result folder: what ``qperf analyze`` and ``qperf batch`` run.

>>> from qperf.workflow import AnalysisOptions, StudySource, analyze_files
>>> source = StudySource("case1/study.json", condition="stress")
>>> result = analyze_files(source, AnalysisOptions(model="btex"), "case1-analysis")

Both commands go through :func:`analyze_files`, so the same study with the same options gives
the same numbers whichever command ran it, on whichever machine.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qperf.errors import ValidationError
from qperf.progress import ProgressCallback
from qperf.types import CONDITIONS, AifCurve, PerfusionStudy
from qperf.workflow.analyze import analyze_study, write_analysis
from qperf.workflow.options import AnalysisOptions
from qperf.workflow.results import StudyAnalysis

AIF_KINDS = ("blood", "plasma")


@dataclass(frozen=True)
class StudySource:
    """A study on disk and how to read it.

    Parameters
    ----------
    path : str
        A ``study.json`` manifest, its folder, a DICOM folder or one series file.
    series_options : mapping
        Reading options for files that do not record them (``frame_interval_s``,
        ``spacing_mm``, ``units``, ``n_pd_frames``, ``axes``; see :func:`qperf.io.read_series`).
    aif : str, optional
        An AIF curve file (``.csv``) that replaces the study's AIF.
    aif_kind : {"blood", "plasma"}, optional
        What the ``aif`` curve holds (default: as its file says).
    condition : {"stress", "rest", "unknown"}, optional
        Replaces the condition the study records.
    """

    path: str
    series_options: Mapping[str, Any] = field(default_factory=dict)
    aif: str | None = None
    aif_kind: str | None = None
    condition: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        if self.aif is not None:
            object.__setattr__(self, "aif", os.fspath(self.aif))
        if self.condition is not None and self.condition not in CONDITIONS:
            raise ValidationError(f"condition: expected one of {', '.join(CONDITIONS)}, found {self.condition!r}")
        if self.aif_kind is not None and self.aif_kind not in AIF_KINDS:
            raise ValidationError(f"aif_kind: expected one of {', '.join(AIF_KINDS)}, found {self.aif_kind!r}")
        if self.aif_kind is not None and self.aif is None:
            raise ValidationError("aif_kind: give it with an AIF curve file (aif)")
        object.__setattr__(self, "series_options", dict(self.series_options))

    @property
    def inputs(self) -> list[str]:
        """The paths this source reads (the study and the AIF curve)."""
        return [self.path] + ([self.aif] if self.aif is not None else [])


def read_source(
    source: StudySource, *, progress: ProgressCallback | None = None
) -> tuple[PerfusionStudy, AifCurve | None]:
    """The study of ``source`` (with its condition replaced when the source gives one) and its AIF curve file.

    Raises
    ------
    FormatError
        A file cannot be read.
    """
    from qperf import io

    study = io.read_study(source.path, progress=progress, **source.series_options)
    if source.condition is not None:
        study = study.replace(condition=source.condition)
    aif = io.read_aif_curve(source.aif, kind=source.aif_kind) if source.aif is not None else None
    return study, aif


def analyze_files(
    source: StudySource,
    options: AnalysisOptions,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> StudyAnalysis:
    """Read a study, analyse it (:func:`qperf.workflow.analyze_study`) and write the result folder.

    Parameters
    ----------
    source : StudySource
    options : AnalysisOptions
        ``options.aif`` is replaced by the source's AIF curve when it names one.
    out_dir : path
        The result folder (:func:`qperf.workflow.write_analysis`), written atomically.
    overwrite : bool
        Whether an existing ``out_dir`` may be replaced.
    progress : callable(fraction, message), optional

    Returns
    -------
    StudyAnalysis

    Raises
    ------
    OutputExistsError
        ``out_dir`` exists and ``overwrite`` is false.
    ValidationError
        ``out_dir`` is or contains an input; bad options or data.
    FormatError
        An input cannot be read.
    """
    from qperf import io

    if not isinstance(options, AnalysisOptions):
        raise ValidationError(f"options: expected AnalysisOptions, found {type(options).__name__}")
    io.check_output(out_dir, overwrite, inputs=source.inputs)
    study, aif = read_source(source)
    if aif is not None:
        options = dataclasses.replace(options, aif=aif)
    result = analyze_study(study, options, progress=progress)
    write_analysis(result, Path(out_dir), overwrite=overwrite)
    return result
