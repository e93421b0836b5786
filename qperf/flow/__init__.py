"""Pixel-wise myocardial blood flow mapping: a perfusion series and its AIF to parameter maps.

The chain of the inline mapping pipeline:

1. the series to Gd concentration (:func:`qperf.gd.series_to_gd`, myocardial T1) unless it
   already is;
2. the AIF from a curve, or from AIF images (LV detection, T2* correction, blood T1);
3. bolus foot, peak and valley of the AIF; baseline (the frames before the foot) removed from
   the AIF and from every tissue curve (:func:`robust_baseline`);
4. AIF and tissue resampled from their own acquisition times onto one regular grid
   (``dt_s``, 0.5 s by default) that the AIF covers;
5. blood to plasma, ``Cp = Cb / (1 - Hct)``;
6. the global AIF-to-tissue delay measured from the bolus arrival and bounded to
   ``[0, max_delay_s]`` (an excess becomes a shift of the AIF);
7. the kinetic model bound to the plasma AIF and fitted to every pixel in the mask
   (:mod:`qperf.kinetics`), with one delay for all that fits the region's curves
   (:mod:`qperf.flow.delay`) or each pixel's delay searched;
8. myocardial blood flow reported as whole-blood flow, ``MBF = Fp / (1 - Hct)`` (the plasma
   flow ``Fp`` is kept as ``fp_ml_min_g``), like ``Vb = Vp / (1 - Hct)``, the convention of
   the published BTEX maps (see ``Testing/test_flow.py``, real rest case).

Modules: :mod:`~qperf.flow.maps` (the maps of a slice), :mod:`~qperf.flow.inputs` (steps 1-6),
:mod:`~qperf.flow.delay` (the delay shared by a region's pixels), :mod:`~qperf.flow.frames` (baseline and
outlying frames), :mod:`~qperf.flow.smoothing` (smoothing within the myocardium).

>>> from qperf.flow import compute_flow_maps
>>> result = compute_flow_maps(series, aif_curve, model="btex", mask=myocardium)
>>> result.maps["mbf_ml_min_g"]          # (y, x) float32, NaN where not fitted
"""

from __future__ import annotations

from qperf.flow.delay import (
    DELAY_STEPS_PER_SAMPLE,
    best_delay,
    chi2_profile,
    common_delay,
    curve_delay,
    delay_chi2_profile,
    delayed_aif,
    mean_curve_delay,
    profile_delays,
)
from qperf.flow.frames import OUTLYING_FRAME_FRACTION, OUTLYING_FRAME_MAX_FRACTION, outlying_frames, robust_baseline
from qperf.flow.maps import STATUS_MASKED, FlowResult, compute_flow_maps, flow_at_upper_bound, map_file_stem
from qperf.flow.smoothing import smooth_within

__all__ = [
    "DELAY_STEPS_PER_SAMPLE",
    "OUTLYING_FRAME_FRACTION",
    "OUTLYING_FRAME_MAX_FRACTION",
    "STATUS_MASKED",
    "FlowResult",
    "best_delay",
    "chi2_profile",
    "common_delay",
    "compute_flow_maps",
    "curve_delay",
    "delay_chi2_profile",
    "delayed_aif",
    "flow_at_upper_bound",
    "map_file_stem",
    "mean_curve_delay",
    "outlying_frames",
    "profile_delays",
    "robust_baseline",
    "smooth_within",
]
