"""Post-processing of network label maps: anatomy-aware clean-up, insertion points and QC.

- LV blood pool and RV: the largest connected component each, holes filled.
- Myocardium: the component that surrounds (or touches) the LV blood pool; what it encloses
  that is not myocardium becomes LV blood pool (papillary muscles and trabeculae belong to
  the pool, as in the manual convention).
- Papillary muscles and trabeculae attached to the wall: the myocardium inside the convex
  hull of the pool becomes pool (:func:`fill_pool_hull`); myocardium at the pool's edge that
  enhances like blood in the first pass becomes pool (:func:`refine_endocardium`). On 90
  held-out phantom slices (raw signal) both together raised the mean myocardium Dice from
  0.956 to 0.959 (29 slices higher by more than 0.005, none lower by more than 0.005) and
  lowered the median Hausdorff distance from 2.45 / 2.33 to 2.24 / 2.14 mm (two seed sets).
- Ring topology: the myocardium closes around the LV when the LV cannot reach the image
  border without crossing it (4-connectivity).
- RV insertion points: on the epicardial contour where it meets the RV; from the network's
  heat maps when they are confident, otherwise from the ends of the LV-RV contact arc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf.types import LABEL_LV, LABEL_MYO, LABEL_RV, SliceGeometry

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)


def largest_component(mask: NDArray[np.bool_], structure: NDArray[np.bool_] = _EIGHT) -> NDArray[np.bool_]:
    """The largest connected component of a boolean mask (empty in, empty out)."""
    lab, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask.astype(bool)
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return np.asarray(lab == (int(np.argmax(sizes)) + 1))


def clean_labels(labels: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Anatomically consistent label map (y, x) from a raw arg-max map (values 0-3)."""
    lab = np.asarray(labels)
    lv = largest_component(lab == LABEL_LV)
    myo_all = lab == LABEL_MYO
    out = np.zeros(lab.shape, dtype=np.uint8)
    if lv.any():
        # The ring: the largest myocardium component touching the (dilated) LV pool. Other
        # touching pieces are kept where they lie outside the ring (a broken ring), and
        # become blood pool where the ring encloses them (papillary muscles, trabeculae).
        comp, n = ndimage.label(myo_all, structure=_EIGHT)
        near = ndimage.binary_dilation(lv, structure=_EIGHT, iterations=2)
        touching = np.unique(comp[near & myo_all])
        touching = touching[touching > 0]
        if touching.size:
            sizes = ndimage.sum_labels(myo_all, comp, index=touching)
            ring = comp == touching[int(np.argmax(sizes))]
            inside = ndimage.binary_fill_holes(ring)
            myo = ring.copy()
            for k in touching:
                piece = comp == k
                if not np.all(inside[piece]):
                    myo |= piece
        else:
            myo = largest_component(myo_all)
    else:
        myo = largest_component(myo_all)
    heart = ndimage.binary_fill_holes(myo | lv)
    lv = (heart & ~myo) if lv.any() else lv
    lv = largest_component(lv, _FOUR) if lv.any() else lv
    # Pixels enclosed by the ring but cut off from the main pool stay myocardium-free pool.
    enclosed = ndimage.binary_fill_holes(myo) & ~myo
    lv = lv | enclosed
    rv = largest_component((lab == LABEL_RV) & ~lv & ~myo)
    rv = ndimage.binary_fill_holes(rv) & ~lv & ~myo
    out[rv] = LABEL_RV
    out[myo] = LABEL_MYO
    out[lv] = LABEL_LV
    return out


def refine_endocardium(
    labels: NDArray[np.integer], peak_enhancement: NDArray[np.floating], *, blood_fraction: float = 0.5
) -> NDArray[np.uint8]:
    """Give the LV blood pool the myocardium pixels at its edge that enhance like blood.

    The first-pass peak enhancement tells blood from muscle: the pool's (median over its
    interior) is several times the myocardium's (median over the ring). Myocardium pixels
    connected to the pool whose peak is at least ``blood_fraction`` of the way from the
    myocardium's level to the pool's (mostly blood: trabeculae, partial volume at the
    endocardium) join the pool, grown from the pool outwards. The epicardial layer of the ring
    is never taken, and nothing changes when the ring would open or the two levels are not
    clearly apart.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
        Cleaned labels (:func:`clean_labels`).
    peak_enhancement : ndarray, shape (y, x)
        Per-pixel first-pass peak enhancement (any units).
    blood_fraction : float
        Where, between the myocardium's and the pool's level, a pixel counts as blood.

    Returns
    -------
    ndarray, uint8, shape (y, x)
    """
    lab = np.asarray(labels).astype(np.uint8)
    peak = np.asarray(peak_enhancement, dtype=np.float64)
    lv = lab == LABEL_LV
    myo = lab == LABEL_MYO
    if lv.sum() < 9 or myo.sum() < 9 or not ring_is_closed(lab):
        return lab
    interior = ndimage.binary_erosion(lv, structure=_FOUR)
    pool_level = float(np.median(peak[interior if interior.sum() >= 4 else lv]))
    myo_level = float(np.median(peak[myo]))
    if not pool_level > 2.0 * max(myo_level, 0.0):
        return lab
    level = myo_level + blood_fraction * (pool_level - myo_level)
    epicardial = myo & ~ndimage.binary_erosion(ndimage.binary_fill_holes(myo), structure=_FOUR)
    candidates = myo & ~epicardial & (peak >= level)
    grown = lv.copy()
    for _ in range(lab.shape[0] + lab.shape[1]):
        new = candidates & ~grown & ndimage.binary_dilation(grown, structure=_FOUR)
        if not new.any():
            break
        grown |= new
    out = lab.copy()
    out[grown & myo] = LABEL_LV
    return out if ring_is_closed(out) else lab


def fill_pool_hull(labels: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Give the LV blood pool the myocardium inside the pool's convex hull.

    Papillary muscles and trabeculae attached to the wall intrude into the pool as notches and
    belong to it (the manual convention: the myocardium is the compact wall). The endocardial
    border of a short-axis slice is nearly convex, so the myocardium pixels within the convex
    hull of the pool become pool. Nothing changes when the ring would open.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
        Cleaned labels (:func:`clean_labels`).

    Returns
    -------
    ndarray, uint8, shape (y, x)
    """
    lab = np.asarray(labels).astype(np.uint8)
    lv = lab == LABEL_LV
    myo = lab == LABEL_MYO
    if lv.sum() < 9 or not myo.any() or not ring_is_closed(lab):
        return lab
    hull = convex_hull_mask(lv)
    out = lab.copy()
    out[hull & myo] = LABEL_LV
    return out if ring_is_closed(out) else lab


def convex_hull_mask(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels whose centres lie in the convex hull of the pixel centres of ``mask`` (y, x)."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.argwhere(mask).astype(np.float64)
    if pts.shape[0] < 3:
        return np.asarray(mask, dtype=bool)
    try:
        hull = ConvexHull(pts)
    except QhullError:  # collinear pixels
        return np.asarray(mask, dtype=bool)
    lo = pts.min(axis=0).astype(int)
    hi = pts.max(axis=0).astype(int)
    yy, xx = np.mgrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    # Inside when every facet's plane equation is <= 0 (with a small tolerance for edge pixels).
    inside = np.all(grid @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-6, axis=1)
    out = np.zeros(mask.shape, dtype=bool)
    out[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1] = inside.reshape(yy.shape)
    return out | np.asarray(mask, dtype=bool)


def ring_is_closed(labels: NDArray[np.integer]) -> bool:
    """True when the myocardium separates the LV blood pool from the image border."""
    lab = np.asarray(labels)
    lv = lab == LABEL_LV
    if not lv.any() or not (lab == LABEL_MYO).any():
        return False
    outside = ~(lab == LABEL_MYO)
    comp, _ = ndimage.label(np.pad(outside, 1, constant_values=True), structure=_FOUR)
    border_id = comp[0, 0]
    return not bool(np.any(comp[1:-1, 1:-1][lv] == border_id))


def wall_thickness_mm(labels: NDArray[np.integer], spacing_mm: tuple[float, float]) -> float:
    """Mean myocardial thickness: area / mean of endocardial and epicardial perimeters (mm)."""
    lab = np.asarray(labels)
    myo = lab == LABEL_MYO
    if not myo.any():
        return float("nan")
    dy, dx = spacing_mm
    area = float(myo.sum()) * dy * dx
    epi_region = ndimage.binary_fill_holes(myo)
    endo_region = epi_region & ~myo

    def perimeter(m: NDArray[np.bool_]) -> float:
        if not m.any():
            return 0.0
        vert = np.count_nonzero(np.diff(np.pad(m, 1).astype(np.int8), axis=0)) * dx
        horiz = np.count_nonzero(np.diff(np.pad(m, 1).astype(np.int8), axis=1)) * dy
        return float(vert + horiz) * math.pi / 4.0  # staircase length to a smooth contour's length

    p = 0.5 * (perimeter(epi_region) + perimeter(endo_region))
    return area / p if p > 0 else float("nan")


def epicardial_contact(
    labels: NDArray[np.integer], spacing_mm: tuple[float, float], reach_mm: float = 6.0
) -> NDArray[np.bool_]:
    """Epicardial boundary pixels of the myocardium within ``reach_mm`` of the RV blood pool."""
    lab = np.asarray(labels)
    myo = lab == LABEL_MYO
    rv = lab == LABEL_RV
    if not myo.any() or not rv.any():
        return np.zeros(lab.shape, dtype=bool)
    epi_region = ndimage.binary_fill_holes(myo)
    epi_edge = epi_region & ~ndimage.binary_erosion(epi_region, structure=_FOUR)
    d_rv = ndimage.distance_transform_edt(~rv, sampling=spacing_mm)
    return np.asarray(epi_edge & (d_rv <= reach_mm))


def _angles(
    points_yx: NDArray[np.float64], centre_yx: NDArray[np.float64], spacing_mm: tuple[float, float]
) -> NDArray[np.float64]:
    d = (points_yx - centre_yx) * np.asarray(spacing_mm)
    return np.arctan2(d[:, 0], d[:, 1])


def arc_ends(
    labels: NDArray[np.integer], spacing_mm: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The two ends ``(y, x)`` of the LV-RV contact arc on the epicardium (None without RV).

    The contact pixels' angles about the LV centre are sorted; the largest angular gap is the
    free wall, and the pixels on either side of it are the junctions.
    """
    contact = epicardial_contact(labels, spacing_mm)
    if contact.sum() < 3 or not (np.asarray(labels) == LABEL_LV).any():
        return None
    pts = np.argwhere(contact).astype(np.float64)
    centre = np.argwhere(np.asarray(labels) == LABEL_LV).mean(axis=0)
    ang = _angles(pts, centre, spacing_mm)
    order = np.argsort(ang)
    a = ang[order]
    gaps = np.diff(np.concatenate([a, a[:1] + 2 * np.pi]))
    k = int(np.argmax(gaps))
    p_end = pts[order[k]]
    p_start = pts[order[(k + 1) % len(order)]]
    return (float(p_start[0]), float(p_start[1])), (float(p_end[0]), float(p_end[1]))


def snap_to_epicardium(
    point_yx: tuple[float, float], labels: NDArray[np.integer], spacing_mm: tuple[float, float]
) -> tuple[float, float]:
    """The epicardial boundary pixel nearest (in mm) to a point; the point itself without myocardium."""
    lab = np.asarray(labels)
    myo = lab == LABEL_MYO
    if not myo.any():
        return point_yx
    epi_region = ndimage.binary_fill_holes(myo)
    edge = np.argwhere(epi_region & ~ndimage.binary_erosion(epi_region, structure=_FOUR)).astype(np.float64)
    d = np.hypot((edge[:, 0] - point_yx[0]) * spacing_mm[0], (edge[:, 1] - point_yx[1]) * spacing_mm[1])
    p = edge[int(np.argmin(d))]
    return float(p[0]), float(p[1])


def name_junctions(
    p_a: tuple[float, float],
    p_b: tuple[float, float],
    labels: NDArray[np.integer],
    spacing_mm: tuple[float, float],
    geometry: SliceGeometry | None,
) -> tuple[dict[str, tuple[float, float]], bool]:
    """Call one junction point anterior and the other inferior.

    With a geometry, the anterior point is the one further along the in-plane projection of
    patient anterior (LPS (0, -1, 0)); without one, the one nearer the top of the image
    (smaller row), and the second value returned is False (orientation assumed).
    """
    if geometry is not None:
        ant = np.array([0.0, -1.0, 0.0])
        a_y = float(np.dot(ant, geometry.y_direction)) * spacing_mm[0]
        a_x = float(np.dot(ant, geometry.x_direction)) * spacing_mm[1]
        if abs(a_y) + abs(a_x) > 1e-6:
            sa = p_a[0] * a_y + p_a[1] * a_x
            sb = p_b[0] * a_y + p_b[1] * a_x
            first_is_ant = sa >= sb
            return ({"anterior": p_a, "inferior": p_b} if first_is_ant else {"anterior": p_b, "inferior": p_a}), True
    first_is_ant = p_a[0] <= p_b[0]
    return ({"anterior": p_a, "inferior": p_b} if first_is_ant else {"anterior": p_b, "inferior": p_a}), False


@dataclass
class QualityReport:
    """Quality-control flags and figures of one segmented slice."""

    flags: list[str] = field(default_factory=list)
    ring_closed: bool = False
    wall_thickness_mm: float = float("nan")
    mean_confidence_myo: float = float("nan")
    lv_area_mm2: float = 0.0
    myo_area_mm2: float = 0.0
    rv_area_mm2: float = 0.0
    orientation_from_geometry: bool = False
    insertion_source: str = "none"
    labels_per_frame: str = "repeated"
    heart: dict[str, object] = field(default_factory=dict)
    motion: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "flags": list(self.flags),
            "ring_closed": self.ring_closed,
            "wall_thickness_mm": self.wall_thickness_mm,
            "mean_confidence_myo": self.mean_confidence_myo,
            "lv_area_mm2": self.lv_area_mm2,
            "myo_area_mm2": self.myo_area_mm2,
            "rv_area_mm2": self.rv_area_mm2,
            "orientation_from_geometry": self.orientation_from_geometry,
            "insertion_source": self.insertion_source,
            "labels_per_frame": self.labels_per_frame,
            "heart": dict(self.heart),
            "motion": dict(self.motion),
        }


#: Plausible mean LV wall thickness (mm) and minimum mean myocardial confidence.
THICKNESS_RANGE_MM = (3.0, 20.0)
MIN_CONFIDENCE = 0.75


def quality(
    labels: NDArray[np.integer], confidence: NDArray[np.floating], spacing_mm: tuple[float, float]
) -> QualityReport:
    """QC flags: missing structures, open ring, implausible thickness, low confidence."""
    lab = np.asarray(labels)
    px = spacing_mm[0] * spacing_mm[1]
    q = QualityReport()
    q.lv_area_mm2 = float((lab == LABEL_LV).sum() * px)
    q.myo_area_mm2 = float((lab == LABEL_MYO).sum() * px)
    q.rv_area_mm2 = float((lab == LABEL_RV).sum() * px)
    if q.lv_area_mm2 == 0:
        q.flags.append("no_lv_blood_pool")
    if q.myo_area_mm2 == 0:
        q.flags.append("no_myocardium")
    if q.rv_area_mm2 == 0:
        q.flags.append("no_rv")
    q.ring_closed = ring_is_closed(lab)
    if q.myo_area_mm2 > 0 and not q.ring_closed:
        q.flags.append("myocardium_not_closed_ring")
    q.wall_thickness_mm = wall_thickness_mm(lab, spacing_mm)
    if math.isfinite(q.wall_thickness_mm) and not (
        THICKNESS_RANGE_MM[0] <= q.wall_thickness_mm <= THICKNESS_RANGE_MM[1]
    ):
        q.flags.append("implausible_wall_thickness")
    myo = lab == LABEL_MYO
    if myo.any():
        q.mean_confidence_myo = float(np.mean(np.asarray(confidence)[myo]))
        if q.mean_confidence_myo < MIN_CONFIDENCE:
            q.flags.append("low_confidence")
    return q
