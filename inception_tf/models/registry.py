"""The model registry: `create_model(name, ...)`, `list_models()`, `model_info(name)`.

The registry is a leaf: it imports no family. Each family module registers its builders with
`@register_model(...)` when `inception_tf.models` imports it, storing beside the architecture
the facts needed to use it (timm's habit): slim scope, default and minimum input size, whether it has
an auxiliary head, the preprocessing it expects and its endpoints.

A builder has the signature

    build(inputs, *, num_classes, include_top, pooling, aux_logits, dropout_keep_prob, batch_norm,
          **family_options) -> keras.Model

and returns a functional model named after its slim scope whose outputs are, with `include_top`,
a dict `{"logits": [N, num_classes] float32}` plus `"aux_logits"` when the aux head is on, and
otherwise the feature map (pooled per `pooling`, as keras.applications).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from typing import Callable

import keras

from inception_tf.models import layers


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What a user needs to know to use a registered network."""

  name: str
  build: Callable[..., keras.Model]
  slim_scope: str
  default_image_size: int
  min_image_size: int
  has_aux_logits: bool
  endpoints: tuple[str, ...]
  # 'inception': [-1, 1] inputs; 'vgg': slim's mean-subtracted RGB; 'torchvision': ImageNet
  # mean/std; 'cifar': [-1, 1], the ResNet paper's CIFAR augmentation (`data.cifar_preprocessing`).
  preprocessing: str = "inception"
  num_classes: int = 1001  # logits width of the published checkpoints (1001: class 0 = background)
  crop_fraction: float = 0.875
  interpolation: str = "bilinear"
  batch_norm_scale: bool = False  # slim's `scale` (gamma) of this family's batch norm
  batch_norm_epsilon: float = layers.BATCH_NORM_EPSILON
  batch_norm_momentum: float = layers.BATCH_NORM_MOMENTUM  # slim's batch_norm_decay default
  paper: str = ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, **info) -> Callable:
  """Decorator: registers `build` under `name` with the `ModelInfo` fields given as keywords."""

  def decorator(build):
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is registered twice.")
    _REGISTRY[name] = ModelInfo(name=name, build=build, **info)
    return build

  return decorator


def list_models() -> list[str]:
  """Names accepted by `create_model`, sorted."""
  return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
  """The `ModelInfo` of a registered model; a clear ValueError for an unknown name."""
  if name not in _REGISTRY:
    raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(sorted(_REGISTRY))}.")
  return _REGISTRY[name]


def create_model(name: str,
                 num_classes: int | None = None,
                 *,
                 image_size: int | None = None,
                 include_top: bool = True,
                 pooling: str | None = None,
                 aux_logits: bool | None = None,
                 dropout_keep_prob: float = 0.8,
                 batch_norm_momentum: float | None = None,
                 dtype: str | None = None,
                 **options) -> keras.Model:
  """Builds a registered network as a Keras functional model with TF-slim's layer names.

  Args:
    name: one of `list_models()`.
    num_classes: logits width; defaults to the published checkpoints' (`ModelInfo.num_classes`:
      1001 with class 0 = background for slim's Inception nets, 1000 for torchvision's).
    image_size: square input size; defaults to the network's own (299 for v3/v4/IRv2, 224 otherwise).
      Must be at least the network's minimum (e.g. 75 for v3).
    include_top: False returns features (see `pooling`) instead of the logits dict.
    pooling: with include_top=False: None (feature map), "avg" or "max".
    aux_logits: the auxiliary head; defaults to on where the network has one. Ignored without top.
    dropout_keep_prob: slim's keep probability before the logits (0.8).
    batch_norm_momentum: slim's batch_norm_decay; None takes the network's own (0.9997 for the
      Inception family, 0.997 for ResNet; the TPU recipe uses 0.996).
    dtype: a Keras dtype policy for the body ("float32", "mixed_bfloat16", "mixed_float16");
      the classifier heads always compute in float32. Defaults to the global policy.
    **options: family options (depth_multiplier, min_depth, output_stride, layout, ...).

  Returns:
    A `keras.Model` named after its slim scope.

  Raises:
    ValueError: unknown name, unknown option, or image_size below the network's minimum.

  Examples:
    >>> model = create_model("inception_v3", num_classes=10, image_size=150)
    >>> sorted(model.output)
    ['aux_logits', 'logits']
  """
  info = model_info(name)
  if image_size is None:
    image_size = info.default_image_size
  if num_classes is None:
    num_classes = info.num_classes
  if not isinstance(image_size, int) or image_size < info.min_image_size:
    raise ValueError(f"image_size {image_size!r} is below the minimum input size "
                     f"{info.min_image_size} of {name}; use image_size >= {info.min_image_size}.")
  if num_classes is None or num_classes < 1:
    raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
  if aux_logits and not info.has_aux_logits:
    raise ValueError(f"{name} has no auxiliary head; pass aux_logits=None or False.")
  if aux_logits is None:
    aux_logits = info.has_aux_logits
  family_options = set(inspect.signature(info.build).parameters) - {
      "inputs", "num_classes", "include_top", "pooling", "aux_logits", "dropout_keep_prob",
      "batch_norm"}
  unknown = set(options) - family_options
  if unknown:
    raise ValueError(f"Unknown option(s) {sorted(unknown)} for {name}; "
                     f"valid options: {sorted(family_options)}.")
  if batch_norm_momentum is None:
    batch_norm_momentum = info.batch_norm_momentum
  batch_norm = layers.BatchNorm(momentum=batch_norm_momentum, epsilon=info.batch_norm_epsilon,
                                scale=info.batch_norm_scale)
  previous_policy = keras.config.dtype_policy()
  if dtype is not None:
    keras.config.set_dtype_policy(dtype)
  try:
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    return info.build(inputs, num_classes=num_classes, include_top=include_top, pooling=pooling,
                      aux_logits=bool(aux_logits and include_top),
                      dropout_keep_prob=dropout_keep_prob, batch_norm=batch_norm, **options)
  finally:
    keras.config.set_dtype_policy(previous_policy)


def parse_model_options(pairs) -> dict:
  """Family options from command-line `key=value` strings, e.g. `--model_options=...`.

  `["depth_multiplier=0.5", "layout=paper", "aux_batch_norm=true", "receptive_field=79"]` ->
  `{"depth_multiplier": 0.5, "layout": "paper", "aux_batch_norm": True, "receptive_field": 79}`.
  Values are Python literals (numbers, True/False/None, tuples); `true`/`false`/`none` in any case
  are accepted too; anything else stays a string. `create_model` then rejects unknown keys.

  Args:
    pairs: iterable of "key=value" strings (None or empty: no options).

  Returns:
    {key: value}.

  Raises:
    ValueError: an entry without "=" or with an empty key, or a key given twice.
  """
  options = {}
  for pair in pairs or ():
    key, sep, text = str(pair).partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
      raise ValueError(f"Model options are key=value (e.g. depth_multiplier=0.5); got {pair!r}.")
    if key in options:
      raise ValueError(f"Model option {key!r} is given twice ({pairs!r}).")
    keywords = {"true": True, "false": False, "none": None}
    if text.lower() in keywords:
      options[key] = keywords[text.lower()]
      continue
    try:
      options[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      options[key] = text
  return options


def endpoint_layer_name(model: keras.Model, endpoint: str) -> str:
  """The layer whose output is slim's endpoint: `<endpoint>.Relu` for a conv, else `<endpoint>`."""
  names = {layer.name for layer in model.layers}
  for candidate in (f"{endpoint}.Relu", endpoint):
    if candidate in names:
      return candidate
  raise ValueError(f"Model {model.name} has no endpoint {endpoint!r}.")


def feature_extractor(model: keras.Model, endpoints: list[str] | tuple[str, ...]) -> keras.Model:
  """A model sharing `model`'s weights whose output is {endpoint name: tensor} (slim's end_points)."""
  outputs = {e: model.get_layer(endpoint_layer_name(model, e)).output for e in endpoints}
  return keras.Model(model.input, outputs, name=f"{model.name}_endpoints")
