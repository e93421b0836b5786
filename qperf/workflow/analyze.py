"""The one-click analysis: segment -> quantify -> sectorise -> report, and its folder on disk."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf import __version__
from qperf.errors import collect_warnings
from qperf.progress import ProgressCallback, null_progress, scaled
from qperf.types import LABEL_MYO, PerfusionStudy
from qperf.workflow.options import AnalysisOptions
from qperf.workflow.quantify import quantify_study
from qperf.workflow.regions import away_from_blood, statistics_mask
from qperf.workflow.results import FlowMaps, QualityReport, SectorTable, Segmentation, StudyAnalysis
from qperf.workflow.sectorise import sectorise_study
from qperf.workflow.segment import segment_study

_log = logging.getLogger(__name__)

#: Steps in order, with the share of the progress bar each takes.
STEPS: tuple[tuple[str, float], ...] = (("segmentation", 0.55), ("flow", 0.35), ("segments", 0.02), ("report", 0.08))


class _Steps:
    def __init__(self, progress: ProgressCallback) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress
        self._done = 0.0

    @contextmanager
    def step(self, name: str) -> Iterator[ProgressCallback]:
        share = dict(STEPS)[name]
        start = time.perf_counter()
        self.progress(self._done, name)
        yield scaled(self.progress, self._done, self._done + share)
        elapsed = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        self._done += share
        _log.info("%s done in %.2f s", name, elapsed)


def analyze_study(
    study: PerfusionStudy,
    options: AnalysisOptions | None = None,
    *,
    segmentation: Segmentation | None = None,
    segmenter: Any | None = None,
    progress: ProgressCallback | None = None,
) -> StudyAnalysis:
    """Analyse a study from its series to the AHA report.

    Parameters
    ----------
    study : PerfusionStudy
        Slices in signal (with PD frames and acquisition metadata) or Gd units, and an AIF
        (curve or dual-sequence images).
    options : AnalysisOptions, optional
    segmentation : Segmentation, optional
        The result of :func:`segment_study` (for example QPerf Seg's, after manual edits)
        instead of segmenting here.
    segmenter : qperf.segmentation.Segmenter, optional
        An already loaded network.
    progress : callable(fraction, message), optional

    Returns
    -------
    StudyAnalysis

    Raises
    ------
    ValidationError
        Supplied labels or points that do not fit the study; a slice of constant data; an AIF
        curve without enhancement or beyond any blood concentration (:mod:`qperf.checks`).
    NotAvailableError
        A step cannot run: no AIF, or no trained model and no labels supplied.

    Notes
    -----
    Warnings (:class:`~qperf.errors.QPerfWarning`: a slice that does not enhance, an AIF peak
    outside the physiological range, what the readers noted in the study's metadata) go into
    the report's ``qc.warnings`` and are issued again for the caller.
    """
    options = options or AnalysisOptions()
    progress = progress or null_progress
    steps = _Steps(progress)
    with collect_warnings() as notes:
        check_inputs(study, options)
        with steps.step("segmentation") as p:
            if segmentation is None:
                segmentation = segment_study(study, options, segmenter=segmenter, progress=p)
        with steps.step("flow") as p:
            flow_maps = quantify_study(study, segmentation, options, progress=p)
    with steps.step("segments"):
        sectors = sectorise_study(study, segmentation, flow_maps, options)
        quality = quality_report(segmentation, flow_maps, sectors, [*_recorded_warnings(study), *notes])
    with steps.step("report") as p:
        report, figures = build_study_report(study, segmentation, flow_maps, sectors, quality, dict(steps.timings))
    timings = {**steps.timings, "total": float(sum(steps.timings.values()))}
    report["timings_s"] = dict(timings)
    progress(1.0, "done")
    return StudyAnalysis(study, segmentation, flow_maps, sectors, quality, report, figures, timings)


def check_inputs(study: PerfusionStudy, options: AnalysisOptions) -> None:
    """Refuse what cannot be analysed before any step runs; warn about what is probably wrong.

    Every slice (:func:`qperf.checks.check_series`) and an AIF curve of the options or the
    study (:func:`qperf.checks.check_aif`); an AIF found in the AIF images is checked when it is.
    """
    from qperf.checks import check_aif, check_series

    for i, series in enumerate(study.slices):
        check_series(series, f"slice {i + 1}" + (f" ({series.name})" if series.name else ""))
    hematocrit = options.hematocrit if options.hematocrit is not None else study.hematocrit
    if options.aif is not None:
        check_aif(options.aif, "the supplied AIF", hematocrit)
    elif study.aif is not None:
        check_aif(study.aif, "the study's AIF", hematocrit)


def _recorded_warnings(study: PerfusionStudy) -> list[str]:
    """What the readers noted in the study's and the slices' metadata (``"warnings"``)."""
    out: list[str] = []
    for meta in (study.metadata, *(s.metadata for s in study.slices), *(s.metadata for s in study.aif_series)):
        for text in meta.get("warnings") or ():
            if str(text) not in out:
                out.append(str(text))
    return out


def quality_report(
    segmentation: Segmentation, flow_maps: FlowMaps, sectors: SectorTable, warnings: Sequence[str] = ()
) -> QualityReport:
    """Per-slice QC (labels, motion, fit, pixels left out of the statistics) and study QC.

    ``warnings`` (of the inputs and the steps) come first in the QC's warnings, then the sectors'.
    """
    slices = tuple(
        _slice_qc(seg, fm, sec, mask)
        for seg, fm, sec, mask in zip(
            segmentation.slices, flow_maps.slices, sectors.slices, sectors.statistics_masks, strict=True
        )
    )
    study = {
        "aif": dict(flow_maps.aif_qc),
        "hematocrit": flow_maps.hematocrit,
        "model": flow_maps.model,
        "delay": {"mode": flow_maps.delay_mode, "study_delay_s": flow_maps.study_delay_s},
    }
    return QualityReport(slices, study, tuple(dict.fromkeys([*warnings, *sectors.warnings])))


def _slice_qc(seg: Any, fm: Any, sectors: Any, mask: NDArray[np.bool_] | None) -> dict[str, Any]:
    from qperf.flow import flow_at_upper_bound

    qc: dict[str, Any] = {
        "labels_source": seg.source,
        "fitted_pixels": int(fm.flow.n_fitted),
        "orientation_source": "geometry" if seg.corrected.geometry is not None else "rv_label",
    }
    if seg.motion is not None:
        qc["motion_score"] = float(seg.motion.quality.get("score", float("nan")))
        qc["motion_displacement_mm"] = motion_per_frame_mm(seg.motion.forward_px, seg.labels_ref, seg.series.spacing_mm)
        qc["motion_warnings"] = [str(w) for w in seg.motion.quality.get("warnings") or ()]
    qc["n_pd_frames"] = int(seg.series.n_pd_frames)
    qc["frames_left_out_of_fit"] = list(fm.frames_left_out)
    qc["fit_status_counts"] = fit_status_counts(fm.flow.status, seg.labels_ref == LABEL_MYO)
    if seg.qc:
        qc["segmentation"] = dict(seg.qc)
    if mask is not None:
        labels = seg.labels_ref
        inner = away_from_blood(labels)
        border_trimmed = statistics_mask(labels, sectors.segments)
        at_bound = flow_at_upper_bound(fm.flow)
        qc["blood_border_pixels_excluded"] = int(np.count_nonzero(labels == LABEL_MYO)) - int(np.count_nonzero(inner))
        qc["epicardial_border_pixels_excluded"] = int(np.count_nonzero(inner & ~border_trimmed))
        qc["flow_at_bound_pixels_excluded"] = int(np.count_nonzero(border_trimmed & at_bound))
        qc["high_outlier_pixels_excluded"] = int(np.count_nonzero(border_trimmed & ~at_bound & ~mask))
    return qc


def fit_status_counts(status: NDArray[Any], region: NDArray[np.bool_]) -> dict[str, int]:
    """Pixels of ``region`` per fit outcome (:class:`qperf.kinetics.FitStatus`), by name."""
    from qperf.report.qc import FIT_STATUS_NAMES

    codes = np.asarray(status)[region]
    return {name: int(np.count_nonzero(codes == code)) for code, name in FIT_STATUS_NAMES.items()}


def motion_per_frame_mm(forward_px: NDArray[Any], labels: NDArray[Any], spacing_mm: tuple[float, float]) -> list[float]:
    """Mean length (mm) of the correcting displacement over the heart (myocardium, or blood
    pools and myocardium, or the whole image) in every acquired frame."""
    region = np.asarray(labels) == LABEL_MYO
    if not region.any():
        region = np.asarray(labels) > 0
    if not region.any():
        region = np.ones(np.shape(forward_px)[2:], dtype=bool)
    f = np.asarray(forward_px)[:, :, region].astype(np.float64)  # (t, 2, pixels)
    length = np.hypot(f[:, 0] * spacing_mm[0], f[:, 1] * spacing_mm[1])
    return [float(v) for v in length.mean(axis=1)]


def _restricted(sectors: Any, mask: NDArray[np.bool_] | None) -> Any:
    """A slice's sectors with segments and layers outside ``mask`` set to 0 (for statistics)."""
    if mask is None:
        return sectors
    return dataclasses.replace(
        sectors,
        segments=np.where(mask, sectors.segments, 0).astype(sectors.segments.dtype),
        layers=np.where(mask, sectors.layers, 0).astype(sectors.layers.dtype),
    )


def build_study_report(
    study: PerfusionStudy,
    segmentation: Segmentation,
    flow_maps: FlowMaps,
    sectors: SectorTable,
    quality: QualityReport,
    timings_s: dict[str, float],
) -> tuple[dict[str, Any], Any]:
    """The report (schema ``qperf.report``) and its figures."""
    from qperf.report import SliceResult, build_report, render_figures, source_uids

    report_slices = [
        SliceResult(
            sectors=_restricted(sec, mask),
            maps=fm.flow.maps,
            labels=seg.labels_ref,
            name=seg.series.name or f"slice {i + 1}",
            geometry=fm.gd.geometry,
            qc=quality.slices[i],
            source=source_uids(seg.series.metadata),
        )
        for i, (seg, fm, sec, mask) in enumerate(
            zip(segmentation.slices, flow_maps.slices, sectors.slices, sectors.statistics_masks, strict=True)
        )
    ]
    qc = {**dict(quality.study), "ok": quality.ok, "warnings": list(quality.warnings)}
    report = build_report(
        report_slices,
        study_name=study.name,
        condition=study.condition,
        level_source=sectors.level_source,
        qc=qc,
        timings_s=timings_s,
        extra_versions={"qperf_pipeline": __version__},
        curves=study_curves(flow_maps, report_slices),
    )
    return report, render_figures(report, report_slices)


def study_curves(flow_maps: FlowMaps, report_slices: Sequence[Any]) -> dict[str, Any]:
    """The report's ``curves``: the blood AIF, and per slice the plasma AIF and the fitted mean
    curve of every segment over its statistics pixels (:func:`qperf.report.segment_curves`)."""
    from qperf.report import segment_curves

    slices = []
    for i, (fm, rs) in enumerate(zip(flow_maps.slices, report_slices, strict=True)):
        fit = fm.flow
        entry = segment_curves(
            fit.time_s,
            fit.aif.values,
            fit.tissue_mmol_l,
            rs.sectors.segments,
            model=fit.model,
            hematocrit=flow_maps.hematocrit,
            index=i,
            delay_s=_segment_delays(fit, rs.sectors.segments),
        )
        slices.append({**entry, "name": rs.name})
    blood = flow_maps.aif_blood
    return {
        "model": flow_maps.model,
        "hematocrit": flow_maps.hematocrit,
        "aif_blood": {"time_s": np.asarray(blood.time_s).tolist(), "gd_mmol_l": np.asarray(blood.values).tolist()},
        "slices": slices,
    }


def _segment_delays(fit: Any, segments: NDArray[Any]) -> dict[int, float]:
    """Per segment, the median delay its pixels were fitted with, behind the slice's fitted AIF
    (``FlowResult.aif``, already shifted by the global delay ``fit.delay.shift_s``)."""
    delay = fit.maps.get("delay_s")
    if delay is None:
        return {}
    out = {}
    for n in np.unique(segments[segments > 0]):
        values = delay[(segments == n) & np.isfinite(delay)]
        if values.size:
            out[int(n)] = max(0.0, float(np.median(values)) - float(fit.delay.shift_s))
    return out


def write_analysis(result: StudyAnalysis, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the analysis as a new folder (atomically).

    Layout: the report files (``report.json``, ``report.csv``, ``report.html``, bull's-eye and
    flow-map figures) at the top, ``aif.csv`` (the blood AIF used), and per slice
    ``slice_<n>/``: ``corrected.seq.nrrd``, ``labels.seq.nrrd`` (over the acquired frames),
    ``labels_ref.nrrd`` (and ``labels_ref.seg.nrrd``, the same labels as a Slicer segmentation with
    segment names and terminology), ``segments.nrrd``, one ``<parameter>.nrrd`` per map, and
    ``insertion.json``.
    """
    from qperf import io
    from qperf.flow import map_file_stem
    from qperf.io import atomic_dir
    from qperf.io.insertion import slice_record
    from qperf.report import write_report

    with atomic_dir(out_dir, overwrite) as tmp:
        write_report(result.report, result.figures, tmp)
        io.write_aif_curve(result.aif_blood, tmp / "aif.csv")
        for i, sl in enumerate(result.slices, start=1):
            d = tmp / f"slice_{i}"
            d.mkdir()
            sp, geo = sl.gd.spacing_mm, sl.gd.geometry
            io.write_series(sl.corrected, d / "corrected.seq.nrrd")
            io.write_image(sl.labels, d / "labels.seq.nrrd", spacing_mm=sp, geometry=geo, time_s=sl.series.time_s)
            io.write_image(sl.labels_ref, d / "labels_ref.nrrd", spacing_mm=sp, geometry=geo)
            io.write_labels_seg_nrrd(sl.labels_ref, d / "labels_ref.seg.nrrd", spacing_mm=sp, geometry=geo)
            io.write_image(sl.sectors.segments.astype(np.int16), d / "segments.nrrd", spacing_mm=sp, geometry=geo)
            for name, arr in sl.flow.maps.items():
                io.write_image(arr, d / f"{map_file_stem(name)}.nrrd", spacing_mm=sp, geometry=geo)
            record = slice_record(
                dict(sl.segmentation.insertion_points_yx), sl.insertion_points_per_frame, sl.series, i - 1
            )
            (d / "insertion.json").write_text(json.dumps({"slices": [record]}, indent=2) + "\n", encoding="utf-8")
    _log.info("wrote the report and %d slice folder(s) to %s", len(result.slices), out_dir)
    return Path(out_dir)


def write_analysis_dicom(
    result: StudyAnalysis,
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write the analysis' parameter maps and labels as DICOM, as new series of the source study.

    Per slice a DICOM Parametric Map per parameter map and a DICOM SEG of the labels on the
    corrected (key-frame) grid, referencing the source images
    (:func:`qperf.io.dicom_results.write_dicom_results`): what ``qperf analyze --dicom`` and
    QPerf Flow's DICOM export write.

    Parameters
    ----------
    result : StudyAnalysis
        The analysis of a study read from DICOM (its slices keep their SOP Instance UIDs).
    source : path
        The DICOM folder the study was read from.
    folder : path
        Output folder (``slice_<n>/<map>.dcm``, ``slice_<n>/labels.seg.dcm``), written atomically.
    overwrite : bool
        Whether an existing ``folder`` may be replaced.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    NotAvailableError
        highdicom (the dicom extra) is not installed.
    ValidationError
        The study was not read from DICOM, or its source instances are not in ``source``.
    """
    from qperf.io.dicom_results import SliceResults, write_dicom_results

    slices = [
        SliceResults(
            series=sl.series,
            maps=sl.flow.maps,
            labels=sl.labels_ref,
            key_frame=sl.motion.key_frame if sl.motion is not None else sl.series.n_pd_frames,
        )
        for sl in result.slices
    ]
    written = write_dicom_results(source, slices, folder, overwrite=overwrite)
    _log.info("wrote %d DICOM result files (Parametric Maps and SEG) to %s", len(written), folder)
    return written
