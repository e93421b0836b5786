"""Where annotated training slices come from: the phantom stream and folders of real cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import FormatError, NotAvailableError
from qperf.segmentation.augment import AnnotatedSlice
from qperf.types import PerfusionSeries


def slices_of_phantom(ps: Any) -> list[AnnotatedSlice]:
    """Annotated slices of one phantom study (``ps.study``, ``ps.truth.slices``).

    Uses the reference-frame labels; when the phantom simulated breathing motion, the frames
    are first brought onto the reference frame through the truth's labels (not needed when
    the stream is asked for motion-free studies).
    """
    out = []
    for series, truth in zip(ps.study.slices, ps.truth.slices, strict=True):
        labels = np.asarray(truth.labels_ref)
        pts = getattr(truth, "insertion_points_yx", None) or {}
        points = {k: (float(v[0]), float(v[1])) for k, v in dict(pts).items() if v is not None}
        if not (labels == 3).any():
            points = {}
        out.append(AnnotatedSlice(series, labels, points))
    return out


def _generated_studies(seed: int, **options: Any) -> Iterator[Any]:
    """Randomised studies from :func:`qperf.phantom.generate_study`, one seed after another."""
    from qperf import phantom

    rng = np.random.default_rng(seed)
    i = 0
    while True:
        kwargs: dict[str, Any] = {
            "condition": "stress" if rng.random() < 0.5 else "rest",
            "field_t": 1.5 if rng.random() < 0.5 else 3.0,
            "n_frames": int(rng.integers(40, 81)),
            "motion": False,
            "aif_images": False,
        }
        kwargs.update(options)
        yield phantom.generate_study(seed=seed * 100_003 + i, **kwargs)
        i += 1


def phantom_slices(seed: int = 0, *, aif_every: int = 3, **options: Any) -> Iterator[AnnotatedSlice]:
    """Endless stream of annotated slices from the phantom.

    With :func:`qperf.phantom.stream`: studies converted to Gd and studies in raw signal (with
    their PD frames) alternate, and every ``aif_every``-th round adds a dual-sequence AIF image
    series (low resolution, short saturation time; labelled like the slices), so the same
    network learns to find the LV in AIF images. ``options`` go to the stream. Without it,
    randomised :func:`qperf.phantom.generate_study` calls.

    Raises
    ------
    NotAvailableError
        When :mod:`qperf.phantom` is not installed.
    """
    try:
        from qperf import phantom
    except ImportError as exc:  # pragma: no cover - the phantom ships with qperf
        raise NotAvailableError(f"qperf.phantom: expected the phantom package, found {exc}") from exc
    stream_fn: Any
    try:
        from qperf.phantom.stream import stream as stream_fn
    except ImportError:
        stream_fn = getattr(phantom, "stream", None)
    if not callable(stream_fn):
        for ps in _generated_studies(seed, **options):
            yield from slices_of_phantom(ps)
        return
    gd = stream_fn(seed=seed * 3, units="gd_mmol_l", **options)
    sig = stream_fn(seed=seed * 3 + 1, units="signal", **options)
    aif = stream_fn(seed=seed * 3 + 2, kind="aif", **options) if aif_every > 0 else None
    rnd = 0
    while True:
        for src in (gd, sig):
            for _ in range(options.get("n_slices", 3)):
                yield _slice_of_sample(next(src))
        rnd += 1
        if aif is not None and rnd % aif_every == 0:
            yield _slice_of_sample(next(aif))


def _slice_of_sample(sample: Any) -> AnnotatedSlice:
    """An annotated slice from a stream sample (a dict, or an object with the same fields)."""
    get: Any = sample.get if isinstance(sample, dict) else (lambda k, d=None: getattr(sample, k, d))
    series = PerfusionSeries(
        get("image"),
        get("time_s"),
        spacing_mm=get("spacing_mm"),
        geometry=get("geometry"),
        units=get("units", "signal"),
        n_pd_frames=int(get("n_pd_frames", 0)),
    )
    labels = np.asarray(get("labels"))
    pts = get("insertion_points_yx") or {}
    points = {k: (float(v[0]), float(v[1])) for k, v in dict(pts).items() if v is not None}
    if get("kind", "slice") != "slice" or not (labels == 3).any():
        points = {}
    return AnnotatedSlice(series, labels, points)


def synth_slices(
    seed: int = 0,
    *,
    cine_path: str | Path | None = None,
    cine_cases: tuple[str, ...] | None = None,
    cine_fraction: float = 0.35,
    **synth_options: Any,
) -> Iterator[AnnotatedSlice]:
    """Endless stream of label-driven synthetic slices (:func:`qperf.segmentation.synth.synthesize`).

    Label maps come from random phantom hearts and, with ``cine_path``, a fraction
    ``cine_fraction`` from the real cine anatomy of ``cine_cases`` (default: the training
    patients, :data:`qperf.phantom.cine.TRAINING_CASES`).
    """
    from qperf.phantom.cine import TRAINING_CASES
    from qperf.segmentation.labelmaps import cine_label_maps, phantom_label_map
    from qperf.segmentation.synth import SynthConfig, synthesize

    cfg = SynthConfig(**synth_options)
    cine = cine_label_maps(cine_path, cine_cases or TRAINING_CASES) if cine_path else []
    rng = np.random.default_rng([int(seed), 31337])
    i = 0
    while True:
        if cine and rng.random() < cine_fraction:
            lm = cine[int(rng.integers(len(cine)))]
        else:
            lm = phantom_label_map(int(seed) * 1_000_003 + i)
            i += 1
        yield synthesize(lm, rng, cfg)


def mixed_slices(
    sources: list[Iterator[AnnotatedSlice]], weights: list[float], seed: int = 0
) -> Iterator[AnnotatedSlice]:
    """Draw from several streams at random with the given weights."""
    rng = np.random.default_rng([int(seed), 2718])
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    while True:
        yield next(sources[int(rng.choice(len(sources), p=w))])


def real_like_slices(cine_path: str | Path, cases: tuple[str, ...], n: int, seed: int) -> list[AnnotatedSlice]:
    """Slices simulated on real cine anatomy by :mod:`qperf.phantom.cine_perfusion` (a code path
    independent of the synthesis), with the small residual motion of a corrected series."""
    from qperf.phantom.cine import load_cine_frames
    from qperf.phantom.cine_perfusion import simulate_scan

    frames = [f for f in load_cine_frames(cine_path, cases, with_myocardium=True) if f.rv is not None]
    out = []
    for k in range(n if frames else 0):
        rng = np.random.default_rng([int(seed), k])
        scan = simulate_scan(frames[k % len(frames)], rng, breathing_mm=float(rng.uniform(0.0, 2.0)))
        out.append(AnnotatedSlice(scan.series, scan.labels_ref, {}))
    return out


#: Margin around the labelled heart that motion correction of an annotated case registers, mm.
CASE_MOTION_MARGIN_MM = 40.0


def case_slice(case: Any, motion: str = "auto") -> AnnotatedSlice:
    """A training slice from an annotated case (see :func:`prepare_case`)."""
    return prepare_case(case, motion)[0]


def prepare_case(case: Any, motion: str = "auto") -> tuple[AnnotatedSlice, Any | None]:
    """A training slice from an annotated case (:class:`qperf.segmentation.cases.AnnotatedCase`),
    and the motion correction its labels were carried with (None when not corrected).

    A single ``(y, x)`` map labels the series as given. Per-frame labels of an acquired series
    are brought to one reference grid the way inference sees the series: the motion is corrected
    around the labelled heart (``motion`` as :meth:`~qperf.segmentation.Segmenter.segment`:
    when the heart moves, always, or never), every labelled frame is carried to the reference
    grid through the motion fields, and each pixel takes the label most frames give it. The
    insertion points (on the first labelled frame) follow the same way.
    """
    from qperf import motion as motion_mod
    from qperf.motion.detect import MOVING_MM, heart_shifts_mm, motion_extent_mm

    series, labels = case.series, np.asarray(case.labels)
    if labels.ndim == 2:
        return AnnotatedSlice(series, labels, dict(case.points_yx), case.drawn), None
    frames = case.labelled_frames
    if not frames:
        raise FormatError(f"case {case.name}: expected at least one labelled frame, found all frames empty")
    heart = np.isin(labels[list(frames)], (1, 2, 3)).any(axis=0)
    result = None
    if motion != "off" and heart.any():
        centre = np.argwhere(heart).mean(axis=0)
        moving = motion_extent_mm(heart_shifts_mm(series, (float(centre[0]), float(centre[1])))) >= MOVING_MM
        if motion == "on" or moving:
            margin = int(np.ceil(CASE_MOTION_MARGIN_MM / min(series.spacing_mm)))
            result = motion_mod.correct_series(series, heart_mask=heart, margin_px=margin)
    votes = np.zeros((4, *series.shape), dtype=np.int32)
    for k in frames:
        ref = motion_mod.frame_labels_to_reference(labels[k], k, result)
        for c in range(4):
            votes[c] += ref == c
    labels_ref = np.asarray(votes.argmax(axis=0), dtype=np.uint8)
    points = {k: motion_mod.frame_point_to_reference(p, frames[0], result) for k, p in case.points_yx.items()}
    corrected = result.corrected if result is not None else series
    return AnnotatedSlice(corrected, labels_ref, points, case.drawn), result


def annotated_folder(folder: str | Path, motion: str = "auto", **series_options: Any) -> list[AnnotatedSlice]:
    """Training slices of every annotated case in ``folder`` (:mod:`qperf.segmentation.cases`)."""
    from qperf.segmentation.cases import read_cases

    return [case_slice(c, motion) for c in read_cases(folder, **series_options)]
