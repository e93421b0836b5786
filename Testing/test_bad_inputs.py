"""Property tests of the error contract: malformed headers, manifests, curves and option values.

Hypothesis generates damaged copies of a good series' metadata (NRRD fields, the NIfTI
extension, ``.npz`` arrays), study manifests, AIF curves, insertion points and option values.
A reader either returns a valid object or raises a :class:`~qperf.errors.QPerfError` that
names the file; the command line answers with status 0, or status 2 and one line
``qperf <command>: error: ...`` (after a usage block), with no traceback, no Python warning
and no output written. Example counts are bounded (``EXAMPLES``) to keep the suite quick;
``benchmarks/bad_inputs.py`` is the broad sweep over every command.
"""

from __future__ import annotations

import contextlib
import io as stdio
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qperf import AifCurve, PerfusionSeries, PerfusionStudy, SliceGeometry, io
from qperf.checks import check_aif, check_point_yx
from qperf.cli import main
from qperf.errors import QPerfError, ValidationError
from qperf.io import schema

#: Examples per property (``QPERF_HYPOTHESIS_EXAMPLES`` for a deeper run); CI draws the same ones every run.
EXAMPLES = int(os.environ.get("QPERF_HYPOTHESIS_EXAMPLES", "40"))
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON values of every kind, numbers out of range included
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "abc", "1e400", "-0", "0x10", "1,2", "--", "nan", "-inf", "3.5.1"]),
)
METADATA_KEYS = ["field_strength_t", "readout", "flip_angle_deg", "echo_times_ms", "n_pe_to_center", "other"]


def _series() -> PerfusionSeries:
    rng = np.random.default_rng(7)
    data = rng.uniform(10, 20, (8, 12, 10)).astype(np.float32)
    data[3:6, 4:8, 3:7] += 60.0  # a bolus in the middle frames
    return PerfusionSeries(
        data,
        time_s=np.arange(8) * 0.9,
        spacing_mm=(2.0, 2.5),
        geometry=SliceGeometry(),
        n_pd_frames=1,
        name="slice 1",
        metadata={"field_strength_t": 1.5, "readout": "flash"},
    )


SERIES = _series()


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    """A fresh folder whose name has a space and non-ASCII letters."""
    with tempfile.TemporaryDirectory(prefix="qperf prop é ") as d:
        yield Path(d)


def _reads_or_refuses(read: Any, path: Path) -> Any:
    """``read(path)``: a result, or a QPerf error naming the file (and nothing else)."""
    try:
        return read(path)
    except QPerfError as exc:
        assert path.name in str(exc) or str(path) in str(exc), str(exc)
        return None


def run_cli(*argv: str) -> tuple[int, str]:
    """The command line in this process: exit status and stderr."""
    err = stdio.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdio.StringIO()):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def assert_contract(rc: int, stderr: str, command: str, *words: str) -> None:
    """Status 0, or status 2 with one error line (after a usage block) naming ``words`` (regular expressions)."""
    assert "Traceback" not in stderr
    assert not re.search(r"\w+Warning: ", stderr), stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):
        lines = [line for line in lines[1:] if not line.startswith(" ")]
    if rc == 0:
        assert not any(": error: " in line for line in lines), stderr
        return
    assert rc == 2, stderr
    assert len(lines) == 1 and lines[0].startswith(f"qperf {command}: error: "), stderr
    assert all(re.search(w, lines[0]) for w in words), (words, lines[0])


# --- readers ---------------------------------------------------------------------------------


@FAST
@given(
    field=st.sampled_from(["qperf_n_pd_frames", "qperf_units", "qperf_slice_position_mm", "qperf_geometry_unknown"]),
    value=NUMBER_TEXT | st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=10),
)
def test_nrrd_fields(field: str, value: str) -> None:
    with _folder() as d:
        path = io.write_series(SERIES, d / "s.seq.nrrd")
        head, _, body = path.read_bytes().partition(b"\n\n")
        lines = [line for line in head.decode("latin-1").split("\n") if not line.startswith(field)]
        path.write_bytes("\n".join([*lines, f"{field}:={value}"]).encode("utf-8") + b"\n\n" + body)
        series = _reads_or_refuses(io.read_series, path)
        if series is not None:
            assert 0 <= series.n_pd_frames <= series.n_frames - 2 and series.units in ("signal", "gd_mmol_l")


@FAST
@given(metadata=st.dictionaries(st.sampled_from(METADATA_KEYS), JSON_VALUES, max_size=3), times=st.booleans())
def test_nrrd_metadata_and_times(metadata: dict[str, Any], times: bool) -> None:
    with _folder() as d:
        path = io.write_series(SERIES.replace(metadata=metadata if not times else {}), d / "s.seq.nrrd")
        if times:  # frame times out of order, repeated or not finite
            text = path.read_bytes().replace(b"index values:=0.0 ", b"index values:=nan ")
            path.write_bytes(text)
        series = _reads_or_refuses(io.read_series, path)
        if series is not None:
            assert np.all(np.diff(series.time_s) > 0)
            assert 0 < series.metadata.get("field_strength_t", 1.5) <= 15


@FAST
@given(extension=st.dictionaries(st.sampled_from([*schema.NIFTI_EXTENSION, "x"]), JSON_VALUES, max_size=4))
def test_nifti_extension(extension: dict[str, Any]) -> None:
    import nibabel as nib

    with _folder() as d:
        path = io.write_series(SERIES, d / "s.nii.gz")
        img = nib.load(str(path))
        new = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header.copy())
        new.header.extensions.clear()
        text = "qperf:" + json.dumps(extension, allow_nan=True)
        new.header.extensions.append(nib.nifti1.Nifti1Extension(6, text.encode()))
        nib.save(new, str(path))
        series = _reads_or_refuses(io.read_series, path)
        if series is not None:
            assert series.n_frames == SERIES.n_frames and np.all(np.isfinite(series.time_s))


ARRAYS = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=10).map(np.asarray),
    st.integers(-5, 50).map(np.asarray),
    st.text(max_size=8).map(np.asarray),
    st.just(np.eye(3)),
    st.just(np.zeros((2, 2, 2))),
)


@FAST
@given(key=st.sampled_from([*schema.NPZ_ARRAYS, "data"]), value=ARRAYS)
def test_npz_arrays(key: str, value: np.ndarray) -> None:
    with _folder() as d:
        path = io.write_series(SERIES, d / "s.npz")
        with np.load(path) as f:
            content = {k: f[k] for k in f.files}
        content[key] = value
        np.savez(path, **content)
        series = _reads_or_refuses(io.read_series, path)
        if series is not None:
            assert series.data.ndim == 3 and min(series.spacing_mm) > 0


def _study_folder(d: Path) -> Path:
    folder = d / "study ü"
    io.write_study(PerfusionStudy([SERIES]), folder)
    return folder


PATHS = st.sampled_from(
    ["slice_1.seq.nrrd", "../outside.seq.nrrd", "/etc/hostname", "", ".", "sub/../slice_1.seq.nrrd"]
)


@FAST
@given(
    key=st.sampled_from(["name", "condition", "hematocrit", "slices", "aif", "aif_series", "metadata", "extra"]),
    value=JSON_VALUES | PATHS,
    entry_key=st.sampled_from(["path", "frame_interval_s", "units", "n_pd_frames", "spacing_mm", "name", "pth"]),
    entry_value=JSON_VALUES | PATHS,
)
def test_manifests(key: str, value: Any, entry_key: str, entry_value: Any) -> None:
    with _folder() as d:
        folder = _study_folder(d)
        shutil.copy(folder / "slice_1.seq.nrrd", d / "outside.seq.nrrd")
        manifest = folder / "study.json"
        doc = json.loads(manifest.read_text())
        doc[key] = value
        if isinstance(doc.get("slices"), list) and doc["slices"] and isinstance(doc["slices"][0], dict):
            doc["slices"][0][entry_key] = entry_value
        manifest.write_text(json.dumps(doc, allow_nan=True))
        study = _reads_or_refuses(io.read_study, manifest)
        if study is not None:  # what was read lies inside the study folder
            for s in study.slices:
                assert Path(s.metadata["source"]).resolve().parent == folder.resolve()


@FAST
@given(rows=st.lists(st.tuples(NUMBER_TEXT, NUMBER_TEXT), min_size=0, max_size=8))
def test_aif_csv(rows: list[tuple[str, str]]) -> None:
    with _folder() as d:
        path = d / "aif.csv"
        path.write_text("time_s,gd_mmol_l\n" + "".join(f"{a},{b}\n" for a, b in rows))
        aif = _reads_or_refuses(io.read_aif_curve, path)
        if aif is not None:
            assert np.all(np.isfinite(aif.values)) and np.all(np.diff(aif.time_s) > 0)


@FAST
@given(doc=JSON_VALUES | st.fixed_dictionaries({"anterior": JSON_VALUES}))
def test_insertion_json(doc: Any) -> None:
    from qperf.io.insertion import read_anterior_point

    with _folder() as d:
        path = d / "insertion.json"
        path.write_text(json.dumps(doc, allow_nan=True))
        point = _reads_or_refuses(read_anterior_point, path)
        if point is not None:
            assert all(math.isfinite(v) for v in point)


# --- semantic checks -------------------------------------------------------------------------


@FAST
@given(
    peak=st.floats(-1e12, 1e12),
    baseline=st.floats(-10, 100),
    units=st.sampled_from(["gd_mmol_l", "signal"]),
    kind=st.sampled_from(["blood", "plasma"]),
)
def test_aif_range(peak: float, baseline: float, units: str, kind: str) -> None:
    t = np.arange(30) * 1.0
    values = baseline + (peak - baseline) * np.exp(-0.5 * ((t - 10) / 2.0) ** 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings_given = check_aif(AifCurve(values, t, units=units, kind=kind), "aif")
    except ValidationError as exc:
        assert str(exc).startswith("aif: ")
        return
    if units == "gd_mmol_l":
        assert 0.1 <= values.max() <= 100 / (1 - 0.42) and values.max() - values[:3].min() >= 0.1 - 1e-9
    else:
        assert values[:3].min() > 0 and values.max() >= 1.05 * np.median(values[:3])
    for w in warnings_given:
        assert "physiological range" in w


@FAST
@given(y=st.floats(allow_nan=True, allow_infinity=True), x=st.floats(-100, 100))
def test_points_inside(y: float, x: float) -> None:
    try:
        check_point_yx((y, x), (12, 10), "p")
    except ValidationError as exc:
        assert str(exc).startswith("p: ")
        assert not (math.isfinite(y) and -0.5 <= y <= 11.5 and -0.5 <= x <= 9.5)


# --- the command line ------------------------------------------------------------------------

#: Options of ``qperf info``, how many values each takes, and the field a refusal may name instead
#: (a PD-frame count beyond the frames is refused by the series, which names its field).
OPTIONS = [
    ("--frame-interval", 1, "--frame-interval"),
    ("--spacing", 2, "--spacing"),
    ("--pd-frames", 1, "pd[-_]frames"),
]


@FAST
@given(
    option=st.sampled_from(OPTIONS),
    values=st.lists(NUMBER_TEXT, min_size=2, max_size=2),
)
def test_info_option_values(option: tuple[str, int, str], values: list[str]) -> None:
    name, n, word = option
    with _folder() as d:
        path = io.write_series(SERIES, d / "s.seq.nrrd")
        before = path.read_bytes()
        rc, err = run_cli("info", str(path), name, *values[:n])
        assert_contract(rc, err, "info", word)
        assert path.read_bytes() == before


COMMAND_OPTIONS = [
    ("segment", "--threads"),
    ("segment", "--slice"),
    ("moco", "--rounds"),
    ("flowmap", "--hematocrit"),
    ("flowmap", "--dt"),
    ("flowmap", "--max-delay"),
    ("analyze", "--dt"),
    ("analyze", "--hematocrit"),
    ("batch", "--workers"),
    ("train", "--seed"),
    ("train", "--max-minutes"),
    ("train", "--held-out"),
    ("phantom", "--frames"),
    ("convert", "--slice"),
]


def _argv(command: str, option: str, value: str, d: Path) -> list[str]:
    series, out = str(d / "missing.seq.nrrd"), str(d / "out")
    head = {
        "segment": [series, "--out", out],
        "moco": [series, "--out", out],
        "flowmap": ["--series", series, "--aif", str(d / "a.csv"), "--out", out],
        "analyze": [series, "--out", out],
        "batch": [series, "--out", out, "--max-studies", "0"],
        "train": ["--out", out, "--max-steps", "0"],
        "phantom": [out, "--slices", "0"],
        "convert": [series, out + ".nrrd"],
    }[command]
    return [command, *head, option, value]


@FAST
@given(pair=st.sampled_from(COMMAND_OPTIONS), value=NUMBER_TEXT)
def test_option_values_refused_first(pair: tuple[str, str], value: str) -> None:
    """A bad value is refused when the command line is read; otherwise the run stops at its
    missing input (or bad companion option): either way one error line and nothing written."""
    command, option = pair
    with _folder() as d:
        rc, err = run_cli(*_argv(command, option, value, d))
        assert rc == 2
        assert_contract(rc, err, command)
        assert list(d.iterdir()) == []


@pytest.mark.slow
@settings(FAST, max_examples=4 * EXAMPLES)
@given(
    key=st.sampled_from(["hematocrit", "slices", "aif", "condition", "extra"]),
    value=JSON_VALUES | PATHS,
)
def test_convert_manifests_writes_nothing_on_error(key: str, value: Any) -> None:
    with _folder() as d:
        folder = _study_folder(d)
        doc = json.loads((folder / "study.json").read_text())
        doc[key] = value
        (folder / "study.json").write_text(json.dumps(doc, allow_nan=True))
        out = d / "converted"
        rc, err = run_cli("convert", str(folder), str(out))
        assert_contract(rc, err, "convert")
        assert out.exists() == (rc == 0)
        assert sorted(p.name for p in d.iterdir()) == sorted(["study ü", *(["converted"] if rc == 0 else [])])
