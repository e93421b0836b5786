"""LV blood-pool detection in dual-sequence AIF images with the segmentation network.

AIF images are low-resolution, short-saturation-time images of the same slice position. The
segmentation network, trained with resolution randomisation down to AIF pixel sizes, reads
them through the same pre-processing (fixed temporal grid, normalisation, heart localisation,
resampling to the network grid); its LV blood-pool class, mapped back to the AIF pixels,
gives the candidate pool. The mask is the largest LV component, trimmed to the pixels above
half of the pool's own peak enhancement (the core of a blurred object, which keeps
partial-volume pixels at the wall out of the AIF).

The detector registers itself with :mod:`qperf.aif` as ``"cnn"``:

>>> from qperf.aif import detect_lv
>>> import qperf.segmentation.aif_lv  # registers "cnn"
>>> mask = detect_lv(aif_series, method="cnn")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf.errors import ValidationError
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.postprocess import largest_component
from qperf.types import LABEL_LV, PerfusionSeries

#: Pixels kept: above this fraction of the pool's peak enhancement.
CORE_FRACTION = 0.5


class CnnLvDetector:
    """:class:`qperf.aif.LvDetector` using the segmentation network (loaded on first use)."""

    name = "cnn"

    def __init__(
        self, model: str | Path | None = None, *, core_fraction: float = CORE_FRACTION, segmenter: Any = None
    ) -> None:
        self.model = model
        self.core_fraction = core_fraction
        self._segmenter = segmenter

    def _get(self):  # type: ignore[no-untyped-def]
        if self._segmenter is None:
            from qperf.segmentation.inference import load_segmenter

            self._segmenter = load_segmenter(self.model)  # type: ignore[assignment]
        return self._segmenter

    def probabilities(self, aif_series: PerfusionSeries) -> NDArray[np.float32]:
        """Class probabilities (4, y, x) on the AIF image grid."""
        seg = self._get()
        return seg(aif_series).probabilities  # type: ignore[no-any-return]

    def detect(self, aif_series: PerfusionSeries) -> NDArray[np.bool_]:
        """Boolean LV blood-pool mask (y, x); raises ValidationError when no pool is found."""
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
        temporal = pre.temporal_input(aif_series)
        peak = np.max(temporal.enhancement, axis=0)
        ref = float(np.percentile(peak[lv], 90))
        core = lv & (peak >= self.core_fraction * ref)
        core = largest_component(core)
        if core.sum() >= 2:
            lv = ndimage.binary_fill_holes(core)
        return np.asarray(lv, dtype=bool)


def register(model: str | Path | None = None) -> CnnLvDetector:
    """Register the network detector with :mod:`qperf.aif` as ``"cnn"`` (replacing any earlier one)."""
    from qperf.aif import register_detector

    detector = CnnLvDetector(model)
    register_detector(detector, replace=True)
    return detector


register()
