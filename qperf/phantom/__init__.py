"""A physics-based digital perfusion phantom with full ground truth.

``generate_study(seed, ...)`` simulates a free-breathing, dual-sequence first-pass perfusion
study (basal, mid and apical short-axis slices in signal units with proton-density frames,
and dual-echo AIF images) from a random heart, coronary perfusion with territory defects,
the tracer-kinetic forward model, the saturation-recovery signal equation (FLASH or SSFP,
1.5 or 3 T), surface-coil shading, Rician noise and respiratory motion. ``write_study`` writes
it with its truth; ``stream`` yields randomised training samples in memory.

Modules: :mod:`~qperf.phantom.anatomy` (heart and chest), :mod:`~qperf.phantom.raster`
(sub-pixel rendering), :mod:`~qperf.phantom.physiology` (segment parameters, defects),
:mod:`~qperf.phantom.kinetics` (bolus and tissue curves), :mod:`~qperf.phantom.signal`
(MR physics), :mod:`~qperf.phantom.motion` (breathing), :mod:`~qperf.phantom.render`
(image formation), :mod:`~qperf.phantom.truth` (truth and AHA convention),
:mod:`~qperf.phantom.generate` (draws and assembly), :mod:`~qperf.phantom.acquire` (slice and
AIF images), :mod:`~qperf.phantom.writer` (files and preview),
:mod:`~qperf.phantom.stream` (training samples).
"""

from qperf.phantom.generate import generate_study
from qperf.phantom.stream import stream
from qperf.phantom.truth import PhantomStudy, PhantomTruth, SliceTruth, insertion_points_over_frames
from qperf.phantom.writer import write_study

__all__ = [
    "PhantomStudy",
    "PhantomTruth",
    "SliceTruth",
    "generate_study",
    "insertion_points_over_frames",
    "stream",
    "write_study",
]
