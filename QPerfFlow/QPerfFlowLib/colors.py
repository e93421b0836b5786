"""Colour tables in the scene: the perfusion colour map for flow maps.

The perfusion colour table ships with the extension as a Slicer colour table file
(``Resources/ColorTables/QPerfPerfusion.txt``) and is read with Slicer's own
``vtkMRMLColorTableStorageNode``. This file imports ``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from QPerfCommonLib.resources import PERFUSION_COLOR_TABLE_FILE, extensionResourcePath
from QPerfCommonLib.scene import getScene

from qperf.errors import FormatError

PERFUSION_COLOR_TABLE_NAME = "QPerfPerfusion"


def loadColorTable(path: str | os.PathLike[str], scene: Any | None = None, name: str | None = None) -> Any:
    """Read a Slicer colour table file (``.txt``/``.ctbl``/``.csv``) into a new ``vtkMRMLColorTableNode``.

    Raises
    ------
    FormatError
        When the file is missing or Slicer cannot read it (nothing is left in the scene).
    """
    scene = getScene(scene)
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such colour table file")
    colorNode = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name or path.name.split(".")[0])
    storageNode = scene.AddNewNodeByClass("vtkMRMLColorTableStorageNode")
    storageNode.SetFileName(str(path))
    if not storageNode.ReadData(colorNode) or colorNode.GetNumberOfColors() < 2:
        scene.RemoveNode(storageNode)
        scene.RemoveNode(colorNode)
        raise FormatError(f"{path.name}: not a Slicer colour table (expected lines 'index name R G B A')")
    colorNode.SetAndObserveStorageNodeID(storageNode.GetID())
    return colorNode


def perfusionColorTableNode(scene: Any | None = None) -> Any:
    """The perfusion colour table node of the scene, loaded from the extension on first use."""
    scene = getScene(scene)
    nodes = scene.GetNodesByClassByName("vtkMRMLColorTableNode", PERFUSION_COLOR_TABLE_NAME)
    if nodes.GetNumberOfItems() > 0:
        return nodes.GetItemAsObject(0)
    return loadColorTable(extensionResourcePath(PERFUSION_COLOR_TABLE_FILE), scene, PERFUSION_COLOR_TABLE_NAME)
