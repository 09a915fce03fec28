"""Curve criteria on hand-made held-out accuracy curves, checked against hand-computed areas."""

import math

import pytest

from momentum_interp.training.curves import accuracy_auc, steps_to_accuracy


def test_auc_of_hand_made_curves():
    # Trapezoids by hand: (0.2+0.6)/2·100 + (0.6+1)/2·100 + (1+1)/2·200 = 40 + 80 + 200 = 320
    # over a range of 400 steps.
    assert accuracy_auc([100, 200, 300, 500], [0.2, 0.6, 1.0, 1.0]) == pytest.approx(320 / 400)
    assert accuracy_auc([50, 100], [0.3, 0.3]) == pytest.approx(0.3)  # a flat curve: its level
    assert accuracy_auc([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    # Two runs that both end at 100 %: the one that learned sooner scores higher.
    early = accuracy_auc([100, 200, 300, 400], [0.5, 1.0, 1.0, 1.0])
    late = accuracy_auc([100, 200, 300, 400], [0.1, 0.2, 0.9, 1.0])
    assert early > late and 0 <= late < early <= 1


def test_steps_to_target_interpolates_the_crossing():
    steps, acc = [100, 200, 300], [0.1, 0.3, 0.7]
    assert steps_to_accuracy(steps, acc, 0.5) == pytest.approx(250.0)  # halfway from 0.3 to 0.7
    assert steps_to_accuracy(steps, acc, 0.05) == 100.0
    assert math.isnan(steps_to_accuracy(steps, acc, 0.9))


@pytest.mark.parametrize(
    ("steps", "acc", "match"),
    [([100], [0.5], ">= 2"), ([100, 100], [0.1, 0.2], "increase"), ([1, 2], [0.1], ">= 2")],
)
def test_bad_curves_are_rejected(steps, acc, match):
    with pytest.raises(ValueError, match=match):
        accuracy_auc(steps, acc)
