"""Masked top-k accuracy and per-class accuracy.

`top_k_correct` runs inside the evaluation step (TF); `AccuracyAccumulator` sums its per-example
results on the host, counting only examples whose mask is 1, so padded examples never count.

Ties: the label is in the top k when fewer than k classes score strictly higher than it (the
convention of `tf.math.in_top_k`); a non-finite score for the label is never correct.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def top_k_correct(scores: tf.Tensor, labels: tf.Tensor, k: int) -> tf.Tensor:
  """Whether each example's label is among its `k` highest scores.

  Args:
    scores: [N, C] logits or probabilities.
    labels: [N] int class indices into the C columns.
    k: 1 <= k; values above C are clipped to C.

  Returns:
    [N] bool.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}.")
  scores = tf.convert_to_tensor(scores)
  labels = tf.cast(labels, tf.int32)
  label_scores = tf.gather(scores, labels, axis=1, batch_dims=1)
  higher = tf.reduce_sum(tf.cast(scores > label_scores[:, tf.newaxis], tf.int32), axis=1)
  return tf.logical_and(higher < k, tf.math.is_finite(label_scores))


def top_k_correct_np(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """NumPy twin of `top_k_correct` (for reports computed from saved probabilities)."""
  scores = np.asarray(scores)
  labels = np.asarray(labels, dtype=np.int64)
  label_scores = scores[np.arange(len(labels)), labels]
  higher = (scores > label_scores[:, None]).sum(axis=1)
  return (higher < k) & np.isfinite(label_scores)


class AccuracyAccumulator:
  """Sums masked top-k hits and per-class hits over batches.

  Example:
    >>> acc = AccuracyAccumulator(num_classes=3, ks=(1, 2))
    >>> acc.update({1: [True, False], 2: [True, True]}, labels=[0, 2], mask=[1, 1])
    >>> acc.result()["top1_accuracy"]
    0.5
  """

  def __init__(self, num_classes: int, ks: Sequence[int] = (1, 5)):
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    self.num_classes = num_classes
    self.ks = tuple(ks)
    self.count = 0
    self.hits = {k: 0 for k in self.ks}
    self.class_count = np.zeros(num_classes, np.int64)
    self.class_hits = np.zeros(num_classes, np.int64)

  def update(self, correct: dict[int, np.ndarray], labels: np.ndarray, mask: np.ndarray) -> None:
    """Adds a batch: `correct[k]` [N] bool, `labels` [N] int, `mask` [N] (1 = real example)."""
    mask = np.asarray(mask).reshape(-1) > 0
    labels = np.asarray(labels).reshape(-1)[mask].astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
      raise ValueError(f"Label out of range [0, {self.num_classes}): saw {labels.min()}.."
                       f"{labels.max()}; check num_classes / the 1000-vs-1001 class layout.")
    self.count += int(mask.sum())
    for k in self.ks:
      self.hits[k] += int(np.asarray(correct[k]).reshape(-1)[mask].sum())
    top1 = np.asarray(correct[self.ks[0]]).reshape(-1)[mask]
    np.add.at(self.class_count, labels, 1)
    np.add.at(self.class_hits, labels, top1.astype(np.int64))

  def result(self) -> dict:
    """top{k}_accuracy / top{k}_error for every k, num_examples, and per-class top-1 accuracy."""
    out = {"num_examples": self.count}
    for k in self.ks:
      accuracy = self.hits[k] / self.count if self.count else float("nan")
      out[f"top{k}_accuracy"] = accuracy
      out[f"top{k}_error"] = 1.0 - accuracy
      out[f"top{k}_correct"] = self.hits[k]
    seen = np.nonzero(self.class_count)[0]
    out["per_class"] = {
        int(c): {"count": int(self.class_count[c]),
                 f"top{self.ks[0]}_accuracy": float(self.class_hits[c] / self.class_count[c])}
        for c in seen}
    out["mean_per_class_accuracy"] = (float(np.mean(self.class_hits[seen] / self.class_count[seen]))
                                      if seen.size else float("nan"))
    return out
