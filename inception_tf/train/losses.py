"""The paper's training loss, computed in float32 whatever the compute dtype.

    loss = CE(smooth(y), logits) + aux_weight * CE(smooth(y), aux_logits)     per example
         + weight_decay * sum(w^2) / 2 over conv and dense kernels            once per step

* label smoothing ([v3] §7): targets (1 - eps) * onehot + eps / K over all K logits, eps = 0.1
  (tf.losses.softmax_cross_entropy(label_smoothing=eps), which slim's trainer used);
* auxiliary head weight 0.4 (slim's train_image_classifier for v3; the v4 / IRv2 heads use it too);
* weight decay as slim.l2_regularizer(4e-5) = 4e-5 * sum(w^2) / 2 (i.e. Keras L2(2e-5)), on the
  `weights` of conv and fully-connected layers only: not on biases, not on batch-norm beta/gamma.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import keras
import tensorflow as tf

_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D,
                  keras.layers.SeparableConv2D, keras.layers.Conv1D, keras.layers.Conv3D)


def smoothed_targets(labels, num_classes: int, label_smoothing: float):
  """One-hot targets with `label_smoothing` spread uniformly over all `num_classes`."""
  onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
  if label_smoothing:
    onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
  return onehot


def per_example_loss(outputs: Mapping[str, tf.Tensor], labels, *, label_smoothing: float = 0.1,
                     aux_loss_weight: float = 0.4):
  """Cross-entropy (+ weighted auxiliary cross-entropy) per example, float32, shape [N].

  Args:
    outputs: the model's output dict: "logits" [N, K] and optionally "aux_logits" [N, K].
    labels: int labels [N] in [0, K).
    label_smoothing: epsilon of [v3] §7.
    aux_loss_weight: weight of the auxiliary head's loss; ignored when there is no aux head.

  Returns:
    A float32 tensor [N].
  """
  logits = tf.cast(outputs["logits"], tf.float32)
  targets = smoothed_targets(labels, logits.shape[-1], label_smoothing)
  loss = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
  aux = outputs.get("aux_logits") if hasattr(outputs, "get") else None
  if aux is not None and aux_loss_weight:
    aux = tf.cast(aux, tf.float32)
    loss += aux_loss_weight * tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=aux)
  return loss


def sublayers(model: keras.Layer):
  """Every layer inside `model`, once each: its `layers`, recursively into nested models and into
  wrappers' `layer`. Public API only; for models of built-in layers the same layers in the same
  order as Keras' private `_flatten_layers(include_self=False)` (a nested model's layers follow it,
  last first), so sums over them round alike (tests/train/test_losses.py)."""
  seen, stack = set(), list(reversed(getattr(model, "layers", [])))
  while stack:
    layer = stack.pop()
    if id(layer) in seen:
      continue
    seen.add(id(layer))
    yield layer
    inner = layer.layers if isinstance(layer, keras.Model) else (
        [layer.layer] if isinstance(layer, keras.layers.Wrapper) else [])
    stack.extend(inner)


def weight_decay_variables(model: keras.Model) -> list:
  """The kernels slim regularises: conv / depthwise / separable / dense weights, nothing else."""
  kernels, seen = [], set()
  for layer in sublayers(model):
    if not isinstance(layer, _KERNEL_LAYERS) or not layer.built:
      continue
    for attribute in ("kernel", "depthwise_kernel", "pointwise_kernel"):
      variable = getattr(layer, attribute, None)
      if variable is not None and id(variable) not in seen:
        seen.add(id(variable))
        kernels.append(variable)
  return kernels


def weight_decay_loss(variables: Iterable, weight_decay: float):
  """`weight_decay * sum(w^2) / 2` in float32 (slim's l2_regularizer), 0.0 when decay is 0."""
  variables = list(variables)
  if not weight_decay or not variables:
    return tf.constant(0.0, tf.float32)
  total = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables])
  return weight_decay * 0.5 * total
