"""Myocardial perfusion of the phantom heart: per-AHA-segment parameters, defects, clusters.

Each segment has a nominal stress and rest parameter set (MBF, PS, Vp, Visf). MBF is
myocardial (whole-)blood flow, the quantity QPerf reports; the kinetic models take plasma flow
Fp = MBF (1 - Hct), converted by :func:`plasma_parameters` where the curves are simulated. An
ischaemic defect follows one coronary territory (LAD, RCA, LCx), transmural or
subendocardial (inner half of the wall), and is reversible (rest flow near normal). Pixel
heterogeneity: every segment is split into kinetic clusters by wall layer (inner, outer half)
and by four quantile bins of a smooth random field; each cluster has its own parameters and
one simulated curve, so a study needs tens of curves, not one per pixel. The borders of the
kinetic segments are perturbed by a smooth random angle, so defects do not end on straight
radial lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qperf.phantom.anatomy import N_BASE_CLASSES

#: Coronary territory of each AHA segment (1-17).
TERRITORY: dict[int, str] = {
    **dict.fromkeys((1, 2, 7, 8, 13, 14, 17), "LAD"),
    **dict.fromkeys((3, 4, 9, 10, 15), "RCA"),
    **dict.fromkeys((5, 6, 11, 12, 16), "LCx"),
}
SEGMENT_NAMES: dict[int, str] = {
    1: "basal anterior",
    2: "basal anteroseptal",
    3: "basal inferoseptal",
    4: "basal inferior",
    5: "basal inferolateral",
    6: "basal anterolateral",
    7: "mid anterior",
    8: "mid anteroseptal",
    9: "mid inferoseptal",
    10: "mid inferior",
    11: "mid inferolateral",
    12: "mid anterolateral",
    13: "apical anterior",
    14: "apical septal",
    15: "apical inferior",
    16: "apical lateral",
}
LEVEL_SEGMENTS: dict[str, tuple[int, ...]] = {
    "basal": (1, 2, 3, 4, 5, 6),
    "mid": (7, 8, 9, 10, 11, 12),
    "apical": (13, 14, 15, 16),
}
N_LAYERS = 2
N_BINS = 4
#: Standard-normal quartile means: the heterogeneity multiplier of each bin is 1 + sd * q.
BIN_Z = np.array([-1.271, -0.318, 0.318, 1.271])
PARAM_NAMES = ("Fp", "PS", "Vp", "Visf")  # kinetic-model parameters (plasma flow)


def cluster_id(
    segment: NDArray[np.integer], layer: NDArray[np.integer], bin_: NDArray[np.integer]
) -> NDArray[np.int16]:
    """Class id of a myocardial cluster (segment 1-16, layer 0 inner / 1 outer, bin 0-3)."""
    return np.asarray(N_BASE_CLASSES + ((segment - 1) * N_LAYERS + layer) * N_BINS + bin_, dtype=np.int16)


N_CLASSES = N_BASE_CLASSES + 16 * N_LAYERS * N_BINS


def cluster_keys() -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Segment, layer and bin of every cluster id from ``N_BASE_CLASSES`` to ``N_CLASSES - 1``."""
    k = np.arange(N_CLASSES - N_BASE_CLASSES)
    return k // (N_LAYERS * N_BINS) + 1, (k // N_BINS) % N_LAYERS, k % N_BINS


@dataclass(frozen=True)
class Perfusion:
    """Nominal per-segment parameters of one heart at stress and at rest."""

    stress: dict[str, NDArray[np.float64]]  # name -> (16, 2) per segment and layer
    rest: dict[str, NDArray[np.float64]]
    ischaemic: NDArray[np.bool_]  # (16,) segment in a stress defect
    defect: str  # "none", "transmural", "subendocardial"
    territories: tuple[str, ...]
    heterogeneity_sd: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Perfusion:
        mpr_global = rng.uniform(2.2, 4.0)  # normal myocardial perfusion reserve
        rest_global = rng.uniform(0.6, 1.3)
        stress_global = rest_global * mpr_global
        seg_var = rng.normal(0.0, 0.07, 16)
        stress_fp = np.clip(stress_global * (1 + seg_var), 1.5, 4.5)
        rest_fp = np.clip(rest_global * (1 + 0.8 * seg_var + rng.normal(0.0, 0.04, 16)), 0.5, 1.5)
        gradient_s = rng.uniform(1.0, 1.12)  # endo/epi flow ratio
        gradient_r = rng.uniform(1.05, 1.2)
        stress = {
            "MBF": np.stack([stress_fp * np.sqrt(gradient_s), stress_fp / np.sqrt(gradient_s)], axis=1),
            "PS": np.repeat(np.clip(rng.normal(1.35, 0.2) + rng.normal(0.0, 0.08, 16), 0.7, 2.4)[:, None], 2, axis=1),
            "Vp": np.repeat(
                np.clip(rng.uniform(0.07, 0.1) + rng.normal(0.0, 0.005, 16), 0.04, 0.12)[:, None], 2, axis=1
            ),
            "Visf": np.repeat(
                np.clip(rng.uniform(0.15, 0.3) + rng.normal(0.0, 0.015, 16), 0.1, 0.45)[:, None], 2, axis=1
            ),
        }
        rest = {
            "MBF": np.stack([rest_fp * np.sqrt(gradient_r), rest_fp / np.sqrt(gradient_r)], axis=1),
            "PS": stress["PS"] * rng.uniform(0.8, 1.05),
            "Vp": np.clip(stress["Vp"] * rng.uniform(0.6, 0.8), 0.04, None),
            "Visf": stress["Visf"].copy(),
        }
        ischaemic = np.zeros(16, dtype=bool)
        territories: tuple[str, ...] = ()
        defect = "none"
        if rng.random() < 0.55:
            territories = tuple(rng.choice(["LAD", "RCA", "LCx"], size=int(rng.integers(1, 3)), replace=False).tolist())
            defect = "transmural" if rng.random() < 0.5 else "subendocardial"
            distal_only = rng.random() < 0.3
            for seg in range(1, 17):
                if TERRITORY[seg] in territories and not (distal_only and seg <= 6):
                    ischaemic[seg - 1] = True
            severity = rng.uniform(0.25, 0.6)
            layers = [0, 1] if defect == "transmural" else [0]
            for layer in layers:
                stress["MBF"][ischaemic, layer] = np.maximum(stress["MBF"][ischaemic, layer] * severity, 0.4)
                stress["PS"][ischaemic, layer] *= 0.8
                rest["MBF"][ischaemic, layer] *= rng.uniform(0.85, 1.0)
        return cls(stress, rest, ischaemic, defect, territories, float(rng.uniform(0.04, 0.12)))

    def cluster_parameters(self, condition: str) -> dict[str, NDArray[np.float64]]:
        """Parameters (n_clusters,) of every myocardial cluster, in cluster-id order."""
        nominal = self.stress if condition == "stress" else self.rest
        seg, layer, bin_ = cluster_keys()
        z = BIN_Z[bin_] * self.heterogeneity_sd
        out = {}
        for name, spread in (("MBF", 1.0), ("PS", 0.5), ("Vp", 0.4), ("Visf", 0.3)):
            out[name] = nominal[name][seg - 1, layer] * (1.0 + spread * z)
        return out

    def mean_parameters(self, condition: str) -> dict[str, float]:
        """Heart-average parameters (for the papillary muscles and the RV wall)."""
        nominal = self.stress if condition == "stress" else self.rest
        return {k: float(np.mean(v)) for k, v in nominal.items()}


def plasma_parameters(drawn: dict[str, Any], hematocrit: float) -> dict[str, Any]:
    """Kinetic-model parameters from drawn ones: plasma flow ``Fp = MBF (1 - Hct)``."""
    out = {k: v for k, v in drawn.items() if k != "MBF"}
    out["Fp"] = drawn["MBF"] * (1.0 - hematocrit)
    return out
