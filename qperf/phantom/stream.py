"""Randomised training samples from the phantom, streamed in memory (nothing touches the disk).

Every study of the stream draws a new heart (seed), condition, field strength, readout, frame
count, image grid, orientation, bolus, noise, coil shading and (residual) motion; each of its
slices (or its AIF image series) becomes one sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from qperf.errors import ValidationError
from qperf.phantom.generate import generate_study
from qperf.phantom.truth import PhantomStudy

UNITS = ("gd_mmol_l", "signal")
KINDS = ("slice", "aif")


def _to_gd(series: Any) -> Any:
    from qperf import gd

    return gd.series_to_gd(series, tissue="myocardium")


def _slice_samples(ps: PhantomStudy, units: str, study_seed: int) -> Iterator[dict[str, Any]]:
    for k, (s, t) in enumerate(zip(ps.study.slices, ps.truth.slices, strict=True)):
        n_pd = s.n_pd_frames
        image = _to_gd(s).data if units == "gd_mmol_l" else s.data
        yield {
            "kind": "slice",
            "image": np.asarray(image, dtype=np.float32),
            "units": units,
            "time_s": s.dynamic_time_s if units == "gd_mmol_l" else s.time_s,
            "n_pd_frames": 0 if units == "gd_mmol_l" else n_pd,
            "spacing_mm": s.spacing_mm,
            "geometry": s.geometry,
            "labels": t.labels_ref,
            "labels_moving": t.labels_moving[n_pd:] if units == "gd_mmol_l" else t.labels_moving,
            "insertion_points_yx": dict(t.insertion_points_yx),
            "aha_segments": t.aha_segments,
            "mbf_ml_min_g": t.mbf_ml_min_g,
            "gd_noise_free": t.gd_noise_free[n_pd:] if units == "gd_mmol_l" else t.gd_noise_free,
            "level": t.level,
            "slice_index": k,
            "condition": ps.study.condition,
            "field_t": s.metadata["field_strength_t"],
            "readout": s.metadata["readout"],
            "metadata": dict(s.metadata),
            "seed": study_seed,
        }


def _aif_samples(ps: PhantomStudy, study_seed: int) -> Iterator[dict[str, Any]]:
    if not ps.study.aif_series or ps.truth.aif_labels_ref is None or ps.truth.aif_labels_moving is None:
        return
    e1, e2 = ps.study.aif_series[0], ps.study.aif_series[-1]
    yield {
        "kind": "aif",
        "image": e1.data,
        "image_echo2": e2.data,
        "units": "signal",
        "time_s": e1.time_s,
        "n_pd_frames": e1.n_pd_frames,
        "spacing_mm": e1.spacing_mm,
        "geometry": e1.geometry,
        "labels": ps.truth.aif_labels_ref,
        "labels_moving": ps.truth.aif_labels_moving,
        "aif_blood_gd_mmol_l": ps.truth.aif_frames_gd_mmol_l,
        "echo_times_ms": list(e1.metadata["echo_times_ms"]),
        "condition": ps.study.condition,
        "field_t": e1.metadata["field_strength_t"],
        "metadata": dict(e1.metadata),
        "seed": study_seed,
    }


def stream(
    seed: int = 0,
    *,
    kind: str = "slice",
    units: str = "gd_mmol_l",
    n_frames: tuple[int, int] = (40, 80),
    fields_t: Sequence[float] = (1.5, 3.0),
    conditions: Sequence[str] = ("stress", "rest"),
    motion_scale: tuple[float, float] = (0.0, 0.3),
    noise: bool = True,
    model: str = "2cxm-analytic",
    t1_variation: float = 0.05,
    n_slices: int = 3,
    max_studies: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield randomised phantom samples for training, deterministic for a given ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the whole stream; study ``i`` uses its own seed derived from ``(seed, i)``.
    kind : {"slice", "aif"}
        One sample per short-axis slice, or one per study of the dual-echo AIF images.
    units : {"gd_mmol_l", "signal"}
        Slice images converted to Gd by :func:`qperf.gd.series_to_gd` (PD frames removed, as
        the segmentation network sees them), or the raw signal with the PD frames.
    n_frames : (int, int)
        Range of frames per slice (PD frames included), drawn uniformly.
    fields_t, conditions : sequences
        Drawn uniformly per study.
    motion_scale : (float, float)
        Range of the respiratory-motion scale: ``(0, 0.3)`` mimics motion-corrected series
        with residual motion; ``(1, 1)`` gives full free-breathing motion.
    noise : bool
    model : str
        Tissue model; the analytic 2CXM is the fast default, "btex" the reference.
    t1_variation : float
        Relative SD of the subjects' native T1 (the Gd conversion assumes the published
        values, so the converted images carry the realistic small bias).
    n_slices : int
    max_studies : int or None
        Stop after this many studies (None: endless).

    Yields
    ------
    dict
        ``image`` (t, y, x) float32, ``labels`` (y, x) uint8 (the reference anatomy),
        ``labels_moving`` (t, y, x), ``time_s``, ``spacing_mm``, ``geometry``,
        ``insertion_points_yx``, ``aha_segments``, ``mbf_ml_min_g``, ``gd_noise_free``,
        ``level``, ``condition``, ``field_t``, ``readout``, ``metadata``, ``seed``; AIF samples
        carry ``image_echo2``, ``aif_blood_gd_mmol_l`` and ``echo_times_ms`` instead of the
        myocardial truth.
    """
    if kind not in KINDS:
        raise ValidationError(f"kind: expected one of {', '.join(KINDS)}, found {kind!r}")
    if units not in UNITS:
        raise ValidationError(f"units: expected one of {', '.join(UNITS)}, found {units!r}")
    lo, hi = (int(v) for v in n_frames)
    if not 10 <= lo <= hi <= 200:
        raise ValidationError(f"n_frames: expected a range (lo, hi) with 10 <= lo <= hi <= 200, found {n_frames!r}")
    m_lo, m_hi = (float(v) for v in motion_scale)
    if not 0.0 <= m_lo <= m_hi:
        raise ValidationError(f"motion_scale: expected a range (lo, hi) with 0 <= lo <= hi, found {motion_scale!r}")
    if not fields_t or not conditions:
        raise ValidationError("fields_t and conditions: expected at least one value each")
    i = 0
    while max_studies is None or i < max_studies:
        rng = np.random.default_rng([int(seed), i, 77])
        study_seed = int(rng.integers(0, 2**31 - 1))
        scale = float(rng.uniform(m_lo, m_hi))
        ps = generate_study(
            seed=study_seed,
            n_slices=n_slices,
            n_frames=int(rng.integers(lo, hi + 1)),
            condition=str(rng.choice(list(conditions))),
            field_t=float(rng.choice(list(fields_t))),
            motion=scale > 0,
            noise=noise,
            motion_scale=scale,
            model=model,
            t1_variation=t1_variation,
            aif_images=kind == "aif",
        )
        if kind == "slice":
            yield from _slice_samples(ps, units, study_seed)
        else:
            yield from _aif_samples(ps, study_seed)
        i += 1
