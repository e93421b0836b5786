"""Report: numbers against the maps they come from, schema, files, figures and colour map."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from test_aha import make_ring

from qperf import aha, colormaps, report
from qperf.errors import OutputExistsError, ValidationError
from qperf.report.figures import MPR_RANGE
from qperf.report.schema import map_keys

REPO = Path(__file__).resolve().parents[1]


def make_slices(rng, orientations=((37.5, True, False, False),) * 3, scale=1.0, nan_fraction=0.0):
    slices = []
    for i, (level, orient) in enumerate(zip(aha.LEVELS, orientations, strict=True)):
        ring = make_ring(*orient, n=72)
        sec = aha.analyse_slice(
            ring.labels, ring.insertion_yx, level, spacing_mm=ring.spacing_mm, geometry=ring.geometry
        )
        mbf = rng.normal(2.6, 0.35, ring.labels.shape) * scale
        mbf[np.isin(sec.segments, aha.TERRITORIES["RCA"])] *= 0.45  # an RCA defect
        mbf[(ring.labels == 2) & (rng.random(ring.labels.shape) < nan_fraction)] = np.nan
        maps = {"mbf_ml_min_g": mbf, "vp_ml_g": rng.uniform(0.03, 0.08, mbf.shape), "nrmse": rng.random(mbf.shape)}
        slices.append(report.SliceResult(sec, maps, ring.labels, f"slice {i + 1}", ring.geometry))
    return slices


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(7)
    slices = make_slices(
        rng,
        orientations=[(0.0, False, False, False), (201.0, True, False, True), (90.0, False, True, False)],
        nan_fraction=0.03,
    )
    rep = report.build_report(
        slices,
        study_name="ring study",
        condition="stress",
        level_source="order",
        timings_s={"segments": 0.01},
        qc={"motion_score": 0.9, "warnings": ["earlier step"], "aif": {"peak": np.float32(np.inf)}},
    )
    return slices, rep


def test_report_numbers_match_the_maps(study):
    slices, rep = study
    report.validate_report(rep)
    json.dumps(rep, allow_nan=False)  # strict JSON: no NaN anywhere
    seg = np.concatenate([s.sectors.segments.ravel() for s in slices])
    lay = np.concatenate([s.sectors.layers.ravel() for s in slices])
    for name in ("mbf_ml_min_g", "vp_ml_g", "nrmse"):
        vals = np.concatenate([s.maps[name].ravel() for s in slices])
        k = map_keys(name)
        for n in range(1, 17):
            entry = rep["segments"][str(n)]
            v = vals[seg == n]
            assert entry["n_pixels"] == v.size > 0
            assert entry[k["n_valid"]] == np.isfinite(v).sum()
            assert entry[k["mean"]] == pytest.approx(np.nanmean(v))
            assert entry[k["median"]] == pytest.approx(np.nanmedian(v))
            assert entry[k["sd"]] == pytest.approx(np.nanstd(v, ddof=1))
            assert entry["epi"][k["mean"]] == pytest.approx(np.nanmean(vals[(seg == n) & (lay == 2)]))
            assert entry["endo"]["n_pixels"] + entry["epi"]["n_pixels"] == entry["n_pixels"]
        rca = np.isin(seg, [3, 4, 9, 10, 15])
        assert rep["territories"]["RCA"][k["mean"]] == pytest.approx(np.nanmean(vals[rca]))
        assert rep["global"][k["mean"]] == pytest.approx(np.nanmean(vals[seg > 0]))
    for i, s in enumerate(slices):
        e = rep["slices"][i]
        m = s.sectors.segments > 0
        assert e["mbf_mean_ml_min_g"] == pytest.approx(np.nanmean(s.maps["mbf_ml_min_g"][m]))
        assert e["level"] == aha.LEVELS[i] and e["segments"] == list(aha.LEVEL_SEGMENTS[aha.LEVELS[i]])
        assert e["insertion_from_anterior_deg"] == pytest.approx(27.0, abs=2.0)
    assert rep["segments"]["9"]["level"] == "mid" and rep["segments"]["9"]["slices"] == [1]
    assert rep["segments"]["9"]["mbf_mean_ml_min_g"] < 0.6 * rep["segments"]["8"]["mbf_mean_ml_min_g"]
    assert rep["qc"]["motion_score"] == 0.9 and rep["qc"]["warnings"] == ["earlier step"]
    assert rep["qc"]["aif"] == {"peak": None}
    assert rep["qc"]["n_invalid_pixels"] == rep["global"]["n_pixels"] - rep["global"]["mbf_n_valid"] > 0
    assert list(rep["maps"]) == ["mbf_ml_min_g", "nrmse", "vp_ml_g"]
    assert rep["maps"]["vp_ml_g"] == {"quantity": "vp", "unit": "ml/g"}


def test_missing_levels_and_qc_warnings(rng):
    slices = make_slices(rng)[1:2]  # the mid slice only
    rep = report.build_report(slices)
    assert rep["segments"]["1"]["n_pixels"] == 0 and rep["segments"]["1"]["mbf_mean_ml_min_g"] is None
    assert rep["segments"]["1"]["slices"] == []
    assert any("no basal slice" in w for w in rep["qc"]["warnings"])
    assert any("no apical slice" in w for w in rep["qc"]["warnings"])
    single = report.build_report(slices[0])  # one SliceResult, not in a list
    assert single["segments"]["7"]["n_pixels"] == rep["segments"]["7"]["n_pixels"] > 0
    bad = slices[0]
    mbf = bad.maps["mbf_ml_min_g"].copy()
    mbf[bad.sectors.segments > 0] = np.nan
    rep = report.build_report([report.SliceResult(bad.sectors, {"mbf_ml_min_g": mbf})])
    assert rep["global"]["mbf_mean_ml_min_g"] is None and any("no valid MBF" in w for w in rep["qc"]["warnings"])


def test_schema_validation(study):
    _, rep = study
    ok = copy.deepcopy(rep)
    ok["schema_version"] = "1.3"
    ok["added_in_1_3"] = {"anything": 1}
    report.validate_report(ok)
    mutations = {
        "schema": lambda r: r.update(schema="other"),
        "2.0": lambda r: r.update(schema_version="2.0"),
        "segments": lambda r: r["segments"].pop("16"),
        "mid inferoseptal": lambda r: r["segments"]["9"].update(name="mid inferior"),
        "finite number": lambda r: r["segments"]["3"].update(mbf_mean_ml_min_g=float("nan")),
        "mbf_median_ml_min_g": lambda r: r["global"].pop("mbf_median_ml_min_g"),
        "endo": lambda r: r["territories"]["LAD"].pop("endo"),
        "mbf_ml_min_g": lambda r: r["maps"].pop("mbf_ml_min_g"),
        "list of 3 slices": lambda r: r["slices"].pop(),
        "warnings": lambda r: r["qc"].update(warnings="none"),
        "non-negative integer": lambda r: r["segments"]["5"].update(n_pixels=-1),
        "level": lambda r: r["slices"][0].update(level="top"),
    }
    for expected, mutate in mutations.items():
        bad = copy.deepcopy(rep)
        mutate(bad)
        with pytest.raises(ValidationError, match=expected):
            report.validate_report(bad)


def test_map_names():
    assert report.split_map_name("mbf_ml_min_g") == ("mbf", "_ml_min_g")
    assert report.split_map_name("ps_ml_min_g_sd") == ("ps_sd", "_ml_min_g")
    assert report.split_map_name("delay_s") == ("delay", "_s") and report.split_map_name("nrmse") == ("nrmse", "")
    assert report.map_keys("ps_ml_min_g_sd")["mean"] == "ps_sd_mean_ml_min_g"
    with pytest.raises(ValidationError, match="map name"):
        report.split_map_name("mbf ml/min/g")


def test_build_report_errors(rng):
    s = make_slices(rng)[0]
    with pytest.raises(ValidationError, match="mbf_ml_min_g"):
        report.build_report([report.SliceResult(s.sectors, {"ps_ml_min_g": s.maps["mbf_ml_min_g"]})])
    with pytest.raises(ValidationError, match="shape"):
        report.build_report([report.SliceResult(s.sectors, {"mbf_ml_min_g": s.maps["mbf_ml_min_g"][:5]})])
    with pytest.raises(ValidationError, match="distinct"):
        m = s.maps["mbf_ml_min_g"]
        report.build_report(
            [report.SliceResult(s.sectors, {"mbf_ml_min_g": m, "ps_ml_min_g_sd": m, "ps_sd_ml_min_g": m})]
        )
    with pytest.raises(ValidationError, match="condition"):
        report.build_report([s], condition="exercise")
    with pytest.raises(ValidationError, match="slices"):
        report.build_report([])


def test_perfusion_reserve_report(rng, tmp_path):
    rest_slices = make_slices(np.random.default_rng(3), scale=0.4)
    stress_slices = [
        report.SliceResult(
            s.sectors,
            {k: (v * 2.5 if k == "mbf_ml_min_g" else v) for k, v in s.maps.items()},
            s.labels,
            s.name,
            s.geometry,
        )
        for s in rest_slices
    ]
    stress = report.build_report(stress_slices, condition="stress")
    rest = report.build_report(rest_slices, condition="rest", study_name="rest")
    combined = report.add_perfusion_reserve(stress, rest)
    assert stress["mpr"] is None and combined["mpr"]["rest_study"] == "rest"
    for key in [*map(str, range(1, 17)), "LAD", "RCA", "LCx", "global"]:
        assert combined["mpr"]["values"][key] == pytest.approx(2.5)
    figs = report.render_figures(combined, stress_slices)
    assert figs.mpr_bullseye_png is not None and report.render_figures(stress, stress_slices).mpr_bullseye_png is None
    with pytest.raises(ValidationError, match="segments 1-16"):
        report.bullseye_figure(combined["mpr"]["values"])  # territories are not segments
    lo, hi = MPR_RANGE
    fig = report.bullseye_figure({n: combined["mpr"]["values"][str(n)] for n in range(1, 17)}, vmin=lo, vmax=hi)
    png = imread(io.BytesIO(figs.mpr_bullseye_png))
    assert np.abs(_pixel(fig, (0.0, 0.87), png) - colormaps.perfusion_rgb((2.5 - lo) / (hi - lo))).max() < 4 / 255
    html_page = report.render_html(combined, figs)
    assert html_page.count("data:image/png;base64,") == 5 and "MPR" in html_page
    written = report.write_report(combined, figs, tmp_path / "mpr")
    assert (
        tmp_path / "mpr" / "mpr_bullseye.png"
    ).read_bytes() == figs.mpr_bullseye_png and "mpr_bullseye.png" in written
    with open(tmp_path / "mpr" / "report.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["region"] == "global" and r["layer"] == "all")
    assert float(row["mpr"]) == pytest.approx(2.5)
    with pytest.raises(ValidationError, match="rest study"):
        report.add_perfusion_reserve(stress, stress)


def _pixel(fig, data_xy, png):
    x, y = fig.axes[0].transData.transform(data_xy)
    return png[int(round(png.shape[0] - y)), int(round(x)), :3]


# The standard bull's-eye layout: centre angle of each segment (counter-clockwise from the right;
# anterior at the top, septum on the left), basal ring outside, apical inside.
LAYOUT_DEG = {1: 90, 2: 150, 3: 210, 4: 270, 5: 330, 6: 30, 13: 90, 14: 180, 15: 270, 16: 0}
LAYOUT_DEG.update({n + 6: LAYOUT_DEG[n] for n in range(1, 7)})


def test_bullseye_colours_match_the_colour_map():
    from qperf.report.figures import BULLSEYE_RINGS

    assert BULLSEYE_RINGS["basal"][0] >= BULLSEYE_RINGS["mid"][1] >= BULLSEYE_RINGS["mid"][0]
    assert BULLSEYE_RINGS["mid"][0] >= BULLSEYE_RINGS["apical"][1] > BULLSEYE_RINGS["apical"][0] > 0
    values = {n: 0.3 * n for n in range(1, 17)}
    values[11] = None
    fig = report.bullseye_figure(values, vmin=0.0, vmax=6.0)
    png = imread(io.BytesIO(report.figure_bytes(fig, "png", dpi=100)))
    assert png.shape[:2] == (500, 600)
    for n, v in values.items():
        r0, r1 = BULLSEYE_RINGS[aha.SEGMENTS[n].level]
        half = 30.0 if n < 13 else 45.0
        # two points per segment, away from the printed text and the white borders
        for da, fr in ((-0.6, 0.25), (0.6, 0.75)):
            r = r0 + fr * (r1 - r0)
            t = math.radians(LAYOUT_DEG[n] + da * half)
            got = _pixel(fig, (r * math.cos(t), r * math.sin(t)), png)
            want = colormaps.perfusion_rgb(v / 6.0) if v is not None else np.array([0.82, 0.82, 0.82])
            assert np.abs(got - want).max() < 4 / 255, (n, got, want)
    svg = report.figure_bytes(fig, "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    with pytest.raises(ValidationError, match="segments 1-16"):
        report.bullseye_figure({17: 1.0})


def _territory_pixels(png):
    rgb = png[..., :3]
    return {
        "LAD": np.sum((rgb[..., 0] > 0.9) & (rgb[..., 1] > 0.9) & (rgb[..., 2] < 0.1)),
        "RCA": np.sum((rgb[..., 0] < 0.1) & (rgb[..., 1] > 0.9) & (rgb[..., 2] < 0.1)),
        "LCx": np.sum((rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.1) & (rgb[..., 2] < 0.1)),
    }


@pytest.mark.parametrize(
    ("rotation", "flip_x", "flip_y", "swap"),
    [(0.0, False, False, False), (37.5, True, False, False), (201.0, False, True, True), (290.0, True, True, False)],
)
def test_standard_display_orientation(rotation, flip_x, flip_y, swap):
    ring = make_ring(rotation, flip_x, flip_y, swap)
    sec = aha.analyse_slice(ring.labels, ring.insertion_yx, "mid", spacing_mm=ring.spacing_mm, geometry=ring.geometry)
    d = report.display_orientation(sec.frame.anterior_angle_deg, sec.frame.septum_clockwise)
    shown = d.array(sec.segments)
    dy, dx = d.spacing(ring.spacing_mm)
    cy, cx = d.point(sec.frame.center_yx, sec.segments.shape)
    yx = {n: np.argwhere(shown == n).mean(axis=0) for n in (7, 9, 10, 12)}
    assert (yx[7][0] - cy) * dy < -5 and (yx[10][0] - cy) * dy > 5  # anterior above, inferior below
    assert (yx[9][1] - cx) * dx < -5 and (yx[12][1] - cx) * dx > 5  # septum left, lateral right
    assert abs(d.anterior_angle_deg + 90.0) <= 45.0


def test_flowmap_figure_draws_territory_contours(study):
    slices, _ = study
    s = slices[1]
    fig = report.flowmap_figure(
        np.zeros_like(s.maps["mbf_ml_min_g"]),
        spacing_mm=s.sectors.frame.spacing_mm,
        segments=s.sectors.segments,
        labels=s.labels,
    )
    counts = _territory_pixels(imread(io.BytesIO(report.figure_bytes(fig))))
    assert all(c > 50 for c in counts.values()), counts
    fig = report.flowmap_figure(np.zeros_like(s.maps["mbf_ml_min_g"]), spacing_mm=(1.0, 1.0))
    assert all(c < 5 for c in _territory_pixels(imread(io.BytesIO(report.figure_bytes(fig)))).values())
    with pytest.raises(ValidationError, match="segments"):
        report.flowmap_figure(np.zeros((5, 5)), spacing_mm=(1, 1), segments=np.zeros((4, 5), int))


def test_write_report_files(study, tmp_path):
    slices, rep = study
    figs = report.render_figures(rep, slices)
    assert [n for n, _ in figs.flowmaps_png] == ["flowmap_1_basal.png", "flowmap_2_mid.png", "flowmap_3_apical.png"]
    out = tmp_path / "out"
    written = report.write_report(rep, figs, out)
    assert sorted(written) == sorted([*report.REPORT_FILES, *[n for n, _ in figs.flowmaps_png]])
    back = report.read_report(out)
    assert back == json.loads(json.dumps(rep))
    with open(out / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 * 3
    row = next(r for r in rows if r["region"] == "10" and r["layer"] == "endo")
    assert float(row["mbf_mean_ml_min_g"]) == pytest.approx(rep["segments"]["10"]["endo"]["mbf_mean_ml_min_g"])
    assert int(row["n_pixels"]) == rep["segments"]["10"]["endo"]["n_pixels"]
    page = (out / "report.html").read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert len(links) == 4 and all(link.startswith("data:image/png;base64,") for link in links)  # self-contained
    assert "<script" not in page and "<link" not in page
    first = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first) == (out / "bullseye.png").read_bytes() == figs.bullseye_png
    assert imread(out / "flowmap_2_mid.png").shape[2] in (3, 4)
    before = (out / "report.json").read_bytes()
    (out / "maps.nrrd").write_text("other output")
    with pytest.raises(OutputExistsError):
        report.write_report(rep, figs, out)
    assert (out / "report.json").read_bytes() == before
    changed = copy.deepcopy(rep)
    changed["study"]["name"] = "renamed"
    changed["qc"]["motion"] = {"score": np.float32(np.nan), "shift_mm": np.array([0.5, 1.0]), "ok": np.bool_(True)}
    changed["timings_s"]["figures"] = np.float64(0.25)
    report.write_report(changed, figs, out, overwrite=True)
    back = report.read_report(out / "report.json")
    assert back["study"]["name"] == "renamed" and back["timings_s"]["figures"] == 0.25
    assert back["qc"]["motion"] == {"score": None, "shift_mm": [0.5, 1.0], "ok": True}
    assert (out / "maps.nrrd").read_text() == "other output"
    with pytest.raises(ValidationError, match="parent"):
        report.write_report(rep, figs, tmp_path / "missing" / "out")


def test_perfusion_colour_map():
    for pos, rgb in colormaps.PERFUSION_ANCHORS:
        assert np.allclose(colormaps.perfusion_rgb(pos), rgb)
    colors = colormaps.perfusion_colors(256)
    lum = colors @ [0.299, 0.587, 0.114]
    assert lum[0] < 0.02 and lum[-1] > 0.9 and lum[:20].max() < lum[60]
    hue_order = [colormaps.perfusion_rgb(f) for f in (0.2, 0.34, 0.48, 0.63, 0.8)]
    assert np.argmax(hue_order[0]) == 2 and np.argmax(hue_order[2]) == 1 and np.argmax(hue_order[4]) == 0
    assert math.isclose(colormaps.perfusion_rgb(float("nan")).sum(), 0.0)
    with pytest.raises(ValidationError, match="n:"):
        colormaps.perfusion_colors(1)


def test_slicer_color_table_in_repository_is_current(tmp_path):
    committed = (REPO / "Resources" / "ColorTables" / "QPerfPerfusion.txt").read_text()
    path = tmp_path / "QPerfPerfusion.txt"
    colormaps.write_slicer_color_table(path)
    assert path.read_text() == committed
    with pytest.raises(OutputExistsError):
        colormaps.write_slicer_color_table(path)
    entries = [line.split() for line in committed.splitlines() if not line.startswith("#")]
    assert len(entries) == 256 and [int(e[0]) for e in entries] == list(range(256))
    rgb = np.array([[int(c) for c in e[2:5]] for e in entries]) / 255.0
    assert np.abs(rgb - colormaps.perfusion_colors(256)).max() <= 0.5 / 255 + 1e-9


@pytest.mark.slicer
def test_slicer_reads_the_color_table():
    slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLColorTableNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLColorTableStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(REPO / "Resources" / "ColorTables" / "QPerfPerfusion.txt"))
    assert storage.ReadData(node)
    assert node.GetNumberOfColors() == 256
    rgba = [0.0] * 4
    node.GetColor(128, rgba)
    assert np.allclose(rgba[:3], colormaps.perfusion_colors(256)[128], atol=1 / 255)


def test_report_of_a_phantom_study_reproduces_its_truth(tmp_path):
    from qperf import phantom

    def draw(seed):
        return phantom.generate_study(seed=seed, n_frames=10, motion=False, noise=False, aif_images=False)

    def ischaemic(ps):
        return {row["territory"] for row in ps.truth.segments.values() if row["ischaemic"]}

    # a heart with a subendocardial defect in one territory
    ps = next(
        p
        for p in map(draw, range(20))
        if len(ischaemic(p)) == 1 and "subendocardial" in {r["defect"] for r in p.truth.segments.values()}
    )
    levels = aha.slice_levels(ps.study.slices)
    slices = []
    for s, t, level in zip(ps.study.slices, ps.truth.slices, levels.levels, strict=True):
        sec = aha.analyse_slice(
            t.labels_ref.astype(np.int16),
            t.insertion_points_yx["anterior"],
            level,
            spacing_mm=s.spacing_mm,
            geometry=s.geometry,
        )
        maps = {k: getattr(t, k) for k in ("mbf_ml_min_g", "ps_ml_min_g", "vp_ml_g", "visf_ml_g")}
        slices.append(report.SliceResult(sec, maps, t.labels_ref, s.name, s.geometry))
    rep = report.build_report(slices, condition=ps.truth.condition, level_source=levels.source)
    for n, row in ps.truth.segments.items():
        for key in ("mbf_ml_min_g", "ps_ml_min_g", "vp_ml_g", "visf_ml_g"):
            assert rep["segments"][str(n)][map_keys(key)["mean"]] == pytest.approx(row[key], rel=1e-5)
        assert rep["segments"][str(n)]["territory"] == row["territory"]
    (defect,) = ischaemic(ps)
    assert min(aha.TERRITORIES, key=lambda t: rep["territories"][t]["mbf_mean_ml_min_g"]) == defect
    terr = rep["territories"][defect]
    assert terr["endo"]["mbf_mean_ml_min_g"] < 0.9 * terr["epi"]["mbf_mean_ml_min_g"]
    assert not any("insertion point" in w for w in rep["qc"]["warnings"])
    report.write_report(rep, report.render_figures(rep, slices), tmp_path / "phantom")
    assert report.read_report(tmp_path / "phantom")["segments"]["1"]["name"] == "basal anterior"


def test_report_study_from_phantom_labels_and_geometry():
    from qperf import phantom

    ps = phantom.generate_study(seed=4, n_frames=10, motion=False, noise=False, aif_images=False)
    labels = [t.labels_ref for t in ps.truth.slices]
    ins = [t.insertion_points_yx["anterior"] for t in ps.truth.slices]
    maps = [{"mbf_ml_min_g": t.mbf_ml_min_g} for t in ps.truth.slices]
    rep, slices = report.report_study(ps.study.slices, labels, ins, maps, condition="stress")
    assert [e["level"] for e in rep["slices"]] == [t.level for t in ps.truth.slices]
    assert rep["study"]["level_source"] in ("slice_position", "geometry") and rep["qc"]["warnings"] == []
    for s, t in zip(slices, ps.truth.slices, strict=True):
        assert np.array_equal(s.sectors.segments, t.aha_segments)
    for n, row in ps.truth.segments.items():
        assert rep["segments"][str(n)]["mbf_mean_ml_min_g"] == pytest.approx(row["mbf_ml_min_g"], rel=1e-5)
    # without geometry the sense must be stated; from the RV side it matches the geometry's
    bare = [s.replace(geometry=None, slice_position_mm=None) for s in ps.study.slices]
    with pytest.raises(ValidationError, match="septum_clockwise"):
        report.report_study(bare, labels, ins, maps)
    rep_rv, slices_rv = report.report_study(bare, labels, ins, maps, septum_clockwise="rv")
    assert rep_rv["study"]["level_source"] == "order" and rep_rv["slices"][0]["sense_source"] == "override"
    assert all(np.array_equal(a.sectors.segments, b.sectors.segments) for a, b in zip(slices, slices_rv, strict=True))
    # labels mirrored against the geometry: the RV contradicts the geometry's septum
    flipped = [lab[:, ::-1] for lab in labels]
    ins_f = [(y, lab.shape[1] - 1 - x) for (y, x), lab in zip(ins, labels, strict=True)]
    rep_f, _ = report.report_study(
        ps.study.slices, flipped, ins_f, [{"mbf_ml_min_g": m["mbf_ml_min_g"][:, ::-1]} for m in maps]
    )
    assert sum("opposite to the septum" in w for w in rep_f["qc"]["warnings"]) == 3
    with pytest.raises(ValidationError, match="labels"):
        report.report_study(ps.study.slices, labels[:2], ins, maps)
