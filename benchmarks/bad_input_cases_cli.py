"""Bad inputs at the commands: option values, manual labels and points, models, case folders,
batch lists, degenerate data, outputs (``bad_inputs.py`` runs them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from bad_input_fixtures import Fixtures

from qperf import io

#: (command's arguments without the option under test, option values that must be refused)
READING_OPTIONS = [
    ("--frame-interval", "-1"),
    ("--frame-interval", "0"),
    ("--frame-interval", "nan"),
    ("--frame-interval", "inf"),
    ("--frame-interval", "abc"),
    ("--spacing", "-1 2"),
    ("--spacing", "0 1"),
    ("--spacing", "nan 1"),
    ("--pd-frames", "-1"),
]


def _case(name: str, argv: list[str], **kw: Any) -> Any:
    from bad_inputs import Case

    return Case(name, argv, **kw)


def _options(fx: Fixtures) -> list[Any]:
    s = str(fx.slice_nrrd)
    st = str(fx.good / "study")
    o = fx.out
    out = []
    for opt, value in READING_OPTIONS:
        tag = f"{opt.strip('-')}_{value.replace(' ', '_').replace('-', 'm')}"
        out.append(_case(f"info_{tag}", ["info", s, opt, *value.split()], words=(opt,)))
    table: list[tuple[str, list[str], str]] = [
        ("convert_slice_0", ["convert", st, str(o / "x.seq.nrrd"), "--slice", "0"], "--slice"),
        ("convert_slice_negative", ["convert", st, str(o / "x.seq.nrrd"), "--slice", "-1"], "--slice"),
        ("convert_slice_9", ["convert", st, str(o / "x.seq.nrrd"), "--slice", "9"], "--slice"),
        ("convert_to_bogus", ["convert", st, str(o / "x"), "--to", "tiff"], "--to"),
        ("moco_slice_0", ["moco", st, "--out", str(o / "m"), "--slice", "0"], "--slice"),
        ("moco_rounds_0", ["moco", s, "--out", str(o / "m"), "--rounds", "0"], "--rounds"),
        ("moco_rounds_negative", ["moco", s, "--out", str(o / "m"), "--rounds", "-2"], "--rounds"),
        ("moco_engine", ["moco", s, "--out", str(o / "m"), "--engine", "gpu"], "--engine"),
        ("segment_threads_0", ["segment", s, "--out", str(o / "g"), "--threads", "0"], "--threads"),
        ("segment_threads_negative", ["segment", s, "--out", str(o / "g"), "--threads", "-1"], "--threads"),
        ("segment_threads_text", ["segment", s, "--out", str(o / "g"), "--threads", "many"], "--threads"),
        ("segment_slice_0", ["segment", st, "--out", str(o / "g"), "--slice", "0"], "--slice"),
        ("segment_slice_9", ["segment", st, "--out", str(o / "g"), "--slice", "9"], "--slice"),
        ("aif_detect_method", ["aif-detect", st, "--out", str(o / "a"), "--method", "magic"], "--method"),
        ("aif_detect_label", ["aif-detect", st, "--out", str(o / "a"), "--reference-label", "-1"], "--reference-label"),
        (
            "flowmap_hct_high",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--hematocrit", "1.5"],
            "--hematocrit",
        ),
        (
            "flowmap_hct_nan",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--hematocrit", "nan"],
            "--hematocrit",
        ),
        (
            "flowmap_dt_0",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--dt", "0"],
            "--dt",
        ),
        (
            "flowmap_dt_nan",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--dt", "nan"],
            "--dt",
        ),
        (
            "flowmap_max_delay",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--max-delay", "-1"],
            "--max-delay",
        ),
        (
            "flowmap_model",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(o / "f"), "--model", "magic"],
            "--model",
        ),
        ("analyze_dt_nan", ["analyze", st, "--out", str(o / "z"), "--dt", "nan"], "--dt"),
        ("analyze_dt_negative", ["analyze", st, "--out", str(o / "z"), "--dt", "-1"], "--dt"),
        ("analyze_hct", ["analyze", st, "--out", str(o / "z"), "--hematocrit", "2"], "--hematocrit"),
        (
            "analyze_interval_unused",
            ["analyze", st, "--out", str(o / "z"), "--frame-interval", "-1"],
            "--frame-interval",
        ),
        (
            "analyze_levels_count",
            ["analyze", st, "--out", str(o / "z"), "--levels", "basal", "mid", "apical"],
            "--levels",
        ),
        ("analyze_aif_kind_alone", ["analyze", st, "--out", str(o / "z"), "--aif-kind", "plasma"], "--aif-kind"),
        (
            "analyze_segmenter_missing",
            ["analyze", st, "--out", str(o / "z"), "--segmenter", str(fx.bad / "no.pt")],
            "no.pt",
        ),
        ("batch_workers_0", ["batch", st, "--out", str(o / "b"), "--workers", "0"], "--workers"),
        ("batch_threads", ["batch", st, "--out", str(o / "b"), "--threads-per-worker", "-1"], "--threads-per-worker"),
        ("batch_max_studies", ["batch", st, "--out", str(o / "b"), "--max-studies", "0"], "--max-studies"),
        ("batch_dt", ["batch", st, "--out", str(o / "b"), "--dt", "inf"], "--dt"),
        ("batch_hct", ["batch", st, "--out", str(o / "b"), "--hematocrit", "-0.2"], "--hematocrit"),
        ("train_seed", ["train", "--out", str(o / "t"), "--seed", "-1"], "--seed"),
        ("train_threads", ["train", "--out", str(o / "t"), "--threads", "0"], "--threads"),
        ("train_minutes_nan", ["train", "--out", str(o / "t"), "--max-minutes", "nan"], "--max-minutes"),
        ("train_minutes_negative", ["train", "--out", str(o / "t"), "--max-minutes", "-5"], "--max-minutes"),
        ("train_steps", ["train", "--out", str(o / "t"), "--max-steps", "0"], "--max-steps"),
        ("train_batch", ["train", "--out", str(o / "t"), "--batch-size", "-4"], "--batch-size"),
        ("train_held_out", ["train", "--out", str(o / "t"), "--held-out", "2"], "--held-out"),
        ("train_real_fraction", ["train", "--out", str(o / "t"), "--real-fraction", "-0.1"], "--real-fraction"),
        ("phantom_slices_0", ["phantom", str(o / "p"), "--slices", "0"], "--slices"),
        ("phantom_frames_1", ["phantom", str(o / "p"), "--frames", "1"], "--frames"),
        ("phantom_seed", ["phantom", str(o / "p"), "--seed", "-3"], "--seed"),
        ("phantom_model", ["phantom", str(o / "p"), "--model", "magic"], "--model"),
        ("demo_seed", ["demo", "--out", str(o / "d"), "--seed", "-1"], "--seed"),
    ]
    for name, argv, word in table:
        argv = [str(o / (name + "".join(Path(a).suffixes))) if a.startswith(str(o)) else a for a in argv]
        target = next((Path(a) for a in argv if a.startswith(str(o))), None)
        out.append(_case(name, argv, words=(word,), out=target))
    return out


def _outputs(fx: Fixtures) -> list[Any]:
    s = str(fx.slice_nrrd)
    existing = fx.out / "existing"
    existing.mkdir(exist_ok=True)
    (existing / "keep.txt").write_text("keep")
    table = [
        ("convert_exists", ["convert", s, str(existing)], "exists"),
        ("convert_into_input", ["convert", s, s, "--overwrite"], "input"),
        ("convert_no_parent", ["convert", s, str(fx.out / "no" / "where.nii.gz")], "does not exist"),
        ("moco_exists", ["moco", s, "--out", str(existing)], "exists"),
        ("segment_exists", ["segment", s, "--out", str(existing)], "exists"),
        (
            "flowmap_exists",
            ["flowmap", "--series", s, "--aif", str(fx.good / "aif.csv"), "--out", str(existing)],
            "exists",
        ),
        ("analyze_exists", ["analyze", str(fx.good / "study"), "--out", str(existing)], "exists"),
        ("analyze_inside_input", ["analyze", str(fx.good / "study"), "--out", str(fx.good / "study" / "res")], "input"),
        ("phantom_exists", ["phantom", str(existing)], "exists"),
        (
            "evaluate_exists",
            ["evaluate", str(fx.good / "pred"), str(fx.good / "cases"), "--out", str(existing)],
            "exists",
        ),
        ("aif_detect_exists", ["aif-detect", str(fx.good / "study"), "--out", str(existing)], "exists"),
        ("info_missing", ["info", str(fx.bad / "nothing.seq.nrrd")], "no such file"),
        ("info_unknown_suffix", ["info", str(fx.good / "aif.csv") + ".txt"], "aif.csv.txt"),
    ]
    return [_case(n, a, words=(w,)) for n, a, w in table]


def _manual(fx: Fixtures) -> list[Any]:
    st = str(fx.good / "study curve")
    labels = str(fx.good / "labels_ref.nrrd")
    o = fx.out
    wrong = fx.path("labels_wrong_shape.nrrd")
    io.write_image(np.ones((10, 12), np.uint8), wrong, spacing_mm=(2.0, 2.0))
    values = fx.path("labels_values.nrrd")
    io.write_image(np.full((64, 64), 7, np.uint8), values, spacing_mm=(2.0, 2.0))
    table: list[tuple[str, list[str], tuple[str, ...]]] = []
    for name, doc, words in (
        ("null", {"anterior": None}, ("anterior",)),
        ("short", {"anterior": [3]}, ("anterior",)),
        ("text", {"anterior": ["a", "b"]}, ("anterior",)),
        ("slices_null", {"slices": [None]}, ("slices",)),
        ("not_json", "{anterior: [1, 2]}", ("line 1",)),
        ("outside", {"anterior": [500, 500]}, ("outside",)),
    ):
        path = fx.json_file(f"insertion_{name}.json", doc)
        table.append((f"insertion_json_{name}", [str(path)], words))
    for name, point, words in (
        ("negative", "-3,4", ("outside",)),
        ("outside", "500,500", ("outside",)),
        ("text", "a,b", ("--insertion",)),
        ("nan", "nan,5", ("--insertion",)),
        ("three", "1,2,3", ("--insertion",)),
    ):
        table.append((f"insertion_point_{name}", [point], words))
    out = []
    for name, points, words in table:
        argv = ["analyze", st, "--out", str(o / name), "--labels", labels, labels, "--insertion", *points, *points]
        out.append(_case(name, argv, words=words, out=o / name))
    for name, lab, words in (
        ("labels_shape", wrong, ("labels_wrong_shape.nrrd",)),
        ("labels_values", values, ("labels_values.nrrd",)),
    ):
        argv = ["analyze", st, "--out", str(o / name), "--labels", str(lab), str(lab), "--insertion", "30,30", "30,30"]
        out.append(_case(name, argv, words=words, out=o / name))
    out.append(
        _case(
            "labels_one_for_two",
            ["analyze", st, "--out", str(o / "l1"), "--labels", labels, "--insertion", "30,30"],
            words=("--labels",),
            out=o / "l1",
        )
    )
    return out


def _models(fx: Fixtures) -> list[Any]:
    s = str(fx.slice_nrrd)
    o = fx.out
    models = [
        ("garbage", fx.model_with("garbage", b"\x80\x04garbage" * 50), ("garbage.pt",)),
        ("zip_text", fx.model_with("ziptext", b"PK\x03\x04" + b"\x00" * 100), ("ziptext.pt",)),
        ("empty", fx.model_with("empty", b""), ("empty.pt",)),
        ("card_not_json", fx.model_with("cardtext", b"x", card="{oops"), ("cardtext.json",)),
        ("card_no_sha", fx.model_with("cardnosha", b"x", card={"name": "m"}), ("sha256",)),
        ("checksum", fx.model_with("checksum", b"x", card={"sha256": "0" * 64}), ("sha256",)),
    ]
    out = []
    for name, path, words in models:
        out.append(
            _case(
                f"segment_model_{name}",
                ["segment", s, "--out", str(o / f"sm_{name}"), "--model", str(path)],
                words=words,
                out=o / f"sm_{name}",
            )
        )
    garbage = str(models[0][1])
    out.append(
        _case(
            "aif_detect_model_garbage",
            ["aif-detect", str(fx.good / "study"), "--out", str(o / "am"), "--model", garbage],
            words=("garbage.pt",),
            out=o / "am",
        )
    )
    out.append(
        _case(
            "analyze_segmenter_garbage",
            ["analyze", str(fx.good / "study"), "--out", str(o / "as"), "--segmenter", garbage],
            words=("garbage.pt",),
            out=o / "as",
        )
    )
    out.append(
        _case(
            "train_init_garbage",
            [
                "train",
                "--out",
                str(o / "ti"),
                "--real",
                str(fx.good / "cases"),
                "--init",
                garbage,
                "--max-minutes",
                "1",
            ],
            words=("garbage.pt",),
            out=o / "ti",
        )
    )
    return out


def _degenerate(fx: Fixtures) -> list[Any]:
    zero = fx.series_study("zero.seq.nrrd", 0.0)
    const = fx.series_study("constant.seq.nrrd", 5.0)
    flat = fx.series_study("flat.seq.nrrd", fx.series.data[:1])
    aif = str(fx.good / "aif.csv")
    o = fx.out
    out = []
    for tag, path, expect in (("zero", zero, "error"), ("constant", const, "error"), ("flat", flat, "warn_or_error")):
        words = ("enhancement",) if tag == "flat" else ("constant",)
        for command, argv in (
            ("segment", ["segment", str(path), "--out", str(o / f"g_{tag}")]),
            ("moco", ["moco", str(path), "--out", str(o / f"m_{tag}")]),
            ("flowmap", ["flowmap", "--series", str(path), "--aif", aif, "--out", str(o / f"f_{tag}")]),
            ("aif_detect", ["aif-detect", str(path), "--out", str(o / f"a_{tag}")]),
            ("analyze", ["analyze", str(path), "--out", str(o / f"z_{tag}"), "--aif", aif]),
        ):
            if tag == "flat" and command != "segment":
                continue
            target = Path(argv[argv.index("--out") + 1])
            qc = _segment_qc_has("enhancement") if tag == "flat" else None
            out.append(_case(f"{command}_{tag}", argv, expect=expect, words=words, out=target, qc=qc))
        out.append(_case(f"info_{tag}", ["info", str(path)], expect="warn_or_error", words=words))
    return out


def _segment_qc_has(word: str) -> Any:
    def check(folder: Path) -> bool:
        doc = json.loads((folder / "insertion.json").read_text())
        return any(word in w for r in doc["slices"] for w in r["qc"].get("warnings", []))

    return check


def command_cases(fx: Fixtures) -> list[Any]:
    from bad_input_cases_more import more_cases

    out = _options(fx) + _outputs(fx) + _manual(fx) + _models(fx) + _degenerate(fx) + more_cases(fx)
    controls = [
        _case("control_info_nrrd", ["info", str(fx.slice_nrrd)], expect="ok"),
        _case("control_info_study", ["info", str(fx.good / "study")], expect="ok"),
        _case("control_info_dicom", ["info", str(fx.good / "dicom")], expect="ok"),
        _case(
            "control_convert",
            ["convert", str(fx.good / "slice.nii.gz"), str(fx.out / "ok ü.seq.nrrd")],
            expect="ok",
            out=fx.out / "ok ü.seq.nrrd",
        ),
        _case(
            "control_batch_dry_run",
            ["batch", str(fx.good / "study"), "--out", str(fx.out / "bd"), "--dry-run"],
            expect="ok",
        ),
    ]
    return out + controls
