"""Bad inputs of the commands that read folders and lists: case folders (train, evaluate),
predictions, batch lists, training configurations, reference masks (``bad_inputs.py`` runs them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from bad_input_fixtures import Fixtures

from qperf import io


def _case(name: str, argv: list[str], **kw: Any) -> Any:
    from bad_inputs import Case

    return Case(name, argv, **kw)


def _case_edits(fx: Fixtures) -> list[tuple[str, Any, tuple[str, ...]]]:
    sp = fx.series.spacing_mm

    def write(name: str, text: str) -> Any:
        return lambda d: (d / name).write_text(text, encoding="utf-8")

    def labels(array: Any) -> Any:
        return lambda d: io.write_image(np.asarray(array), d / "labels.nrrd", spacing_mm=sp, overwrite=True)

    def remove(name: str) -> Any:
        return lambda d: (d / name).unlink()

    def series(data: Any) -> Any:
        def edit(d: Path) -> None:
            s = fx.series.replace(data=np.broadcast_to(np.float32(data), fx.series.data.shape))
            io.write_series(s, d / "series.seq.nrrd", overwrite=True)

        return edit

    return [
        ("no_labels", remove("labels.nrrd"), ("labels",)),
        ("no_series", remove("series.seq.nrrd"), ("series",)),
        ("labels_shape", labels(np.ones((10, 10), np.uint8)), ("labels",)),
        ("labels_values", labels(np.full((64, 64), 9, np.uint8)), ("labels",)),
        ("labels_float_nan", labels(np.full((64, 64), np.nan, np.float32)), ("labels",)),
        ("labels_empty", labels(np.zeros((64, 64), np.uint8)), ("labels",)),
        ("case_json_text", write("case.json", "{classes: 1}"), ("case.json",)),
        ("case_json_list", write("case.json", "[1]"), ("case.json",)),
        ("case_json_classes", write("case.json", json.dumps({"classes": ["heart"]})), ("heart",)),
        ("case_json_patient", write("case.json", json.dumps({"patient": {"a": 1}})), ("patient",)),
        ("case_json_unknown", write("case.json", json.dumps({"clases": ["lv_blood_pool"]})), ("clases",)),
        (
            "insertion_null",
            write("insertion.json", json.dumps({"anterior": None, "inferior": [1, 2]})),
            ("insertion.json",),
        ),
        ("insertion_slices_empty", write("insertion.json", json.dumps({"slices": [{}]})), ("insertion.json",)),
        ("insertion_outside", write("insertion.json", json.dumps({"anterior": [900, -5]})), ("outside",)),
        ("insertion_text", write("insertion.json", "not json"), ("insertion.json",)),
        ("series_zero", series(0.0), ("constant",)),
    ]


def _cases_folders(fx: Fixtures) -> list[Any]:
    o = fx.out
    out = []
    for name, edit, words in _case_edits(fx):
        folder = fx.case_with(f"cases_{name}", edit)
        out.append(
            _case(
                f"evaluate_{name}",
                ["evaluate", str(fx.good / "pred"), str(folder), "--out", str(o / f"e_{name}")],
                words=words,
                out=o / f"e_{name}",
            )
        )
        if name in (
            "labels_shape",
            "case_json_classes",
            "insertion_null",
            "series_zero",
            "no_series",
            "insertion_outside",
        ):
            out.append(
                _case(
                    f"train_{name}",
                    ["train", "--real", str(folder), "--out", str(o / f"t_{name}"), "--max-minutes", "1"],
                    words=words,
                    out=o / f"t_{name}",
                )
            )
    empty = fx.path("cases_none")
    empty.mkdir()
    out.append(
        _case(
            "train_no_cases",
            ["train", "--real", str(empty), "--out", str(o / "t_none")],
            words=("case",),
            out=o / "t_none",
        )
    )
    out.append(
        _case(
            "train_real_missing",
            ["train", "--real", str(fx.bad / "nowhere"), "--out", str(o / "t_nw")],
            words=("nowhere",),
            out=o / "t_nw",
        )
    )
    return out


def _predictions(fx: Fixtures) -> list[Any]:
    o = fx.out
    out = []
    for name, edit, words in (
        (
            "shape",
            lambda d: io.write_image(
                np.ones((9, 9), np.uint8), d / "labels.nrrd", spacing_mm=(1.0, 1.0), overwrite=True
            ),
            ("shape",),
        ),
        (
            "values",
            lambda d: io.write_image(
                np.full((64, 64), 5, np.uint8), d / "labels.nrrd", spacing_mm=(1, 1), overwrite=True
            ),
            ("labels",),
        ),
        ("insertion_text", lambda d: (d / "insertion.json").write_text("{oops"), ("insertion.json",)),
        (
            "insertion_null",
            lambda d: (d / "insertion.json").write_text(
                '{"slices": [{"per_frame": {"anterior": [{"pixel_yx": null}]}}]}'
            ),
            ("insertion.json",),
        ),
        ("empty", lambda d: (d / "labels.nrrd").unlink(), ("labels",)),
    ):
        folder = fx.path(f"pred_{name}")
        shutil.copytree(fx.good / "pred", folder)
        edit(folder / "case1")
        out.append(
            _case(
                f"evaluate_pred_{name}",
                ["evaluate", str(folder), str(fx.good / "cases"), "--out", str(o / f"ep_{name}")],
                words=words,
                out=o / f"ep_{name}",
            )
        )
    return out


def _batch_lists(fx: Fixtures) -> list[Any]:
    st = fx.good / "study"
    rows: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("no_path_column", "csv", "folder\nx\n", ("path",)),
        ("unknown_column", "csv", f"path,colour\n{st},red\n", ("colour",)),
        ("hct_text", "csv", f"path,hematocrit\n{st},abc\n", ("hematocrit",)),
        ("hct_range", "csv", f"path,hematocrit\n{st},4\n", ("hematocrit",)),
        ("condition", "csv", f"path,condition\n{st},sometimes\n", ("condition",)),
        ("aif_kind", "csv", f"path,aif,aif_kind\n{st},{fx.good / 'aif.csv'},serum\n", ("aif_kind",)),
        ("bad_id", "csv", f"path,id\n{st},../escape\n", ("id",)),
        ("same_twice", "txt", f"{st}\n{st}\n", ("both",)),
        ("empty", "txt", "# nothing\n", ("inputs",)),
        ("binary", "csv", "\udcff", ("binary.csv",)),
    ]
    out = []
    for name, suffix, text, words in rows:
        path = fx.path(f"{name}.{suffix}")
        if name == "binary":
            path.write_bytes(b"\xff\xfe\x00\x01path")
        else:
            path.write_text(text, encoding="utf-8")
        out.append(
            _case(
                f"batch_list_{name}",
                ["batch", str(path), "--out", str(fx.out / f"b_{name}")],
                words=words,
                out=fx.out / f"b_{name}",
            )
        )
    return out


def _train_configs(fx: Fixtures) -> list[Any]:
    out = []
    for name, text, words in (
        ("not_json", "{lr: 1}", ("config.json",)),
        ("list", "[1, 2]", ("config",)),
        ("unknown_key", json.dumps({"learning_rate": 0.1}), ("learning_rate",)),
        ("type", json.dumps({"lr": "fast"}), ("lr",)),
        ("negative_steps", json.dumps({"max_steps": -5}), ("max_steps",)),
        ("nan", '{"lr": NaN}', ("lr",)),
    ):
        folder = fx.path(f"config_{name}")
        folder.mkdir()
        path = folder / "config.json"
        path.write_text(text, encoding="utf-8")
        out.append(
            _case(
                f"train_config_{name}",
                ["train", "--out", str(fx.out / f"tc_{name}"), "--config", str(path)],
                words=words,
                out=fx.out / f"tc_{name}",
            )
        )
    return out


def _references(fx: Fixtures) -> list[Any]:
    st = str(fx.good / "study")
    wrong = fx.path("reference_wrong.npy")
    np.save(wrong, np.ones((5, 5)))
    text = fx.path("reference_text.npy")
    text.write_text("no array")
    out = []
    for name, path, words in (
        ("shape", wrong, ("--reference",)),
        ("text", text, ("reference_text.npy",)),
        ("missing", fx.bad / "no_ref.npy", ("no_ref.npy",)),
    ):
        out.append(
            _case(
                f"aif_detect_reference_{name}",
                [
                    "aif-detect",
                    st,
                    "--out",
                    str(fx.out / f"r_{name}"),
                    "--reference",
                    str(path),
                    "--method",
                    "classical",
                ],
                words=words,
                out=fx.out / f"r_{name}",
            )
        )
    mask = fx.path("mask_wrong.nrrd")
    io.write_image(np.ones((7, 7), np.uint8), mask, spacing_mm=(1.0, 1.0))
    s = str(fx.slice_nrrd)
    out.append(
        _case(
            "flowmap_mask_shape",
            [
                "flowmap",
                "--series",
                s,
                "--aif",
                str(fx.good / "aif.csv"),
                "--out",
                str(fx.out / "fmask"),
                "--mask",
                str(mask),
            ],
            words=("--mask",),
            out=fx.out / "fmask",
        )
    )
    out.append(
        _case(
            "moco_mask_shape",
            ["moco", s, "--out", str(fx.out / "mmask"), "--mask", str(mask)],
            words=("--mask",),
            out=fx.out / "mmask",
        )
    )
    return out


def more_cases(fx: Fixtures) -> list[Any]:
    return _cases_folders(fx) + _predictions(fx) + _batch_lists(fx) + _train_configs(fx) + _references(fx)
