"""The inference model: aux head dropped, no dropout, batch norm folded, optional bfloat16 weights.

`make_inference_model(model)` takes any functional classifier of this package (built by
`create_model`, reloaded from a `.keras` file, with or without the auxiliary head) and returns a new
functional model with the same layer names whose only output is `{"logits": [N, C] float32}`:

  - only the layers the main logits depend on are kept, so `AuxLogits.*` disappears;
  - `Dropout` layers are skipped (they are the identity at inference);
  - with `fold_batch_norm=True` (off by default; its speed is in WORKSPACE_NOTES.md), every
    `Conv2D -> BatchNormalization` pair (slim's conv+BN, the pair `conv_bn` builds) becomes one
    `Conv2D` with bias: `w' = w * gamma / sqrt(var + eps)` per output
    channel and `b' = beta - mean * gamma / sqrt(var + eps)`. The `X.BatchNorm` layer disappears;
    batch norm layers that do not follow a single-use convolution stay as they are;
  - with `dtype="bfloat16"`, the body holds and computes in bfloat16 while the classifier (the last
    weighted layer and what follows it) stays float32, as under mixed precision. Folding happens in
    float32 before the cast.

Only built-in Keras layers are used, so the result saves to a `.keras` file that reloads without
custom objects. Weights are copied by layer name, never by position.
"""

from __future__ import annotations

import keras
import numpy as np

from inception_tf.checkpoints import loading
from inception_tf.models import registry
from inception_tf.models.registry import parse_model_options  # re-exported for the tools

DTYPES = ("float32", "bfloat16")


def _logits_tensor(model: keras.Model):
  outputs = model.output
  if isinstance(outputs, dict):
    if "logits" not in outputs:
      raise ValueError(f"Model {model.name} returns {sorted(outputs)}; an inference model needs a "
                       "'logits' output (build it with include_top=True).")
    return outputs["logits"]
  if isinstance(outputs, (list, tuple)):
    raise ValueError(f"Model {model.name} has {len(outputs)} outputs; expected a dict with "
                     "'logits' or a single logits tensor.")
  return outputs


def _producer(tensor) -> keras.layers.Layer:
  return tensor._keras_history.operation  # pylint: disable=protected-access


def _single_input(layer: keras.layers.Layer):
  """The one input tensor of a layer called exactly once, else None."""
  nodes = layer._inbound_nodes  # pylint: disable=protected-access
  if len(nodes) != 1:
    return None
  inputs = nodes[0].input_tensors
  return inputs[0] if len(inputs) == 1 else None


def _consumers(model: keras.Model) -> dict[str, list[str]]:
  """Layer name -> names of the layers of `model` that read its output."""
  consumers: dict[str, list[str]] = {layer.name: [] for layer in model.layers}
  for layer in model.layers:
    for node in layer._inbound_nodes:  # pylint: disable=protected-access
      for tensor in node.input_tensors:
        source = _producer(tensor).name
        if source in consumers and layer.name not in consumers[source]:
          consumers[source].append(layer.name)
  return consumers


def foldable_batch_norms(model: keras.Model) -> dict[str, str]:
  """BatchNorm layer name -> the name of the convolution it can be folded into.

  A batch norm folds when it normalizes the last axis of the output of a `Conv2D` or
  `SeparableConv2D` that is called once and read by nothing else.
  """
  consumers = _consumers(model)
  pairs = {}
  output_layers = {_producer(t).name for t in keras.tree.flatten(model.output)}
  for layer in model.layers:
    if not isinstance(layer, keras.layers.BatchNormalization):
      continue
    if layer.axis not in (-1, 3):
      continue
    tensor = _single_input(layer)
    if tensor is None:
      continue
    conv = _producer(tensor)
    if not isinstance(conv, (keras.layers.Conv2D, keras.layers.SeparableConv2D)):
      continue
    if isinstance(conv, keras.layers.DepthwiseConv2D):
      continue
    if consumers[conv.name] != [layer.name] or conv.name in output_layers:
      continue
    if len(conv._inbound_nodes) != 1:  # pylint: disable=protected-access
      continue
    pairs[layer.name] = conv.name
  return pairs


def _head_layers(model: keras.Model, logits) -> set[str]:
  """The classifier: the last layer with weights on the logits path and every layer after it."""
  head = set()
  tensor = logits
  while True:
    layer = _producer(tensor)
    head.add(layer.name)
    if layer.weights:
      return head
    tensor = _single_input(layer)
    if tensor is None:
      return head


def fold_batch_norm_weights(conv: keras.layers.Layer,
                            batch_norm: keras.layers.BatchNormalization) -> dict[str, np.ndarray]:
  """The kernel (and bias) of `conv` with `batch_norm` (inference mode) folded in, as float64 math.

  Returns:
    {"kernel": ..., "bias": ...} for a Conv2D, or {"depthwise_kernel", "pointwise_kernel", "bias"}
    for a SeparableConv2D, in float32.
  """
  mean = np.asarray(batch_norm.moving_mean, np.float64)
  variance = np.asarray(batch_norm.moving_variance, np.float64)
  gamma = np.asarray(batch_norm.gamma, np.float64) if batch_norm.scale else 1.0
  beta = np.asarray(batch_norm.beta, np.float64) if batch_norm.center else 0.0
  scale = gamma / np.sqrt(variance + batch_norm.epsilon)
  bias = np.asarray(conv.bias, np.float64) if conv.use_bias else 0.0
  folded_bias = (bias - mean) * scale + beta
  if isinstance(conv, keras.layers.SeparableConv2D):
    return {"depthwise_kernel": np.asarray(conv.depthwise_kernel, np.float32),
            "pointwise_kernel": (np.asarray(conv.pointwise_kernel, np.float64) * scale
                                ).astype(np.float32),
            "bias": folded_bias.astype(np.float32)}
  return {"kernel": (np.asarray(conv.kernel, np.float64) * scale).astype(np.float32),
          "bias": folded_bias.astype(np.float32)}


def make_inference_model(model: keras.Model, *, dtype: str = "float32",
                         fold_batch_norm: bool = False) -> keras.Model:
  """A serving copy of `model`: logits only, no aux head, no dropout, folded BN, optional bfloat16.

  Args:
    model: a functional classifier returning `{"logits": ...}` (aux head optional) or logits.
    dtype: "float32" or "bfloat16" (body weights and compute in bfloat16, classifier in float32).
    fold_batch_norm: fold each conv+BN pair into one biased convolution.

  Returns:
    A new `keras.Model` named like `model`, output `{"logits": [N, C] float32}`. `model` is unchanged.

  Raises:
    ValueError: unknown dtype, or a model without logits.
  """
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
  logits = _logits_tensor(model)
  pruned = keras.Model(model.inputs, {"logits": logits}, name=model.name)
  folds = foldable_batch_norms(pruned) if fold_batch_norm else {}
  folded_convs = {conv: bn for bn, conv in folds.items()}
  head = _head_layers(pruned, logits)

  def clone_layer(layer):
    config = layer.get_config()
    if layer.name in folded_convs:
      config["use_bias"] = True
    if "dtype" in config and not isinstance(layer, keras.layers.InputLayer):
      config["dtype"] = "float32" if (dtype == "float32" or layer.name in head) else dtype
    return layer.__class__.from_config(config)

  def call_layer(layer, *args, **kwargs):
    if layer.name in folds or isinstance(layer, keras.layers.Dropout):
      return args[0]  # folded into the convolution / identity at inference
    return layer(*args, **kwargs)

  clone = keras.models.clone_model(pruned, clone_function=clone_layer, call_function=call_layer)
  original = {layer.name: layer for layer in pruned.layers}
  for layer in clone.layers:
    if not layer.weights:
      continue
    source = original[layer.name]
    if layer.name in folded_convs:
      folded = fold_batch_norm_weights(source, original[folded_convs[layer.name]])
      for variable in layer.weights:
        variable.assign(folded[variable.path.split("/")[-1]].astype(variable.dtype))
    else:
      for variable, value in zip(layer.weights, source.get_weights()):
        variable.assign(value.astype(variable.dtype))
  return clone


def model_facts(model: keras.Model) -> dict:
  """Image size, classes and eval preprocessing of a model of this package (by its slim scope)."""
  logits = _logits_tensor(model)
  shape = model.inputs[0].shape
  if shape[1] is None or shape[1] != shape[2]:
    raise ValueError(f"Model {model.name} has input shape {tuple(shape)}; serving needs a fixed "
                     "square size (build it with image_size=...).")
  facts = {"model": model.name, "image_size": int(shape[1]), "num_classes": int(logits.shape[-1]),
           "crop_fraction": 0.875, "preprocessing": "inception", "registered_name": None}
  name = loading.registered_name(model)
  if name is not None:
    info = registry.model_info(name)
    facts.update(crop_fraction=info.crop_fraction, preprocessing=info.preprocessing,
                 registered_name=name)
  return facts


__all__ = ["make_inference_model", "fold_batch_norm_weights", "foldable_batch_norms",
           "model_facts", "parse_model_options", "DTYPES"]
