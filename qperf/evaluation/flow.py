"""MBF from predicted labels against MBF from manual labels: differences, Bland-Altman, paired t-test.

Each pair is two ``report.json`` of the same study (``qperf analyze`` with the network's labels
and with the manual ones). Global MBF and every AHA segment's mean MBF are paired; the
agreement is the Bland-Altman bias and 95 % limits of agreement (bias +- 1.96 SD of the
differences) and a paired t-test (:func:`scipy.stats.ttest_rel`), as the segmentation paper
compares CNN and manual flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _mbf_pairs(pred: Mapping[str, Any], manual: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    g_pred = pred.get("global", {}).get("mbf_mean_ml_min_g")
    g_man = manual.get("global", {}).get("mbf_mean_ml_min_g")
    if g_pred is not None and g_man is not None:
        rows.append({"region": "global", "predicted": float(g_pred), "manual": float(g_man)})
    for k in range(1, 17):
        a = pred.get("segments", {}).get(str(k), {}).get("mbf_mean_ml_min_g")
        b = manual.get("segments", {}).get(str(k), {}).get("mbf_mean_ml_min_g")
        if a is not None and b is not None:
            rows.append({"region": str(k), "predicted": float(a), "manual": float(b)})
    return rows


def agreement(predicted: Sequence[float], manual: Sequence[float]) -> dict[str, Any]:
    """Means, Bland-Altman bias and limits of agreement, paired t-test of two paired samples."""
    from scipy import stats

    a, b = np.asarray(predicted, dtype=float), np.asarray(manual, dtype=float)
    out: dict[str, Any] = {"n": int(a.size)}
    if a.size == 0:
        return out
    diff = a - b
    sd = float(diff.std(ddof=1)) if a.size > 1 else math.nan
    out.update(
        mean_predicted=float(a.mean()),
        mean_manual=float(b.mean()),
        bias=float(diff.mean()),
        sd_difference=sd,
        limits_of_agreement=[float(diff.mean() - 1.96 * sd), float(diff.mean() + 1.96 * sd)],
    )
    if a.size > 1 and np.any(diff != diff[0]):
        test = stats.ttest_rel(a, b)
        out["t_statistic"], out["p_value"] = float(test.statistic), float(test.pvalue)
    return out


def compare_reports(pairs: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    """Paired MBF of (name, predicted report, manual report) triples.

    Returns
    -------
    dict
        ``rows`` (study, region, predicted, manual, difference), ``global`` and ``segments``
        agreement (:func:`agreement`) of the global values and of all segment values.
    """
    rows = []
    for name, pred, manual in pairs:
        for row in _mbf_pairs(pred, manual):
            rows.append({"study": name, **row, "difference": row["predicted"] - row["manual"]})
    glob = [r for r in rows if r["region"] == "global"]
    segs = [r for r in rows if r["region"] != "global"]
    return {
        "rows": rows,
        "global": agreement([r["predicted"] for r in glob], [r["manual"] for r in glob]),
        "segments": agreement([r["predicted"] for r in segs], [r["manual"] for r in segs]),
    }
