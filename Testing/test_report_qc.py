"""Report: segments with too few pixels flagged in every table and hatched on the bull's-eye,
QC flags with their meanings, segment curves fitted with the model, and the PDF next to the
HTML with the same content."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import zlib

import numpy as np
import pytest
from matplotlib.image import imread
from test_report import make_slices

from qperf import aha, kinetics, report
from qperf.cli.commands.analyze import summary
from qperf.errors import ValidationError
from qperf.report.document import Table, report_document
from qperf.report.pdf import render_pdf
from qperf.report.qc import FLAG_MEANINGS

HCT = 0.42


def pdf_text(data: bytes) -> str:
    """The text drawn in a matplotlib PDF: the strings of its TJ operators, one line each."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue
        for array in re.findall(rb"\[(.*?)\]\s*TJ", content, re.S):
            pieces = re.findall(rb"\(((?:\\.|[^\\)])*)\)", array)
            out.append(b"".join(re.sub(rb"\\(.)", rb"\1", p) for p in pieces).decode("latin-1"))
    return "\n".join(out)


def with_few_pixels(s: report.SliceResult, segment: int, keep: int) -> report.SliceResult:
    """The slice with all but ``keep`` pixels of ``segment`` taken out of its segments."""
    seg = s.sectors.segments.copy()
    drop = np.flatnonzero(seg == segment)[keep:]
    seg.flat[drop] = 0
    layers = np.where(seg > 0, s.sectors.layers, 0).astype(s.sectors.layers.dtype)
    return dataclasses.replace(s, sectors=dataclasses.replace(s.sectors, segments=seg, layers=layers))


def aif_curve(t: np.ndarray) -> np.ndarray:
    """A plasma first pass and recirculation (mmol/L)."""
    x = np.clip(t - 4.0, 0.0, None)
    return 9.0 * (x / 4.0) ** 2 * np.exp(2.0 - x / 2.0) + 0.4 * (1 - np.exp(-x / 8.0))


def synthetic_curves(shape: tuple[int, int], segments: np.ndarray, fp: dict[int, float], delay_s: float = 0.0):
    """Noise-free BTEX tissue curves with a known plasma flow per segment."""
    t = np.arange(0.0, 50.0, 0.5)
    aif = aif_curve(t)
    model = kinetics.get_model("btex")
    tissue = np.zeros((t.size, *shape))
    for n, f in fp.items():
        curve = model.simulate(aif, t, Fp=f, PS=1.2, Vp=0.05, Visf=0.18, delay_s=delay_s)
        tissue[:, segments == n] = curve[:, None]
    return t, aif, tissue


@pytest.fixture(scope="module")
def flagged():
    rng = np.random.default_rng(3)
    slices = make_slices(rng)
    slices[0] = with_few_pixels(slices[0], 5, 4)  # basal inferolateral: 4 pixels left
    return slices, report.build_report(slices, study_name="few", condition="stress")


def test_low_pixel_segments_flagged_in_every_table(flagged, tmp_path):
    slices, rep = flagged
    assert rep["segments"]["5"]["n_pixels"] == rep["segments"]["5"]["mbf_n_valid"] == 4
    assert rep["segments"]["5"]["low_pixel_count"] is True
    assert not any(rep["segments"][str(n)]["low_pixel_count"] for n in range(1, 17) if n != 5)
    assert rep["qc"]["min_segment_pixels"] == aha.MIN_SEGMENT_PIXELS == 10
    assert rep["qc"]["low_pixel_segments"] == [5]
    (flag,) = [f for f in rep["qc"]["flags"] if f["flag"] == "low_pixel_count"]
    assert flag["where"] == "segments 5" and "5: 4" in flag["detail"]
    assert (flag["meaning"], flag["source"]) == FLAG_MEANINGS["low_pixel_count"]
    assert flag["detail"] in rep["qc"]["warnings"]
    # the threshold is the caller's to set
    assert not report.build_report(slices, min_segment_pixels=4)["segments"]["5"]["low_pixel_count"]
    assert report.build_report(slices, min_segment_pixels=5)["segments"]["5"]["low_pixel_count"]
    with pytest.raises(ValidationError, match="min_segment_pixels"):
        report.build_report(slices, min_segment_pixels=-1)
    # a level without a slice is not imaged, not short of pixels
    mid_only = report.build_report(slices[1:2])
    assert mid_only["segments"]["1"]["n_pixels"] == 0 and not mid_only["segments"]["1"]["low_pixel_count"]
    assert mid_only["qc"]["low_pixel_segments"] == []
    # CSV and table rows
    rows = report.report_rows(rep)
    row5 = next(r for r in rows if r["region"] == "5" and r["layer"] == "all")
    assert row5["low_pixel_count"] is True and row5["n_pixels"] == 4
    assert next(r for r in rows if r["region"] == "6" and r["layer"] == "all")["low_pixel_count"] is False
    assert next(r for r in rows if r["region"] == "LAD")["low_pixel_count"] is None
    report.write_report(rep, report.render_figures(rep, slices), tmp_path / "out")
    with open(tmp_path / "out" / "report.csv", newline="") as fh:
        csv_rows = {(r["region"], r["layer"]): r for r in csv.DictReader(fh)}
    assert csv_rows[("5", "all")]["low_pixel_count"] == "True" and csv_rows[("5", "all")]["n_pixels"] == "4"
    assert csv_rows[("6", "all")]["low_pixel_count"] == "False" and csv_rows[("5", "endo")]["low_pixel_count"] == ""
    # HTML: the segment's row greyed and flagged; PDF: the same row
    page = (tmp_path / "out" / "report.html").read_text()
    muted = re.findall(r'<tr class="muted">(.*?)</tr>', page)
    assert len(muted) == 2 and "basal inferolateral" in muted[0] and "few pixels" in muted[0]  # MBF, other maps
    assert '<td class="">4</td>' in muted[0] and muted[1].startswith('<td class="l">5</td><td class="">4</td>')
    text = pdf_text((tmp_path / "out" / "report.pdf").read_bytes())
    assert "basal inferolateral" in text and "few pixels" in text and "low_pixel_count" in text
    # the terminal table: valid pixels per segment, flagged ones starred
    lines = summary({**rep, "timings_s": {}}).splitlines()
    assert re.search(r"\b5:\d\.\d\d\(4\*\)", lines[1]) and not re.search(r"\b6:\d\.\d\d\(\d+\*\)", lines[1])
    assert "segments [5]" in lines[2]


def test_bullseye_hatches_flagged_segments():
    values = dict.fromkeys(range(1, 17), 2.0)

    def draw(hatched):
        fig = report.bullseye_figure(values, vmin=0.0, vmax=6.0, hatched=hatched, hatched_label="few pixels")
        return fig, imread(io.BytesIO(report.figure_bytes(fig, "png", dpi=100)))[..., :3]

    _, plain = draw([])
    fig, marked = draw([5])
    rows, cols = np.nonzero(np.abs(marked - plain).max(axis=2) > 0.02)
    ax = fig.axes[0]
    xy = ax.transData.inverted().transform(np.column_stack([cols + 0.5, plain.shape[0] - rows - 0.5]))
    radius, angle = np.hypot(xy[:, 0], xy[:, 1]), np.degrees(np.arctan2(xy[:, 1], xy[:, 0])) % 360
    r0, r1, t1, t2 = report.figures.bullseye_wedge(5)
    in_wedge = (radius > r0 - 0.02) & (radius < r1 + 0.02) & (angle > t1 - 2) & (angle < t2 + 2)
    legend = xy[:, 1] < -0.95
    assert np.count_nonzero(in_wedge) > 1000  # paler and hatched all over
    assert np.all(in_wedge | legend)  # nothing else changed
    grey = np.array([0.82, 0.82, 0.82])
    now = np.median(marked[rows[in_wedge], cols[in_wedge]], axis=0)
    before = np.median(plain[rows[in_wedge], cols[in_wedge]], axis=0)
    assert np.abs(now - grey).sum() < 0.6 * np.abs(before - grey).sum()  # paler: half way to grey


def test_segment_curves_recover_the_model():
    shape = (6, 8)
    segments = np.zeros(shape, np.int16)
    segments[:3, :4], segments[:3, 4:], segments[3:, :4] = 1, 2, 7
    fp = {1: 0.8, 2: 1.6}  # segment 7 has curves, then loses them to NaN
    t, aif, tissue = synthetic_curves(shape, segments, fp)
    tissue[:, segments == 7] = np.nan
    out = report.segment_curves(t, aif, tissue, segments, model="btex", hematocrit=HCT, index=2)
    assert out["index"] == 2 and len(out["time_s"]) == t.size and list(out["segments"]) == ["1", "2", "7"]
    for n, f in fp.items():
        entry = out["segments"][str(n)]
        assert entry["n_pixels"] == 12
        assert entry["params"]["mbf_ml_min_g"] == pytest.approx(f / (1 - HCT), rel=0.03)
        assert entry["nrmse"] < 0.02
        assert np.allclose(entry["fit_mmol_l"], entry["tissue_mmol_l"], atol=0.02 * max(entry["tissue_mmol_l"]))
    assert out["segments"]["7"]["n_pixels"] == 0 and out["segments"]["7"]["fit_mmol_l"] is None
    # a known delay (the one the pixels were fitted with) is used, not searched
    t, aif, late = synthetic_curves(shape, segments, fp, delay_s=1.25)
    out = report.segment_curves(t, aif, late, segments, model="btex", hematocrit=HCT, delay_s={1: 1.25, 2: 1.25})
    for n, f in fp.items():
        params = out["segments"][str(n)]["params"]
        assert params["delay_s"] == 1.25 and params["mbf_ml_min_g"] == pytest.approx(f / (1 - HCT), rel=0.05)
    with pytest.raises(ValidationError, match="tissue_mmol_l"):
        report.segment_curves(t, aif, late[:, :3], segments, model="btex", hematocrit=HCT)
    with pytest.raises(ValidationError, match="aif_plasma_mmol_l"):
        report.segment_curves(t, aif[:-1], late, segments, model="btex", hematocrit=HCT)


def test_curves_qc_and_pdf_with_the_content_of_the_html(flagged, tmp_path):
    slices, _ = flagged
    qc = {
        "fit_status_counts": {"ok": 700, "invalid_input": 0, "no_signal": 3, "failed": 1},
        "motion_displacement_mm": [0.0, 0.5, 1.5, 2.5, 1.0, 0.2],
        "motion_score": 0.93,
        "n_pd_frames": 2,
        "frames_left_out_of_fit": [1],
        "segmentation": {"flags": ["low_confidence"]},
        "motion_warnings": ["the displacement field folds in 0.10 % of the region"],
    }
    slices = [dataclasses.replace(s, qc=qc) for s in slices[:1]]  # the basal slice (with segment 5 short)
    s0 = slices[0]
    t, aif, tissue = synthetic_curves(s0.sectors.segments.shape, s0.sectors.segments, {n: 1.0 for n in range(1, 7)})
    curves = {
        "model": "btex",
        "aif_blood": {"time_s": t.tolist(), "gd_mmol_l": (aif * (1 - HCT)).tolist()},
        "slices": [report.segment_curves(t, aif, tissue, s0.sectors.segments, model="btex", hematocrit=HCT)],
    }
    rep = report.build_report(slices, study_name="curves", condition="stress", curves=curves)
    codes = [f["flag"] for f in rep["qc"]["flags"]]
    assert codes.count("low_confidence") == 1 and codes.count("motion_correction") == 1 and "low_pixel_count" in codes
    conf = next(f for f in rep["qc"]["flags"] if f["flag"] == "low_confidence")
    assert conf["where"] == "slice 1 (basal)" and conf["source"] == "segmentation QC"
    assert rep["curves"]["slices"][0]["segments"]["5"]["n_pixels"] == 4
    figs = report.render_figures(rep, slices)
    assert [n for n, _ in figs.curves_png] == ["curves_1_basal.png"]
    assert figs.aif_png is not None and figs.motion_png is not None
    written = report.write_report(rep, figs, tmp_path / "out")
    assert {"report.pdf", "aif_curves.png", "motion.png", "curves_1_basal.png"} <= set(written)
    assert report.read_report(tmp_path / "out")["curves"]["model"] == "btex"
    page = (tmp_path / "out" / "report.html").read_text()
    pdf = (tmp_path / "out" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # the same figures: bull's-eye, flow map, AIF, curves, motion
    assert page.count("data:image/png;base64,") == pdf.count(b"/Subtype /Image") == 5
    # the same tables: every cell of the document's tables is drawn in the PDF
    text = pdf_text(pdf)
    tables = [b for b in report_document(rep, figs) if isinstance(b, Table)]
    cells = {c for tb in tables for row in [tb.header, *tb.rows] for c in row if c and len(c) < 12 and c.isascii()}
    missing = [c for c in cells if c not in text]
    assert not missing, missing
    for heading in ("Quality control", "Curves", "MBF per segment (ml/min/g)", "Flow maps"):
        assert heading in text and f">{heading}<" in page
    assert "score 0.930" in text and "700" in text


def test_report_of_a_version_1_0_file_still_renders(flagged):
    slices, rep = flagged
    old = {k: v for k, v in rep.items() if k != "curves"}
    old["schema_version"] = "1.0"
    old["qc"] = {k: v for k, v in rep["qc"].items() if k not in ("flags", "min_segment_pixels", "low_pixel_segments")}
    old["segments"] = {n: {k: v for k, v in e.items() if k != "low_pixel_count"} for n, e in rep["segments"].items()}
    report.validate_report(old)
    assert report.report_rows(old)[0]["low_pixel_count"] is None
    pdf = render_pdf(old, report.render_figures(old, slices))
    assert "warning" in pdf_text(pdf)


def test_a_table_too_wide_for_a_pdf_page_is_split_repeating_its_key_columns():
    from qperf.report.pdf import _WIDTH_IN, _fitting_widths, _split

    header = ["Segment", "Pixels", *(f"quantity {i} mean (ml/min/g)" for i in range(14))]
    rows = [[str(n), str(10 + n), *(f"{0.1 * n + i:.3f}" for i in range(14))] for n in range(1, 17)]
    wide = Table(header, rows, key=2, caption="caption")
    parts = _split(wide)
    assert len(parts) >= 2 and [p.caption for p in parts] == ["caption"] + [""] * (len(parts) - 1)
    assert all(p.header[:2] == ["Segment", "Pixels"] and p.rows[3][:2] == ["4", "14"] for p in parts)
    assert [h for p in parts for h in p.header[2:]] == header[2:]  # every column once, in order
    assert all(sum(_fitting_widths(p, 6.0)[3]) <= _WIDTH_IN for p in parts)
    narrow = Table(header[:5], [r[:5] for r in rows], key=2)
    assert _split(narrow) == [narrow]
    text = pdf_text(render_pdf_of_blocks([wide]))
    assert all(c in text for r in rows for c in r)


def render_pdf_of_blocks(blocks):
    """A PDF of the given blocks alone (the layout of :func:`qperf.report.pdf.render_pdf`)."""
    from matplotlib.backends.backend_pdf import PdfPages

    from qperf.report import pdf as pdf_module

    buf = io.BytesIO()
    with PdfPages(buf) as pages:
        lay = pdf_module._Layout(pages, "test")
        for b in blocks:
            pdf_module._table(lay, b)
        lay.close_page()
    return buf.getvalue()
