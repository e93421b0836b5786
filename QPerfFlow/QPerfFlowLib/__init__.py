"""MRML glue of the QPerfFlow module: flow quantification of studies in the scene.

Builds on ``QPerfSegLib`` (the module declares QPerfSeg as a dependency). Imports ``slicer``
but never ``qt``, so it runs inside Slicer and headless with the ``slicer-core`` wheel.

- :mod:`.inputs`, :mod:`.compute`: inputs gathered from the scene, the core pipeline run;
- :mod:`.aifnodes`: the AIF from AIF images through an editable LV region;
- :mod:`.results`: maps, AHA contours, tables, curves, bull's-eye and perfusion reserve as nodes;
- :mod:`.export`: report files and scene saving; :mod:`.logic`: all of it as one object.
"""

from .colors import PERFUSION_COLOR_TABLE_NAME, loadColorTable, perfusionColorTableNode
from .compute import MODELS, FlowInputs, computeFlow, flowInputs
from .inputs import describeInputs, studyInputs, studySettings
from .logic import FlowLogic

__all__ = [
    "MODELS",
    "PERFUSION_COLOR_TABLE_NAME",
    "FlowInputs",
    "FlowLogic",
    "computeFlow",
    "describeInputs",
    "flowInputs",
    "loadColorTable",
    "perfusionColorTableNode",
    "studyInputs",
    "studySettings",
]
