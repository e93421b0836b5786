"""Label maps for training-data synthesis: phantom anatomy and real cine anatomy.

A :class:`LabelMap` is a fine class map (about 1 mm pixels) of one short-axis slice: the three
labelled structures (1 LV blood pool, 2 myocardium, 3 RV blood pool) and many background
classes (4 and above), each of which the synthesis (:mod:`qperf.segmentation.synth`) gives its
own random intensity and enhancement curve. Two sources:

- :func:`phantom_label_maps`: random hearts of :mod:`qperf.phantom` cut at any level, with the
  chest around them (fat, muscle, lungs, liver, aorta, spine, lung vessels, RV wall) as
  separate background classes, and the true RV insertion points;
- :func:`cine_label_maps`: real anatomy of labelled cine frames (:mod:`qperf.phantom.cine`):
  the LV, myocardium and derived RV, and the real backgrounds split into intensity clusters.
  Where the RV or the myocardium was not drawn, the class is marked as not drawn (partial
  labels: the training loss leaves it out).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from qperf.types import LABEL_LV, LABEL_MYO, LABEL_RV

#: Labelled classes; background classes are numbered from FIRST_BACKGROUND.
LABELLED = (LABEL_LV, LABEL_MYO, LABEL_RV)
FIRST_BACKGROUND = 4
#: Kinds of background class: a hint for the synthesis of what the tissue usually does.
KINDS = ("air", "fat", "muscle", "lung", "liver", "vessel_lv", "vessel_rv", "marrow", "wall", "generic")
#: Intensity clusters of a real cine background.
CINE_CLUSTERS = 6


@dataclass(frozen=True)
class LabelMap:
    """A fine class map of one slice.

    Attributes
    ----------
    classes : ndarray, int16, shape (y, x)
        0 air outside the body, 1 LV blood pool, 2 myocardium, 3 RV blood pool, 4... background
        classes.
    spacing_mm : float
        Isotropic pixel spacing of ``classes``.
    kinds : dict
        Kind (:data:`KINDS`) of every background class present.
    points_yx : dict
        RV insertion points ``{"anterior": (y, x), "inferior": (y, x)}`` in pixels; empty when
        unknown.
    drawn : frozenset of int
        Labelled classes that were drawn; a class not drawn is left out of the loss.
    source : str
    """

    classes: NDArray[np.int16]
    spacing_mm: float
    kinds: dict[int, str] = field(default_factory=dict)
    points_yx: dict[str, tuple[float, float]] = field(default_factory=dict)
    drawn: frozenset[int] = frozenset(LABELLED)
    source: str = ""

    def labels(self) -> NDArray[np.uint8]:
        """The label map (0-3): every background class is 0."""
        out = np.where(self.classes < FIRST_BACKGROUND, self.classes, 0)
        return np.asarray(out, dtype=np.uint8)


def phantom_label_map(seed: int, spacing_mm: float = 1.0, fov_mm: float = 320.0) -> LabelMap:
    """The class map of one random phantom slice (random heart, level, placement)."""
    from qperf.phantom import anatomy as an
    from qperf.phantom.raster import rasterise

    rng = np.random.default_rng([int(seed), 4242])
    heart = an.Heart.draw(rng)
    supersample = 2
    n = int(round(fov_mm / (spacing_mm * supersample)))
    placement = an.Placement.draw(heart, rng, shape=(n, n), spacing_mm=spacing_mm * supersample)
    frame = placement.slice_frame(heart, float(rng.uniform(0.12, 0.88)))
    raster = rasterise(heart, frame, supersample)
    src = raster.classes
    out = np.zeros(src.shape, dtype=np.int16)
    mapping = {
        an.LV_BLOOD: LABEL_LV,
        an.PAPILLARY: LABEL_LV,
        an.MYO: LABEL_MYO,
        an.RV_BLOOD: LABEL_RV,
    }
    kinds_of = {
        an.MUSCLE: "muscle",
        an.FAT: "fat",
        an.LUNG: "lung",
        an.LIVER: "liver",
        an.AORTA: "vessel_lv",
        an.RV_WALL: "wall",
        an.MARROW: "marrow",
        an.VESSEL_RV: "vessel_rv",
        an.VESSEL_LV: "vessel_lv",
    }
    kinds: dict[int, str] = {}
    next_class = FIRST_BACKGROUND
    for cls in np.unique(src):
        mask = src == cls
        if int(cls) in mapping:
            out[mask] = mapping[int(cls)]
        elif int(cls) in kinds_of:
            out[mask] = next_class
            kinds[next_class] = kinds_of[int(cls)]
            next_class += 1
    s = supersample
    points = {k: ((y + 0.5) * s - 0.5, (x + 0.5) * s - 0.5) for k, (y, x) in raster.insertion_yx.items()}
    if not (out == LABEL_RV).any():
        points = {}
    return LabelMap(out, float(spacing_mm), kinds, points, frozenset(LABELLED), f"phantom:{seed}")


def phantom_label_maps(seed: int = 0) -> Iterator[LabelMap]:
    """Endless stream of phantom label maps."""
    i = 0
    while True:
        yield phantom_label_map(seed * 1_000_003 + i)
        i += 1


def cine_label_map(frame: object, n_clusters: int = CINE_CLUSTERS) -> LabelMap:
    """The class map of one labelled cine frame (:class:`qperf.phantom.cine.CineFrame`).

    The background is split into ``n_clusters`` intensity clusters (quantiles of the lightly
    smoothed log intensity, so each cluster holds a similar area), and the near-zero air
    outside the body is class 0.
    """
    from qperf.phantom.cine import CineFrame

    assert isinstance(frame, CineFrame)
    img = ndi.gaussian_filter(np.asarray(frame.image, dtype=np.float64), 0.8)
    labels = frame.labels().astype(np.int16)
    background = labels == 0
    air = img < 0.04 * float(np.percentile(img, 99))
    tissue = background & ~air
    out = labels.copy()
    kinds: dict[int, str] = {}
    if tissue.any():
        logv = np.log(img[tissue] + 1.0)
        edges = np.quantile(logv, np.linspace(0, 1, n_clusters + 1)[1:-1])
        cluster = np.searchsorted(edges, np.log(img + 1.0))
        for k in range(n_clusters):
            out[tissue & (cluster == k)] = FIRST_BACKGROUND + k
            kinds[FIRST_BACKGROUND + k] = "generic"
    out[background & air] = 0
    drawn = {LABEL_LV}
    if frame.myocardium is not None:
        drawn.add(LABEL_MYO)
    if frame.rv is not None:
        drawn.add(LABEL_RV)
    spacing = float(np.mean(frame.spacing_mm))
    return LabelMap(out, spacing, kinds, {}, frozenset(drawn), f"cine:{frame.case}/{frame.index}")


def cine_label_maps(path: str | Path, cases: Sequence[str], *, with_myocardium: bool = False) -> list[LabelMap]:
    """Label maps of every frame of ``cases`` in the cine file (see :func:`qperf.phantom.cine.load_cine_frames`)."""
    from qperf.phantom.cine import load_cine_frames

    frames = load_cine_frames(path, tuple(cases), with_myocardium=with_myocardium)
    return [cine_label_map(f) for f in frames]
