"""Real short-axis anatomy from labelled cine frames (the Sunnybrook subset of ``shared/data``).

The frames are SSFP cine images, not perfusion: bright blood, grey myocardium, no contrast
agent. They give real heart shapes, wall thickness and real neighbouring organs, lungs, fat,
liver, chest wall and coil shading at clinical resolution. Training (label maps) and the
validation simulation (:mod:`qperf.phantom.cine_perfusion`) use them; the file is not shipped
with QPerf and is read from a path.

The source has LV blood-pool and myocardium masks only. :func:`derive_rv` adds the RV blood
pool where the image shows it unambiguously (bright blood beside the septum); frames where it
cannot be told apart keep ``rv=None`` (the RV was "not drawn").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from qperf.errors import FormatError, NotAvailableError

#: Cases of the Sunnybrook subset (patients SC-HF-I-*).
CINE_CASES = ("SC-HF-I-1", "SC-HF-I-2", "SC-HF-I-4", "SC-HF-I-5", "SC-HF-I-6")
#: Patients held out of training: the validation simulation draws its anatomy from them only.
VALIDATION_CASES = ("SC-HF-I-4", "SC-HF-I-5")
TRAINING_CASES = ("SC-HF-I-1", "SC-HF-I-2", "SC-HF-I-6")


@dataclass(frozen=True)
class CineFrame:
    """One labelled cine frame.

    Attributes
    ----------
    image : ndarray, float32, shape (y, x)
        Magnitude image.
    lv, myocardium : ndarray, bool, shape (y, x)
        LV blood pool (papillary muscles included) and myocardium; ``myocardium`` is None where
        the source has no usable epicardial contour.
    rv : ndarray, bool, shape (y, x), or None
        RV blood pool from :func:`derive_rv`; None where it could not be derived.
    spacing_mm : (dy, dx)
    case : str
        Patient identifier.
    index : int
        Frame index in the source file.
    """

    image: NDArray[np.float32]
    lv: NDArray[np.bool_]
    myocardium: NDArray[np.bool_] | None
    rv: NDArray[np.bool_] | None
    spacing_mm: tuple[float, float]
    case: str
    index: int

    def labels(self) -> NDArray[np.uint8]:
        """Label map (0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool)."""
        out = np.zeros(self.image.shape, dtype=np.uint8)
        if self.rv is not None:
            out[self.rv] = 3
        if self.myocardium is not None:
            out[self.myocardium] = 2
        out[self.lv] = 1
        return out


def derive_rv(
    image: NDArray[np.floating], lv: NDArray[np.bool_], myocardium: NDArray[np.bool_], spacing_mm: tuple[float, float]
) -> NDArray[np.bool_] | None:
    """RV blood pool of an SSFP cine frame, or None when it cannot be told apart.

    Bright-blood pixels (above 60 % of the LV pool's median, after a 0.7 px blur) outside the
    heart, opened at 2.5 mm so that thin bright fat does not bridge into the pool, within
    45 mm of the epicardium; the connected component that touches most of the epicardium's
    4 mm neighbourhood is the RV. It is refused (None) when it touches less than 25 degrees of
    the LV circumference, is smaller than a fifth or larger than three times the LV pool, or is
    not compact (area under 60 % of its convex hull's): bright fat and vessels fail these.
    """
    from skimage.morphology import convex_hull_image

    if not lv.any() or not myocardium.any():
        return None
    sp = float(np.mean(spacing_mm))
    img = ndi.gaussian_filter(np.asarray(image, dtype=np.float64), 0.7)
    ref = float(np.median(img[lv]))
    heart = lv | myocardium
    candidate = (img > 0.6 * ref) & ~ndi.binary_dilation(heart, iterations=1)
    r = max(1, int(round(2.5 / sp)))
    disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
    candidate = ndi.binary_opening(candidate, structure=disk)
    candidate &= ndi.distance_transform_edt(~heart, sampling=spacing_mm) <= 45.0
    near = ndi.binary_dilation(heart, iterations=max(1, int(round(4.0 / sp)))) & ~heart
    lab, n = ndi.label(candidate)
    if n == 0:
        return None
    touch = ndi.sum_labels(near, lab, index=np.arange(1, n + 1))
    k = int(np.argmax(touch)) + 1
    rv = lab == k
    area, lv_area = int(rv.sum()), int(lv.sum())
    if not 0.2 * lv_area <= area <= 3.0 * lv_area:
        return None
    if area < 0.6 * int(convex_hull_image(rv).sum()):
        return None
    cy, cx = ndi.center_of_mass(lv)
    yy, xx = np.nonzero(rv & near)
    if yy.size == 0:
        return None
    angles = np.degrees(np.arctan2((yy - cy) * spacing_mm[0], (xx - cx) * spacing_mm[1]))
    covered = np.unique(np.floor((angles + 180.0) / 5.0)).size * 5.0
    if covered < 25.0:
        return None
    return rv


def load_cine_frames(
    path: str | Path, cases: tuple[str, ...] | None = None, *, with_myocardium: bool = False
) -> list[CineFrame]:
    """Labelled cine frames of ``cases`` (all by default) from the Sunnybrook subset file.

    Parameters
    ----------
    path : path
        ``sunnybrook_cine_labelled.npz`` (keys ``image``, ``lv_pool``, ``myocardium``,
        ``has_myocardium``, ``case``, ``spacing_mm``).
    cases : tuple of str, optional
    with_myocardium : bool
        Only frames whose myocardium is drawn.

    Raises
    ------
    NotAvailableError
        When the file does not exist.
    FormatError
        When it lacks one of the keys.
    """
    p = Path(path)
    if not p.is_file():
        raise NotAvailableError(f"cine anatomy: expected the Sunnybrook subset file, found no file {p}")
    with np.load(p) as z:
        keys = ("image", "lv_pool", "myocardium", "has_myocardium", "case", "spacing_mm")
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise FormatError(f"cine anatomy {p}: expected keys {', '.join(keys)}, missing {', '.join(missing)}")
        arrays = {k: z[k] for k in keys}
    out = []
    for i, case in enumerate(arrays["case"]):
        case = str(case)
        if cases is not None and case not in cases:
            continue
        has_myo = bool(arrays["has_myocardium"][i])
        if with_myocardium and not has_myo:
            continue
        image = arrays["image"][i].astype(np.float32)
        lv = arrays["lv_pool"][i].astype(bool)
        myo = arrays["myocardium"][i].astype(bool) if has_myo else None
        sp = (float(arrays["spacing_mm"][i][0]), float(arrays["spacing_mm"][i][1]))
        rv = derive_rv(image, lv, myo, sp) if myo is not None else None
        out.append(CineFrame(image, lv, myo, rv, sp, case, i))
    return out


def default_cine_path() -> Path:
    """``sunnybrook_cine/sunnybrook_cine_labelled.npz`` under the shared data folder
    (``$QPERF_SHARED_DATA``, else ``../shared/data`` beside the source checkout)."""
    import os

    root = os.environ.get("QPERF_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[3] / "shared" / "data"
    return base / "sunnybrook_cine" / "sunnybrook_cine_labelled.npz"
