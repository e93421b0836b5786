"""Step 1 of the study workflow: motion correction and labels of every slice.

The CNN path is :meth:`qperf.segmentation.Segmenter.segment` (heart located from the dynamics,
motion measured and corrected around the heart, labels carried to every acquired frame). The
supplied path (an annotator's labels and insertion points) corrects the motion around the
supplied heart and carries the labels the same way. The command line, the Slicer modules and
batch runs all segment through :func:`segment_study`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.errors import ValidationError
from qperf.progress import ProgressCallback, null_progress, scaled
from qperf.types import PerfusionSeries, PerfusionStudy
from qperf.workflow.options import AnalysisOptions
from qperf.workflow.regions import motion_region
from qperf.workflow.results import Segmentation, SliceSegmentation

#: Margin around the supplied heart (blood pools and myocardium) that motion correction registers, mm.
MOTION_MARGIN_MM = 40.0


def segment_study(
    study: PerfusionStudy,
    options: AnalysisOptions | None = None,
    *,
    segmenter: Any | None = None,
    progress: ProgressCallback | None = None,
) -> Segmentation:
    """Correct the motion of every slice and label it (CNN or supplied).

    Parameters
    ----------
    study : PerfusionStudy
    options : AnalysisOptions, optional
        ``motion``, ``labels``, ``insertion_points_yx``, ``label_frames``, ``segmenter``,
        ``threads`` and ``device`` are used.
    segmenter : qperf.segmentation.Segmenter, optional
        An already loaded network (default: ``options.segmenter`` or the shipped model).
    progress : callable(fraction, message), optional
        May raise to cancel (the Slicer modules' Cancel button).

    Returns
    -------
    Segmentation

    Raises
    ------
    ValidationError
        Supplied labels or points that do not fit the study.
    NotAvailableError
        No trained model and no labels supplied.
    """
    options = options or AnalysisOptions()
    progress = progress or null_progress
    if not isinstance(study, PerfusionStudy):
        raise ValidationError(f"study: expected a PerfusionStudy, found {type(study).__name__}")
    _check_supplied(study, options)
    if options.labels is None and segmenter is None:
        from qperf.segmentation import load_segmenter

        model = None if options.segmenter is None else Path(options.segmenter)
        segmenter = load_segmenter(model, threads=options.threads, device=options.device)
    start = time.perf_counter()
    n = study.n_slices
    slices = []
    for i, series in enumerate(study.slices):
        name = series.name or f"slice {i + 1}"
        progress(i / n, f"{name}: segmentation")
        if options.labels is None:
            slices.append(_cnn_slice(segmenter, series, options.motion))
        else:
            assert options.insertion_points_yx is not None
            frame = None if options.label_frames is None else int(options.label_frames[i])
            step = scaled(progress, i / n, (i + 1) / n)
            slices.append(
                supplied_slice(
                    series,
                    options.labels[i],
                    options.insertion_points_yx[i],
                    options.motion,
                    frame,
                    step,
                    device=options.device,
                )
            )
    progress(1.0, "segmentation done")
    return Segmentation(tuple(slices), {"segmentation": time.perf_counter() - start})


def _cnn_slice(segmenter: Any, series: PerfusionSeries, motion: str) -> SliceSegmentation:
    result = segmenter.segment(series, motion=motion)
    moco = result.extras.get("motion")
    points = {k: (float(v[0]), float(v[1])) for k, v in result.insertion_points.items()}
    return SliceSegmentation(
        series=series,
        corrected=moco.corrected if moco is not None else series,
        motion=moco,
        labels_ref=np.asarray(result.labels_ref, dtype=np.uint8),
        labels=np.asarray(result.labels, dtype=np.uint8),
        insertion_points_yx=points,
        insertion_points_per_frame_yx={
            k: np.asarray(v, dtype=np.float64) for k, v in result.insertion_points_per_frame.items()
        },
        source="cnn",
        qc=result.qc.to_dict(),
    )


def supplied_slice(
    series: PerfusionSeries,
    labels: Any,
    points: Any,
    motion: str = "auto",
    label_frame: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    device: Any = "auto",
) -> SliceSegmentation:
    """A slice labelled by the caller: motion corrected around the supplied heart, labels and
    points carried to the corrected grid and to every acquired frame.

    Parameters
    ----------
    labels : array_like
        ``(y, x)`` on the corrected grid (or on acquired frame ``label_frame``), or ``(t, y, x)``
        over the acquired frames (the key frame's map is used).
    points : array_like or mapping
        The anterior RV insertion point ``(y, x)``, ``(t, 2)`` over the acquired frames, or
        ``{"anterior": (y, x), "inferior": (y, x)}``; on the same grid as ``labels``.
    motion : {"auto", "on", "off"}
    label_frame : int, optional
        The acquired frame ``(y, x)`` labels and points were drawn on.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        Where the motion correction computes (:func:`qperf.runtime.resolve_device`).
    """
    from qperf import motion as motion_mod
    from qperf.motion.detect import MOVING_MM, heart_shifts_mm, motion_extent_mm

    lab = np.asarray(labels)
    if lab.shape not in (series.shape, (series.n_frames, *series.shape)):
        raise ValidationError(
            f"labels: expected shape {series.shape} or {(series.n_frames, *series.shape)} (the slice grid), found {lab.shape}"
        )
    heart = motion_region(lab)
    result = None
    record: dict[str, Any] = {"mode": motion, "corrected": False}
    if heart is not None and motion != "off":
        correct = motion == "on"
        if motion == "auto":
            centre = tuple(float(c) for c in np.argwhere(heart).mean(axis=0))
            extent = motion_extent_mm(heart_shifts_mm(series, (centre[0], centre[1])))
            record.update(displacement_mm=round(extent, 3), threshold_mm=MOVING_MM)
            correct = extent >= MOVING_MM and not bool(series.metadata.get("motion_corrected", False))
        if correct:
            margin = int(np.ceil(MOTION_MARGIN_MM / min(series.spacing_mm)))
            result = motion_mod.correct_series(
                series, heart_mask=heart, margin_px=margin, progress=progress, device=device
            )
            record.update(corrected=True, quality_score=round(float(result.quality.get("score", float("nan"))), 4))
    key = result.key_frame if result is not None else series.n_pd_frames
    labels_ref = _labels_on_reference(lab, result, key, label_frame)
    named = _named_points(points, series.n_frames, key)
    if label_frame is not None:
        named = {k: motion_mod.frame_point_to_reference(p, label_frame, result) for k, p in named.items()}
    return SliceSegmentation(
        series=series,
        corrected=result.corrected if result is not None else series,
        motion=result,
        labels_ref=labels_ref,
        labels=motion_mod.labels_over_frames(labels_ref, result, series.n_frames),
        insertion_points_yx=named,
        insertion_points_per_frame_yx={
            k: motion_mod.point_over_frames(p, result, series.n_frames) for k, p in named.items()
        },
        source="supplied",
        qc={"motion": record},
    )


def _labels_on_reference(lab: NDArray[Any], result: Any | None, key: int, label_frame: int | None) -> NDArray[np.uint8]:
    from qperf import motion as motion_mod

    if not np.issubdtype(lab.dtype, np.integer) and not np.all(np.isin(lab, (0, 1, 2, 3))):
        raise ValidationError(f"labels: expected integer labels 0-3, found {lab.dtype}")
    if lab.ndim == 3:
        return motion_mod.frame_labels_to_reference(lab[key], key, result)
    if label_frame is not None:
        return motion_mod.frame_labels_to_reference(lab, label_frame, result)
    return np.asarray(lab, dtype=np.uint8)


def _named_points(points: Any, n_frames: int, key: int) -> dict[str, tuple[float, float]]:
    """Insertion points by name from a point, a per-frame array or a mapping (the key frame's
    position of a per-frame array, which :func:`qperf.motion.frame_point_to_reference` maps)."""
    if isinstance(points, Mapping):
        items = dict(points)
    else:
        items = {"anterior": points}
    out = {}
    for name, value in items.items():
        if value is None:
            continue
        pt = np.asarray(value, dtype=float)
        if pt.ndim == 2:
            if pt.shape != (n_frames, 2):
                raise ValidationError(
                    f"insertion_points_yx: expected (y, x) or one point per frame ({n_frames}, 2), found {pt.shape}"
                )
            pt = pt[key]
        if pt.shape != (2,) or not np.all(np.isfinite(pt)):
            raise ValidationError(f"insertion_points_yx: expected a finite (y, x) point, found {pt.tolist()}")
        out[str(name)] = (float(pt[0]), float(pt[1]))
    if "anterior" not in out:
        raise ValidationError("insertion_points_yx: expected the anterior RV insertion point of every slice")
    return out


def _check_supplied(study: PerfusionStudy, options: AnalysisOptions) -> None:
    n = study.n_slices
    for name, what in (("labels", "label map"), ("insertion_points_yx", "insertion point"), ("label_frames", "frame")):
        value = getattr(options, name)
        if value is not None and len(value) != n:
            raise ValidationError(f"{name}: expected one {what} per slice ({n}), found {len(value)}")
    if options.labels is not None and options.insertion_points_yx is None:
        raise ValidationError(
            "insertion_points_yx: supply the anterior RV insertion point of every slice with the labels"
        )
    for i, (lab, s) in enumerate(zip(options.labels or (), study.slices, strict=False)):
        if np.shape(lab) not in (s.shape, (s.n_frames, *s.shape)):
            raise ValidationError(
                f"labels[{i}]: expected shape {s.shape} or {(s.n_frames, *s.shape)} (the slice grid), found {np.shape(lab)}"
            )
    for i, (points, s) in enumerate(zip(options.insertion_points_yx or (), study.slices, strict=False)):
        _check_points_inside(points, s.shape, i)


def _check_points_inside(points: Any, shape: tuple[int, int], index: int) -> None:
    """Every supplied point of slice ``index`` (one, per frame, or named) lies inside its image."""
    from qperf.checks import check_point_yx

    items = dict(points) if isinstance(points, Mapping) else {"anterior": points}
    for name, value in items.items():
        if value is None:
            continue
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError(
                f"insertion_points_yx[{index}]: expected a (y, x) point of slice {index + 1}, found {value!r}"
            ) from None
        for point in arr.reshape(-1, 2) if arr.ndim in (1, 2) and arr.size and arr.shape[-1] == 2 else [arr]:
            check_point_yx(point, shape, f"insertion point ({name}) of slice {index + 1}")
