"""Quality score of a motion correction.

The score is the fraction of the temporal variance of the dynamic frames, in the registered
region (weighted towards the heart when it is known), that the temporal mean plus
:data:`SCORE_RANK` principal components explain. A still first-pass series is close to low
rank (a few enhancement patterns), so the score approaches 1 when every frame is aligned;
residual motion, noise and artefacts lower it. The same number for the input series
(``score_before``) shows how much the correction gained. Further parts:

- ``temporal_roughness_before`` / ``_after``: mean over region pixels of
  ``sum(second difference^2) / sum((value - mean)^2)`` of the pixel's time curve; motion makes
  curves jagged, so it should drop (or stay) after correction;
- ``displacement_p95_px``, ``displacement_max_px``: size of the applied fields in the region;
- ``folding_fraction``: fraction of region pixels (all frames) where the field folds
  (Jacobian determinant <= 0); should be 0;
- ``warnings``: human-readable flags (folding, a score that dropped, very large motion).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.motion.fields import jacobian_determinant
from qperf.motion.synthetic import low_rank_residual

SCORE_RANK = 4


def temporal_roughness(frames: NDArray[np.float32], weight: NDArray[np.float32] | None = None) -> float:
    """Weighted mean over pixels of ``sum(d2^2) / sum((x - mean)^2)`` of each time curve."""
    x = frames.reshape(frames.shape[0], -1).astype(np.float64)
    if x.shape[0] < 3:
        return float("nan")
    d2 = np.diff(x, n=2, axis=0)
    var = ((x - x.mean(axis=0)) ** 2).sum(axis=0)
    ok = var > 1e-12 * max(float(var.max()), 1e-30)
    r = np.where(ok, (d2**2).sum(axis=0) / np.where(ok, var, 1.0), 0.0)
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64).reshape(-1)
    w = w * ok
    return float((r * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


def quality_score(
    original: NDArray[np.float32],
    corrected: NDArray[np.float32],
    forward_px: NDArray[np.float32],
    n_pd_frames: int,
    region: tuple[int, int, int, int],
    weight: NDArray[np.float32] | None,
) -> dict[str, Any]:
    """Score of a correction and its parts (see the module docstring).

    Parameters
    ----------
    original, corrected : ndarray, shape (t, y, x)
    forward_px : ndarray, shape (t, 2, y, x)
    n_pd_frames : int
    region : (y0, y1, x0, x1)
        The registered region; ``weight`` (if any) has its shape.
    weight : ndarray, shape (region), optional

    Returns
    -------
    dict
        ``score``, ``score_before``, ``temporal_roughness_before``, ``temporal_roughness_after``,
        ``displacement_p95_px``, ``displacement_max_px``, ``folding_fraction``, ``score_rank``,
        ``warnings`` (list of str).
    """
    y0, y1, x0, x1 = region
    before = original[n_pd_frames:, y0:y1, x0:x1]
    after = corrected[n_pd_frames:, y0:y1, x0:x1]
    rank = min(SCORE_RANK, before.shape[0] - 1)
    score_before = 1.0 - low_rank_residual(before, rank, weight)
    score = 1.0 - low_rank_residual(after, rank, weight)
    f = forward_px[:, :, y0:y1, x0:x1]
    mag = np.hypot(f[:, 0], f[:, 1])
    jac = jacobian_determinant(f)
    folding = float(np.mean(jac <= 0))
    warnings: list[str] = []
    if folding > 0:
        warnings.append(f"the displacement field folds in {100 * folding:.2f} % of the region")
    if score < score_before - 0.01:
        warnings.append(f"the low-rank score dropped from {score_before:.3f} to {score:.3f}")
    p95 = float(np.percentile(mag, 95))
    if p95 > 0.2 * min(f.shape[-2:]):
        warnings.append(f"very large displacements (95th percentile {p95:.1f} pixels)")
    return {
        "score": round(float(score), 5),
        "score_before": round(float(score_before), 5),
        "score_rank": int(rank),
        "temporal_roughness_before": round(temporal_roughness(before, weight), 5),
        "temporal_roughness_after": round(temporal_roughness(after, weight), 5),
        "displacement_p95_px": round(p95, 4),
        "displacement_max_px": round(float(mag.max()), 4),
        "folding_fraction": round(folding, 6),
        "warnings": warnings,
    }
