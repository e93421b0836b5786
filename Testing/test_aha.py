"""AHA segments: sector maps against an anatomical ground truth in patient space, for every
orientation and flip a slice geometry can express; slice levels; layers; statistics; MPR."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from qperf import aha
from qperf.errors import ValidationError
from qperf.types import PerfusionSeries, SliceGeometry

ANTERIOR = np.array([0.0, -1.0, 0.0])
RIGHT = np.array([-1.0, 0.0, 0.0])
# A realistic LV long axis (base to apex: left, anterior, inferior), not the library's constant.
LONG_AXIS = np.array([0.72, -0.42, -0.55]) / np.linalg.norm([0.72, -0.42, -0.55])
CENTER_LPS = np.array([30.0, -20.0, 40.0])
R_IN_MM, R_OUT_MM = 20.0, 30.0
INSERTION_DEG = 27.0  # anatomical angle of the anterior insertion point from anterior, towards the septum

# The AHA sectors written out as angle ranges from the anterior insertion point, towards the septum.
SECTORS = {
    "basal": [(0, 60, 2), (60, 120, 3), (120, 180, 4), (180, 240, 5), (240, 300, 6), (300, 360, 1)],
    "mid": [(0, 60, 8), (60, 120, 9), (120, 180, 10), (180, 240, 11), (240, 300, 12), (300, 360, 7)],
    "apical": [(15, 105, 14), (105, 195, 15), (195, 285, 16), (285, 375, 13)],
}


def anatomical_frame(long_axis: np.ndarray = LONG_AXIS) -> tuple[np.ndarray, np.ndarray]:
    """In-plane anterior and septal unit vectors of a short-axis plane (independent truth).

    The septum is found as the side of the RV: the RV lies to the patient's right of the LV,
    so the septal direction is the in-plane direction perpendicular to anterior that points
    to the patient's right.
    """
    a = ANTERIOR - ANTERIOR.dot(long_axis) * long_axis
    a /= np.linalg.norm(a)
    s = np.cross(long_axis, a)
    if s.dot(RIGHT) < 0:
        s = -s
    return a, s


def expected_segment(phi_deg: np.ndarray, level: str) -> np.ndarray:
    rel = (phi_deg - INSERTION_DEG) % 360.0
    out = np.zeros(phi_deg.shape, dtype=int)
    for lo, hi, seg in SECTORS[level]:
        out[((rel - lo) % 360.0) < (hi - lo)] = seg
    return out


@dataclass
class Ring:
    labels: np.ndarray
    geometry: SliceGeometry
    spacing_mm: tuple[float, float]
    center_yx: tuple[float, float]
    insertion_yx: tuple[float, float]
    phi_deg: np.ndarray  # anatomical angle of every pixel centre
    r_mm: np.ndarray


def make_ring(
    rotation_deg: float, flip_x: bool, flip_y: bool, swap: bool, *, long_axis: np.ndarray = LONG_AXIS, n: int = 64
) -> Ring:
    """A myocardial ring with an RV in a short-axis plane, imaged with the given in-plane axes."""
    a, s = anatomical_frame(long_axis)
    t = math.radians(rotation_deg)
    xd = math.cos(t) * a + math.sin(t) * s
    yd = -math.sin(t) * a + math.cos(t) * s
    xd, yd = (-xd if flip_x else xd), (-yd if flip_y else yd)
    if swap:
        xd, yd = yd, xd
    spacing = (1.6, 1.25)  # (dy, dx), anisotropic so that angles must be physical
    center_px = np.array([n / 2 - 0.3, n / 2 + 0.4])  # (y, x)
    origin = CENTER_LPS - center_px[1] * spacing[1] * xd - center_px[0] * spacing[0] * yd
    geom = SliceGeometry(origin_mm=tuple(origin), x_direction=tuple(xd), y_direction=tuple(yd))
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    p = geom.pixel_to_lps(yy, xx, spacing) - CENTER_LPS
    r = np.linalg.norm(p, axis=-1)
    phi = np.degrees(np.arctan2(p @ s, p @ a))
    labels = np.zeros((n, n), dtype=np.int16)
    labels[r < R_IN_MM] = 1
    labels[(r >= R_IN_MM) & (r < R_OUT_MM)] = 2
    rv_center = math.cos(math.radians(70)) * a + math.sin(math.radians(70)) * s
    rv = np.linalg.norm(p - (R_OUT_MM + 9.0) * rv_center, axis=-1) < 11.0
    labels[rv & (labels == 0)] = 3
    ins = R_OUT_MM * (math.cos(math.radians(INSERTION_DEG)) * a + math.sin(math.radians(INSERTION_DEG)) * s)
    ins_yx = (ins.dot(yd) / spacing[0] + center_px[0], ins.dot(xd) / spacing[1] + center_px[1])
    return Ring(labels, geom, spacing, (float(center_px[0]), float(center_px[1])), ins_yx, phi, r)


ORIENTATIONS = [
    (rot, fx, fy, sw)
    for rot in (0.0, 37.5, 90.0, 201.0, 290.0)
    for fx in (False, True)
    for fy in (False, True)
    for sw in (False, True)
]


def _away_from_boundaries(ring: Ring, level: str, margin_deg: float = 1e-6) -> np.ndarray:
    rel = (ring.phi_deg - INSERTION_DEG) % 360.0
    edges = np.array([lo for lo, _, _ in SECTORS[level]], dtype=float)
    d = np.abs(((rel[..., None] - edges) + 180.0) % 360.0 - 180.0).min(axis=-1)
    return d > margin_deg


@pytest.mark.parametrize("level", aha.LEVELS)
@pytest.mark.parametrize(("rotation", "flip_x", "flip_y", "swap"), ORIENTATIONS)
def test_segment_map_matches_anatomy_for_every_orientation(level, rotation, flip_x, flip_y, swap):
    ring = make_ring(rotation, flip_x, flip_y, swap)
    myo = ring.labels == 2
    seg = aha.segment_map(
        myo, ring.center_yx, ring.insertion_yx, level, spacing_mm=ring.spacing_mm, geometry=ring.geometry
    )
    expected = np.where(myo, expected_segment(ring.phi_deg, level), 0)
    check = _away_from_boundaries(ring, level)
    assert np.array_equal(seg[check], expected[check])
    assert set(np.unique(seg[myo])) == set(aha.LEVEL_SEGMENTS[level])
    assert np.all(seg[~myo] == 0)


@pytest.mark.parametrize(("rotation", "flip_x", "flip_y", "swap"), ORIENTATIONS[::3])
def test_analyse_slice_from_labels_and_rv_side(rotation, flip_x, flip_y, swap):
    ring = make_ring(rotation, flip_x, flip_y, swap)
    res = aha.analyse_slice(ring.labels, ring.insertion_yx, "mid", spacing_mm=ring.spacing_mm, geometry=ring.geometry)
    myo = ring.labels == 2
    expected = np.where(myo, expected_segment(ring.phi_deg, "mid"), 0)
    # centre from the blood-pool centroid: agreement except within a pixel of the boundaries
    assert np.mean(res.segments[myo] == expected[myo]) > 0.97
    assert res.frame.insertion_from_anterior_deg == pytest.approx(INSERTION_DEG, abs=1.5)
    assert res.frame.sense_source == "geometry"
    by_rv = aha.septum_clockwise_from_rv(ring.labels, ring.insertion_yx, spacing_mm=ring.spacing_mm)
    assert by_rv == res.frame.septum_clockwise
    # the explicit sense reproduces the geometry's result, the opposite mirrors it
    same = aha.segment_map(
        myo,
        res.frame.center_yx,
        ring.insertion_yx,
        "mid",
        spacing_mm=ring.spacing_mm,
        geometry=None,
        septum_clockwise=by_rv,
    )
    assert np.array_equal(same, res.segments)
    mirrored = aha.segment_map(
        myo,
        res.frame.center_yx,
        ring.insertion_yx,
        "mid",
        spacing_mm=ring.spacing_mm,
        geometry=ring.geometry,
        septum_clockwise=not by_rv,
    )
    assert np.mean(mirrored[myo] == res.segments[myo]) < 0.5


def test_axial_like_and_oblique_long_axes():
    for axis in ([0.0, 0.0, -1.0], [0.9, -0.3, -0.3], [0.4, -0.8, -0.45]):
        la = np.asarray(axis) / np.linalg.norm(axis)
        for orient in ORIENTATIONS[::5]:
            ring = make_ring(*orient, long_axis=la)
            myo = ring.labels == 2
            seg = aha.segment_map(
                myo, ring.center_yx, ring.insertion_yx, "basal", spacing_mm=ring.spacing_mm, geometry=ring.geometry
            )
            check = _away_from_boundaries(ring, "basal") & myo
            assert np.array_equal(seg[check], expected_segment(ring.phi_deg, "basal")[check])


def test_segment_map_errors():
    ring = make_ring(0.0, False, False, False)
    myo = ring.labels == 2
    with pytest.raises(ValidationError, match="geometry"):
        aha.segment_map(myo, ring.center_yx, ring.insertion_yx, "mid", spacing_mm=ring.spacing_mm, geometry=None)
    with pytest.raises(ValidationError, match="level"):
        aha.segment_map(
            myo, ring.center_yx, ring.insertion_yx, "top", spacing_mm=ring.spacing_mm, geometry=ring.geometry
        )
    with pytest.raises(ValidationError, match="insertion_yx"):
        aha.segment_map(myo, ring.center_yx, ring.center_yx, "mid", spacing_mm=ring.spacing_mm, geometry=ring.geometry)
    with pytest.raises(ValidationError, match="spacing_mm"):
        aha.segment_map(myo, ring.center_yx, ring.insertion_yx, "mid", spacing_mm=("a", "b"), geometry=ring.geometry)
    with pytest.raises(ValidationError, match="spacing_mm"):
        aha.segment_map(myo, ring.center_yx, ring.insertion_yx, "mid", spacing_mm=(0, 1), geometry=ring.geometry)
    long_axis_view = SliceGeometry(x_direction=(0.0, -1.0, 0.0), y_direction=(-0.7071, 0.0, 0.7071))
    with pytest.raises(ValidationError, match="short-axis"):
        aha.segment_map(
            myo, ring.center_yx, ring.insertion_yx, "mid", spacing_mm=ring.spacing_mm, geometry=long_axis_view
        )
    with pytest.raises(ValidationError, match="anterior"):
        aha.anterior_angle_deg(SliceGeometry(x_direction=(1.0, 0.0, 0.0), y_direction=(0.0, 0.0, 1.0)))
    with pytest.raises(ValidationError, match="RV"):
        aha.septum_clockwise_from_rv(np.where(ring.labels == 3, 0, ring.labels), ring.insertion_yx, spacing_mm=(1, 1))


def test_table_and_territories():
    assert sorted(aha.SEGMENTS) == list(range(1, 17))
    assert aha.TERRITORIES == {"LAD": (1, 2, 7, 8, 13, 14), "RCA": (3, 4, 9, 10, 15), "LCx": (5, 6, 11, 12, 16)}
    assert aha.LEVEL_SEGMENTS["apical"] == (13, 14, 15, 16)
    assert aha.SEGMENTS[9].name == "mid inferoseptal" and aha.SEGMENTS[9].level == "mid"


def _series(position=None, geometry=None):
    return PerfusionSeries(np.zeros((3, 4, 4)), [0.0, 1.0, 2.0], geometry=geometry, slice_position_mm=position)


def test_slice_levels_from_positions_geometry_and_order():
    res = aha.slice_levels([_series(0.0), _series(12.0), _series(-11.0)])
    assert res.levels == ("mid", "basal", "apical") and res.source == "slice_position"
    a, s = anatomical_frame()
    for normal_sign in (1, -1):
        xd, yd = (a, s) if normal_sign > 0 else (s, a)
        geoms = [
            SliceGeometry(
                origin_mm=tuple(CENTER_LPS + k * 9.0 * LONG_AXIS + 3.0 * a),
                x_direction=tuple(xd),
                y_direction=tuple(yd),
            )
            for k in (1, 2, 0)  # mid, apical, basal
        ]
        res = aha.slice_levels([_series(geometry=g) for g in geoms])
        assert res.levels == ("mid", "apical", "basal") and res.source == "geometry"
        assert aha.slice_levels(geoms).levels == ("mid", "apical", "basal")
    assert aha.slice_levels([_series(), _series(), _series()]).levels == ("basal", "mid", "apical")
    res = aha.slice_levels([None, None, None], base_first=False)
    assert res.levels == ("apical", "mid", "basal") and res.source == "order"
    assert aha.slice_levels([None]).levels == ("mid",)
    assert aha.slice_levels([None, None]).levels == ("basal", "apical")
    assert aha.slice_levels([None] * 4).levels == ("basal", "mid", "mid", "apical")
    res = aha.slice_levels([None, None], levels=["mid", "basal"])
    assert res.levels == ("mid", "basal") and res.source == "override" and res.basal_rank == (1, 0)
    with pytest.raises(ValidationError, match="levels"):
        aha.slice_levels([None, None], levels=["mid"])
    with pytest.raises(ValidationError, match="slices"):
        aha.slice_levels([])


def test_transmural_depth_and_layers():
    ring = make_ring(20.0, False, True, False, n=96)
    myo = ring.labels == 2
    depth = aha.transmural_depth(myo, ring.labels == 1, spacing_mm=ring.spacing_mm)
    assert np.all(np.isnan(depth[~myo])) and np.all((depth[myo] > 0) & (depth[myo] < 1))
    true_depth = (ring.r_mm - R_IN_MM) / (R_OUT_MM - R_IN_MM)
    assert np.median(np.abs(depth[myo] - true_depth[myo])) < 0.12
    # without a pool mask the enclosed region is used
    assert np.allclose(aha.transmural_depth(myo, spacing_mm=ring.spacing_mm)[myo], depth[myo])
    layers = aha.myocardial_layers(depth)
    mid_r = (R_IN_MM + R_OUT_MM) / 2
    assert np.mean(ring.r_mm[layers == aha.LAYER_ENDO] < mid_r + 1.0) > 0.98
    assert np.mean(ring.r_mm[layers == aha.LAYER_EPI] > mid_r - 1.0) > 0.98
    assert abs(np.sum(layers == 1) - np.sum(layers == 2)) < 0.35 * myo.sum()


def test_segment_stats_match_direct_computation(rng):
    ring = make_ring(0.0, True, False, False)
    sectors = [
        aha.analyse_slice(ring.labels, ring.insertion_yx, lv, spacing_mm=ring.spacing_mm, geometry=ring.geometry)
        for lv in aha.LEVELS
    ]
    segs = [s.segments for s in sectors]
    mbf = [rng.normal(2.5, 0.4, ring.labels.shape) for _ in sectors]
    mbf[1][ring.labels == 2] += np.where(sectors[1].segments[ring.labels == 2] == 9, -1.0, 0.0)
    mbf[0][(ring.labels == 2) & (np.arange(64)[None, :] % 7 == 0)] = np.nan
    ps = [m * 0.5 for m in mbf]
    st = aha.segment_stats({"mbf_ml_min_g": mbf, "ps_ml_min_g": ps}, segs, layers=[s.layers for s in sectors])
    allseg = np.concatenate([s.ravel() for s in segs])
    allmbf = np.concatenate([m.ravel() for m in mbf])
    alllay = np.concatenate([s.layers.ravel() for s in sectors])
    for n in range(1, 17):
        v = allmbf[allseg == n]
        got = st.get(n, "mbf_ml_min_g")
        assert got.n_pixels == v.size and got.n_valid == np.isfinite(v).sum()
        assert got.mean == pytest.approx(np.nanmean(v)) and got.median == pytest.approx(np.nanmedian(v))
        assert got.sd == pytest.approx(np.nanstd(v, ddof=1))
        assert st.get(n, "ps_ml_min_g").mean == pytest.approx(0.5 * np.nanmean(v))
        e = allmbf[(allseg == n) & (alllay == 1)]
        assert st.get(n, "mbf_ml_min_g", "endo").mean == pytest.approx(np.nanmean(e))
    assert st.get(9, "mbf_ml_min_g").mean == pytest.approx(1.5, abs=0.15)
    lad = np.isin(allseg, [1, 2, 7, 8, 13, 14])
    assert st.get("LAD", "mbf_ml_min_g").mean == pytest.approx(np.nanmean(allmbf[lad]))
    assert st.get("global", "mbf_ml_min_g").n_pixels == 3 * (ring.labels == 2).sum()
    assert st.slices[3] == (0,) and st.slices[9] == (1,) and st.slices[15] == (2,)
    # a single slice: segments of other levels are empty, NaN
    one = aha.segment_stats({"mbf_ml_min_g": mbf[1]}, segs[1])
    assert one.get(1, "mbf_ml_min_g").n_pixels == 0 and math.isnan(one.get(1, "mbf_ml_min_g").mean)
    with pytest.raises(ValidationError, match="shape"):
        aha.segment_stats({"mbf_ml_min_g": mbf[1][:10]}, segs[1])
    with pytest.raises(ValidationError, match="0-16"):
        aha.segment_stats({"mbf_ml_min_g": mbf[1]}, segs[1] + 17)
    with pytest.raises(ValidationError, match="map_name"):
        one.get(1, "vp_ml_g")


def test_perfusion_reserve():
    mpr = aha.perfusion_reserve({"1": 3.0, "2": 2.0, "global": 2.5, "3": 1.0}, {"1": 1.0, "2": 0.0, "global": 1.25})
    assert mpr["1"] == 3.0 and math.isnan(mpr["2"]) and mpr["global"] == 2.0 and "3" not in mpr


@pytest.fixture(scope="module")
def phantom_studies():
    from qperf import phantom

    return [
        phantom.generate_study(seed=seed, n_frames=10, motion=False, noise=False, aif_images=False) for seed in range(6)
    ]


def test_phantom_levels_segments_and_statistics(phantom_studies):
    senses = set()
    for ps in phantom_studies:
        truth = ps.truth
        levels = aha.slice_levels(ps.study.slices)
        assert levels.levels == tuple(t.level for t in truth.slices)
        assert aha.slice_levels([s.geometry for s in ps.study.slices]).levels == levels.levels
        segs = []
        for s, t in zip(ps.study.slices, truth.slices, strict=True):
            res = aha.analyse_slice(
                t.labels_ref.astype(np.int16),
                t.insertion_points_yx["anterior"],
                levels.levels[len(segs)],
                spacing_mm=s.spacing_mm,
                geometry=s.geometry,
            )
            senses.add(res.frame.sense)
            myo = t.labels_ref == 2
            assert np.mean(res.segments[myo] == t.aha_segments[myo]) > 0.99
            for n in np.unique(t.aha_segments[myo]):  # every segment assigned correctly
                values, counts = np.unique(res.segments[t.aha_segments == n], return_counts=True)
                assert values[np.argmax(counts)] == n
            assert 0.0 < res.frame.insertion_from_anterior_deg < 90.0
            segs.append(res.segments)
        st = aha.segment_stats({"mbf_ml_min_g": [t.mbf_ml_min_g for t in truth.slices]}, segs)
        for n, row in truth.segments.items():
            got = st.get(n, "mbf_ml_min_g")
            assert got.n_pixels == row["n_pixels"]
            assert got.mean == pytest.approx(row["mbf_ml_min_g"], rel=1e-5)
    assert senses == {1, -1}  # the phantom draws both image orientations
