"""MRML glue of the QPerfFlow module: flow-quantification inputs and colour tables in the scene.

Builds on ``QPerfSegLib`` (the module declares QPerfSeg as a dependency). Imports ``slicer``
but never ``qt``, so it runs inside Slicer and headless with the ``slicer-core`` wheel.
"""

from .colors import PERFUSION_COLOR_TABLE_NAME, loadColorTable, perfusionColorTableNode
from .inputs import describeInputs, studyInputs, studySettings

__all__ = [
    "PERFUSION_COLOR_TABLE_NAME",
    "describeInputs",
    "loadColorTable",
    "perfusionColorTableNode",
    "studyInputs",
    "studySettings",
]
