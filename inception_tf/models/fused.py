"""Calling a functional model with TF's fused batch-norm kernel.

Keras 3's `BatchNormalization` computes batch norm from primitive ops: `tf.nn.moments` (mean, then
squared differences, each a pass over the activations) and a separate multiply and add, and under
mixed precision it casts bfloat16 activations to float32 and back around all of that. The backward
pass is as many ops again. TF has one kernel for the whole thing, `FusedBatchNormV3` (one op
forward, one op backward; XLA lowers it too, for TPUs), and grappler's remapper has fusions of
`Conv2D -> FusedBatchNormV3 (-> Relu)` for inference (not checked here which of them fire on this
CPU). TF-slim trained the published checkpoints with that kernel (`slim.batch_norm(fused=None)`).

`fused_call(model, inputs, training=...)` runs a functional model's graph exactly like
`model(inputs, training=...)` does, except that each `BatchNormalization` layer is computed by that
kernel on the layer's own variables:

  - the same maths as the Keras layer: batch statistics when training, moving statistics otherwise;
    moving averages updated with the layer's momentum from the biased batch variance (the kernel
    reports the Bessel-corrected variance, n / (n - 1) times larger, which is undone), so a run with
    `fused_call` and one with `model(...)` train the same model (tests: equal within float rounding);
  - a frozen layer (`trainable=False`) uses its moving statistics, as in Keras;
  - layers the kernel does not cover (channels not last, rank other than 4, `synchronized=True`,
    `renorm=True`) run as the Keras layer.

The model itself is not changed: it keeps built-in layers only, so `.keras` files and checkpoints
are the same whichever way it is called. The trainer, the evaluator, the serving signatures and the
benchmark's "ours" side call models this way. Speed on this 2-core CPU: WORKSPACE_NOTES.md,
"Session 5" / "Fused batch norm".
"""

from __future__ import annotations

import inspect
from typing import Callable

import keras
import tensorflow as tf


def is_fusable(layer: keras.layers.Layer, inputs) -> bool:
  """Whether `layer` is a batch norm that the fused kernel computes exactly for `inputs`."""
  if type(layer) is not keras.layers.BatchNormalization:  # pylint: disable=unidiomatic-typecheck
    return False
  rank = len(inputs.shape)
  return (rank == 4 and layer.axis in (-1, 3) and not layer.synchronized and not layer.renorm
          and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16))


@tf.autograph.experimental.do_not_convert  # Python control flow on layer settings only
def fused_batch_norm(layer: keras.layers.BatchNormalization, inputs, *, training: bool):
  """`layer(inputs, training=training)` computed by `FusedBatchNormV3`.

  Args:
    layer: a built Keras `BatchNormalization` over the last axis of NHWC inputs.
    inputs: NHWC activations in the layer's compute dtype (float32 or bfloat16).
    training: use and fold into the moving averages the batch's statistics (if the layer is
      trainable), else normalize with the moving statistics.

  Returns:
    The normalized activations, in the dtype of `inputs`.
  """
  channels = inputs.shape[-1]
  scale = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels], tf.float32)
  offset = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels], tf.float32)
  moving_mean = tf.cast(layer.moving_mean, tf.float32)
  moving_variance = tf.cast(layer.moving_variance, tf.float32)
  if not (training and layer.trainable):
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs, scale, offset, mean=moving_mean, variance=moving_variance,
        epsilon=layer.epsilon, is_training=False)
    return outputs
  outputs, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
      inputs, scale, offset, epsilon=layer.epsilon, is_training=True)
  count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
  variance = corrected_variance * ((count - 1.0) / count)
  momentum = layer.momentum
  layer.moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
  layer.moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
  return outputs


def _accepts_training(operation) -> bool:
  call = getattr(operation, "call", None)
  if call is None:
    return False
  try:
    return "training" in inspect.signature(call).parameters
  except (TypeError, ValueError):
    return False


def _operation_fn(training: bool | None) -> Callable:
  def wrap(operation):
    def call(*args, **kwargs):
      if isinstance(operation, keras.layers.BatchNormalization) and is_fusable(operation, args[0]):
        return fused_batch_norm(operation, args[0], training=bool(training))
      if isinstance(operation, keras.Model) and _is_functional(operation):
        return fused_call(operation, *args, training=training)
      if training is not None and _accepts_training(operation):
        kwargs["training"] = training
      return operation(*args, **kwargs)

    return call

  return wrap


def _is_functional(model) -> bool:
  return hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth")


@tf.autograph.experimental.do_not_convert  # walks the Python graph of layers
def fused_call(model: keras.Model, inputs, *, training: bool | None = False):
  """`model(inputs, training=training)` with every batch norm on the fused kernel.

  Args:
    model: a functional Keras model (any of `create_model`'s, a `.keras` reload, an inference
      model); other models are simply called.
    inputs: what `model` takes (a tensor, or the structure of its inputs).
    training: as for `model(...)`.

  Returns:
    The model's outputs, with the structure `model(...)` returns.
  """
  if not _is_functional(model):
    return model(inputs, training=training)
  # Functional.call's own path (private API of Keras 3; tests compare it with model(...)).
  flat = model._standardize_inputs(inputs)  # pylint: disable=protected-access
  outputs = model._run_through_graph(flat, operation_fn=_operation_fn(training))  # pylint: disable=protected-access
  if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
    return outputs[0]
  return outputs
