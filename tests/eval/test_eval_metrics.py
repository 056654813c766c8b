"""Masked top-k and per-class accuracy on hand-made logits."""

import numpy as np
import pytest

from inception_tf.eval import metrics

LOGITS = np.array([
    [0.1, 0.9, 0.0, 0.3, 0.2, 0.4],   # label 1: rank 0
    [0.5, 0.1, 0.2, 0.3, 0.4, 0.6],   # label 4: rank 2 (0.6, 0.5 higher)
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],   # label 5: rank 5
    [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],   # label 3: all tied -> rank 0
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],   # label 1: rank 4 (5, 4, 3, 2 higher)
], np.float32)
LABELS = np.array([1, 4, 5, 3, 1])


@pytest.mark.parametrize("k,expected", [
    (1, [True, False, False, True, False]),
    (2, [True, False, False, True, False]),
    (3, [True, True, False, True, False]),
    (5, [True, True, False, True, True]),
    (6, [True, True, True, True, True]),
])
def test_top_k_on_hand_made_logits(k, expected):
  np.testing.assert_array_equal(metrics.top_k_correct(LOGITS, LABELS, k).numpy(), expected)
  np.testing.assert_array_equal(metrics.top_k_correct_np(LOGITS, LABELS, k), expected)


def test_non_finite_label_score_is_never_correct():
  logits = np.array([[np.nan, 0.0], [np.inf, 0.0]], np.float32)
  np.testing.assert_array_equal(metrics.top_k_correct(logits, [0, 1], 1).numpy(), [False, False])


def test_accumulator_ignores_masked_examples_and_counts_per_class():
  acc = metrics.AccuracyAccumulator(num_classes=6, ks=(1, 5))
  for start in (0, 3):
    sl = slice(start, start + 3)
    logits, labels = LOGITS[sl], LABELS[sl]
    mask = np.ones(len(labels))
    if start == 3:  # pad the last batch with a masked copy of a wrong example
      logits = np.concatenate([logits, LOGITS[2:3]])
      labels = np.concatenate([labels, LABELS[2:3]])
      mask = np.array([1, 1, 0])
    acc.update({k: metrics.top_k_correct_np(logits, labels, k) for k in (1, 5)}, labels, mask)
  result = acc.result()
  assert result["num_examples"] == 5
  assert result["top1_correct"] == 2 and result["top5_correct"] == 4
  assert result["top1_accuracy"] == pytest.approx(0.4)
  assert result["top5_error"] == pytest.approx(0.2)
  assert result["per_class"] == {1: {"count": 2, "top1_accuracy": 0.5},
                                 3: {"count": 1, "top1_accuracy": 1.0},
                                 4: {"count": 1, "top1_accuracy": 0.0},
                                 5: {"count": 1, "top1_accuracy": 0.0}}
  assert result["mean_per_class_accuracy"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)


def test_out_of_range_label_names_the_class_layout():
  acc = metrics.AccuracyAccumulator(num_classes=3)
  with pytest.raises(ValueError, match="1000-vs-1001"):
    acc.update({1: [True], 5: [True]}, labels=[3], mask=[1])
