"""Between the acquired frames and the motion-corrected reference frame.

Motion correction (``qperf.motion``) aligns every frame of a slice with its key frame and
returns pull fields in pixels (``MotionResult.forward_px`` and ``inverse_px``, ``(t, 2, y, x)``):
``corrected[t](p) = original[t](p + forward_px[t, :, p])`` and
``original[t](q) = corrected[t](q + inverse_px[t, :, q])``. So a label map drawn on the
reference (corrected) grid lands on frame ``t`` by pulling with ``inverse_px[t]``, an edit drawn
on frame ``t`` returns to the reference grid by pulling with ``forward_px[t]``, and a point
``p`` of the reference grid sits at ``p + forward_px[t](p)`` in frame ``t``. Without motion
(``motion`` is None) every frame is the reference frame. Pixel coordinates are ``(y, x)``.
The mappings are ``qperf.motion``'s (``labels_to_original``, ``labels_to_corrected``,
``points_to_original``); the way back for a point uses the inverse fields the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qperf.errors import ValidationError


def _frameIndex(motion: Any, frame: int) -> int:
    n = motion.forward_px.shape[0]
    if not 0 <= int(frame) < n:
        raise ValidationError(f"frame: expected 0 to {n - 1}, found {frame}")
    return int(frame)


def labelsToFrames(labelsRef: np.ndarray, motion: Any | None, nFrames: int) -> np.ndarray:
    """Reference-frame labels ``(y, x)`` on every acquired frame: ``(t, y, x)`` uint8."""
    labelsRef = np.asarray(labelsRef, dtype=np.uint8)
    if motion is None:
        return np.repeat(labelsRef[np.newaxis], nFrames, axis=0)
    from qperf.motion import labels_to_original

    stacked = np.repeat(labelsRef[np.newaxis], motion.inverse_px.shape[0], axis=0)
    return np.asarray(labels_to_original(stacked, motion), dtype=np.uint8)


def frameLabelsToReference(labelsFrame: np.ndarray, frame: int, motion: Any | None) -> np.ndarray:
    """Labels ``(y, x)`` drawn on acquired frame ``frame``, carried to the reference grid."""
    labelsFrame = np.asarray(labelsFrame, dtype=np.uint8)
    if motion is None:
        return labelsFrame.copy()
    from qperf.motion import labels_to_corrected

    return np.asarray(labels_to_corrected(labelsFrame, _frameIndex(motion, frame), motion), dtype=np.uint8)


def pointToFrames(pointYx: tuple, motion: Any | None, nFrames: int) -> np.ndarray:
    """A reference-frame point ``(y, x)`` on every acquired frame: ``(t, 2)`` float64 pixels."""
    point = np.asarray(pointYx, dtype=np.float64).reshape(1, 2)
    if motion is None:
        return np.repeat(point, nFrames, axis=0)
    from qperf.motion import points_to_original

    return np.asarray(points_to_original(point, motion), dtype=np.float64)[:, 0, :]


def frameBackToReference(pointYx: tuple, frame: int, motion: Any | None) -> tuple:
    """A point ``(y, x)`` placed on acquired frame ``frame``, in reference-frame pixels."""
    point = np.asarray(pointYx, dtype=np.float64).reshape(1, 2)
    if motion is None:
        return (float(point[0, 0]), float(point[0, 1]))
    from qperf.motion.fields import sample_field

    index = _frameIndex(motion, frame)
    moved = point[0] + np.asarray(sample_field(motion.inverse_px[index : index + 1], point), dtype=np.float64)[0, 0]
    return (float(moved[0]), float(moved[1]))
