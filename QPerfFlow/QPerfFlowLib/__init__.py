"""The QPerfFlow module's library: flow quantification of studies in the scene.

Thin by design: widgets -> :class:`FlowLogic` -> the core workflow ``qperf.workflow.analyze_study``
-> MRML nodes. QPerfFlow is independent of QPerfSeg: it reads QPerf Seg's segmentation from the
scene through ``QPerfCommonLib`` (the hidden module QPerfCommon, which both modules declare as a
dependency) and imports nothing from ``QPerfSegLib``; what the two share beyond the scene lives
in the core library ``qperf``. Imports ``slicer`` but never ``qt``, so it runs inside Slicer and
headless with the ``slicer-core`` wheel.

- :mod:`.inputs`, :mod:`.compute`: inputs gathered from the scene, the core workflow run;
- :mod:`.aifnodes`: the AIF from AIF images through an editable LV region;
- :mod:`.results`: maps, AHA contours, tables, curves, bull's-eye and perfusion reserve as nodes;
- :mod:`.export`: report files and scene saving; :mod:`.logic`: all of it as one object.
"""

from .colors import PERFUSION_COLOR_TABLE_NAME, loadColorTable, perfusionColorTableNode
from .compute import MODELS, FlowInputs, analysisOptions, computeFlow, flowInputs
from .inputs import describeInputs, studyInputs, studySettings
from .logic import FlowLogic

__all__ = [
    "MODELS",
    "PERFUSION_COLOR_TABLE_NAME",
    "FlowInputs",
    "FlowLogic",
    "analysisOptions",
    "computeFlow",
    "describeInputs",
    "flowInputs",
    "loadColorTable",
    "perfusionColorTableNode",
    "studyInputs",
    "studySettings",
]
