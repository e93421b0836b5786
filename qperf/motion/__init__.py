"""Respiratory motion correction of 2D+T perfusion series (pre-processing step 1).

>>> from qperf import motion
>>> result = motion.correct_series(series, heart_mask=None, n_rounds=3)
>>> result.corrected, result.key_frame, result.quality
>>> labels_t = motion.labels_to_original(labels, result)      # (t, y, x) over the moving frames
>>> points_t = motion.points_to_original(insertion_yx, result)  # (t, n, 2)

Method (Xue et al., MRM 2020, step 1; see :func:`correct_series`): KL-transform (PCA) synthetic
frames, each acquired frame registered non-rigidly to its synthetic counterpart, synthetic
frames re-estimated from the corrected series for a few rounds, all fields re-anchored on an
automatically chosen key frame; proton-density frames registered to the corrected dynamic
mean with the same contrast-insensitive similarity; explicit inverse fields.

Field layout: ``(t, 2, y, x)`` float32 pixels, component 0 = rows (dy), 1 = columns (dx);
pull convention ``corrected[t](p) = original[t](p + forward_px[t, :, p])`` (see
:mod:`qperf.motion.fields`).

Engines compared
----------------
Both engines run inside the same driver (KL synthetic frames, 3 rounds, key-frame anchoring)
on the same simulated series (:func:`qperf.motion.simulate.simulate_moving_series`, 128 x 128,
60 frames incl. 3 PD, respiratory shift 6 px over the heart, non-rigid); figures from
``benchmarks/bench_motion.py`` on the 2-core development machine (shared, so timings vary):

- ``torch`` (default): all frames in one batch; cubic B-spline control grid (16 -> 8 px),
  squared LNCC with an analytic gradient, Adam on a 4/2/1 pyramid.
- ``sitk``: SimpleITK fast symmetric-forces demons per frame on locally normalised images,
  4/2/1 pyramid, Gaussian field smoothing.

See the module docstring of ``benchmarks/bench_motion.py`` and the project notes for the table.
"""

from qperf.motion.driver import DEFAULT_RANKS, MotionResult, correct_series
from qperf.motion.fields import compose, invert, jacobian_determinant, warp_images, warp_labels
from qperf.motion.propagate import labels_to_corrected, labels_to_original, points_to_original
from qperf.motion.simulate import MovingSeriesTruth, simulate_moving_series

__all__ = [
    "DEFAULT_RANKS",
    "MotionResult",
    "MovingSeriesTruth",
    "compose",
    "correct_series",
    "invert",
    "jacobian_determinant",
    "labels_to_corrected",
    "labels_to_original",
    "points_to_original",
    "simulate_moving_series",
    "warp_images",
    "warp_labels",
]
