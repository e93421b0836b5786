"""Arterial input function: LV detection in AIF images, extraction, and curve processing.

>>> from qperf import aif
>>> mask = aif.detect_lv(study.aif_series)                 # LV blood pool, (y, x) bool
>>> blood = aif.aif_from_images(study.aif_series).aif      # AifCurve, whole blood mmol/L
>>> marks = aif.detect_bolus(blood.values, blood.time_s)   # foot, peak, valley
>>> plasma = aif.blood_to_plasma(blood, hematocrit=0.42)

The LV detector network belongs to :mod:`qperf.segmentation`, above this package: the default
detector ``"auto"`` uses it once :mod:`qperf.segmentation.aif_lv` has registered it, and that
module's ``detect_lv`` and ``aif_from_images`` (the same functions with the network) do so.
"""

from qperf.aif.curve import (
    BolusLandmarks,
    DelayEstimate,
    blood_to_plasma,
    bound_delay,
    detect_bolus,
    multiscale_gradient,
    noise_sd,
    regular_grid,
    remove_baseline,
    resample,
    shift,
    tissue_foot_s,
)
from qperf.aif.detect import (
    ArrivalGroups,
    AutoLvDetector,
    ClassicalLvDetector,
    LvDetector,
    available_detectors,
    detect_lv,
    dice,
    get_detector,
    register_detector,
)
from qperf.aif.extract import AifExtraction, aif_from_images, pool_core, t2star_correct

__all__ = [
    "AifExtraction",
    "ArrivalGroups",
    "AutoLvDetector",
    "BolusLandmarks",
    "ClassicalLvDetector",
    "DelayEstimate",
    "LvDetector",
    "aif_from_images",
    "available_detectors",
    "get_detector",
    "blood_to_plasma",
    "bound_delay",
    "detect_bolus",
    "detect_lv",
    "dice",
    "multiscale_gradient",
    "noise_sd",
    "pool_core",
    "regular_grid",
    "register_detector",
    "remove_baseline",
    "resample",
    "shift",
    "t2star_correct",
    "tissue_foot_s",
]
