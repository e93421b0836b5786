"""BTEX on the real rest case against the map the original implementation published."""

from __future__ import annotations

import h5py
import numpy as np
import scipy.io
from PIL import Image

from qperf import kinetics
from qperf.kinetics import FitStatus


def _published_map(folder, shape):
    """Decode MBF.jpg (colour map over 0-6 ml/min/g) and sample it on the data grid."""
    rgb = np.asarray(Image.open(folder / "MBF.jpg").convert("RGB"), dtype=np.float64) / 255.0
    with h5py.File(folder / "color_perf_flow_map2.mat", "r") as handle:
        cmap = np.asarray(handle["p"]).T  # (256, 3)
    rows = np.linspace(0, rgb.shape[0] - 1, shape[0]).round().astype(int)
    cols = np.linspace(0, rgb.shape[1] - 1, shape[1]).round().astype(int)
    sample = rgb[np.ix_(rows, cols)].reshape(-1, 3)
    dist = ((sample[:, None, :] - cmap[None, :, :]) ** 2).sum(axis=-1)
    value = dist.argmin(axis=1) / 255.0 * 6.0
    close = dist.min(axis=1) < 0.02
    return value.reshape(shape), close.reshape(shape)


def test_rest_case_matches_published_map(shared_data):
    folder = shared_data / "qperf_rest"
    mat = scipy.io.loadmat(folder / "perf_data.mat")
    data = np.asarray(mat["data"], dtype=np.float64)  # (rows, cols, time), mmol/L
    hct = float(np.asarray(mat["HCT"]).ravel()[0])
    dt = float(np.asarray(mat["deltaT"]).ravel()[0])
    aif_plasma = np.asarray(mat["aif"], dtype=np.float64).ravel() / (1.0 - hct)
    time_s = np.arange(data.shape[2]) * dt
    published, decoded = _published_map(folder, data.shape[:2])
    myocardium = decoded & (published > 0.3) & (published < 3.0)
    assert myocardium.sum() > 300

    fit = kinetics.get_model("btex").bind(aif_plasma, time_s, hematocrit=hct).fit(data, mask=myocardium)
    assert np.all(fit.status[myocardium] == FitStatus.OK)
    assert np.all(fit.status[~myocardium] == FitStatus.MASKED)
    # Myocardial blood flow = plasma flow / (1 - Hct); the published map is about 1 ml/min/g.
    mbf = fit.params["Fp"][myocardium] / (1.0 - hct)
    ref = published[myocardium]
    assert 0.85 < np.median(mbf) / np.median(ref) < 1.15
    # Sector by sector (six 60-degree sectors about the centroid of the region), as a
    # segment report would compare them; single pixels are too noisy for it.
    rows, cols = np.nonzero(myocardium)
    angle = np.arctan2(rows - rows.mean(), cols - cols.mean())
    sector = np.floor((angle + np.pi) / (2 * np.pi) * 6).astype(int) % 6
    for k in range(6):
        ours, theirs = np.median(mbf[sector == k]), np.median(ref[sector == k])
        assert abs(ours / theirs - 1.0) < 0.2, (k, ours, theirs)
    assert np.median(fit.nrmse[myocardium]) < 0.2
