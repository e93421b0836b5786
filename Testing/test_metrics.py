"""qperf.metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qperf import metrics
from qperf.errors import ValidationError


def test_overlap_hand_computed() -> None:
    ref = np.zeros((5, 5), bool)
    ref[0:2, 0:3] = True  # 6 pixels
    pred = np.zeros((5, 5), bool)
    pred[0:2, 0:2] = True  # 4 pixels, all inside ref
    pred[4, 4] = True  # one false positive
    o = metrics.overlap(pred, ref)
    # TP 4, FP 1, FN 2
    assert o.dice == pytest.approx(2 * 4 / (5 + 6))
    assert o.false_positive_rate == pytest.approx(1 / 6)
    assert o.false_negative_rate == pytest.approx(2 / 6)
    assert o.precision == pytest.approx(4 / 5)
    assert o.recall == pytest.approx(4 / 6)


def test_dice_edge_cases() -> None:
    empty = np.zeros((3, 3), bool)
    assert metrics.dice(empty, empty) == 1.0
    full = np.ones((3, 3), bool)
    assert metrics.dice(full, empty) == 0.0
    assert math.isnan(metrics.overlap(full, empty).recall)
    with pytest.raises(ValidationError, match="shape"):
        metrics.dice(np.zeros((3, 3)), np.zeros((3, 4)))


def test_boundary_distances_single_pixels_anisotropic() -> None:
    a = np.zeros((6, 6), bool)
    b = np.zeros((6, 6), bool)
    a[0, 0] = True
    b[3, 4] = True
    mean_mm, hd_mm = metrics.boundary_distances(a, b, (1.0, 1.0))
    assert mean_mm == pytest.approx(5.0)
    assert hd_mm == pytest.approx(5.0)
    mean_mm, hd_mm = metrics.boundary_distances(a, b, (2.0, 0.5))  # dy 6 mm, dx 2 mm
    assert hd_mm == pytest.approx(math.sqrt(40.0))


def test_boundary_distances_asymmetric() -> None:
    ref = np.zeros((4, 8), bool)
    ref[0, 0] = True
    pred = ref.copy()
    pred[0, 3] = True
    mean_mm, hd_mm = metrics.boundary_distances(pred, ref, (1.0, 1.0))
    # pred->ref distances {0, 3}, ref->pred {0}: mean 1, Hausdorff 3
    assert mean_mm == pytest.approx(1.0)
    assert hd_mm == pytest.approx(3.0)


def test_boundary_of_square_and_identical_masks() -> None:
    m = np.zeros((7, 7), bool)
    m[1:6, 1:6] = True
    assert metrics.boundary(m).sum() == 16  # 5 x 5 square: 25 - 9 interior
    assert metrics.boundary_distances(m, m, (1.3, 0.7)) == (0.0, 0.0)
    assert all(math.isnan(v) for v in metrics.boundary_distances(m, np.zeros_like(m), (1, 1)))


def test_insertion_angle_error() -> None:
    centre = (10.0, 10.0)
    assert metrics.insertion_angle_error((10, 20), (20, 10), centre, (1, 1)) == pytest.approx(90.0)
    assert metrics.insertion_angle_error((11, 11), (10, 20), centre, (1, 1)) == pytest.approx(45.0)
    # Anisotropic pixels: 5 rows of 2 mm and 10 columns of 1 mm are 45 degrees, not 26.6.
    assert metrics.insertion_angle_error((15, 20), (10, 20), centre, (2.0, 1.0)) == pytest.approx(45.0)
    assert metrics.angle_difference_deg(170.0, -170.0) == pytest.approx(20.0)
    assert metrics.angle_difference_deg(-90.0, 90.0) == pytest.approx(180.0)


def test_lv_centre_and_score_labels() -> None:
    lab = np.zeros((9, 9), np.uint8)
    lab[2:5, 3:6] = 1
    assert metrics.lv_centre(lab) == (3.0, 4.0)
    with pytest.raises(ValidationError, match="LV"):
        metrics.lv_centre(np.zeros((3, 3)))
    s = metrics.score_labels(lab, lab, (1.0, 1.0), 1)
    assert s.overlap.dice == 1.0 and s.hausdorff_mm == 0.0
    with pytest.raises(ValidationError, match="spacing_mm"):
        metrics.boundary_distances(lab == 1, lab == 1, (1.0, -1.0))
