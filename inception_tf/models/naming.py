"""Keras variable paths <-> TF-slim checkpoint names, by rule.

A layer named `Mixed_6b.Branch_1.Conv2d_0b_1x7.BatchNorm` in the model whose slim scope is
`InceptionV3` holds `moving_mean`, whose slim name is
`InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/BatchNorm/moving_mean`. Keras' own variable names map
to slim's as in `_KERAS_TO_SLIM` (`kernel` -> `weights`, `bias` -> `biases`, ...).
"""

from __future__ import annotations

import keras

_KERAS_TO_SLIM = {
    "kernel": "weights",
    "bias": "biases",
    "depthwise_kernel": "depthwise_weights",
    "pointwise_kernel": "pointwise_weights",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}
_SLIM_TO_KERAS = {v: k for k, v in _KERAS_TO_SLIM.items()}


def slim_name(layer_name: str, variable_name: str, scope: str) -> str:
  """`("Logits.Conv2d_1c_1x1", "bias", "InceptionV3")` -> `InceptionV3/Logits/Conv2d_1c_1x1/biases`."""
  if variable_name not in _KERAS_TO_SLIM:
    raise ValueError(f"No slim name for Keras variable {variable_name!r} of layer {layer_name!r}; "
                     f"known: {sorted(_KERAS_TO_SLIM)}.")
  return f"{scope}/{layer_name.replace('.', '/')}/{_KERAS_TO_SLIM[variable_name]}"


def keras_name(slim_variable: str, scope: str) -> tuple[str, str]:
  """Inverse of `slim_name`: returns (layer name, Keras variable name)."""
  prefix = scope + "/"
  if not slim_variable.startswith(prefix):
    raise ValueError(f"Slim variable {slim_variable!r} is not under scope {scope!r}.")
  layer_path, _, leaf = slim_variable[len(prefix):].rpartition("/")
  if leaf not in _SLIM_TO_KERAS or not layer_path:
    raise ValueError(f"Cannot map slim variable {slim_variable!r}: unknown leaf {leaf!r}.")
  return layer_path.replace("/", "."), _SLIM_TO_KERAS[leaf]


def _layer_variables(layer):
  """(Keras short name, variable) of one layer, trainable and non-trainable."""
  for variable in layer.weights:
    # Keras 3 `variable.path` is "<layer name>/<variable name>" for a top-level layer.
    yield variable.path.rsplit("/", 1)[-1], variable


def slim_variables(model: keras.Model, scope: str | None = None) -> dict[str, keras.Variable]:
  """Every variable of `model` under its slim name, in model order.

  Args:
    model: a model built by `inception_tf.models.create_model`.
    scope: the slim scope; defaults to `model.name` (e.g. "InceptionV3").

  Raises:
    ValueError: if two variables map to one name (a layer naming bug).
  """
  scope = scope or model.name
  result: dict[str, keras.Variable] = {}
  for layer in model.layers:
    for short, variable in _layer_variables(layer):
      name = slim_name(layer.name, short, scope)
      if name in result:
        raise ValueError(f"Two variables map to slim name {name!r}.")
      result[name] = variable
  return result
