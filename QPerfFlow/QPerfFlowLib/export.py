"""Saving the work: the report files and the scene.

:func:`exportReport` writes the core library's report (``report.json``, ``report.csv``,
``report.html``, bull's-eye and flow-map figures; ``qperf.report.write_report``) and, with
``withMaps=True``, the whole analysis folder (``qperf.workflow.write_analysis``: corrected
series, labels, segments, maps and insertion points per slice). :func:`saveScene` does what
Slicer's "Save" does: every storable node writes its data file into a folder, then the scene
its ``.mrml`` file, which Slicer (or ``vtkMRMLScene.Connect``) opens again. This file imports
``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from QPerfSegLib.sequences import getScene

from qperf.errors import OutputExistsError, ValidationError


def exportReport(result: Any, folder: str | os.PathLike, overwrite: bool = False, withMaps: bool = False) -> Path:
    """Write the report of a flow result (``qperf.workflow.StudyAnalysis``) into ``folder``.

    Returns the folder. Raises ``OutputExistsError`` when report files exist and ``overwrite``
    is False.
    """
    from qperf.report import write_report
    from qperf.workflow import write_analysis

    folder = Path(folder)
    if withMaps:
        return write_analysis(result, folder, overwrite=overwrite)
    write_report(result.report, result.figures, folder, overwrite=overwrite)
    return folder


def _safeName(node: Any) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in (node.GetName() or "node"))
    return f"{name}_{node.GetID()}"


def saveScene(scene: Any | None, folder: str | os.PathLike, name: str = "scene", overwrite: bool = False) -> Path:
    """Save the scene into ``folder``: one data file per storable node and ``<name>.mrml``.

    Returns the ``.mrml`` path.

    Raises
    ------
    OutputExistsError
        The ``.mrml`` file exists and ``overwrite`` is False.
    ValidationError
        A node's data could not be written (named).
    """
    scene = getScene(scene)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mrml = folder / f"{name}.mrml"
    if mrml.exists() and not overwrite:
        raise OutputExistsError(f"{mrml}: exists; pass overwrite=True to replace it")
    storables = scene.GetNodesByClass("vtkMRMLStorableNode")
    for i in range(storables.GetNumberOfItems()):
        node = storables.GetItemAsObject(i)
        if node.GetHideFromEditors() and node.IsA("vtkMRMLColorTableNode") and node.GetStorageNode() is None:
            continue
        if not node.GetSaveWithScene():
            continue
        if node.GetStorageNode() is None and not node.AddDefaultStorageNode():
            continue
        storage = node.GetStorageNode()
        if storage is None:
            continue
        storage.SetFileName(str(folder / f"{_safeName(node)}.{storage.GetDefaultWriteFileExtension()}"))
        if not storage.WriteData(node):
            raise ValidationError(f"node {node.GetName()!r}: its data could not be written to {storage.GetFileName()}")
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(mrml))
    if not scene.Commit():
        raise ValidationError(f"{mrml}: the scene could not be written")
    return mrml


def openScene(path: str | os.PathLike) -> Any:
    """Open a saved ``.mrml`` scene into a new ``vtkMRMLScene`` (outside the application too).

    Sequences of segmentations and markups are stored as bundles that need a data I/O manager
    with a cache folder; the application's scene has one, a bare ``vtkMRMLScene`` gets one here.

    Raises
    ------
    ValidationError
        When the scene cannot be read.
    """
    import tempfile

    import slicer
    from QPerfSegLib.sequences import ensureMarkupsStorageRegistered, ensureSequenceBrowserRegistered

    scene = slicer.vtkMRMLScene()
    ensureSequenceBrowserRegistered(scene)
    ensureMarkupsStorageRegistered(scene)
    cacheManager = slicer.vtkCacheManager()
    cacheManager.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="qperf-scene-cache-"))
    dataIOManager = slicer.vtkDataIOManager()
    dataIOManager.SetCacheManager(cacheManager)
    scene.SetDataIOManager(dataIOManager)
    scene.SetCacheManager(cacheManager)
    scene.SetURL(str(path))
    if not scene.Connect():
        raise ValidationError(f"{path}: the scene could not be read")
    return scene
