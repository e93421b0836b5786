"""Annotated cases: the folder format, evaluation against manual labels, fine-tuning on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qperf import io, phantom
from qperf.cli import main
from qperf.errors import FormatError
from qperf.evaluation import evaluate
from qperf.segmentation.cases import read_case, read_cases, split_patients, write_case
from qperf.segmentation.sources import prepare_case


@pytest.fixture(scope="module")
def moving_study() -> phantom.PhantomStudy:
    return phantom.generate_study(
        seed=31, n_slices=2, n_frames=30, motion=True, aif_images=False, shape=(96, 96), spacing_mm=2.4
    )


def _write_cases(root: Path, ps: phantom.PhantomStudy, every: int = 3) -> list[Path]:
    """Per-frame LV and myocardium labels on every ``every``-th acquired frame (the others unlabelled)."""
    paths = []
    for i, (series, truth) in enumerate(zip(ps.study.slices, ps.truth.slices, strict=True)):
        labels = np.where(np.isin(truth.labels_moving, (1, 2)), truth.labels_moving, 0).astype(np.uint8)
        labels[np.arange(series.n_frames) % every != 0] = 0
        paths.append(write_case(root / f"case{i}", series, labels, classes=(1, 2), patient=f"P{i}"))
    return paths


def test_case_folders_round_trip_and_refuse_bad_labels(moving_study, tmp_path: Path) -> None:
    path = _write_cases(tmp_path, moving_study)[0]
    case = read_case(path)
    assert case.drawn == frozenset({1, 2}) and case.patient == "P0"
    assert case.labels.shape == moving_study.study.slices[0].data.shape
    assert case.labelled_frames == tuple(range(0, moving_study.study.slices[0].n_frames, 3))
    assert json.loads((path / "case.json").read_text())["classes"] == ["lv_blood_pool", "lv_myocardium"]
    assert len(read_cases(tmp_path)) == 2 and len(read_cases(path)) == 1
    # without case.json the drawn classes are those present
    (path / "case.json").unlink()
    assert read_case(path).drawn == frozenset({1, 2})
    (path / "case.json").write_text(json.dumps({"classes": ["lv_wall"]}))
    with pytest.raises(FormatError, match="class names"):
        read_case(path)
    bad = tmp_path / "bad"
    bad.mkdir()
    io.write_series(moving_study.study.slices[0], bad / "series.seq.nrrd")
    io.write_image(np.full((5, 5), 2, np.uint8), bad / "labels.nrrd", spacing_mm=(1.0, 1.0))
    with pytest.raises(FormatError, match="grid"):
        read_case(bad)


def test_per_frame_labels_of_a_breathing_series_meet_on_the_corrected_grid(moving_study, tmp_path: Path) -> None:
    """Each labelled frame is carried to the reference (key-frame) grid; the vote matches the key
    frame's true labels better than any single labelled frame left where it was."""
    case = read_case(_write_cases(tmp_path, moving_study)[0])
    item, result = prepare_case(case, motion="on")
    assert result is not None and item.series is result.corrected
    truth = moving_study.truth.slices[0].labels_moving[result.key_frame]
    myo = truth == 2

    def dice(a: np.ndarray) -> float:
        return float(2 * np.sum(a & myo) / (np.sum(a) + np.sum(myo)))

    voted = dice(item.labels == 2)
    assert voted > 0.8
    assert voted > np.median([dice(case.labels[k] == 2) for k in case.labelled_frames])
    assert item.drawn == frozenset({1, 2}) and not (item.labels == 3).any()


def test_split_keeps_patients_together(moving_study, tmp_path: Path) -> None:
    cases = [read_case(p) for p in _write_cases(tmp_path, moving_study)]
    renamed = cases + [type(c)(f"x{i}", c.series, c.labels, c.drawn, {}, f"Q{i}") for i, c in enumerate(cases)]
    train, held = split_patients(renamed, 0.25)
    assert held and train
    assert not {c.patient for c in train} & {c.patient for c in held}


def test_evaluate_agrees_with_an_independent_dice(moving_study, tmp_path: Path) -> None:
    _write_cases(tmp_path / "manual", moving_study)
    for i, truth in enumerate(moving_study.truth.slices):
        series = moving_study.study.slices[i]
        predicted = np.roll(truth.labels_moving, 1, axis=2).astype(np.uint8)  # one pixel off
        out = tmp_path / "predicted" / f"case{i}"
        out.mkdir(parents=True)
        io.write_image(predicted, out / "labels.nrrd", spacing_mm=series.spacing_mm, time_s=series.time_s)
    result = evaluate(tmp_path / "predicted", tmp_path / "manual")
    row = next(r for r in result.rows if r["case"] == "case0" and r["class"] == "lv_myocardium")
    manual = read_case(tmp_path / "manual" / "case0")
    predicted = np.roll(moving_study.truth.slices[0].labels_moving, 1, axis=2)
    independent = []
    for k in manual.labelled_frames:
        a, b = predicted[k] == 2, manual.labels[k] == 2
        independent.append(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))
    assert row["dice"] == pytest.approx(float(np.mean(independent)), abs=0.01)
    assert row["n_frames"] == len(manual.labelled_frames)
    assert {r["class"] for r in result.rows} == {"lv_blood_pool", "lv_myocardium"}  # no RV drawn
    assert 0.0 < row["msd_mm"] < 2.0 * 2.4 and row["hd95_mm"] >= row["msd_mm"]
    assert (
        main(["evaluate", str(tmp_path / "predicted"), str(tmp_path / "manual"), "--out", str(tmp_path / "ev"), "-q"])
        == 0
    )
    for name in ("evaluation.json", "evaluation.csv", "evaluation.html"):
        assert (tmp_path / "ev" / name).is_file()
    lines = (tmp_path / "ev" / "evaluation.csv").read_text().splitlines()
    assert len(lines) == 1 + 4  # two cases, two classes


def test_flow_agreement_of_paired_reports() -> None:
    from qperf.evaluation import compare_reports

    def report(offset: float) -> dict:
        segments = {str(k): {"mbf_mean_ml_min_g": 2.0 + 0.1 * k + offset} for k in range(1, 17)}
        return {"global": {"mbf_mean_ml_min_g": 2.8 + offset}, "segments": segments}

    result = compare_reports([("a", report(0.05), report(0.0)), ("b", report(0.15), report(0.1))])
    assert result["segments"]["n"] == 32 and result["segments"]["bias"] == pytest.approx(0.05)
    assert result["global"]["mean_predicted"] == pytest.approx(2.8 + 0.1)


@pytest.mark.slow
def test_fine_tuning_writes_a_model_that_segments(moving_study, tmp_path: Path) -> None:
    """A short fine-tuning run on annotated cases: split, held-out figures before and after, a
    model folder that ``qperf segment --model RUN_DIR`` loads."""
    from qperf.segmentation.finetune import fine_tune
    from qperf.segmentation.train import TrainConfig

    _write_cases(tmp_path / "cases", moving_study)
    cfg = TrainConfig(max_steps=3, batch_size=2, pool_size=2, n_val_slices=1, val_every=2, threads=1)
    card_path = fine_tune(
        tmp_path / "cases", tmp_path / "run", max_minutes=10, config=cfg, motion="on", log=lambda s: None
    )
    card = json.loads(card_path.read_text())
    assert card["training"]["split"]["held_out"] and card["training"]["split"]["training"]
    assert card["metrics"]["held_out_after"]["dice_myo"] is not None
    assert card["metrics"]["held_out_after"]["dice_rv"] is None  # the RV was not drawn
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("val_dice_myo_real" in r for r in log)
    series_path = tmp_path / "series.seq.nrrd"
    io.write_series(moving_study.study.slices[0], series_path)
    assert (
        main(["segment", str(series_path), "--out", str(tmp_path / "seg"), "--model", str(tmp_path / "run"), "-q"]) == 0
    )
