"""The arterial input function from AIF images: the detected LV blood pool as an editable segmentation.

The dual-sequence AIF images of a study (the browser's ``QPerfAifSeries`` sequences) are
searched for the LV blood pool (``qperf.aif.detect_lv``); the region is shown as a
segmentation (segment "AIF LV blood pool") on the AIF images' grid, which the user may edit
with the Segment Editor; :func:`aifFromRegion` then extracts the whole-blood AIF from the
pool under that region (``qperf.aif.aif_from_images``: T2* correction, SR signal to Gd) and
stores it as an AIF table node. This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import vtk
from QPerfCommonLib.labels import exportSegmentsMask, labelmapNode, referenceVolumeNode, segmentationsLogic
from QPerfCommonLib.scene import getScene, removeNode
from QPerfCommonLib.sequences import REFERENCE_AIF_SERIES, referencedSequenceNodes, seriesFromSequenceNode
from QPerfCommonLib.study import REFERENCE_AIF_TABLE, aifTableNodeFromCurve

from qperf.errors import ValidationError

AIF_SEGMENT_ID = "AIFLVBloodPool"
AIF_SEGMENT_NAME = "AIF LV blood pool"
AIF_SEGMENT_COLOR = (0.9, 0.25, 0.25)
REFERENCE_AIF_REGION = "QPerfAifRegion"


def aifSeries(browserNode: Any) -> list:
    """The AIF image series (one per echo) that the study browser records."""
    nodes = referencedSequenceNodes(browserNode, REFERENCE_AIF_SERIES)
    if not nodes:
        raise ValidationError(f"browser {browserNode.GetName()!r}: expected AIF image series, found none")
    return [seriesFromSequenceNode(node) for node in nodes]


def detectAifRegion(browserNode: Any, method: str = "classical") -> Any:
    """Detect the LV blood pool in the study's AIF images and show it as a segmentation.

    Returns
    -------
    vtkMRMLSegmentationNode
        One segment ``"AIF LV blood pool"`` on the first echo's grid, recorded on the browser
        (``QPerfAifRegion``, replacing an earlier one).
    """
    from qperf.segmentation.aif_lv import detect_lv

    series = aifSeries(browserNode)
    mask = np.asarray(detect_lv(series, method=method), dtype=bool)
    scene = browserNode.GetScene()
    old = browserNode.GetNodeReference(REFERENCE_AIF_REGION)
    if old is not None:
        removeNode(scene, old)
    node = regionSegmentationNode(mask, series[0].ijk_to_ras(), scene, f"{browserNode.GetName()} AIF region")
    browserNode.SetNodeReferenceID(REFERENCE_AIF_REGION, node.GetID())
    return node


def regionSegmentationNode(mask: np.ndarray, ijkToRas: np.ndarray, scene: Any | None = None, name: str = "AIF") -> Any:
    """A segmentation with the single segment "AIF LV blood pool" from a boolean mask (y, x)."""
    scene = getScene(scene)
    logic = segmentationsLogic()  # first: the empty segment needs the converters it registers
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    node.GetSegmentation().AddEmptySegment(AIF_SEGMENT_ID, AIF_SEGMENT_NAME, list(AIF_SEGMENT_COLOR))
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(AIF_SEGMENT_ID)
    image = labelmapNode(np.asarray(mask, dtype=np.uint8), ijkToRas)
    if not logic.ImportLabelmapToSegmentationNode(image, node, ids):
        raise ValidationError(f"segmentation {node.GetName()!r}: the AIF region could not be imported")
    node.SetAttribute("qperf_role", "aifRegion")
    return node


def regionMask(segmentationNode: Any, shape: tuple, ijkToRas: np.ndarray) -> np.ndarray:
    """The boolean mask (y, x) of a region segmentation (all its segments) on a slice grid."""
    if segmentationNode is None or not segmentationNode.IsA("vtkMRMLSegmentationNode"):
        raise ValidationError("aifRegion: expected a vtkMRMLSegmentationNode")
    segmentation = segmentationNode.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise ValidationError(f"segmentation {segmentationNode.GetName()!r}: expected a region, found no segment")
    mask = exportSegmentsMask(segmentationNode, ids, referenceVolumeNode(tuple(shape), ijkToRas))
    return mask[0] if mask.ndim == 3 else mask


def aifFromRegion(browserNode: Any, regionNode: Any | None = None, setAsStudyAif: bool = True) -> tuple:
    """The whole-blood AIF from the study's AIF images under the (edited) region.

    Parameters
    ----------
    regionNode : vtkMRMLSegmentationNode, optional
        Defaults to the region recorded on the browser by :func:`detectAifRegion`.
    setAsStudyAif : bool
        Record the new table as the study's AIF (``QPerfAifTable``).

    Returns
    -------
    (qperf.AifCurve, vtkMRMLTableNode)
    """
    from qperf.aif import aif_from_images

    series = aifSeries(browserNode)
    regionNode = regionNode or browserNode.GetNodeReference(REFERENCE_AIF_REGION)
    if regionNode is None:
        raise ValidationError("aifRegion: expected an AIF region segmentation; detect the LV blood pool first")
    mask = regionMask(regionNode, series[0].shape, series[0].ijk_to_ras())
    if not mask.any():
        raise ValidationError(f"aifRegion: the region {regionNode.GetName()!r} is empty")
    extraction = aif_from_images(series, mask=mask)
    table = aifTableNodeFromCurve(extraction.aif, browserNode.GetScene(), name=f"{browserNode.GetName()} AIF (images)")
    if setAsStudyAif:
        browserNode.SetNodeReferenceID(REFERENCE_AIF_TABLE, table.GetID())
    return extraction.aif, table
