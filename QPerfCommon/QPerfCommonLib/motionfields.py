"""A slice's motion correction in the scene, so a saved scene can be corrected by hand again.

MRML has no node for displacement fields. They are stored as a hidden scalar volume per
motion-corrected slice: voxels ``(4 t, y, x)`` float32, the forward fields' ``dy`` and ``dx``
of every frame, then the inverse fields' (``(2, t, 2, y, x)`` flattened), on the slice's grid,
with the key frame, the slice index and the rest of the ``qperf.motion.MotionResult`` (quality,
region, engine, settings) as attributes. Slicer saves it as an NRRD file with the scene;
:func:`motionFromNode` gives the whole result back, fields bit for bit (they are float32). This
file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import slicer

from qperf.errors import ValidationError

from .sequences import jsonMetadata

ATTR_ROLE = "qperf_role"
ROLE_MOTION_FIELDS = "motionFields"
ATTR_KEY_FRAME = "qperf_key_frame"
ATTR_SLICE_INDEX = "qperf_slice_index"
ATTR_MOTION_RECORD = "qperf_motion"


def motionFieldsNode(motion: Any, ijkToRas: np.ndarray, scene: Any, name: str, sliceIndex: int) -> Any:
    """A hidden scalar volume holding the forward and inverse fields of one slice's motion result."""
    forward = np.asarray(motion.forward_px, dtype=np.float32)
    inverse = np.asarray(motion.inverse_px, dtype=np.float32)
    t, _, ny, nx = forward.shape
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(np.stack([forward, inverse]).reshape(4 * t, ny, nx)))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=float)))
    node.SetHideFromEditors(True)
    node.SetAttribute(ATTR_ROLE, ROLE_MOTION_FIELDS)
    node.SetAttribute(ATTR_KEY_FRAME, str(int(motion.key_frame)))
    node.SetAttribute(ATTR_SLICE_INDEX, str(int(sliceIndex)))
    record = {
        "quality": motion.quality,
        "timings_s": motion.timings_s,
        "region_yyxx": [int(v) for v in motion.region],
        "engine": motion.engine,
        "settings": motion.settings,
    }
    node.SetAttribute(ATTR_MOTION_RECORD, jsonMetadata(record))
    return node


def motionFromNode(node: Any, corrected: Any) -> Any:
    """The ``qperf.motion.MotionResult`` (fields, key frame, corrected series) a fields volume holds."""
    from qperf.motion import MotionResult

    voxels = np.asarray(slicer.util.arrayFromVolume(node), dtype=np.float32)
    if voxels.shape[0] % 4 or voxels.shape[0] // 4 != corrected.n_frames or voxels.shape[1:] != corrected.shape:
        raise ValidationError(
            f"motion fields {node.GetName()!r}: expected {4 * corrected.n_frames} x {corrected.shape} voxels, "
            f"found {voxels.shape}"
        )
    fields = voxels.reshape(2, corrected.n_frames, 2, *corrected.shape)
    text = node.GetAttribute(ATTR_MOTION_RECORD)
    record = json.loads(text) if text else {}
    y0, y1, x0, x1 = (int(v) for v in record.get("region_yyxx", (0, 0, 0, 0)))
    return MotionResult(
        corrected=corrected,
        key_frame=int(node.GetAttribute(ATTR_KEY_FRAME) or 0),
        forward_px=np.ascontiguousarray(fields[0]),
        inverse_px=np.ascontiguousarray(fields[1]),
        quality=dict(record.get("quality") or {}),
        timings_s=dict(record.get("timings_s") or {}),
        region=(y0, y1, x0, x1),
        engine=str(record.get("engine", "torch")),
        settings=dict(record.get("settings") or {}),
    )


def sliceIndexOf(node: Any) -> int:
    """The slice a fields volume belongs to."""
    return int(node.GetAttribute(ATTR_SLICE_INDEX) or 0)
