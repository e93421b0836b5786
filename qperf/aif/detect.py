"""Finding the left-ventricular blood pool in AIF images.

Detectors are small objects with a ``name`` and a ``detect(aif_series) -> mask`` method
(:class:`LvDetector`); they are registered by name, explicitly, so that another method can
replace the classical one without touching the callers:

>>> from qperf.aif import detect_lv, register_detector
>>> mask = detect_lv(aif_series, method="classical")
>>> register_detector(MyDetector())                # then detect_lv(s, method=MyDetector.name)

``"auto"`` (:class:`AutoLvDetector`) runs the network detector (``"cnn"``) and the classical
one, each checking the other. The network belongs to :mod:`qperf.segmentation`, which sits
above this package: :mod:`qperf.segmentation.aif_lv` registers it as ``"cnn"``
(:func:`~qperf.segmentation.aif_lv.register`), and its ``detect_lv`` and ``aif_from_images``
do so before they detect; until then ``"auto"`` is the classical detector alone. LV Dice on the
real AIF example ``aif_example1`` (frame interval not recorded, assumed 0.4-1.2 s): auto 0.870,
network 0.862, classical 0.870 at every interval; on 18 phantom AIF series with clocks
stretched 0.33-3 times, median 0.950 for all three (minimum auto 0.800).

The classical detector uses the first pass of the bolus only:

1. Temporal smoothing, per-pixel baseline from the frames before the global bolus foot, and
   per-pixel features: first-pass peak enhancement, arrival time.
2. Blood candidates: pixels whose peak enhancement is above Otsu's threshold of the
   enhancement histogram and well above the noise (the blood pools enhance far more than
   tissue).
3. The right ventricle fills before the left: the candidates' arrival times (half of their
   first-pass peak reached) are split into an early and a late group (two-class Otsu on the
   times) when the groups are clearly apart.
4. Connected components of the late group are scored by size, mean enhancement, compactness
   and closeness to the early (right-heart) group; the best is the LV.
5. The pool is trimmed to pixels above half of its own peak enhancement (the half-maximum
   edge of a blurred object), which keeps out partial-volume pixels at the wall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from qperf.aif.curve import detect_bolus, noise_sd
from qperf.errors import NotAvailableError, ValidationError, describe
from qperf.types import PerfusionSeries

#: Fewest pixels in an LV blood-pool mask.
MIN_POOL_PIXELS = 4
#: Two detectors agree when their common pixels make up at least this fraction of the smaller mask.
MIN_AGREEMENT = 0.5


@runtime_checkable
class LvDetector(Protocol):
    """Finds the LV blood pool in an AIF image series."""

    name: str

    def detect(self, aif_series: PerfusionSeries) -> NDArray[np.bool_]:
        """Boolean mask ``(y, x)`` of the LV blood pool; raises ``ValidationError`` when none is found."""
        ...


_REGISTRY: dict[str, LvDetector] = {}


def register_detector(detector: LvDetector, *, replace: bool = False) -> None:
    """Make ``detector`` available to :func:`detect_lv` under ``detector.name``."""
    if not isinstance(detector, LvDetector):
        raise ValidationError(f"detector: expected an object with name and detect(), found {describe(detector)}")
    if detector.name in _REGISTRY and not replace:
        raise ValidationError(f"detector: {detector.name!r} is already registered (pass replace=True)")
    _REGISTRY[detector.name] = detector


def get_detector(name: str) -> LvDetector:
    """The registered LV detector ``name`` (for its state, e.g. ``AutoLvDetector.last_source``)."""
    detector = _REGISTRY.get(name)
    if detector is None:
        hint = " (the network detector is registered by qperf.segmentation.aif_lv.register())" if name == "cnn" else ""
        raise NotAvailableError(f"method: expected one of {', '.join(available_detectors())}, found {name!r}{hint}")
    return detector


def available_detectors() -> tuple[str, ...]:
    """Names of the registered LV detectors."""
    return tuple(sorted(_REGISTRY))


def detect_lv(aif_series: PerfusionSeries | Sequence[PerfusionSeries], method: str = "auto") -> NDArray[np.bool_]:
    """Boolean mask ``(y, x)`` of the LV blood pool in an AIF image series.

    Parameters
    ----------
    aif_series : PerfusionSeries or sequence of them
        ``(t, y, x)`` AIF images (signal or Gd); with several echoes the first is used.
    method : str
        A registered detector (see :func:`available_detectors`): ``"auto"`` (the default: the
        network, backed up by the classical detector), ``"cnn"`` or ``"classical"``.

    Raises
    ------
    ValidationError
        When no LV blood pool can be found.
    NotAvailableError
        When ``method`` is not registered.
    """
    series = aif_series if isinstance(aif_series, PerfusionSeries) else _first(aif_series)
    detector = get_detector(method)
    mask = np.asarray(detector.detect(series), dtype=bool)
    if mask.shape != series.shape:
        raise ValidationError(f"detector {method!r}: returned a mask of shape {mask.shape}, expected {series.shape}")
    return mask


def _first(aif_series: Sequence[PerfusionSeries]) -> PerfusionSeries:
    if len(aif_series) == 0 or not isinstance(aif_series[0], PerfusionSeries):
        raise ValidationError(f"aif_series: expected a PerfusionSeries (one per echo), found {describe(aif_series)}")
    return aif_series[0]


def _otsu(values: NDArray[np.float64], bins: int = 128) -> float:
    """Otsu's threshold of a 1D sample."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between))])


def _compactness(component: NDArray[np.bool_]) -> float:
    """Area over the area of the circle through its farthest pixel from the centroid (0 to 1)."""
    yy, xx = np.nonzero(component)
    r2 = (yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2
    return float(min(1.0, yy.size / (math.pi * (math.sqrt(r2.max()) + 0.5) ** 2)))


@dataclass(frozen=True)
class ArrivalGroups:
    """First-pass features of an AIF image series and its blood pixels grouped by arrival.

    Attributes
    ----------
    peak : ndarray, float64, shape (y, x)
        First-pass peak enhancement (input units).
    arrival_s : ndarray, float64, shape (y, x)
        Time at which half of the first-pass peak is reached, s (on the series' clock).
    noise : float
        Noise level of the enhancement (input units).
    threshold : float
        Enhancement above which a pixel counts as blood.
    candidates, early, late : ndarray, bool, shape (y, x)
        Blood pixels; those of the early (right heart) and late (left heart) group. Without
        two clearly separate groups, ``early`` is empty and ``late`` holds every candidate.
    delay_s : float or None
        Median arrival of the late group minus that of the early group (the pulmonary
        transit on the series' clock); None without two separate groups.
    """

    peak: NDArray[np.float64]
    arrival_s: NDArray[np.float64]
    noise: float
    threshold: float
    candidates: NDArray[np.bool_]
    early: NDArray[np.bool_]
    late: NDArray[np.bool_]
    delay_s: float | None


class ClassicalLvDetector:
    """LV blood pool from first-pass timing and enhancement (no training).

    Parameters
    ----------
    min_group_gap_s : float
        Smallest difference between the early (RV) and late (LV) arrival times for the two
        groups to be told apart, s ...
    min_group_gap_frames : float
        ... or, when smaller, this many frame intervals (so that a series whose clock runs
        fast, for example an assumed frame interval that is too short, still splits).
    """

    name = "classical"

    def __init__(self, min_group_gap_s: float = 1.5, min_group_gap_frames: float = 3.0) -> None:
        self.min_group_gap_s = float(min_group_gap_s)
        self.min_group_gap_frames = float(min_group_gap_frames)

    def features(self, series: PerfusionSeries) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        """Peak enhancement ``(y, x)``, arrival time ``(y, x)`` in s (half of the first-pass
        peak reached) and the noise level."""
        data = series.dynamic.astype(np.float64)
        time_s = series.dynamic_time_s
        if data.shape[0] < 8:
            raise ValidationError(f"aif_series: expected at least 8 dynamic frames, found {data.shape[0]}")
        smooth = ndi.gaussian_filter1d(data, 1.0, axis=0, mode="nearest")
        early = np.median(smooth[:3], axis=0)
        rise = smooth - early
        ny, nx = series.shape
        flat = rise.reshape(rise.shape[0], -1)
        global_curve = np.percentile(flat, 99.5, axis=1)
        try:
            landmarks = detect_bolus(global_curve, time_s, name="aif_series")
        except ValidationError as exc:
            raise ValidationError(f"aif_series: no LV blood pool found, the images show no bolus ({exc})") from exc
        foot = max(landmarks.foot, 1)
        base = smooth[:foot].mean(axis=0)
        enh = smooth - base
        # First pass: up to the global valley (or a generous window after the peak).
        stop = max(landmarks.valley, min(landmarks.peak + 2 * (landmarks.peak - foot) + 2, data.shape[0] - 1)) + 1
        window = enh[foot:stop].reshape(stop - foot, -1)
        peak = window.max(axis=0)
        # Arrival: when the curve first reaches half of its first-pass peak (interpolated),
        # which separates the right and left heart better than the time to peak of broad curves.
        above = window >= 0.5 * peak[None, :]
        first = np.argmax(above, axis=0)
        prev = np.maximum(first - 1, 0)
        cols = np.arange(window.shape[1])
        lo, hi = window[prev, cols], window[first, cols]
        frac = np.where(hi > lo, (0.5 * peak - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
        t_win = time_s[foot:stop]
        arrival = np.where(first > 0, t_win[prev] + np.clip(frac, 0.0, 1.0) * (t_win[first] - t_win[prev]), t_win[0])
        raw_noise = float(np.median(np.abs(np.diff(data[: foot + 1], axis=0)))) if foot >= 1 else 0.0
        sigma = max(noise_sd(global_curve), 1.4826 * raw_noise / math.sqrt(2.0), 1e-12)
        return peak.reshape(ny, nx), arrival.reshape(ny, nx), sigma

    def groups(self, aif_series: PerfusionSeries) -> ArrivalGroups:
        """Strongly enhancing pixels split into early (right heart) and late (left heart) arrival.

        Raises
        ------
        ValidationError
            When too few pixels enhance strongly.
        """
        peak, arrival, sigma = self.features(aif_series)
        positive = peak[peak > 0]
        if positive.size < MIN_POOL_PIXELS:
            raise ValidationError("aif_series: no LV blood pool found (no pixel enhances)")
        threshold = max(_otsu(positive), 6.0 * sigma)
        candidates = peak > threshold
        # Remove isolated pixels and one-pixel bridges (noise, vessel edges).
        candidates = ndi.binary_opening(candidates, structure=ndi.generate_binary_structure(2, 1))
        if np.count_nonzero(candidates) < MIN_POOL_PIXELS:
            raise ValidationError("aif_series: no LV blood pool found (too few strongly enhancing pixels)")
        times = arrival[candidates]
        late = candidates.copy()
        early = np.zeros_like(candidates)
        delay_s: float | None = None
        if np.ptp(times) > 0:
            split = _otsu(times, bins=64)
            t_early, t_late = times[times <= split], times[times > split]
            dt = float(np.median(np.diff(aif_series.dynamic_time_s)))
            min_gap = min(self.min_group_gap_s, self.min_group_gap_frames * dt)
            if t_early.size and t_late.size and np.median(t_late) - np.median(t_early) >= min_gap:
                late = candidates & (arrival > split)
                early = candidates & (arrival <= split)
                delay_s = float(np.median(t_late) - np.median(t_early))
        return ArrivalGroups(peak, arrival, sigma, threshold, candidates, early, late, delay_s)

    def detect(self, aif_series: PerfusionSeries) -> NDArray[np.bool_]:
        g = self.groups(aif_series)
        best = self._best_component(g.late, g.early, g.peak)
        if best is None:
            raise ValidationError("aif_series: no LV blood pool found (no compact late-enhancing region)")
        return self._core(best, g.peak)

    def _best_component(
        self, late: NDArray[np.bool_], early: NDArray[np.bool_], peak: NDArray[np.float64]
    ) -> NDArray[np.bool_] | None:
        labels, n = ndi.label(late, structure=np.ones((3, 3), dtype=int))
        if n == 0:
            return None
        distance = ndi.distance_transform_edt(~early) if early.any() else None
        scale = max(float(np.percentile(peak[late], 90)), 1e-12)
        best, best_score = None, -np.inf
        for label in range(1, n + 1):
            comp = labels == label
            size = int(np.count_nonzero(comp))
            if size < MIN_POOL_PIXELS:
                continue
            score = math.sqrt(size) * (float(peak[comp].mean()) / scale) * _compactness(comp)
            if distance is not None:
                gap_px = float(distance[comp].min())
                score /= 1.0 + (gap_px / 3.0) ** 2
            if score > best_score:
                best, best_score = comp, score
        return best

    @staticmethod
    def _core(component: NDArray[np.bool_], peak: NDArray[np.float64]) -> NDArray[np.bool_]:
        level = 0.5 * float(np.percentile(peak[component], 95))
        core = component & (peak >= level)
        labels, n = ndi.label(core)
        if n > 1:
            sizes = ndi.sum(core, labels, index=np.arange(1, n + 1))
            core = labels == (1 + int(np.argmax(sizes)))
        return core if np.count_nonzero(core) >= MIN_POOL_PIXELS else component


register_detector(ClassicalLvDetector())


class AutoLvDetector:
    """The network and the classical detector, each checking the other.

    The network (``"cnn"``, :mod:`qperf.segmentation.aif_lv`, its timing normalised to the
    pulmonary transit measured in the data) finds the pool and its mask is checked for
    plausibility (strongly enhancing blood that does not fill with the right heart). When the
    classical detector finds the same pool (their common pixels are at least
    :data:`MIN_AGREEMENT` of the smaller mask), the mask is the common part: the pixels both
    call blood pool, which keeps partial-volume pixels at the wall out of the AIF. When they
    disagree, the plausible network mask is kept (the classical detector picked another
    structure). When the network finds nothing plausible or cannot run (no torch, no weights,
    none registered), the classical mask is used.

    :attr:`last_source` says what produced the last mask (``"cnn+classical"``, ``"cnn"`` or
    ``"classical"``) and :attr:`last_reason` why the network's mask was not used (empty when it was).

    Parameters
    ----------
    network : LvDetector, optional
        The network detector, with ``detect_with_groups`` and ``check`` as
        :class:`qperf.segmentation.aif_lv.CnnLvDetector`; by default the one registered as
        ``"cnn"`` when the detector runs.
    """

    name = "auto"

    def __init__(self, network: LvDetector | None = None) -> None:
        self.network = network
        self.last_source = ""
        self.last_reason = ""

    def detect(self, aif_series: PerfusionSeries) -> NDArray[np.bool_]:
        network: NDArray[np.bool_] | None = None
        reason = ""
        try:
            cnn = self.network if self.network is not None else _REGISTRY.get("cnn")
            if cnn is None:
                raise NotAvailableError("none registered (qperf.segmentation.aif_lv.register())")
            mask, groups = cnn.detect_with_groups(aif_series)  # type: ignore[attr-defined]
            problem = cnn.check(mask, groups)  # type: ignore[attr-defined]
            if problem is None:
                network = np.asarray(mask, dtype=bool)
            else:
                reason = f"network mask implausible: {problem}"
        except (ValidationError, NotAvailableError, ImportError, OSError) as exc:
            reason = f"network detector failed: {exc}"
        try:
            classical: NDArray[np.bool_] | None = np.asarray(_REGISTRY["classical"].detect(aif_series), dtype=bool)
        except ValidationError:
            if network is None:
                raise
            classical = None
        if network is None:
            self.last_source, self.last_reason = "classical", reason
            return classical  # type: ignore[return-value]
        self.last_reason = ""
        if classical is not None:
            both = _largest(network & classical)
            smaller = min(int(np.count_nonzero(network)), int(np.count_nonzero(classical)))
            if np.count_nonzero(both) >= max(MIN_POOL_PIXELS, MIN_AGREEMENT * smaller):
                self.last_source = "cnn+classical"
                return both
        self.last_source = "cnn"
        return network


def _largest(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = ndi.sum(mask, labels, index=np.arange(1, n + 1))
    return np.asarray(labels == (1 + int(np.argmax(sizes))))


register_detector(AutoLvDetector())


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Dice overlap of two boolean masks (1 for two empty masks)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total
