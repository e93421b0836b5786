"""Bad inputs at the readers: damaged NRRD, NIfTI and NumPy metadata, study manifests, AIF curves
and DICOM folders (``bad_inputs.py`` runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from bad_input_fixtures import Fixtures, symlink

NRRD_FIELDS: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = [
    ("pd_abc", {"qperf_n_pd_frames": "abc"}, ("qperf_n_pd_frames",)),
    ("pd_negative", {"qperf_n_pd_frames": "-1"}, ("qperf_n_pd_frames",)),
    ("pd_fraction", {"qperf_n_pd_frames": "2.5"}, ("qperf_n_pd_frames",)),
    ("pd_too_many", {"qperf_n_pd_frames": "999"}, ("n_pd_frames",)),
    ("units_unknown", {"qperf_units": "furlongs"}, ("qperf_units",)),
    ("metadata_not_json", {"qperf_metadata": "{not json"}, ("qperf_metadata",)),
    ("metadata_list", {"qperf_metadata": "[1,2]"}, ("qperf_metadata",)),
    ("metadata_field_strength_text", {"qperf_metadata": '{"field_strength_t":"abc"}'}, ("field_strength_t",)),
    ("metadata_field_strength_negative", {"qperf_metadata": '{"field_strength_t":-3}'}, ("field_strength_t",)),
    ("metadata_readout", {"qperf_metadata": '{"readout":"epi"}'}, ("readout",)),
    ("metadata_flip_angle", {"qperf_metadata": '{"flip_angle_deg":400}'}, ("flip_angle_deg",)),
    ("metadata_echo_times", {"qperf_metadata": '{"echo_times_ms":"short"}'}, ("echo_times_ms",)),
    ("metadata_saturation_nan", {"qperf_metadata": '{"saturation_time_ms":NaN}'}, ("saturation_time_ms",)),
    ("position_text", {"qperf_slice_position_mm": "abc"}, ("qperf_slice_position_mm",)),
    ("position_nan", {"qperf_slice_position_mm": "nan"}, ("qperf_slice_position_mm",)),
    ("geometry_unknown_flag", {"qperf_geometry_unknown": "maybe"}, ("qperf_geometry_unknown",)),
    ("times_text", {"axis 3 index values": " ".join(["abc"] * 24)}, ("index values",)),
    ("times_nan", {"axis 3 index values": " ".join(["nan"] + [str(i) for i in range(1, 24)])}, ("index values",)),
    ("times_decreasing", {"axis 3 index values": " ".join(str(24 - i) for i in range(24))}, ("index values",)),
    ("times_repeated", {"axis 3 index values": " ".join(str(i // 2) for i in range(24))}, ("index values",)),
    ("times_count", {"axis 3 index values": "0 1 2"}, ("index values",)),
    ("space_unknown", {"space": "scanner-xyz"}, ("space",)),
    ("directions_zero", {"space directions": "(0,0,0) (0,2.6,0) (0,0,8) none"}, ("space directions",)),
    ("directions_text", {"space directions": "(a,b,c) (0,2.6,0) (0,0,8) none"}, ("space directions",)),
    ("directions_nan", {"space directions": "(nan,0,0) (0,2.6,0) (0,0,8) none"}, ("space directions",)),
    ("origin_text", {"space origin": "(x,y,z)"}, ("space origin",)),
    (
        "spacings_negative",
        {"space directions": None, "space origin": None, "space": None, "spacings": "-2 2 1 nan"},
        ("spacing",),
    ),
    ("sizes_wrong", {"sizes": "64 64 1 99"}, ("nrrd",)),
    ("kinds_no_list", {"kinds": "domain domain domain domain", "axis 3 index values": None}, ("list",)),
]


def _nrrd_cases(fx: Fixtures, case: Any) -> list[Any]:
    out = []
    for name, edit, words in NRRD_FIELDS:
        path = fx.nrrd_with(f"{name}.seq.nrrd", edit)
        out.append(case(f"nrrd_{name}", ["info", str(path)], words=(path.name, *words)))
    outside = fx.root / "outside.raw"
    outside.write_bytes(b"\0" * 64 * 64 * 24 * 4)
    for name, target in (
        ("up", "../../outside.raw"),
        ("absolute", str(outside)),
        ("missing", "nothing_here.raw"),
    ):
        path = fx.nrrd_with(f"detached_{name}.nhdr", {"type": "float"}, detached=target)
        out.append(case(f"nhdr_data_file_{name}", ["info", str(path)], words=("data file",)))
    link = symlink(outside, fx.path("inside_link.raw"))
    path = fx.nrrd_with("detached_link.nhdr", {"type": "float"}, detached=link.name)
    out.append(case("nhdr_data_file_symlink_out", ["info", str(path)], words=("data file",)))
    garbage = fx.path("garbage.seq.nrrd")
    garbage.write_bytes(b"NRRD0004\n" + bytes(range(256)) * 4)
    out.append(case("nrrd_garbage", ["info", str(garbage)], words=("garbage.seq.nrrd",)))
    out.append(
        case(
            "nrrd_convert_pd_abc",
            ["convert", str(fx.path("pd_abc.seq.nrrd")), str(fx.out / "c1.nii.gz")],
            out=fx.out / "c1.nii.gz",
            words=("qperf_n_pd_frames",),
        )
    )
    return out


def _nifti_cases(fx: Fixtures, case: Any) -> list[Any]:
    good = fx.nifti_extension()
    edits: list[tuple[str, Any, tuple[str, ...]]] = [
        ("time_text", {**good, "time_s": ["a"] * 24}, ("time_s",)),
        ("time_null", {**good, "time_s": [None] + good["time_s"][1:]}, ("time_s",)),
        ("time_count", {**good, "time_s": good["time_s"][:5]}, ("time_s",)),
        ("time_repeated", {**good, "time_s": [0.0] * 24}, ("time_s",)),
        ("pd_text", {**good, "n_pd_frames": "x"}, ("n_pd_frames",)),
        ("units_number", {**good, "units": 5}, ("units",)),
        ("metadata_text", {**good, "metadata": "string"}, ("metadata",)),
        ("metadata_readout", {**good, "metadata": {"readout": 3}}, ("readout",)),
        ("position_text", {**good, "slice_position_mm": "abc"}, ("slice_position_mm",)),
        ("geometry_flag", {**good, "geometry_unknown": "yes"}, ("geometry_unknown",)),
        ("name_number", {**good, "name": 12}, ("name",)),
        ("not_json", "qperf:{bad", ("extension",)),
        ("list", "qperf:[1, 2]", ("extension",)),
    ]
    out = []
    for name, ext, words in edits:
        path = fx.nifti_with(f"ext_{name}.nii.gz", ext)
        out.append(case(f"nifti_{name}", ["info", str(path)], words=(path.name, *words)))
    for name, pixdim, words in (
        ("zero_spacing", {1: 0.0, 2: 0.0}, ("spacing",)),
        ("negative_spacing", {1: -2.0, 2: 2.0}, ("spacing",)),
        ("nan_spacing", {1: float("nan"), 2: 2.0}, ("spacing",)),
        ("nan_interval", {4: float("nan")}, ("pixdim[4]",)),
        ("negative_interval", {4: -1.0}, ("pixdim[4]",)),
    ):
        path = fx.nifti_with(f"pixdim_{name}.nii.gz", None, pixdim=pixdim)
        out.append(
            case(
                f"nifti_{name}",
                ["info", str(path), "--frame-interval", "1"]
                if "interval" not in name
                else ["info", str(path), "--spacing", "2", "2"],
                words=(path.name, *words),
            )
        )
    trunc = fx.path("truncated.nii.gz")
    trunc.write_bytes((fx.good / "slice.nii.gz").read_bytes()[:300])
    out.append(case("nifti_truncated", ["info", str(trunc)], words=("truncated.nii.gz",)))
    return out


def _numpy_cases(fx: Fixtures, case: Any) -> list[Any]:
    s = fx.series
    n = s.n_frames
    edits: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("time_text", {"time_s": np.array(["a"] * n)}, ("time_s",)),
        ("time_nan", {"time_s": np.r_[np.nan, s.time_s[1:]]}, ("time_s",)),
        ("time_2d", {"time_s": np.zeros((2, 2))}, ("time_s",)),
        ("spacing_negative", {"spacing_mm": [-1.0, 2.0]}, ("spacing_mm",)),
        ("spacing_three", {"spacing_mm": [1.0, 2.0, 3.0]}, ("spacing_mm",)),
        ("spacing_text", {"spacing_mm": np.array(["a", "b"])}, ("spacing_mm",)),
        ("pd_text", {"n_pd_frames": "x"}, ("n_pd_frames",)),
        ("pd_pair", {"n_pd_frames": [1, 2]}, ("n_pd_frames",)),
        ("units_number", {"units": 7}, ("units",)),
        ("metadata_not_json", {"metadata": "{oops"}, ("metadata",)),
        ("metadata_list", {"metadata": "[1, 2]"}, ("metadata",)),
        ("affine_shape", {"ijk_to_lps": np.eye(3)}, ("ijk_to_lps",)),
        ("affine_nan", {"ijk_to_lps": np.full((4, 4), np.nan)}, ("ijk_to_lps",)),
        ("position_text", {"slice_position_mm": "abc"}, ("slice_position_mm",)),
        ("no_data", {"data": None}, ("data",)),
        ("data_2d", {"data": np.ones((8, 8))}, ("data",)),
        ("data_nan", {"data": np.full(s.data.shape, np.nan)}, ("data",)),
        ("data_text", {"data": np.full((4, 8, 8), "x")}, ("data",)),
        ("data_complex", {"data": s.data.astype(np.complex64) * (1 + 1j)}, ("data",)),
    ]
    out = [
        case(f"npz_{name}", ["info", str(fx.npz_with(f"{name}.npz", **kw))], words=(f"{name}.npz", *w))
        for name, kw, w in edits
    ]
    npy = fx.good / "slice.npy"
    out += [
        case(
            "npy_no_interval",
            ["info", str(npy), "--spacing", "2", "2", "--frame-interval", "-1"],
            words=("--frame-interval",),
        ),
        case(
            "npy_zero_spacing",
            ["convert", str(npy), str(fx.out / "n1.seq.nrrd"), "--spacing", "0", "1", "--frame-interval", "1"],
            words=("--spacing",),
            out=fx.out / "n1.seq.nrrd",
        ),
        case(
            "npy_object",
            [
                "info",
                str(fx.npy("object.npy", np.array([{"a": 1}], dtype=object))),
                "--spacing",
                "1",
                "1",
                "--frame-interval",
                "1",
            ],
            words=("object.npy",),
        ),
    ]
    return out


def _manifest_edits(fx: Fixtures) -> list[tuple[str, Any, tuple[str, ...]]]:
    outside = fx.root / "outside.seq.nrrd"
    outside.write_bytes(fx.slice_nrrd.read_bytes())

    def set_(key: str, value: Any) -> Any:
        return lambda d: d.__setitem__(key, value)

    def slice0(key: str, value: Any) -> Any:
        return lambda d: d["slices"][0].__setitem__(key, value)

    return [
        ("trailing_comma", '{"format": "qperf.study", "version": 1,}', ("study.json", "line 1")),
        ("top_list", "[1, 2]", ("study.json",)),
        ("not_utf8", b"\xff\xfe\x00garbage", ("study.json",)),
        ("empty", "", ("study.json",)),
        ("no_format", lambda d: d.pop("format"), ("format",)),
        ("version_2", set_("version", 2), ("version",)),
        ("no_slices", lambda d: d.pop("slices"), ("slices",)),
        ("slices_empty", set_("slices", []), ("slices",)),
        ("slices_dict", set_("slices", {"path": "slice_1.seq.nrrd"}), ("slices",)),
        ("slice_number", lambda d: d["slices"].__setitem__(0, 42), ("slices[0]",)),
        ("slice_path_number", slice0("path", 123), ("slices[0]", "path")),
        ("slice_path_up", slice0("path", "../outside.seq.nrrd"), ("slices[0]", "outside")),
        ("slice_path_absolute", slice0("path", str(outside)), ("slices[0]", "outside")),
        ("slice_path_missing", slice0("path", "gone.seq.nrrd"), ("gone.seq.nrrd",)),
        ("slice_path_empty", slice0("path", ""), ("slices[0]", "path")),
        ("slice_interval", slice0("frame_interval_s", -1), ("frame_interval_s",)),
        ("slice_spacing_text", slice0("spacing_mm", "abc"), ("spacing_mm",)),
        ("slice_spacing_one", slice0("spacing_mm", [1]), ("spacing_mm",)),
        ("slice_units", slice0("units", "x"), ("units",)),
        ("slice_pd_text", slice0("n_pd_frames", "two"), ("n_pd_frames",)),
        ("slice_axes", slice0("axes", "xyz"), ("axes",)),
        ("slice_position_text", slice0("slice_position_mm", "mid"), ("slice_position_mm",)),
        ("slice_name_number", slice0("name", 5), ("name",)),
        ("slice_unknown_key", slice0("pth", "x"), ("pth",)),
        ("hematocrit_text", set_("hematocrit", "abc"), ("hematocrit",)),
        ("hematocrit_range", set_("hematocrit", 1.5), ("hematocrit",)),
        ("hematocrit_null", set_("hematocrit", None), ("hematocrit",)),
        ("hematocrit_bool", set_("hematocrit", True), ("hematocrit",)),
        ("condition_unknown", set_("condition", "sometimes"), ("condition",)),
        ("condition_number", set_("condition", 5), ("condition",)),
        ("name_number", set_("name", 42), ("name",)),
        ("metadata_text", set_("metadata", "x"), ("metadata",)),
        ("unknown_key", set_("hematocirt", 0.4), ("hematocirt",)),
        ("aif_no_path", set_("aif", {"kind": "blood"}), ("aif", "path")),
        ("aif_missing_file", set_("aif", {"path": "nothing.csv"}), ("nothing.csv",)),
        ("aif_path_up", set_("aif", {"path": "../../good ü/aif.csv"}), ("aif",)),
        ("aif_kind", set_("aif", {"path": "aif.csv", "kind": "serum"}), ("kind",)),
        ("aif_number", set_("aif", 3), ("aif",)),
        ("aif_series_text", set_("aif_series", "x"), ("aif_series",)),
        (
            "aif_series_up",
            lambda d: d["aif_series"].__setitem__(0, {"path": "../outside.seq.nrrd"}),
            ("aif_series[0]",),
        ),
    ]


def _manifest_cases(fx: Fixtures, case: Any) -> list[Any]:
    out = []
    for name, edit, words in _manifest_edits(fx):
        folder = fx.study_with(f"study_{name}", edit, curve=name.startswith("aif_") and "series" not in name)
        out.append(case(f"study_{name}", ["info", str(folder)], words=words))
    link_folder = fx.study_with("study_symlink_out", lambda d: None)
    (link_folder / "slice_1.seq.nrrd").unlink()
    symlink(fx.root / "outside.seq.nrrd", link_folder / "slice_1.seq.nrrd")
    out.append(case("study_slice_symlink_out", ["info", str(link_folder)], words=("slice_1.seq.nrrd",)))
    bad = fx.path("study_hematocrit_text")
    out.append(
        case(
            "study_convert_hematocrit",
            ["convert", str(bad), str(fx.out / "s1")],
            out=fx.out / "s1",
            words=("hematocrit",),
        )
    )
    return out


def _aif_cases(fx: Fixtures, case: Any) -> list[Any]:
    v = fx.aif_curve.values
    t = fx.aif_curve.time_s
    curves: list[tuple[str, Any, str | None, tuple[str, ...]]] = [
        ("text", None, "time_s,blood_gd_mmol_l\n0,1\n1,abc\n", ("row 3", "blood_gd_mmol_l")),
        ("blank_cell", None, "time_s,blood_gd_mmol_l\n0,1\n1,\n2,3\n", ("row 3",)),
        ("nan", np.r_[v[:3], np.nan, v[4:]], None, ("aif",)),
        (
            "decreasing_time",
            None,
            "time_s,blood_gd_mmol_l\n" + "".join(f"{10 - i},{i}\n" for i in range(10)),
            ("time",),
        ),
        ("no_header", None, "\n".join(f"{a},{b}" for a, b in zip(t, v, strict=True)), ("time_s",)),
        ("one_row", None, "time_s,blood_gd_mmol_l\n0,1\n", ("sample",)),
        ("binary", None, "\x00\x01\x02", ("binary.csv",)),
    ]
    out = []
    for name, values, text, words in curves:
        path = fx.aif_csv(f"aif_{name}.csv", values, text=text)
        out.append(case(f"aif_csv_{name}", ["info", str(path)], words=words))
    for name, values, words in (
        ("huge", v * 1e9 / v.max(), ("peak",)),
        ("zero", np.zeros_like(v), ("aif",)),
        ("negative", -v, ("aif",)),
        ("constant", np.full_like(v, 5.0), ("aif",)),
    ):
        path = fx.aif_csv(f"aif_{name}.csv", values)
        out.append(case(f"aif_{name}_info", ["info", str(path)], expect="warn_or_error", words=words))
        out.append(
            case(
                f"aif_{name}_flowmap",
                ["flowmap", "--series", str(fx.slice_nrrd), "--aif", str(path), "--out", str(fx.out / f"fm_{name}")],
                words=words,
                out=fx.out / f"fm_{name}",
            )
        )
    low = fx.aif_csv("aif_low.csv", v * 0.02 / v.max())
    out.append(
        case(
            "aif_low_flowmap",
            [
                "flowmap",
                "--series",
                str(fx.slice_nrrd),
                "--aif",
                str(low),
                "--out",
                str(fx.out / "fm_low"),
                "--mask",
                str(fx.good / "labels_ref.nrrd"),
            ],
            expect="warn_or_error",
            words=("peak",),
            out=fx.out / "fm_low",
        )
    )
    return out


def _dicom_cases(fx: Fixtures, case: Any) -> list[Any]:
    import pydicom

    def edit_tag(index: int, **tags: Any) -> Any:
        def edit(files: list[Path]) -> None:
            ds = pydicom.dcmread(files[index])
            for k, val in tags.items():
                setattr(ds, k, val)
            ds.save_as(files[index])

        return edit

    def same_time(files: list[Path]) -> None:
        """The next frame of the same slice gets the acquisition time of the fifth file."""
        first = pydicom.dcmread(files[4])
        for f in files[5:]:
            ds = pydicom.dcmread(f)
            if (
                ds.ImagePositionPatient == first.ImagePositionPatient
                and ds.SeriesInstanceUID == first.SeriesInstanceUID
            ):
                ds.AcquisitionDateTime = first.AcquisitionDateTime
                ds.save_as(f)
                return

    def damage(files: list[Path]) -> None:
        raw = bytearray(files[6].read_bytes())
        raw[200:] = b"\xff" * (len(raw) - 200)
        files[6].write_bytes(bytes(raw))

    def truncate(files: list[Path]) -> None:
        files[7].write_bytes(files[7].read_bytes()[:400])

    out = []
    for name, edit, words, expect in (
        ("duplicate_time", same_time, ("AcquisitionDateTime",), "warn_or_error"),
        ("damaged_file", damage, (), "error"),
        ("truncated_file", truncate, (), "error"),
        ("no_spacing", edit_tag(3, PixelSpacing=None), ("PixelSpacing",), "error"),
        ("zero_spacing", edit_tag(3, PixelSpacing=[0, 0]), ("PixelSpacing",), "error"),
        ("rows_changed", edit_tag(3, Rows=32), ("rows",), "error"),
    ):
        folder = fx.dicom_with(f"dicom_{name}", edit)
        out.append(case(f"dicom_{name}", ["info", str(folder)], expect=expect, words=words))
    empty = fx.path("dicom_empty")
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    out.append(case("dicom_empty", ["info", str(empty)], words=("no dicom",)))
    return out


def reader_cases(fx: Fixtures) -> list[Any]:
    from bad_inputs import Case

    def case(name: str, argv: list[str], **kw: Any) -> Any:
        return Case(name, argv, **kw)

    out = []
    for build in (_nrrd_cases, _nifti_cases, _numpy_cases, _manifest_cases, _aif_cases, _dicom_cases):
        out += build(fx, case)
    for c in out:
        c.kind = "reader"
    return out
