"""Where annotated training slices come from: the phantom stream and folders of real cases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qperf.errors import FormatError, NotAvailableError
from qperf.segmentation.augment import AnnotatedSlice


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


def phantom_slices(seed: int = 0, **options: Any) -> Iterator[AnnotatedSlice]:
    """Endless stream of annotated slices from the phantom.

    Uses :func:`qperf.phantom.stream` when the phantom provides it (``options`` are passed
    on), otherwise randomised :func:`qperf.phantom.generate_study` calls (random condition,
    field strength and frame count; the seed draws the heart, perfusion and scanner set-up).

    Raises
    ------
    NotAvailableError
        When :mod:`qperf.phantom` is not installed.
    """
    try:
        from qperf import phantom
    except ImportError as exc:  # pragma: no cover - the phantom ships with qperf
        raise NotAvailableError(f"qperf.phantom: expected the phantom package, found {exc}") from exc
    stream_fn = getattr(phantom, "stream", None)
    source = stream_fn(seed=seed, **options) if callable(stream_fn) else _generated_studies(seed, **options)
    for ps in source:
        if hasattr(ps, "study") and hasattr(ps, "truth"):
            yield from slices_of_phantom(ps)
        else:
            yield from _slices_of_sample(ps)


def _slices_of_sample(sample: Any) -> list[AnnotatedSlice]:
    """Accept a stream item that is a single slice: ``.series``, ``.labels`` and points."""
    series = sample.series
    labels = np.asarray(getattr(sample, "labels_ref", None) if hasattr(sample, "labels_ref") else sample.labels)
    if labels.ndim == 3:
        labels = labels[labels.shape[0] // 2]
    pts = getattr(sample, "insertion_points_yx", None) or {}
    points = {k: (float(v[0]), float(v[1])) for k, v in dict(pts).items() if v is not None}
    return [AnnotatedSlice(series, labels, points if (labels == 3).any() else {})]


def annotated_folder(folder: str | Path) -> list[AnnotatedSlice]:
    """Real annotated cases: one sub-folder per slice with a series file and ``labels.nrrd``.

    Each case folder holds ``series.*`` (any format :func:`qperf.io.read_series` reads),
    ``labels.nrrd`` (y, x) or (t, y, x) with values 0-3, and optionally ``insertion.json``
    (``{"anterior": [y, x], "inferior": [y, x]}`` in pixels).
    """
    from qperf import io

    root = Path(folder)
    if not root.is_dir():
        raise FormatError(f"real_folder: expected a folder of annotated cases, found no folder {root}")
    cases = []
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        series_files = sorted(case.glob("series.*"))
        lab_path = case / "labels.nrrd"
        if not series_files or not lab_path.exists():
            continue
        series = io.read_series(series_files[0])
        labels = np.asarray(io.read_image(lab_path).array)
        if labels.ndim == 3:
            labels = labels[labels.shape[0] // 2]
        points: dict[str, tuple[float, float]] = {}
        ins = case / "insertion.json"
        if ins.exists():
            d = json.loads(ins.read_text())
            points = {k: (float(v[0]), float(v[1])) for k, v in d.items() if k in ("anterior", "inferior")}
        cases.append(AnnotatedSlice(series, labels, points))
    return cases
