"""Segment statistics on phantom studies: partial-volume bias of the border pixels, the error of a
segment mean against its pixel count, and border trimming before and after the top-up rule.

For each phantom study (3 slices, 60 frames, noise, coil shading, limited resolution) the
one-click analysis runs once; the benchmark then recomputes the segment means over different
pixel selections of the same maps. Studies with their true labels and no motion (the maps and
the truth share a grid) give the per-pixel tables; studies segmented by the network with
motion correction (as ``qperf demo``) give the trimming comparison as the user meets it.

1. Partial-volume bias: the median error (MBF / true MBF - 1) of the myocardial pixels by how
   many blood-pool (LV or RV) or background pixels surround them (4-neighbours, 8-neighbours).
2. Error against pixel count: means of ``n`` neighbouring pixels of a segment (kept by the
   statistics mask) against their own truth and against the segment's truth, over segments with
   at least 30 pixels; the minimum (``qperf.aha.MIN_SEGMENT_PIXELS``) is the smallest ``n``
   whose error SD against its truth is within 1.5 times that of 30 pixels.
3. Trimming: the pixels kept, segments under the minimum and the per-segment errors, for the
   rule before (interior pixels; a segment keeping under a quarter of its pixels away from
   blood keeps all of those) and after (interior pixels, topped up to the minimum with
   straight-border epicardial pixels: :func:`qperf.workflow.regions.statistics_mask`).

Reports figures; passes or fails nothing.

    .venv/bin/python benchmarks/bench_segment_pixels.py [--seeds 1 2 3 4 5 6 7 8] [--cnn-seeds 1 4 7]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from qperf import phantom
from qperf.aha import MIN_SEGMENT_PIXELS
from qperf.flow import flow_at_upper_bound
from qperf.types import LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV
from qperf.workflow import AnalysisOptions, analyze_study
from qperf.workflow.regions import away_from_blood, high_outliers, statistics_mask

PATCH_SIZES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30)


def analyse(seed: int, condition: str, cnn: bool) -> list[dict[str, Any]]:
    """The maps, labels and segments of every slice of one analysed phantom study, with truth."""
    ps = phantom.generate_study(seed=seed, n_slices=3, n_frames=60, condition=condition, motion=cnn)
    if cnn:
        options = AnalysisOptions()
    else:
        options = AnalysisOptions(
            motion="off",
            aif_motion_correction=False,
            labels=[t.labels_moving for t in ps.truth.slices],
            insertion_points_yx=[phantom.insertion_points_over_frames(t) for t in ps.truth.slices],
        )
    result = analyze_study(ps.study, options)
    segment_truth = {k: ps.truth.segments[k]["mbf_ml_min_g"] for k in range(1, 17)}
    return [
        {
            "labels": sl.labels_ref,
            "segments": sl.sectors.segments,
            "mbf": np.asarray(sl.flow.maps["mbf_ml_min_g"], dtype=np.float64),
            "at_bound": flow_at_upper_bound(sl.flow),
            "truth": None if cnn else np.asarray(truth.mbf_ml_min_g, dtype=np.float64),
            "segment_truth": segment_truth,
            "spacing_mm": sl.gd.spacing_mm[0],
        }
        for sl, truth in zip(result.slices, ps.truth.slices, strict=True)
    ]


def rule_before(labels: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The trimming before the top-up rule: interior pixels; a segment keeping fewer than a
    quarter of its pixels away from blood keeps all of those (its most diluted included)."""
    inner = away_from_blood(labels)
    mask = inner & ~ndimage.binary_dilation(labels == LABEL_BACKGROUND)
    for segment in np.unique(segments[inner]):
        here = segments == segment
        if 4 * np.count_nonzero(mask & here) < np.count_nonzero(inner & here):
            mask |= inner & here
    return mask


def _neighbours(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = region.astype(np.int16)
    four = ndimage.convolve(r, np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.int16), mode="constant")
    eight = ndimage.convolve(r, np.ones((3, 3), np.int16), mode="constant")
    return four, eight


def border_bias(slices: list[dict[str, Any]]) -> None:
    print("\n1. Partial-volume bias of myocardial pixels (true labels): median MBF error by surroundings")
    for name, values in (("blood (LV, RV)", (LABEL_LV, LABEL_RV)), ("background", (LABEL_BACKGROUND,))):
        groups: dict[tuple[int, int], list[float]] = {}
        for d in slices:
            four, eight = _neighbours(np.isin(d["labels"], values))
            err = d["mbf"] / d["truth"] - 1.0
            ok = (d["labels"] == LABEL_MYO) & np.isfinite(err) & ~d["at_bound"] & (d["segments"] > 0)
            if name == "background":  # the epicardial border away from blood
                ok &= away_from_blood(d["labels"])
            for key in {(int(a), int(b)) for a, b in zip(four[ok], eight[ok], strict=True)}:
                sel = ok & (four == key[0]) & (eight == key[1])
                groups.setdefault(key, []).extend(err[sel].tolist())
        print(f"   {name} pixels among the 4 / 8 neighbours:")
        for key in sorted(groups):
            e = np.asarray(groups[key])
            if e.size >= 20:
                print(f"     {key[0]} / {key[1]}: {e.size:6d} pixels, median {100 * np.median(e):+6.1f} %")


def error_against_count(slices: list[dict[str, Any]], rng: np.random.Generator) -> int:
    print("\n2. Error of the mean of n neighbouring pixels (segments with >= 30 pixels in the statistics)")
    own: dict[int, list[float]] = {n: [] for n in PATCH_SIZES}
    seg_truth: dict[int, list[float]] = {n: [] for n in PATCH_SIZES}
    for d in slices:
        mbf, segments = d["mbf"], d["segments"]
        kept = statistics_mask(d["labels"], segments) & ~d["at_bound"] & np.isfinite(mbf)
        kept &= ~high_outliers(mbf, kept, segments)
        for k in range(1, 17):
            yy, xx = np.nonzero(kept & (segments == k))
            if yy.size < max(PATCH_SIZES):
                continue
            for _ in range(20):
                c = rng.integers(yy.size)
                order = np.argsort((yy - yy[c]) ** 2 + (xx - xx[c]) ** 2 + 0.1 * rng.random(yy.size))
                for n in PATCH_SIZES:
                    sel = order[:n]
                    mean = mbf[yy[sel], xx[sel]].mean()
                    own[n].append(mean / d["truth"][yy[sel], xx[sel]].mean() - 1.0)
                    seg_truth[n].append(mean / d["segment_truth"][k] - 1.0)
    print("      n   patches  SD vs own truth  p90 |err| vs own  SD vs segment truth  p90 |err| vs segment")
    sd = {}
    for n in PATCH_SIZES:
        a, b = np.asarray(own[n]), np.asarray(seg_truth[n])
        sd[n] = float(a.std())
        print(
            f"   {n:4d}  {a.size:8d}  {100 * a.std():13.1f} %  {100 * np.percentile(np.abs(a), 90):14.1f} %"
            f"  {100 * b.std():17.1f} %  {100 * np.percentile(np.abs(b), 90):18.1f} %"
        )
    chosen = min(n for n in PATCH_SIZES if sd[n] <= 1.5 * sd[max(PATCH_SIZES)])
    print(
        f"   smallest n with SD within 1.5 x that of {max(PATCH_SIZES)} pixels: {chosen} "
        f"(qperf.aha.MIN_SEGMENT_PIXELS = {MIN_SEGMENT_PIXELS})"
    )
    return chosen


def trimming(slices: list[dict[str, Any]], label: str) -> None:
    print(f"\n3. Trimming, {label}: before (quarter rule) and after (top-up to {MIN_SEGMENT_PIXELS})")
    for name, rule in (("before", rule_before), ("after", statistics_mask)):
        errors, counts, kept_total, myo_total = [], [], 0, 0
        for d in slices:
            mbf, segments = d["mbf"], d["segments"]
            kept = rule(d["labels"], segments) & ~d["at_bound"]
            kept &= ~high_outliers(mbf, kept, segments)
            kept_total += int(np.count_nonzero(kept & (segments > 0)))
            myo_total += int(np.count_nonzero(segments > 0))
            for k in np.unique(segments[segments > 0]):
                sel = kept & (segments == k) & np.isfinite(mbf)
                counts.append(int(np.count_nonzero(sel)))
                errors.append(mbf[sel].mean() / d["segment_truth"][int(k)] - 1.0 if sel.any() else np.nan)
        e, n = np.asarray(errors), np.asarray(counts)
        print(
            f"   {name:6s}: {100 * kept_total / myo_total:5.1f} % of the myocardium kept, median "
            f"{np.median(n):4.0f} pixels per segment, {100 * np.mean(n < MIN_SEGMENT_PIXELS):4.1f} % of "
            f"{n.size} segments under {MIN_SEGMENT_PIXELS}; segment error median {100 * np.nanmedian(e):+5.1f} % "
            f"(the partial-volume bias), median |error| {100 * np.nanmedian(np.abs(e)):4.1f} %, "
            f"90th percentile {100 * np.nanpercentile(np.abs(e), 90):4.1f} %"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--cnn-seeds", type=int, nargs="*", default=[1, 4, 7], help="studies segmented by the CNN")
    parser.add_argument("--conditions", nargs="+", default=["stress", "rest"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    truth_slices: list[dict[str, Any]] = []
    cnn_slices: list[dict[str, Any]] = []
    for condition in args.conditions:
        for seed in args.seeds:
            truth_slices += analyse(seed, condition, cnn=False)
        for seed in args.cnn_seeds:
            cnn_slices += analyse(seed, condition, cnn=True)
    spacings = sorted({round(d["spacing_mm"], 2) for d in truth_slices + cnn_slices})
    print(
        f"{len(truth_slices) // 3} studies with true labels, {len(cnn_slices) // 3} segmented by the network; "
        f"pixels {spacings[0]}-{spacings[-1]} mm; {time.perf_counter() - start:.0f} s"
    )
    border_bias(truth_slices)
    error_against_count(truth_slices, np.random.default_rng(0))
    trimming(truth_slices, "true labels")
    if cnn_slices:
        trimming(cnn_slices, "labels of the network, motion corrected")


if __name__ == "__main__":
    main()
