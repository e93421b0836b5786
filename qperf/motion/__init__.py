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
Both engines run inside the same driver (synthetic frames, 3 rounds, key-frame anchoring),
``benchmarks/bench_motion.py --repeats 1 --threads 1`` on the 2-core development machine
(SimpleITK rows measured while other work ran: load average about 4):

- ``torch`` (default): all frames in one batch; cubic B-spline control grid (16 -> 8 px),
  squared LNCC (window 7) with an analytic gradient, Adam on a 4/2/1 pyramid.
- ``sitk``: SimpleITK fast symmetric-forces demons per frame on locally normalised images,
  4/2/1 pyramid, Gaussian field smoothing (sigma 2 px).

===========================  ======  ==================================  =====================
case                         engine  heart residual, median (px)         time (1 / 2 threads)
===========================  ======  ==================================  =====================
simulated 128 x 128 x 60     torch   4.03 -> 0.73; worst decile 1.3      2.7 s / 1.6 s
simulated 128 x 128 x 60     sitk    4.03 -> 0.62; worst decile 3.6      17.6 s (loaded)
phantom 106 x 102 crop x 60  torch   2.65 -> 0.48; Dice med 0.94, min 0.90  1.7 s / 1.0 s
phantom 106 x 102 crop x 60  sitk    2.40 -> 2.90; Dice med 0.69         15.1 s (loaded)
===========================  ======  ==================================  =====================

("worst decile": 90th percentile over frames of the per-frame median; "before" is measured
against each run's own key frame; torch rows with synthetic-frame ranks 0, 3, 8.) Peak
resident memory of the benchmark process 0.78 GB. Demons matches the torch engine on typical
frames of the simple simulation but fails on whole frames (bolus, PD frames) and on the
phantom, where residual intensity differences between a frame and its synthetic target pull
its sum-of-squares forces; it is also 6-10 times slower. The batched LNCC engine is the default.

Two torch threads halve the time on an idle machine; on a machine busy with other work the
many small parallel operations of the batched engine wait on each other (the same cases took
70-125 s with two threads), where one thread is the robust choice.

Known limits
------------
- The pre-contrast frames of signal-unit series show the heart with little contrast of its own;
  they align with the structures around it, which can leave the heart about 1 pixel off
  (phantom: myocardium Dice of those frames 0.84-0.88 against the key frame, later frames
  0.91-0.97).
- Proton-density frames use a stiffer field; on the phantom they reach about 0.4 pixel, on the
  simple simulation (almost no heart contrast in its PD frames) about 1.4 pixel.
- Capture range: jumps beyond about 8 pixels from the breathing mean (a gasp) are not
  followed; such a frame stays misaligned (seen once on a phantom with amplified breathing).
- The field regulariser is deliberately stiff (membrane weight 0.3): softer fields followed
  local deformation better on the simple simulation (0.30 instead of 0.65 pixel) but dilated
  the LV at the bolus peak of the real, already corrected rest slice (its myocardial curve
  peak rose from 0.27 to 0.40 mmol/L).
- Restricting the region with ``heart_mask`` speeds the correction up; the similarity
  inside the region is weighted uniformly (weighting it towards the heart measured worse).
"""

from qperf.motion.driver import DEFAULT_RANKS, MotionResult, correct_series
from qperf.motion.fields import compose, invert, jacobian_determinant, warp_images, warp_labels
from qperf.motion.propagate import (
    frame_labels_to_reference,
    frame_point_to_reference,
    labels_over_frames,
    labels_to_corrected,
    labels_to_original,
    point_over_frames,
    points_to_original,
)
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
    "labels_over_frames",
    "point_over_frames",
    "frame_labels_to_reference",
    "frame_point_to_reference",
    "points_to_original",
    "simulate_moving_series",
    "warp_images",
    "warp_labels",
]
