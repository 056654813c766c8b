"""The inference model: aux head dropped, no dropout, batch norm folded, optional bfloat16 weights.

`make_inference_model(model)` takes any functional classifier of this package (built by
`create_model`, reloaded from a `.keras` file, with or without the auxiliary head) and returns a new
functional model with the same layer names whose only output is `{"logits": [N, C] float32}`:

  - only the layers the main logits depend on are kept, so `AuxLogits.*` disappears;
  - `Dropout` layers are skipped (they are the identity at inference);
  - with `fold_batch_norm=True` (off by default: not measurably faster on our CPU), every `Conv2D -> BatchNormalization` pair (slim's conv+BN, the pair
    `conv_bn` builds) becomes one `Conv2D` with bias: `w' = w * gamma / sqrt(var + eps)` per output
    channel and `b' = beta - mean * gamma / sqrt(var + eps)`. The `X.BatchNorm` layer disappears;
    batch norm layers that do not follow a single-use convolution stay as they are;
  - with `dtype="bfloat16"`, the body holds and computes in bfloat16 while the classifier (the last
    weighted layer and what follows it) stays float32, as under mixed precision. Folding happens in
    float32 before the cast.

Only built-in Keras layers are used, so the result saves to a `.keras` file that reloads without
custom objects. Weights are copied by layer name, never by position.
"""

from __future__ import annotations

import os
import keras
import numpy as np

from inception_tf.models import registry
from inception_tf.models.registry import parse_model_options  # re-exported for the tools

DTYPES = ("float32", "bfloat16")
CHECKPOINT_FORMATS = ("auto", "ours", "slim")


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


def _checkpoint_format(path: str) -> str:
  """"ours" for a checkpoint of this package's trainer, else "slim" (a TF1 name-based one)."""
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  from inception_tf.train import checkpointing  # pylint: disable=import-outside-toplevel
  if os.path.isdir(path) and checkpointing.latest_valid_checkpoint(path) is not None:
    return "ours"
  prefix = checkpoints.resolve_checkpoint_path(path)
  return "ours" if checkpointing.is_training_checkpoint(prefix) else "slim"


def load_model(*, keras_file: str | None = None, model_name: str | None = None,
               checkpoint: str | None = None, checkpoint_format: str = "auto",
               num_classes: int = 1001, image_size: int | None = None, use_ema: bool = True,
               **model_options) -> keras.Model:
  """A trained classifier from a `.keras` file or a registered model name plus a checkpoint.

  Args:
    keras_file: path of a `.keras` file (any model of this package; exclusive with `model_name`).
    model_name: a `list_models()` name; its weights come from `checkpoint`.
    checkpoint: a training checkpoint of ours (EMA weights by default) or a TF-slim checkpoint.
    checkpoint_format: "auto" (a checkpoint of our trainer is "ours", any other "slim"), "ours"
      or "slim".
    num_classes: logits width of the checkpoint's model.
    image_size: input size; defaults to the network's own.
    use_ema: restore the exponential moving averages when the checkpoint has them.
    **model_options: family options of `create_model` (depth_multiplier, ...).

  Returns:
    The model (auxiliary head included when the network has one; `make_inference_model` drops it).

  Raises:
    ValueError: neither or both of keras_file/model_name, no checkpoint, unknown format.
    FileNotFoundError: a missing file.
  """
  if (keras_file is None) == (model_name is None):
    raise ValueError("Pass exactly one of keras_file or model_name (with checkpoint); got "
                     f"keras_file={keras_file!r}, model_name={model_name!r}.")
  if keras_file is not None:
    if not os.path.exists(keras_file):
      raise FileNotFoundError(f"No .keras file at {keras_file!r}.")
    return keras.models.load_model(keras_file, compile=False)
  if checkpoint is None:
    raise ValueError(f"model_name={model_name!r} needs a checkpoint to load weights from.")
  if checkpoint_format not in CHECKPOINT_FORMATS:
    raise ValueError(f"checkpoint_format must be one of {CHECKPOINT_FORMATS}, got "
                     f"{checkpoint_format!r}.")
  model = registry.create_model(model_name, num_classes, image_size=image_size, **model_options)
  if checkpoint_format == "auto":
    checkpoint_format = _checkpoint_format(checkpoint)
  if checkpoint_format == "slim":
    from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
    checkpoints.load_slim_checkpoint(model, checkpoint, use_ema=use_ema)
  else:
    from inception_tf.train import checkpointing  # pylint: disable=import-outside-toplevel
    checkpointing.restore_for_inference(model, checkpoint, use_ema=use_ema)
  return model


def model_facts(model: keras.Model) -> dict:
  """Image size, classes and eval preprocessing of a model of this package (by its slim scope)."""
  logits = _logits_tensor(model)
  shape = model.inputs[0].shape
  if shape[1] is None or shape[1] != shape[2]:
    raise ValueError(f"Model {model.name} has input shape {tuple(shape)}; serving needs a fixed "
                     "square size (build it with image_size=...).")
  facts = {"model": model.name, "image_size": int(shape[1]), "num_classes": int(logits.shape[-1]),
           "crop_fraction": 0.875, "preprocessing": "inception", "registered_name": None}
  for name in registry.list_models():
    info = registry.model_info(name)
    if info.slim_scope == model.name:
      facts.update(crop_fraction=info.crop_fraction, preprocessing=info.preprocessing,
                   registered_name=name)
      break
  return facts


__all__ = ["make_inference_model", "fold_batch_norm_weights", "foldable_batch_norms", "load_model",
           "model_facts", "parse_model_options", "DTYPES", "CHECKPOINT_FORMATS"]
