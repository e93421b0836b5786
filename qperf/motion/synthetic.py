"""KL transform (PCA) of a 2D+T series: low-rank synthetic frames and key-frame choice.

A first-pass series is close to low rank over time when it does not move: a handful of
temporal patterns (baseline, RV, LV and myocardial enhancement) describe every pixel.
Respiratory motion adds energy outside these few components. Keeping the temporal mean plus
the leading ``rank`` principal components therefore gives synthetic frames that follow the
contrast change frame by frame but smear (average out) the motion; each acquired frame is
then registered to its synthetic counterpart, and the synthetic frames are re-estimated from
the corrected series (Xue et al., MRM 2020, pre-processing step 1).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def low_rank_frames(frames: NDArray[np.float32], rank: int) -> NDArray[np.float32]:
    """Temporal mean plus the ``rank`` leading principal components of ``frames``.

    Parameters
    ----------
    frames : ndarray, shape (t, y, x)
    rank : int
        Number of principal components kept besides the mean (0 gives the temporal mean).

    Returns
    -------
    ndarray, float32, shape (t, y, x)
        The synthetic frames.
    """
    t = frames.shape[0]
    x = frames.reshape(t, -1).astype(np.float64)
    mean = x.mean(axis=0, keepdims=True)
    xc = x - mean
    rank = int(min(max(rank, 0), t - 1))
    if rank == 0:
        return np.broadcast_to(mean, x.shape).reshape(frames.shape).astype(np.float32)
    gram = xc @ xc.T  # (t, t): eigen-decomposition in the small temporal dimension
    vals, vecs = np.linalg.eigh(gram)
    lead = vecs[:, ::-1][:, :rank]
    approx = mean + lead @ (lead.T @ xc)
    return approx.reshape(frames.shape).astype(np.float32)


def low_rank_residual(frames: NDArray[np.float32], rank: int, weight: NDArray[np.float32] | None = None) -> float:
    """Fraction of the temporal variance not explained by the mean and ``rank`` components.

    Motion raises it (a moving edge needs many components); used in the quality score.
    """
    t = frames.shape[0]
    x = frames.reshape(t, -1).astype(np.float64)
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64).reshape(-1)
    xc = (x - x.mean(axis=0, keepdims=True)) * np.sqrt(w)[None, :]
    vals = np.clip(np.linalg.eigvalsh(xc @ xc.T)[::-1], 0, None)
    total = float(vals.sum())
    return float(vals[rank:].sum() / total) if total > 0 else 0.0


def choose_key_frame(
    frames: NDArray[np.float32], synthetic: NDArray[np.float32], weight: NDArray[np.float32] | None = None
) -> int:
    """Index of the frame closest to its synthetic counterpart (a typical respiratory position).

    Closeness is the weighted correlation between the frame and its synthetic frame after
    removing the temporal mean image (so that frames with strong enhancement are compared on
    their structure, not on their brightness). Frames in the first and last tenth of the series
    are preferred against only when nothing else qualifies.

    Parameters
    ----------
    frames, synthetic : ndarray, shape (t, y, x)
    weight : ndarray, shape (y, x), optional

    Returns
    -------
    int
        Index into ``frames``.
    """
    t = frames.shape[0]
    w = np.ones(frames.shape[1:]) if weight is None else np.asarray(weight, np.float64)
    w = (w / w.sum()).reshape(-1)
    a = frames.reshape(t, -1).astype(np.float64)
    b = synthetic.reshape(t, -1).astype(np.float64)
    score = np.empty(t)
    for i in range(t):
        da = a[i] - (w * a[i]).sum()
        db = b[i] - (w * b[i]).sum()
        num = (w * da * db).sum()
        den = np.sqrt((w * da * da).sum() * (w * db * db).sum())
        score[i] = num / den if den > 0 else -1.0
    edge = max(1, t // 10)
    inner = score.copy()
    if t > 2 * edge + 1:
        inner[:edge] = -np.inf
        inner[t - edge :] = -np.inf
    return int(np.argmax(inner))
