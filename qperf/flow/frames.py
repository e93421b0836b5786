"""Frame quality: a robust baseline per pixel, and the frames of a gasp the registration missed.

Curves are ``(t, n)``: frames along the first axis, pixels along the second.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

#: A frame whose pixels depart from their running medians of five frames by this fraction of
#: the mean curve's enhancement more than a typical frame's do is an outlier
#: (:func:`outlying_frames`). Static phantoms stay below 0.06; frames a registration missed
#: come at 0.1-0.97.
OUTLYING_FRAME_FRACTION = 0.1
#: At most this fraction of the frames is taken as outlying.
OUTLYING_FRAME_MAX_FRACTION = 0.1
#: Passes of :func:`outlying_frames` (bridging the frames found so far) before it stops.
_OUTLYING_PASSES = 3


def robust_baseline(frames: NDArray[np.floating], n_sd: float = 3.0) -> NDArray[np.float64]:
    """Per-pixel mean of the baseline frames within ``n_sd`` robust SDs of their median.

    A breath the registration could not follow puts other tissue (fat, liver) under a pixel
    for a frame or two, far from its other baseline frames; the mean of the rest is the
    baseline. With noise alone nearly every frame is kept and the estimate is the mean.

    Parameters
    ----------
    frames : ndarray of float, shape ``(t, n)``
        Baseline frames (before the bolus) of ``n`` pixels.
    n_sd : float
        Frames farther than this many robust SDs (1.4826 MAD) from the median are left out.

    Returns
    -------
    ndarray of float64, shape ``(n,)``
    """
    values = np.asarray(frames, dtype=np.float64)
    median = np.median(values, axis=0)
    spread = 1.4826 * np.median(np.abs(values - median), axis=0)
    kept = np.abs(values - median) <= n_sd * spread + 1e-12
    return np.asarray(np.sum(values * kept, axis=0) / np.maximum(np.count_nonzero(kept, axis=0), 1))


def outlying_frames(curves: ArrayLike) -> NDArray[np.bool_]:
    """Frames of a slice's myocardial curves that depart from their neighbours.

    A gasp that the registration cannot follow puts other tissue (blood, liver, fat) under
    the myocardium for one or two frames. A frame's departure is the median over the pixels
    of their distance from their running median of five frames (which passes rises and falls
    and removes runs of up to two frames); the frame is an outlier when that exceeds the
    median over the frames by more than :data:`OUTLYING_FRAME_FRACTION` of the enhancement
    of the pixels' mean curve. On 24 static phantoms no frame came above 0.06; a rest
    phantom's two-frame gasp, fitted, read the apical flow 7 times too high.

    Parameters
    ----------
    curves : array_like of float, shape ``(t, n)`` or ``(t,)``
        Myocardial curves, frames first.

    Returns
    -------
    ndarray of bool, shape ``(t,)``
        True for the outlying frames: at most :data:`OUTLYING_FRAME_MAX_FRACTION` of them,
        the farthest; none for fewer than 7 frames or non-finite curves.
    """
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    out = np.zeros(c.shape[0], dtype=bool)
    if c.ndim != 2 or c.shape[0] < 7 or c.shape[1] == 0 or not np.all(np.isfinite(c)):
        return out
    mean_trend = ndimage.median_filter(c.mean(axis=1), size=5, mode="nearest")
    enhancement = float(mean_trend.max() - mean_trend.min())
    if enhancement <= 0.0:
        return out
    for _ in range(_OUTLYING_PASSES):
        found = _farthest_frames(c, out, enhancement)
        if np.array_equal(found, out):
            break
        out = found
    return out


def _farthest_frames(curves: NDArray[np.float64], known: NDArray[np.bool_], enhancement: float) -> NDArray[np.bool_]:
    """One pass of :func:`outlying_frames`, with the frames ``known`` so far bridged.

    Bridging them keeps a gasp's frames from making their neighbours depart as well.
    """
    frames = np.arange(curves.shape[0])
    filled = curves.copy()
    if known.any():
        kept = frames[~known]
        for k in frames[known]:
            filled[k] = _bridge(curves, kept, k)
    departure = np.median(np.abs(curves - ndimage.median_filter(filled, size=(5, 1), mode="nearest")), axis=1)
    excess = (departure - np.median(departure)) / enhancement
    candidates = np.nonzero(excess > OUTLYING_FRAME_FRACTION)[0]
    worst_first = candidates[np.argsort(excess[candidates])[::-1]]
    found = np.zeros_like(known)
    found[worst_first[: int(OUTLYING_FRAME_MAX_FRACTION * curves.shape[0])]] = True
    return found


def _bridge(curves: NDArray[np.float64], kept: NDArray[np.intp], frame: int) -> NDArray[np.float64]:
    """The pixels' values at ``frame`` interpolated linearly between the nearest ``kept`` frames."""
    after = int(np.searchsorted(kept, frame))
    if after == 0:
        return np.asarray(curves[kept[0]])
    if after == kept.size:
        return np.asarray(curves[kept[-1]])
    a, b = int(kept[after - 1]), int(kept[after])
    w = (frame - a) / (b - a)
    return np.asarray((1.0 - w) * curves[a] + w * curves[b])
