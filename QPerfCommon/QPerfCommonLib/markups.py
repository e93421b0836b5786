"""RV insertion points as Slicer point lists, and back.

A point list holds named control points ("anterior", "inferior") at RAS positions; QPerf
holds them as pixel positions ``(y, x)`` of a slice (``qperf.types.yx_to_ras`` and
``ras_to_yx`` convert, with the slice's IJK-to-RAS matrix). Pixel -> RAS -> pixel rounds in the
last bits (28.0 comes back as 27.999999999999996), so the pixel positions written are recorded
on the node too (attribute ``qperf_points_yx``) and read back as they were while the control
point stays where they put it (a point dragged elsewhere is read from its position). This file
imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import vtk

from qperf.errors import ValidationError
from qperf.types import ras_to_yx, yx_to_ras

#: Names of the RV insertion points, in the order they are placed.
POINT_NAMES = ("anterior", "inferior")
ATTR_POINTS_YX = "qperf_points_yx"
#: How far (mm) a control point may lie from a recorded pixel position that is still its own.
SAME_POSITION_MM = 1e-6


def setPoints(pointsNode: Any, points: Any, ijkToRas: np.ndarray) -> None:
    """Replace the control points of ``pointsNode`` by ``points`` (``{name: (y, x)}``), known names first."""
    pointsNode.RemoveAllControlPoints()
    names = [n for n in POINT_NAMES if n in points] + [n for n in points if n not in POINT_NAMES]
    recorded = {}
    for name in names:
        y, x = (float(v) for v in np.asarray(points[name], dtype=float).reshape(2))
        pointsNode.AddControlPoint(vtk.vtkVector3d(*yx_to_ras(ijkToRas, (y, x))), name)
        recorded[name] = [y, x]
    pointsNode.SetAttribute(ATTR_POINTS_YX, json.dumps(recorded))


def _recorded(pointsNode: Any) -> dict:
    text = pointsNode.GetAttribute(ATTR_POINTS_YX)
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}


def pointsFromNode(pointsNode: Any, ijkToRas: np.ndarray) -> dict:
    """The control points of a point list as ``{label: (y, x)}`` pixel positions."""
    recorded = _recorded(pointsNode)
    points = {}
    for n in range(pointsNode.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        pointsNode.GetNthControlPointPosition(n, ras)
        name = pointsNode.GetNthControlPointLabel(n)
        written = recorded.get(name)
        if written is not None and np.allclose(yx_to_ras(ijkToRas, written), ras, rtol=0.0, atol=SAME_POSITION_MM):
            points[name] = (float(written[0]), float(written[1]))
        else:
            points[name] = ras_to_yx(ijkToRas, ras)
    return points


def namedPoint(pointsNode: Any, ijkToRas: np.ndarray, name: str = "anterior") -> tuple:
    """The pixel position ``(y, x)`` of control point ``name`` (case-insensitive), else of the first one.

    Raises
    ------
    ValidationError
        The point list has no control point.
    """
    n = pointsNode.GetNumberOfControlPoints()
    if n == 0:
        raise ValidationError(
            f"point list {pointsNode.GetName()!r}: expected the {name} RV insertion point, found none"
        )
    labels = [pointsNode.GetNthControlPointLabel(i).strip().lower() for i in range(n)]
    chosen = labels.index(name) if name in labels else 0
    ras = [0.0, 0.0, 0.0]
    pointsNode.GetNthControlPointPosition(chosen, ras)
    return ras_to_yx(ijkToRas, ras)


def setLine(lineNode: Any, startYx: Any, endYx: Any, ijkToRas: np.ndarray, labels: tuple = ("start", "end")) -> None:
    """Make ``lineNode`` run from ``startYx`` to ``endYx`` (no points when either is None)."""
    lineNode.RemoveAllControlPoints()
    if startYx is None or endYx is None:
        return
    lineNode.AddControlPoint(vtk.vtkVector3d(*yx_to_ras(ijkToRas, startYx)), labels[0])
    lineNode.AddControlPoint(vtk.vtkVector3d(*yx_to_ras(ijkToRas, endYx)), labels[1])
