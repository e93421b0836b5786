"""The study workflow: one implementation for the command line, the report, batch runs and Slicer.

>>> from qperf.workflow import AnalysisOptions, analyze_study, segment_study, quantify_study, sectorise_study
>>> options = AnalysisOptions(model="btex")
>>> seg = segment_study(study, options)                # motion correction, CNN labels, insertion points
>>> maps = quantify_study(study, seg, options)         # Gd, AIF, delay, pixel-wise flow maps
>>> table = sectorise_study(study, seg, maps, options)  # AHA segments, pixels for the statistics
>>> result = analyze_study(study, options)             # all three, the QC and the report
>>> result.report["segments"]["7"]["mbf_mean_ml_min_g"]
>>> write_analysis(result, "analysis/")
>>> analyze_files(StudySource("study.json"), options, "analysis/")  # read, analyse, write (qperf analyze)

Each step takes and returns frozen dataclasses (:mod:`qperf.workflow.results`); an annotator's
labels enter as ``AnalysisOptions(labels=..., insertion_points_yx=...)`` or as an edited
:class:`Segmentation` passed to :func:`analyze_study`.
"""

from qperf.workflow.analyze import (
    STEPS,
    analyze_study,
    build_study_report,
    quality_report,
    write_analysis,
    write_analysis_dicom,
)
from qperf.workflow.files import StudySource, analyze_files, read_source
from qperf.workflow.options import AnalysisOptions
from qperf.workflow.quantify import motion_corrected_echoes, quantify_study, study_aif
from qperf.workflow.regions import (
    away_from_blood,
    delay_region,
    heart_region,
    high_outliers,
    inner_myocardium,
    motion_region,
    statistics_mask,
)
from qperf.workflow.results import (
    FlowMaps,
    QualityReport,
    SectorTable,
    Segmentation,
    SliceAnalysis,
    SliceFlowMaps,
    SliceSegmentation,
    StudyAnalysis,
)
from qperf.workflow.sectorise import sectorise_study
from qperf.workflow.segment import segment_study, supplied_slice

__all__ = [
    "STEPS",
    "AnalysisOptions",
    "FlowMaps",
    "QualityReport",
    "SectorTable",
    "Segmentation",
    "SliceAnalysis",
    "SliceFlowMaps",
    "SliceSegmentation",
    "StudyAnalysis",
    "StudySource",
    "analyze_files",
    "analyze_study",
    "away_from_blood",
    "build_study_report",
    "delay_region",
    "heart_region",
    "high_outliers",
    "inner_myocardium",
    "motion_corrected_echoes",
    "motion_region",
    "quality_report",
    "quantify_study",
    "read_source",
    "sectorise_study",
    "segment_study",
    "statistics_mask",
    "study_aif",
    "supplied_slice",
    "write_analysis",
    "write_analysis_dicom",
]
