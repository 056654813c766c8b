"""Runs the real TF-slim networks (the `tf-slim` pip package) as a reference, in TF1 graph mode.

`run_slim_network(...)` builds a slim net in its own `tf.Graph`, gives it random weights and
non-trivial batch-norm statistics, saves a TF1 checkpoint (the format TF-slim published) and returns
its logits and end_points for the given images. Tests then load that checkpoint into our Keras
model with `load_slim_checkpoint` and compare.
"""

from __future__ import annotations

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


def run_slim_network(net_fn, arg_scope_fn, images: np.ndarray, checkpoint_prefix: str, *,
                     seed: int = 0, net_kwargs: dict | None = None, weight_scale: float = 1.0):
  """Builds `net_fn` under `arg_scope_fn()`, randomises it, saves it, and evaluates it.

  Args:
    net_fn: e.g. `tf_slim.nets.inception.inception_v3` (called with is_training=False).
    arg_scope_fn: e.g. `tf_slim.nets.inception.inception_v3_arg_scope`.
    images: float32 [N, H, W, 3] inputs.
    checkpoint_prefix: where to save the TF1 checkpoint.
    seed: seed of the random weights and statistics.
    net_kwargs: further keyword arguments of `net_fn` (num_classes, depth_multiplier, ...).
    weight_scale: multiplies the He-style random weights (keep activations in range).

  Returns:
    (logits [N, num_classes] as numpy, {endpoint: numpy}, {variable name: shape}).
  """
  slim = import_tf_slim()
  del slim
  rng = np.random.default_rng(seed)
  graph = tf.Graph()
  with graph.as_default():
    placeholder = tf.compat.v1.placeholder(tf.float32, shape=images.shape)
    with tf.compat.v1.variable_scope("", reuse=False):
      import tf_slim
      with tf_slim.arg_scope(arg_scope_fn()):
        logits, end_points = net_fn(placeholder, is_training=False, **(net_kwargs or {}))
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
      wanted = {k: t for k, t in end_points.items() if isinstance(t, tf.Tensor)}
      out_logits, out_endpoints = sess.run([logits, wanted], {placeholder: images})
    shapes = {v.op.name: tuple(v.shape.as_list()) for v in variables}
  return out_logits, out_endpoints, shapes
