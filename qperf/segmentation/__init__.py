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

from qperf.segmentation.inference import SegmentationResult, Segmenter, load_segmenter
from qperf.segmentation.model_store import ModelIntegrityError
from qperf.segmentation.postprocess import QualityReport

__all__ = ["ModelIntegrityError", "QualityReport", "SegmentationResult", "Segmenter", "load_segmenter"]
