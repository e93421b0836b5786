"""Tests of the phantom's in-memory training stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qperf import phantom
from qperf.errors import ValidationError


def _take(n: int, **kw: object) -> list[dict]:
    return list(itertools.islice(phantom.stream(**kw), n))  # type: ignore[arg-type]


def test_stream_slices_are_randomised_and_deterministic() -> None:
    kw = {"seed": 5, "n_frames": (16, 24), "max_studies": 2}
    a = _take(6, **kw)
    b = _take(6, **kw)
    assert len(a) == 6  # 2 studies x 3 slices
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["labels"], y["labels"])
    assert a[0]["seed"] != a[3]["seed"]
    for s in a:
        img = s["image"]
        assert img.dtype == np.float32 and img.ndim == 3 and s["units"] == "gd_mmol_l"
        assert img.shape[0] == s["time_s"].shape[0] == s["labels_moving"].shape[0]
        assert s["labels"].shape == img.shape[1:] and set(np.unique(s["labels"])) == {0, 1, 2, 3}
        assert s["level"] in ("basal", "mid", "apical")
        # Gd images: blood peaks well above the myocardium, baseline near zero
        lv = img[:, s["labels"] == 1].mean(axis=1)
        myo = img[:, s["labels"] == 2].mean(axis=1)
        assert lv.max() > 2.0 * myo.max() and abs(float(np.median(myo[:3]))) < 0.15


def test_stream_signal_and_aif_samples() -> None:
    s = next(phantom.stream(seed=1, units="signal", n_frames=(14, 14), motion_scale=(1.0, 1.0)))
    assert s["image"].shape[0] == 14 and s["n_pd_frames"] == 3 and s["units"] == "signal"
    assert s["labels_moving"].shape[0] == 14
    aif = next(phantom.stream(seed=1, kind="aif", n_frames=(20, 20)))
    assert aif["image"].shape == aif["image_echo2"].shape == aif["labels_moving"].shape
    assert {1, 3} <= set(np.unique(aif["labels"]))
    assert aif["aif_blood_gd_mmol_l"].shape == (20,)
    # the LV of the AIF images brightens when the bolus passes
    lv = aif["image"][:, aif["labels"] == 1].mean(axis=1)
    assert lv[3:].max() > 2.0 * lv[3:6].mean()


def test_stream_rejects_bad_options() -> None:
    with pytest.raises(ValidationError, match="kind"):
        next(phantom.stream(kind="volume"))
    with pytest.raises(ValidationError, match="n_frames"):
        next(phantom.stream(n_frames=(5, 300)))
    with pytest.raises(ValidationError, match="units"):
        next(phantom.stream(units="hu"))
