"""AHA segments in the scene: one segmentation per slice, drawn as contours over the images.

The segment map of a slice (``qperf.aha.SliceSectors.segments``, int ``(y, x)``, 1-16, 0
outside the myocardium) becomes a ``vtkMRMLSegmentationNode`` with one segment per AHA segment
(ID ``AHA<n>``, name ``"<n> <name>"`` from ``qperf.aha.SEGMENTS``, a colour per coronary
territory), shown as outlines only so the parameter maps stay visible beneath. This file
imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import vtk

from qperf.errors import ValidationError

from .labels import labelmapNode, segmentationsLogic
from .scene import getScene

#: Contour colours per territory (RGB 0-1), lighter to darker along the segment numbers.
TERRITORY_COLORS = {"LAD": (0.95, 0.35, 0.35), "RCA": (0.35, 0.85, 0.35), "LCx": (0.35, 0.55, 1.0)}
N_SEGMENTS = 16


def sectorSegmentId(number: int) -> str:
    return f"AHA{int(number)}"


def sectorColor(number: int) -> tuple:
    """The contour colour of AHA segment ``number``: its territory's, shaded by level."""
    from qperf.aha import SEGMENTS

    segment = SEGMENTS[int(number)]
    shade = {"basal": 1.0, "mid": 0.8, "apical": 0.6}.get(segment.level, 1.0)
    return tuple(float(c * shade) for c in TERRITORY_COLORS.get(segment.territory, (0.8, 0.8, 0.8)))


def sectorSegmentationNode(segments: Any, ijkToRas: np.ndarray, scene: Any | None = None, name: str = "AHA") -> Any:
    """A segmentation node of the AHA segments ``segments`` (int (y, x), 0-16), shown as contours."""
    from qperf.aha import SEGMENTS

    scene = getScene(scene)
    array = np.asarray(segments)
    if array.ndim != 2 or array.size == 0 or array.min() < 0 or array.max() > N_SEGMENTS:
        raise ValidationError(f"segments: expected a (y, x) map of AHA numbers 0 to {N_SEGMENTS}, found {array.shape}")
    logic = segmentationsLogic()  # first: the empty segments need the converters it registers
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    ids = vtk.vtkStringArray()
    for number in range(1, N_SEGMENTS + 1):
        segmentId = sectorSegmentId(number)
        segmentation.AddEmptySegment(segmentId, f"{number} {SEGMENTS[number].name}", list(sectorColor(number)))
        ids.InsertNextValue(segmentId)
    if not logic.ImportLabelmapToSegmentationNode(labelmapNode(array.astype(np.uint8), ijkToRas), node, ids):
        raise ValidationError(f"segmentation {node.GetName()!r}: the AHA segments could not be imported")
    display = node.GetDisplayNode()
    if display is not None:
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)
    node.SetAttribute("qperf_role", "ahaSegments")
    return node
