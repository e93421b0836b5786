"""CNN segmentation of the LV blood pool, myocardium and RV blood pool, with RV insertion points.

>>> from qperf.segmentation import load_segmenter
>>> segmenter = load_segmenter()
>>> result = segmenter(series)
>>> result.labels, result.insertion_points, result.confidence, result.qc

Modules: :mod:`~qperf.segmentation.preprocessing` (temporal grid, normalisation, heart
localisation, crops), :mod:`~qperf.segmentation.network` (residual U-Net),
:mod:`~qperf.segmentation.augment` (domain randomisation), :mod:`~qperf.segmentation.train`,
:mod:`~qperf.segmentation.inference`, :mod:`~qperf.segmentation.postprocess` (clean-up,
insertion points, QC), :mod:`~qperf.segmentation.model_store` (model card and checksum),
:mod:`~qperf.segmentation.aif_lv` (LV detection in AIF images).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qperf.segmentation.inference import SegmentationResult, Segmenter, load_segmenter
    from qperf.segmentation.model_store import ModelIntegrityError
    from qperf.segmentation.postprocess import QualityReport

__all__ = ["ModelIntegrityError", "QualityReport", "SegmentationResult", "Segmenter", "load_segmenter"]

# The names above load on first use: importing a submodule that needs no network (the AIF
# detector, pre- and post-processing) does not import torch.
_LAZY = {
    "SegmentationResult": "qperf.segmentation.inference",
    "Segmenter": "qperf.segmentation.inference",
    "load_segmenter": "qperf.segmentation.inference",
    "ModelIntegrityError": "qperf.segmentation.model_store",
    "QualityReport": "qperf.segmentation.postprocess",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
