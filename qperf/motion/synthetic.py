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
import torch
from numpy.typing import NDArray

# Small dense linear algebra runs in torch (float64): numpy's threaded BLAS spins badly on
# tiny matrices when the CPU is shared; torch follows torch.set_num_threads.


def _eigh(matrix: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    vals, vecs = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(matrix)))
    return vals.numpy(), vecs.numpy()


def _gram(x: NDArray[np.float64]) -> NDArray[np.float64]:
    xt = torch.from_numpy(np.ascontiguousarray(x))
    return (xt @ xt.T).numpy()


def _matmul(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


def low_rank_frames(frames: NDArray[np.float32], rank: int, leave_one_out: bool = True) -> NDArray[np.float32]:
    """Synthetic frames: temporal mean plus the ``rank`` leading principal components.

    Parameters
    ----------
    frames : ndarray, shape (t, y, x)
    rank : int
        Principal components kept besides the mean (0 gives the temporal mean).
    leave_one_out : bool
        Build frame ``i``'s synthetic frame from the components of all *other* frames (then
        project frame ``i`` onto them). Without it, high-energy frames (the bolus peak) get
        components of their own and their synthetic frames copy their misalignment.

    Returns
    -------
    ndarray, float32, shape (t, y, x)
    """
    t = frames.shape[0]
    x = frames.reshape(t, -1).astype(np.float64)
    rank = int(min(max(rank, 0), t - 2 if leave_one_out else t - 1))
    if not leave_one_out:
        mean = x.mean(axis=0, keepdims=True)
        if rank == 0:
            return np.broadcast_to(mean, x.shape).reshape(frames.shape).astype(np.float32)
        xc = x - mean
        _, vecs = _eigh(_gram(xc))  # (t, t): the small temporal dimension
        lead = np.ascontiguousarray(vecs[:, ::-1][:, :rank])
        return (mean + _matmul(lead, _matmul(lead.T, xc))).reshape(frames.shape).astype(np.float32)
    # everything from the (t, t) Gram matrix: frame i's synthetic frame is sum_j a[i, j] x[j]
    gram = _gram(x)
    row_sum = gram.sum(axis=1)
    total_sum = float(row_sum.sum())
    n = t - 1
    a = np.zeros((t, t))
    for i in range(t):
        keep = np.arange(t) != i
        a[i, keep] = 1.0 / n  # the mean of the other frames
        if rank == 0:
            continue
        # centred Gram of the other frames and their inner products with frame i
        row = (row_sum[keep] - gram[keep, i]) / n  # x_j . mean
        mm = (total_sum - 2.0 * row_sum[i] + gram[i, i]) / n**2  # mean . mean
        xi_mean = (row_sum[i] - gram[i, i]) / n
        gc = gram[np.ix_(keep, keep)] - row[:, None] - row[None, :] + mm
        vals, vecs = _eigh(gc)
        vals, vecs = vals[::-1][:rank], vecs[:, ::-1][:, :rank]
        ok = vals > 1e-9 * max(float(vals[0]), 1e-30)
        vals, vecs = vals[ok], vecs[:, ok]
        gi = gram[keep, i] - row - xi_mean + mm
        coef = vecs @ ((vecs.T @ gi) / vals)
        # mean + sum_j coef_j (x_j - mean)
        a[i, keep] += coef - coef.sum() / n
    out = _matmul(a, x)
    return out.reshape(frames.shape).astype(np.float32)


def low_rank_residual(frames: NDArray[np.float32], rank: int, weight: NDArray[np.float32] | None = None) -> float:
    """Fraction of the temporal variance not explained by the mean and ``rank`` components.

    Motion raises it (a moving edge needs many components); used in the quality score.
    """
    t = frames.shape[0]
    x = frames.reshape(t, -1).astype(np.float64)
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64).reshape(-1)
    xc = (x - x.mean(axis=0, keepdims=True)) * np.sqrt(w)[None, :]
    vals = np.clip(_eigh(_gram(xc))[0][::-1], 0, None)
    total = float(vals.sum())
    return float(vals[rank:].sum() / total) if total > 0 else 0.0


def choose_key_frame(
    frames: NDArray[np.float32], synthetic: NDArray[np.float32], weight: NDArray[np.float32] | None = None
) -> int:
    """Index of the reference frame: a post-bolus frame that its synthetic frame fits best.

    Every field is finally expressed relative to the key frame, so its own registration error
    is passed on to all frames; the frames after the bolus peak (myocardium enhanced, contrast
    changing slowly) are the ones the low-rank model fits best. Candidates are the frames from
    max(3, t // 8) frames after the peak of the region's mean signal to the end, excluding the last tenth
    of the series (all frames when fewer than three qualify); among them the frame with the
    highest weighted correlation to its synthetic frame (temporal mean image removed from both,
    so structure is compared rather than brightness) is chosen.

    Parameters
    ----------
    frames, synthetic : ndarray, shape (t, y, x)
        Frames (already roughly aligned) and their synthetic counterparts.
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
    mean_img = a.mean(axis=0)
    score = np.empty(t)
    for i in range(t):
        da = a[i] - mean_img
        db = b[i] - mean_img
        da = da - (w * da).sum()
        db = db - (w * db).sum()
        num = (w * da * db).sum()
        den = np.sqrt((w * da * da).sum() * (w * db * db).sum())
        score[i] = num / den if den > 0 else -1.0
    curve = a @ w
    start = int(np.argmax(curve)) + max(3, t // 8)
    stop = t - max(1, t // 10)
    candidates = np.arange(start, stop)
    if candidates.size < 3:
        candidates = np.arange(t)
    return int(candidates[np.argmax(score[candidates])])
