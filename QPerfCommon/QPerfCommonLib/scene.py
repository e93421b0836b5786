"""The scene helpers every QPerf module uses: the scene to work in, node removal, time sequences, saving.

Functions take the MRML scene as an argument; ``None`` means ``slicer.mrmlScene``, which exists
inside the Slicer application only. A bare ``vtkMRMLScene`` (``slicer-core``) lacks what the
application's modules register at start-up (the sequence browser class, the markups storage
node, a data I/O manager); the helpers here register it where it is missing. This file imports
``slicer`` but never ``qt``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from qperf.errors import OutputExistsError, ValidationError

TIME_INDEX_NAME = "time"
TIME_INDEX_UNIT = "s"


def getScene(scene: Any | None = None) -> Any:
    """The scene to work in: ``scene`` itself, or ``slicer.mrmlScene`` when it is None.

    Raises
    ------
    ValidationError
        When ``scene`` is None and there is no ``slicer.mrmlScene`` (outside the application).
    """
    if scene is None:
        scene = getattr(slicer, "mrmlScene", None)
        if scene is None:
            raise ValidationError(
                "scene: expected a vtkMRMLScene, found None (slicer.mrmlScene exists only inside the Slicer application)"
            )
    if not (hasattr(scene, "IsA") and scene.IsA("vtkMRMLScene")):
        raise ValidationError(f"scene: expected a vtkMRMLScene, found {type(scene).__name__}")
    return scene


def formatTime(time_s: float) -> str:
    """Index value text of a time: the shortest repr that reads back to the same double."""
    return repr(float(time_s))


def itemsAtTimes(sequenceNode: Any, time_s: Any) -> list:
    """The item numbers of ``sequenceNode`` at the times ``time_s`` (s), in order.

    Raises
    ------
    ValidationError
        A time has no item (its index values are not those times).
    """
    items = [sequenceNode.GetItemNumberFromIndexValue(formatTime(t), True) for t in time_s]
    if min(items, default=0) < 0:
        missing = [float(t) for t, item in zip(time_s, items) if item < 0]
        raise ValidationError(
            f"sequence {sequenceNode.GetName()!r}: expected items at the frame times, none at {missing[:3]} s"
        )
    return items


def newTimeSequence(scene: Any, name: str) -> Any:
    """An empty ``vtkMRMLSequenceNode`` indexed by ``"time"`` in ``"s"`` (numeric, exact values)."""
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", scene.GenerateUniqueName(name))
    sequenceNode.SetIndexName(TIME_INDEX_NAME)
    sequenceNode.SetIndexUnit(TIME_INDEX_UNIT)
    sequenceNode.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    sequenceNode.SetNumericIndexValueTolerance(1e-9)
    return sequenceNode


def removeNode(scene: Any, node: Any) -> None:
    """Remove ``node`` from ``scene`` with its display and storage nodes (which a bare scene keeps)."""
    if node is None:
        return
    dependents = []
    if node.IsA("vtkMRMLDisplayableNode"):
        dependents += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if node.IsA("vtkMRMLStorableNode"):
        dependents += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for dependent in dependents:
        if dependent is not None and dependent.GetScene() is scene:
            scene.RemoveNode(dependent)


def referencedNodes(node: Any, role: str) -> list:
    """The nodes ``node`` references under ``role``, in order (missing ones left out)."""
    found = [node.GetNthNodeReference(role, i) for i in range(node.GetNumberOfNodeReferences(role))]
    return [n for n in found if n is not None]


def ensureSequenceBrowserRegistered(scene: Any) -> None:
    """Register ``vtkMRMLSequenceBrowserNode`` in ``scene`` when the Sequences module has not."""
    if not scene.IsNodeClassRegistered("vtkMRMLSequenceBrowserNode"):
        scene.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())


def ensureMarkupsStorageRegistered(scene: Any) -> None:
    """Register the markups JSON storage node in ``scene`` when the Markups module has not.

    Without it (a bare ``vtkMRMLScene``) point lists and lines, and sequences of them, are
    saved without their points.
    """
    if not scene.IsNodeClassRegistered("vtkMRMLMarkupsJsonStorageNode"):
        scene.RegisterNodeClass(slicer.vtkMRMLMarkupsJsonStorageNode())


def updateProxyNodes(browserNode: Any) -> None:
    """Create or refresh the proxy nodes of a browser (the nodes the views display).

    Inside the application this is the Sequences module's logic; with ``slicer-core`` a
    ``vtkSlicerSequencesLogic`` that is not attached to the scene does the same work. Saving
    proxy changes is suspended meanwhile: a new proxy of a sequence that records its edits
    would otherwise be saved back at the master's time, which a slice acquired at other times
    does not have, and add a frame to it.
    """
    collection = vtk.vtkCollection()
    browserNode.GetSynchronizedSequenceNodes(collection, True)
    sequences = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    saving = [(node, browserNode.GetSaveChanges(node)) for node in sequences]
    for node, _ in saving:
        browserNode.SetSaveChanges(node, False)
    try:
        modules = getattr(slicer, "modules", None)
        sequencesModule = getattr(modules, "sequences", None) if modules is not None else None
        if sequencesModule is not None and browserNode.GetScene() is getattr(slicer, "mrmlScene", None):
            sequencesModule.logic().UpdateProxyNodesFromSequences(browserNode)
        else:
            slicer.vtkSlicerSequencesLogic().UpdateProxyNodesFromSequences(browserNode)
    finally:
        for node, save in saving:
            browserNode.SetSaveChanges(node, save)


def setFixedWindowLevel(browserNode: Any, sequenceNode: Any, data: np.ndarray) -> None:
    """Give the proxy volume of ``sequenceNode`` one window/level for all frames.

    Perfusion is read from brightness changes over time, so the display range is fixed from
    the whole series (0.5th to 99.5th percentile of ``data``) instead of adapting per frame.
    """
    proxyNode = browserNode.GetProxyNode(sequenceNode)
    if proxyNode is None or not proxyNode.IsA("vtkMRMLScalarVolumeNode"):
        return
    if proxyNode.GetDisplayNode() is None:
        proxyNode.CreateDefaultDisplayNodes()
    displayNode = proxyNode.GetDisplayNode()
    if displayNode is None:
        return
    low, high = (float(v) for v in np.percentile(data, [0.5, 99.5]))
    if not high > low:
        high = low + 1.0
    displayNode.AutoWindowLevelOff()
    displayNode.SetWindowLevelMinMax(low, high)


def _safeName(node: Any) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in (node.GetName() or "node"))
    return f"{name}_{node.GetID()}"


def saveScene(scene: Any | None, folder: str | os.PathLike, name: str = "scene", overwrite: bool = False) -> Path:
    """Save the scene into ``folder``: one data file per storable node and ``<name>.mrml``.

    What Slicer's "Save" does: every storable node writes its data file, then the scene its
    ``.mrml`` file, which Slicer (or :func:`openScene`) opens again. Returns the ``.mrml`` path.

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
