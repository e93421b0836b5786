"""LV blood-pool detection in dual-sequence AIF images with the segmentation network.

AIF images are low-resolution, short-saturation-time images of the same slice position. The
segmentation network, trained with resolution randomisation down to AIF pixel sizes, reads
them through the same pre-processing (fixed temporal grid, normalisation, heart localisation,
resampling to the network grid); its LV blood-pool class, mapped back to the AIF pixels,
gives the candidate pool.

The network reads the contrast dynamics in seconds, but AIF files often record no frame
interval, and circulation speeds differ between patients. So the segmenter does not trust the
clock: it measures the pulmonary transit in the images (the delay between the right- and
left-heart arrival of the bolus, :meth:`qperf.aif.ClassicalLvDetector.groups`) and, when that
lies outside the range the network was trained on, rescales the time axis into it
(:func:`qperf.segmentation.preprocessing.normalise_timing`). On the real AIF example the LV
Dice is then 0.862 whatever frame interval from 0.4 to 1.2 s is assumed (0 from 1.0 s when the
clock was trusted).

The mask is the largest LV component, trimmed to the pixels above half of the pool's own
peak enhancement (the core of a blurred object, which keeps partial-volume pixels at the
wall out of the AIF). :meth:`CnnLvDetector.check` tells whether a mask is a plausible left
ventricle (strongly enhancing, not in the early right-heart group); :class:`qperf.aif.AutoLvDetector`
uses it to back the network up with the classical detector.

This module sits above :mod:`qperf.aif` (which knows nothing of the network) and is where the
two meet: :func:`register` registers the network detector with :mod:`qperf.aif` as ``"cnn"``,
explicitly, and :func:`detect_lv` and :func:`aif_from_images`, the AIF functions with the
network among the detectors, do so before they detect (``"auto"``, the default, is the
network checked by the classical detector):

>>> from qperf.segmentation import aif_lv
>>> mask = aif_lv.detect_lv(aif_series)                 # "auto"; or method="cnn", "classical"
>>> blood = aif_lv.aif_from_images(aif_series).aif      # as qperf.aif.aif_from_images
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf.aif import detect as _detect
from qperf.aif import extract as _extract
from qperf.aif.detect import MIN_POOL_PIXELS, ArrivalGroups, ClassicalLvDetector, LvDetector
from qperf.errors import ValidationError
from qperf.gd import SrSequence
from qperf.segmentation.postprocess import largest_component
from qperf.types import LABEL_LV, PerfusionSeries

#: Pixels kept: above this fraction of the pool's peak enhancement.
CORE_FRACTION = 0.5
#: Plausibility: at least this fraction of an LV mask must be strongly enhancing blood ...
MIN_BLOOD_FRACTION = 0.5
#: ... and at most this fraction may belong to the early (right-heart) arrival group.
MAX_EARLY_FRACTION = 0.25


class CnnLvDetector:
    """:class:`qperf.aif.LvDetector` using the segmentation network (loaded on first use).

    Parameters
    ----------
    model : str or path, optional
        Segmentation model (default: the shipped one).
    core_fraction : float
        The mask keeps pixels above this fraction of the pool's peak enhancement.
    segmenter : optional
        An already loaded :class:`qperf.segmentation.inference.Segmenter`.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        Where the network computes (:func:`qperf.runtime.resolve_device`).
    """

    name = "cnn"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        core_fraction: float = CORE_FRACTION,
        segmenter: Any = None,
        device: Any = "auto",
    ) -> None:
        self.model = model
        self.device = device
        self.core_fraction = core_fraction
        self._segmenter = segmenter
        self._classical = ClassicalLvDetector()

    def _get(self):  # type: ignore[no-untyped-def]
        if self._segmenter is None:
            from qperf.segmentation.inference import load_segmenter

            self._segmenter = load_segmenter(self.model, device=self.device)  # type: ignore[assignment]
        return self._segmenter

    def to(self, device: Any) -> CnnLvDetector:
        """Compute on ``device`` from now on (checked now, the network moved if loaded); returns self."""
        from qperf.runtime import resolve_device

        self.device = resolve_device(device)
        if self._segmenter is not None:
            self._segmenter.to(self.device)
        return self

    def groups(self, aif_series: PerfusionSeries) -> ArrivalGroups | None:
        """First-pass features and arrival groups of the series (None when nothing enhances)."""
        try:
            return self._classical.groups(aif_series)
        except ValidationError:
            return None

    def probabilities(self, aif_series: PerfusionSeries) -> NDArray[np.float32]:
        """Class probabilities (4, y, x) on the AIF image grid.

        The segmenter reads the series on a clock normalised to the RV-to-LV transit measured
        in the images (:func:`~qperf.segmentation.preprocessing.normalise_timing`).
        """
        return self._get()(aif_series).probabilities  # type: ignore[no-any-return]

    def detect(self, aif_series: PerfusionSeries) -> NDArray[np.bool_]:
        """Boolean LV blood-pool mask (y, x); raises ValidationError when no pool is found."""
        return self.detect_with_groups(aif_series)[0]

    def detect_with_groups(self, aif_series: PerfusionSeries) -> tuple[NDArray[np.bool_], ArrivalGroups | None]:
        """The mask and the arrival groups it was checked against."""
        groups = self.groups(aif_series)
        prob = self.probabilities(aif_series)
        lv = largest_component(prob.argmax(0) == LABEL_LV)
        if lv.sum() < 2:
            # Fall back on the most probable LV pixels when the arg-max gives none.
            p = prob[LABEL_LV]
            if p.max() < 0.2:
                raise ValidationError(
                    "aif_series: expected an LV blood pool, found none (network LV probability < 0.2)"
                )
            lv = largest_component(p >= 0.5 * p.max())
        if groups is not None:
            peak = groups.peak
            ref = float(np.percentile(peak[lv], 95))
            core = largest_component(lv & (peak >= self.core_fraction * ref))
            if core.sum() >= 2:
                lv = ndimage.binary_fill_holes(core)
        return np.asarray(lv, dtype=bool), groups

    @staticmethod
    def check(mask: NDArray[np.bool_], groups: ArrivalGroups | None) -> str | None:
        """Why ``mask`` is not a plausible LV blood pool, or None when it is.

        A left-ventricular pool has at least :data:`~qperf.aif.detect.MIN_POOL_PIXELS` pixels,
        most of them strongly enhancing blood, few of them in the early (right-heart) group.
        """
        n = int(np.count_nonzero(mask))
        if n < MIN_POOL_PIXELS:
            return f"{n} pixels"
        if groups is None:
            return "no strongly enhancing pixels to compare with"
        blood = np.count_nonzero(mask & groups.candidates) / n
        if blood < MIN_BLOOD_FRACTION:
            return f"only {100 * blood:.0f} % of the mask enhances like blood"
        early = np.count_nonzero(mask & groups.early) / n
        if early > MAX_EARLY_FRACTION:
            return f"{100 * early:.0f} % of the mask fills with the right heart"
        return None


def register(model: str | Path | None = None, *, device: Any = "auto") -> CnnLvDetector:
    """Register the network detector with :mod:`qperf.aif` as ``"cnn"`` (replacing any earlier one).

    Parameters
    ----------
    model : str or path, optional
        Segmentation model (default: the shipped one); loaded on the detector's first use.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        Where the network computes (:func:`qperf.runtime.resolve_device`; checked now).

    Raises
    ------
    NotAvailableError
        A ``device`` this machine does not have.
    """
    from qperf.runtime import resolve_device

    detector = CnnLvDetector(model, device=resolve_device(device))
    _detect.register_detector(detector, replace=True)
    return detector


def lv_detector(method: str = "auto") -> LvDetector:
    """The LV detector ``method`` of :mod:`qperf.aif`, with the network registered.

    For ``"cnn"`` and ``"auto"`` the shipped network is registered as ``"cnn"`` first, unless a
    network detector is registered already (:func:`register` with another model).

    Raises
    ------
    NotAvailableError
        When ``method`` is not registered.
    """
    if method in ("cnn", "auto") and "cnn" not in _detect.available_detectors():
        register()
    return _detect.get_detector(method)


def use_device(device: Any) -> None:
    """Run the registered network detector (the shipped one when none is) on ``device``.

    Raises
    ------
    NotAvailableError
        A ``device`` this machine does not have.
    """
    detector = lv_detector("cnn")
    if isinstance(detector, CnnLvDetector):
        detector.to(device)


def detect_lv(aif_series: PerfusionSeries | Sequence[PerfusionSeries], method: str = "auto") -> NDArray[np.bool_]:
    """:func:`qperf.aif.detect_lv` with the network among the detectors (see :func:`lv_detector`)."""
    lv_detector(method)
    return _detect.detect_lv(aif_series, method=method)


def aif_from_images(
    aif_series: PerfusionSeries | Sequence[PerfusionSeries],
    *,
    mask: ArrayLike | None = None,
    method: str = "auto",
    sequence: SrSequence | None = None,
    t2star_correction: bool = True,
    **overrides: Any,
) -> _extract.AifExtraction:
    """:func:`qperf.aif.aif_from_images` with the network among the detectors (see :func:`lv_detector`)."""
    if mask is None:
        lv_detector(method)
    return _extract.aif_from_images(
        aif_series, mask=mask, method=method, sequence=sequence, t2star_correction=t2star_correction, **overrides
    )
