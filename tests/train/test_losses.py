"""`losses.sublayers` (public Keras API) walks the layers Keras' private `_flatten_layers` does, so
the weight-decay set (and the order its squares are summed in) is unchanged."""

import keras
import pytest

from inception_tf import models
from inception_tf.train import losses


def _private_walk(model):
  return model._flatten_layers(include_self=False)  # pylint: disable=protected-access


def _without_inputs(layers):
  """The layers but the InputLayers (a Sequential's `layers` hides its own; they hold no weights)."""
  return [id(layer) for layer in layers if not isinstance(layer, keras.layers.InputLayer)]


def _nested_model():
  """A functional backbone inside a Sequential, a shared layer and a wrapper around a Dense."""
  backbone_in = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, name="conv")(backbone_in)
  x = keras.layers.SeparableConv2D(4, 3, name="separable")(x)
  backbone = keras.Model(backbone_in, keras.layers.GlobalAveragePooling2D()(x), name="backbone")
  inputs = keras.Input((2, 8, 8, 3))
  shared = keras.layers.Dense(3, name="shared")
  frames = keras.layers.TimeDistributed(backbone, name="frames")(inputs)  # [N, 2, 4]
  pooled = keras.layers.Flatten()(keras.layers.TimeDistributed(shared, name="per_frame")(frames))
  head = keras.Sequential([keras.layers.Dense(4, name="dense"), keras.layers.BatchNormalization()],
                          name="head")
  return keras.Model(inputs, {"logits": shared(head(pooled)), "aux_logits": head(pooled)})


@pytest.mark.parametrize("name,options", [
    ("nested", {}),
    ("inception_v2", {"image_size": 32, "depth_multiplier": 0.25}),  # separable first conv
    ("resnet18", {"image_size": 32}),
    ("resnet20", {}),
])
def test_weight_decay_set_equals_the_private_walk(name, options, monkeypatch):
  model = _nested_model() if name == "nested" else models.create_model(name, 5, **options)
  assert _without_inputs(losses.sublayers(model)) == _without_inputs(_private_walk(model))
  public = [id(v) for v in losses.weight_decay_variables(model)]
  monkeypatch.setattr(losses, "sublayers", _private_walk)
  private = [id(v) for v in losses.weight_decay_variables(model)]
  assert public == private
  assert len(set(public)) == len(public) > 0


def test_the_walk_reaches_wrapped_and_nested_kernels():
  model = _nested_model()
  paths = sorted(v.path for v in losses.weight_decay_variables(model))
  assert paths == ["conv/kernel", "head/dense/kernel", "per_frame/shared/kernel",
                   "separable/depthwise_kernel", "separable/pointwise_kernel"]
