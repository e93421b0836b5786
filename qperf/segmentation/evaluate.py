"""Accuracy of a segmenter on held-out phantom studies (truth the network never saw).

Held-out studies use seeds far from the training stream's; every slice is segmented with the
full inference pipeline and compared with the phantom's reference labels and insertion points
on the slice's own pixel grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qperf import metrics
from qperf.segmentation.inference import Segmenter

#: First seed of the held-out evaluation studies (training uses seeds near k * 100_003).
HELD_OUT_SEED = 7_000_000
#: A slice counts as found when its myocardium Dice reaches this.
FOUND_DICE = 0.5


@dataclass
class SliceScore:
    seed: int
    slice: int
    level: str
    dice_myo: float
    dice_lv: float
    dice_rv: float
    fp_rate_myo: float
    fn_rate_myo: float
    precision_myo: float
    recall_myo: float
    mean_boundary_mm: float
    hausdorff_mm: float
    angle_error_anterior_deg: float
    angle_error_inferior_deg: float
    qc_flags: str


def score_slice(
    result: Any,
    labels_ref: np.ndarray,
    points_ref: dict[str, Any],
    spacing_mm: tuple[float, float],
    seed: int,
    index: int,
    level: str,
) -> SliceScore:
    """Scores of one segmented slice against its truth."""
    pred = np.asarray(result.labels_ref)
    myo = metrics.score_labels(pred, labels_ref, spacing_mm, 2)
    errors = {}
    for name in ("anterior", "inferior"):
        p, r = result.insertion_points.get(name), points_ref.get(name)
        if p is None or r is None or not (labels_ref == 1).any():
            errors[name] = float("nan")
            continue
        centre = metrics.lv_centre(labels_ref)
        errors[name] = metrics.insertion_angle_error(p, r, centre, spacing_mm)
    return SliceScore(
        seed,
        index,
        level,
        myo.overlap.dice,
        metrics.dice(pred == 1, labels_ref == 1),
        metrics.dice(pred == 3, labels_ref == 3),
        myo.overlap.false_positive_rate,
        myo.overlap.false_negative_rate,
        myo.overlap.precision,
        myo.overlap.recall,
        myo.mean_boundary_mm,
        myo.hausdorff_mm,
        errors["anterior"],
        errors["inferior"],
        ",".join(result.qc.flags),
    )


def evaluate_phantom(
    segmenter: Segmenter, seeds: Iterable[int], *, units: str = "signal", **study_options: Any
) -> list[SliceScore]:
    """Segment every slice of phantom studies ``seeds`` and score them (motion-free by default).

    ``units="gd_mmol_l"`` converts each slice with :func:`qperf.gd.series_to_gd` first (as the
    flow pipeline does); ``"signal"`` segments the raw signal with its PD frames.
    """
    from qperf import phantom

    options: dict[str, Any] = {"motion": False, "aif_images": False}
    options.update(study_options)
    scores = []
    for seed in seeds:
        ps = phantom.generate_study(
            seed=int(seed),
            condition="stress" if seed % 2 else "rest",
            field_t=1.5 if (seed // 2) % 2 else 3.0,
            **options,
        )
        for i, (series, truth) in enumerate(zip(ps.study.slices, ps.truth.slices, strict=True)):
            if units == "gd_mmol_l":
                from qperf import gd

                series = gd.series_to_gd(series, tissue="myocardium")
            result = segmenter(series)
            scores.append(
                score_slice(
                    result,
                    np.asarray(truth.labels_ref),
                    dict(truth.insertion_points_yx),
                    series.spacing_mm,
                    int(seed),
                    i,
                    truth.level,
                )
            )
    return scores


#: Seeds of the real-like evaluation series (fixed, so every model is measured on the same series).
REAL_LIKE_SEED = 31_000


def per_frame_dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Mean over frames of the Dice of ``label`` (frames where neither has it are skipped)."""
    values = [
        metrics.dice(p == label, t == label)
        for p, t in zip(pred, truth, strict=True)
        if (p == label).any() or (t == label).any()
    ]
    return float(np.mean(values)) if values else math.nan


def evaluate_real_like(
    segmenter: Segmenter, n: int, *, motion: str = "auto", cine_path: Any = None, log: Any = None
) -> list[dict[str, Any]]:
    """Per-frame Dice of :meth:`Segmenter.segment` on series that resemble real scans.

    Free-breathing first-pass series simulated with the phantom's physics on the real cine
    anatomy of patients that training never used (:func:`qperf.phantom.cine_perfusion.simulate_scan`,
    :data:`qperf.phantom.cine.VALIDATION_CASES`), seeds from :data:`REAL_LIKE_SEED`; each
    series is segmented as acquired (heart located at full field of view, motion corrected when
    the heart moves) and every frame's labels are compared with that frame's truth.

    Raises
    ------
    NotAvailableError
        When the cine anatomy file is not available.
    """
    import time

    from qperf.phantom.cine import VALIDATION_CASES, default_cine_path, load_cine_frames
    from qperf.phantom.cine_perfusion import simulate_scan

    path = cine_path or default_cine_path()
    frames = [f for f in load_cine_frames(path, VALIDATION_CASES, with_myocardium=True) if f.rv is not None]
    rows = []
    for k in range(n):
        scan = simulate_scan(frames[k % len(frames)], np.random.default_rng([REAL_LIKE_SEED, k]))
        t0 = time.perf_counter()
        result = segmenter.segment(scan.series, motion=motion)
        row: dict[str, Any] = {
            name: per_frame_dice(result.labels, scan.labels, c)
            for c, name in ((1, "dice_lv"), (2, "dice_myo"), (3, "dice_rv"))
        }
        row.update(
            seconds=time.perf_counter() - t0,
            corrected=bool(result.qc.motion.get("corrected")),
            qc_ok=result.qc.ok,
            **{
                key: scan.info[key]
                for key in ("case", "frame_index", "condition", "breathing_mm", "spacing_mm", "n_frames")
            },
        )
        rows.append(row)
        if log is not None:
            log(row)
    return rows


def summarise_rows(
    rows: list[dict[str, Any]], keys: Iterable[str] = ("dice_lv", "dice_myo", "dice_rv")
) -> dict[str, Any]:
    """Mean, SD, median and minimum of each key over rows (NaNs ignored), with the count."""
    out: dict[str, Any] = {"n": len(rows)}
    for key in keys:
        v = np.array([r[key] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[key] = (
            {
                "mean": float(v.mean()),
                "sd": float(v.std()),
                "median": float(np.median(v)),
                "min": float(v.min()),
                "n": int(v.size),
            }
            if v.size
            else None
        )
    return out


def evaluate_phantom_aif(detector: Any, seeds: Iterable[int]) -> dict[str, Any]:
    """LV Dice of an AIF LV detector on the dual-sequence AIF images of phantom studies."""
    from qperf import phantom

    dices, failures = [], 0
    for seed in seeds:
        ps = phantom.generate_study(seed=int(seed), motion=False, aif_images=True, n_slices=1)
        ref = np.asarray(ps.truth.aif_labels_ref) == 1
        try:
            mask = detector.detect(ps.study.aif_series[0])
        except ValueError:
            failures += 1
            dices.append(0.0)
            continue
        dices.append(metrics.dice(mask, ref))
    arr = np.asarray(dices)
    return {
        "n_series": int(arr.size),
        "dice_lv": {"mean": float(arr.mean()), "sd": float(arr.std()), "median": float(np.median(arr))},
        "found_fraction": float(np.mean(arr > 0.3)),
        "failures": failures,
    }


def summarise(scores: list[SliceScore]) -> dict[str, Any]:
    """Mean, SD and median of every figure over slices (NaNs ignored), with the slice count,
    the slices with QC flags and the slices where the heart was found (myocardium Dice >= 0.5)."""
    out: dict[str, Any] = {"n_slices": len(scores)}
    if not scores:
        return out
    rows = [asdict(s) for s in scores]
    for key, value in rows[0].items():
        if isinstance(value, float):
            arr = np.array([r[key] for r in rows], dtype=float)
            ok = arr[np.isfinite(arr)]
            out[key] = {
                "mean": float(ok.mean()) if ok.size else math.nan,
                "sd": float(ok.std()) if ok.size else math.nan,
                "median": float(np.median(ok)) if ok.size else math.nan,
                "n": int(ok.size),
            }
    angles = np.array([[r["angle_error_anterior_deg"], r["angle_error_inferior_deg"]] for r in rows], dtype=float)
    ok = angles[np.isfinite(angles)]
    out["angle_error_deg"] = {
        "mean": float(ok.mean()) if ok.size else math.nan,
        "sd": float(ok.std()) if ok.size else math.nan,
        "median": float(np.median(ok)) if ok.size else math.nan,
        "n": int(ok.size),
    }
    out["qc_flagged_slices"] = int(sum(1 for s in scores if s.qc_flags))
    out["found_slices"] = int(sum(1 for s in scores if s.dice_myo >= FOUND_DICE))
    return out
