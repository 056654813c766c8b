"""Runs the real TF-slim networks (the `tf-slim` pip package) as a reference, in TF1 graph mode.

`run_slim_network(...)` builds a slim net in its own `tf.Graph`, gives it random weights and
non-trivial batch-norm statistics, saves a TF1 checkpoint (the format TF-slim published) and returns
its logits and end_points for the given images. Tests then load that checkpoint into our Keras
model with `load_slim_checkpoint` and compare.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

import numpy as np
import tensorflow as tf


def import_tf_slim():
  """Imports tf_slim under TF 2.21 (it needs tf_keras' legacy layers at their old path)."""
  import tf_keras  # noqa: F401  (test extra)
  legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
  sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
  for sub in ("base", "core", "convolutional", "normalization", "pooling"):
    try:
      sys.modules.setdefault(f"tf_keras.legacy_tf_layers.{sub}",
                             importlib.import_module(f"tf_keras.src.legacy_tf_layers.{sub}"))
    except ImportError:
      pass
  import tf_slim
  return tf_slim


@contextlib.contextmanager
def _identity_equality():
  """TF1's identity equality of tensors and variables while a slim graph is built.

  In a TF1 graph variables hash and compare by identity either way; with tensor equality off TF
  skips an eager-mode check on every hash, which tf_keras' legacy layers run over all existing
  variables per new one (quadratic: builds of the 100-200 layer ResNets take ~3x longer).
  """
  enabled = tf.Tensor._USE_EQUALITY  # pylint: disable=protected-access
  tf.compat.v1.disable_tensor_equality()
  try:
    yield
  finally:
    if enabled:
      tf.compat.v1.enable_tensor_equality()


def run_slim_network(net_fn, arg_scope_fn, images: np.ndarray, checkpoint_prefix: str, *,
                     seed: int = 0, net_kwargs: dict | None = None, weight_scale: float = 1.0):
  """Builds `net_fn` under `arg_scope_fn()`, randomises it, saves it, and evaluates it.

  Returns:
    (logits [N, num_classes] as numpy, {endpoint: numpy}, {variable name: shape}); the other
    arguments are those of `run_slim_variants` with the single variant `net_kwargs`.
  """
  outputs, shapes = run_slim_variants(net_fn, arg_scope_fn, images, checkpoint_prefix,
                                      variants=[net_kwargs or {}], seed=seed,
                                      weight_scale=weight_scale)
  (logits, end_points), = outputs
  return logits, end_points, shapes


def run_slim_variants(net_fn, arg_scope_fn, images: np.ndarray, checkpoint_prefix: str, *,
                      variants, seed: int = 0, weight_scale: float = 1.0):
  """`run_slim_network` for several builds of one network that share its variables.

  The first variant creates the variables; the others reuse them (e.g. the same ResNet at
  output_stride None and 16), so the slow part, TF1's variable creation, happens once.

  Args:
    net_fn: e.g. `tf_slim.nets.inception.inception_v3` (called with is_training=False).
    arg_scope_fn: e.g. `tf_slim.nets.inception.inception_v3_arg_scope`.
    images: float32 [N, H, W, 3] inputs.
    checkpoint_prefix: where to save the TF1 checkpoint.
    seed: seed of the random weights and statistics.
    variants: one dict per build: keyword arguments of `net_fn` (num_classes, output_stride, ...).
    weight_scale: multiplies the He-style random weights (keep activations in range).

  Returns:
    ([(logits as numpy, {endpoint: numpy}) per variant], {variable name: shape}).
  """
  slim = import_tf_slim()
  del slim
  rng = np.random.default_rng(seed)
  graph = tf.Graph()
  with graph.as_default(), _identity_equality():
    placeholder = tf.compat.v1.placeholder(tf.float32, shape=images.shape)
    built = []
    for index, net_kwargs in enumerate(variants):
      with tf.compat.v1.variable_scope("", reuse=index > 0):
        import tf_slim
        with tf_slim.arg_scope(arg_scope_fn()):
          built.append(net_fn(placeholder, is_training=False, **net_kwargs))
      if index == 0:
        variables = tf.compat.v1.global_variables()
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session(graph=graph) as sess:
      # One session run assigns every variable (a `v.load` per variable re-extends the graph each
      # time, which costs ~0.1 s per variable on a busy 2-core machine).
      assigns, feed = [], {}
      for v in variables:
        shape = v.shape.as_list()
        name = v.op.name
        if name.endswith("moving_mean"):
          value = rng.normal(0.0, 0.1, shape)
        elif name.endswith("moving_variance"):
          value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
          value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith(("beta", "biases")):
          value = rng.normal(0.0, 0.1, shape)
        elif name == "global_step":
          continue
        else:
          fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
          if "depthwise_weights" in name:
            fan_in = int(np.prod(shape[:2]))
          value = rng.normal(0.0, weight_scale * np.sqrt(2.0 / max(fan_in, 1)), shape)
        value_placeholder = tf.compat.v1.placeholder(v.dtype.base_dtype, shape)
        assigns.append(tf.compat.v1.assign(v, value_placeholder))
        feed[value_placeholder] = value.astype(np.float32)
      sess.run(assigns, feed)
      saver.save(sess, checkpoint_prefix, write_meta_graph=False, write_state=False)
      wanted = [(logits, {k: t for k, t in end_points.items() if isinstance(t, tf.Tensor)})
                for logits, end_points in built]
      outputs = sess.run(wanted, {placeholder: images})
    shapes = {v.op.name: tuple(v.shape.as_list()) for v in variables}
  return outputs, shapes
