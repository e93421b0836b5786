"""QPerf's .seq.nrrd files open in Slicer: read by Slicer's own volume sequence storage node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qperf import PerfusionSeries, SliceGeometry, io

slicer = pytest.importorskip("slicer", reason="slicer-core wheel not installed (pip install slicer-core)")


def test_slicer_reads_qperf_sequence(tmp_path: Path, rng: np.random.Generator) -> None:
    import vtk

    geometry = SliceGeometry(origin_mm=(10, -20, 30), x_direction=(0.8, 0.6, 0), y_direction=(0, 0, -1))
    series = PerfusionSeries(
        rng.uniform(0, 1, (5, 6, 7)), time_s=[0, 0.9, 1.7, 2.8, 3.5], spacing_mm=(2.0, 1.5), geometry=geometry
    )
    path = tmp_path / "s.seq.nrrd"
    io.write_series(series, path)
    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(sequence) == 1
    assert sequence.GetNumberOfDataNodes() == 5
    assert sequence.GetIndexName() == "time" and sequence.GetIndexUnit() == "s"
    times = [float(sequence.GetNthIndexValue(i)) for i in range(5)]
    np.testing.assert_allclose(times, series.time_s)
    for i in range(5):
        volume = sequence.GetNthDataNode(i)
        matrix = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(matrix)
        ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        np.testing.assert_allclose(ras, series.ijk_to_ras(), atol=1e-6)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume)[0], series.data[i])
