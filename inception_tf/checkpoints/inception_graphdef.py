"""`classify_image_graph_def.pb` (the 2015-12-05 Inception graph) -> `fid_inception_v3` by name.

The graph TTUR's FID code, OpenAI's Inception Score code and clean-fid's legacy mode run is a frozen
TF1 GraphDef: every weight is a `Const` node. `load_inception_graphdef(model, path)` parses the file
as a protocol buffer and copies those constants into the Keras model by node name; the graph is
never imported or executed (no TF1 session, no graph ops run).

Node names, for a convolution with graph scope `S` (table `CONV_SCOPES`, torchvision module path ->
scope): `S/conv2d_params` (kernel, [kh, kw, in, out]: Keras' layout already) and
`S/batchnorm/{beta,gamma,moving_mean,moving_variance}`. The batch-norm op `S/batchnorm`
(`BatchNormWithGlobalNormalization`) carries `variance_epsilon` (checked against the model's) and
`scale_after_normalization`: when it is false the op ignores gamma, and so gamma is loaded as ones.
The classifier is `softmax/weights` ([2048, 1008], the second input of `softmax/logits/MatMul`,
found through that node when it exists) and `softmax/biases`.

Graph scopes follow the graph's towers: in each block `conv` is the 1x1 branch and `tower`,
`tower_1`, `tower_2` the other branches in concatenation order; Mixed_7b/7c split their 3x3
branches into `.../mixed/conv` (1x3) and `.../mixed/conv_1` (3x1).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf


def _conv_scopes() -> dict[str, str]:
  """torchvision module path of each BasicConv2d -> its scope in the 2015-12-05 graph."""
  scopes = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
            "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
  for block, graph in (("Mixed_5b", "mixed"), ("Mixed_5c", "mixed_1"), ("Mixed_5d", "mixed_2")):
    scopes.update({
        f"{block}.branch1x1": f"{graph}/conv",
        f"{block}.branch5x5_1": f"{graph}/tower/conv",
        f"{block}.branch5x5_2": f"{graph}/tower/conv_1",
        f"{block}.branch3x3dbl_1": f"{graph}/tower_1/conv",
        f"{block}.branch3x3dbl_2": f"{graph}/tower_1/conv_1",
        f"{block}.branch3x3dbl_3": f"{graph}/tower_1/conv_2",
        f"{block}.branch_pool": f"{graph}/tower_2/conv"})
  scopes.update({
      "Mixed_6a.branch3x3": "mixed_3/conv",
      "Mixed_6a.branch3x3dbl_1": "mixed_3/tower/conv",
      "Mixed_6a.branch3x3dbl_2": "mixed_3/tower/conv_1",
      "Mixed_6a.branch3x3dbl_3": "mixed_3/tower/conv_2"})
  for block, graph in (("Mixed_6b", "mixed_4"), ("Mixed_6c", "mixed_5"), ("Mixed_6d", "mixed_6"),
                       ("Mixed_6e", "mixed_7")):
    scopes.update({
        f"{block}.branch1x1": f"{graph}/conv",
        f"{block}.branch7x7_1": f"{graph}/tower/conv",
        f"{block}.branch7x7_2": f"{graph}/tower/conv_1",
        f"{block}.branch7x7_3": f"{graph}/tower/conv_2",
        f"{block}.branch7x7dbl_1": f"{graph}/tower_1/conv",
        f"{block}.branch7x7dbl_2": f"{graph}/tower_1/conv_1",
        f"{block}.branch7x7dbl_3": f"{graph}/tower_1/conv_2",
        f"{block}.branch7x7dbl_4": f"{graph}/tower_1/conv_3",
        f"{block}.branch7x7dbl_5": f"{graph}/tower_1/conv_4",
        f"{block}.branch_pool": f"{graph}/tower_2/conv"})
  scopes.update({
      "Mixed_7a.branch3x3_1": "mixed_8/tower/conv",
      "Mixed_7a.branch3x3_2": "mixed_8/tower/conv_1",
      "Mixed_7a.branch7x7x3_1": "mixed_8/tower_1/conv",
      "Mixed_7a.branch7x7x3_2": "mixed_8/tower_1/conv_1",
      "Mixed_7a.branch7x7x3_3": "mixed_8/tower_1/conv_2",
      "Mixed_7a.branch7x7x3_4": "mixed_8/tower_1/conv_3"})
  for block, graph in (("Mixed_7b", "mixed_9"), ("Mixed_7c", "mixed_10")):
    scopes.update({
        f"{block}.branch1x1": f"{graph}/conv",
        f"{block}.branch3x3_1": f"{graph}/tower/conv",
        f"{block}.branch3x3_2a": f"{graph}/tower/mixed/conv",
        f"{block}.branch3x3_2b": f"{graph}/tower/mixed/conv_1",
        f"{block}.branch3x3dbl_1": f"{graph}/tower_1/conv",
        f"{block}.branch3x3dbl_2": f"{graph}/tower_1/conv_1",
        f"{block}.branch3x3dbl_3a": f"{graph}/tower_1/mixed/conv",
        f"{block}.branch3x3dbl_3b": f"{graph}/tower_1/mixed/conv_1",
        f"{block}.branch_pool": f"{graph}/tower_2/conv"})
  return scopes


CONV_SCOPES: dict[str, str] = _conv_scopes()
FC_WEIGHTS = "softmax/weights"
FC_BIASES = "softmax/biases"
FC_MATMUL = "softmax/logits/MatMul"
_BN_LEAVES = {"beta": "beta", "gamma": "gamma", "moving_mean": "moving_mean",
              "moving_variance": "moving_variance"}


class GraphDefMismatch(ValueError):
  """The GraphDef does not hold the model's weights: lists the missing and misshapen nodes."""


@dataclasses.dataclass
class GraphDefLoadReport:
  """What `load_inception_graphdef` did."""

  path: str
  loaded: int  # Keras variables assigned
  gamma_ignored: int  # batch norms whose op has scale_after_normalization = false

  def __str__(self):
    note = f", {self.gamma_ignored} batch norms without gamma" if self.gamma_ignored else ""
    return f"{self.path}: loaded {self.loaded} variables{note}."


def read_graphdef(path: str) -> tf.compat.v1.GraphDef:
  """Parses a binary GraphDef file (nothing is imported or executed)."""
  path = os.fspath(path)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No GraphDef at {path!r} (expected classify_image_graph_def.pb from "
                            "inception-2015-12-05.tgz).")
  graph_def = tf.compat.v1.GraphDef()
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    graph_def.ParseFromString(data)
  except Exception as error:  # protobuf's DecodeError has no stable import path
    raise GraphDefMismatch(f"{path!r} is not a binary GraphDef ({error}).") from error
  return graph_def


def graphdef_constants(graph_def: tf.compat.v1.GraphDef) -> dict[str, np.ndarray]:
  """{node name: value} of every `Const` node."""
  return {node.name: tf.make_ndarray(node.attr["value"].tensor)
          for node in graph_def.node if node.op == "Const"}


def _input_name(name: str) -> str:
  """A node input `^x`, `x:0` or `x` -> the producing node's name `x`."""
  return name.lstrip("^").split(":")[0]


def graphdef_weights(graph_def: tf.compat.v1.GraphDef, *, epsilon: float | None = None
                     ) -> tuple[dict[tuple[str, str], np.ndarray], int]:
  """The FID network's weights in a GraphDef, keyed by (Keras layer name, Keras variable name).

  Args:
    graph_def: the parsed 2015-12-05 graph.
    epsilon: the model's batch-norm epsilon; a batch-norm op whose `variance_epsilon` differs
      raises (None: not checked).

  Returns:
    (weights, number of batch norms whose op ignores gamma).

  Raises:
    GraphDefMismatch: nodes missing (all listed at once), or an epsilon that differs.
  """
  constants = graphdef_constants(graph_def)
  ops = {node.name: node for node in graph_def.node}
  weights: dict[tuple[str, str], np.ndarray] = {}
  missing, problems = [], []
  gamma_ignored = 0

  def take(node_name):
    if node_name not in constants:
      missing.append(node_name)
      return None
    return constants[node_name]

  for layer, scope in CONV_SCOPES.items():
    weights[(f"{layer}.conv", "kernel")] = take(f"{scope}/conv2d_params")
    for keras_leaf, graph_leaf in _BN_LEAVES.items():
      weights[(f"{layer}.bn", keras_leaf)] = take(f"{scope}/batchnorm/{graph_leaf}")
    op = ops.get(f"{scope}/batchnorm")
    if op is not None and "variance_epsilon" in op.attr and epsilon is not None:
      graph_epsilon = op.attr["variance_epsilon"].f
      if not np.isclose(graph_epsilon, epsilon, rtol=1e-5, atol=0.0):
        problems.append(f"{scope}/batchnorm: variance_epsilon {graph_epsilon} vs the model's "
                        f"{epsilon}")
    if (op is not None and "scale_after_normalization" in op.attr
        and not op.attr["scale_after_normalization"].b
        and weights[(f"{layer}.bn", "gamma")] is not None):
      weights[(f"{layer}.bn", "gamma")] = np.ones_like(weights[(f"{layer}.bn", "gamma")])
      gamma_ignored += 1
  fc_weights = FC_WEIGHTS
  if FC_MATMUL in ops and len(ops[FC_MATMUL].input) > 1:
    fc_weights = _input_name(ops[FC_MATMUL].input[1])
  weights[("fc", "kernel")] = take(fc_weights)
  weights[("fc", "bias")] = take(FC_BIASES)
  if missing:
    problems.insert(0, f"{len(missing)} weight nodes missing, e.g. {missing[:8]}")
  if problems:
    raise GraphDefMismatch("Not the 2015-12-05 Inception graph (classify_image_graph_def.pb): "
                           + "; ".join(problems) + ".")
  return weights, gamma_ignored


def load_inception_graphdef(model: keras.Model, path: str) -> GraphDefLoadReport:
  """Loads `classify_image_graph_def.pb` into `create_model("fid_inception_v3")` by node name.

  Args:
    model: the FID network (with its top: `fc` is loaded too).
    path: the GraphDef file.

  Returns:
    A `GraphDefLoadReport`.

  Raises:
    FileNotFoundError: no file at `path`.
    GraphDefMismatch: not a GraphDef, nodes missing, shapes that differ from the model's, or a
      model variable the graph has no value for (all listed in one error).
  """
  graph_def = read_graphdef(path)
  epsilon = None
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      epsilon = layer.epsilon
      break
  weights, gamma_ignored = graphdef_weights(graph_def, epsilon=epsilon)
  assignments, problems = [], []
  for layer in model.layers:
    for variable in layer.weights:
      key = (layer.name, variable.path.rsplit("/", 1)[-1])
      if key not in weights:
        problems.append(f"model variable {variable.path} has no graph node")
        continue
      value = weights[key]
      if tuple(value.shape) != tuple(variable.shape):
        problems.append(f"{key[0]}/{key[1]}: graph {list(value.shape)} vs model "
                        f"{list(variable.shape)}")
        continue
      assignments.append((variable, value))
  if problems:
    raise GraphDefMismatch(f"{path}: {len(problems)} problems: " + "; ".join(problems[:10]))
  for variable, value in assignments:
    variable.assign(value.astype(np.float32))
  return GraphDefLoadReport(path=os.fspath(path), loaded=len(assignments),
                            gamma_ignored=gamma_ignored)
