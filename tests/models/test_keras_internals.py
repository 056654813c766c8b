"""The private Keras API wrapper: the same outputs as `model(x)`, and the fallback without it."""

import keras
import numpy as np

from inception_tf.models import fused
from inception_tf.models import keras_internals


def _model():
  inputs = keras.Input((6, 6, 3))
  x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
  x = keras.layers.BatchNormalization(name="conv.BatchNorm")(x)
  outputs = {"logits": keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(x))}
  return keras.Model(inputs, outputs)


def test_run_through_graph_equals_calling_the_model():
  model = _model()
  images = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
  assert keras_internals.is_functional(model)
  got = keras_internals.run_through_graph(model, images, lambda layer: layer)
  np.testing.assert_allclose(got["logits"], model(images)["logits"], rtol=1e-6, atol=1e-6)


def test_fused_call_falls_back_to_model_call_without_the_private_api(monkeypatch):
  model = _model()
  images = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
  calls = []
  monkeypatch.setattr(keras_internals, "is_functional", lambda m: calls.append(m) or False)
  monkeypatch.setattr(keras_internals, "run_through_graph", None)  # must not be reached
  got = fused.fused_call(model, images, training=False)
  assert calls == [model]
  np.testing.assert_array_equal(got["logits"], model(images, training=False)["logits"])
