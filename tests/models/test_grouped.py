"""Grouped convolutions by `inception_tf.models.grouped`, directly and through `fused_call`: the
Keras layer's outputs and gradients by both kernels, and no nested XLA function left in the graph
(the cause of ResNeXt's 60x slower training on CPUs, WORKSPACE_NOTES "Grouped convolutions")."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf import models
from inception_tf.models import fused
from inception_tf.models import grouped


# TF's own grouped Conv2D ("native") exists on GPUs, TPUs and in oneDNN. TF's other CPU kernels -
# used where oneDNN is off: TF_ENABLE_ONEDNN_OPTS=0, and by default on CPUs without VNNI or AMX
# (e.g. AVX2-only ones) - compute it forward only, with no gradient and no fused (convolution +
# bias / batch norm + ReLU) form; "auto" takes "split" there (`test_resolve`).
NATIVE_KERNEL = (fused._onednn_enabled()  # pylint: disable=protected-access
                 or fused._has_accelerator())  # pylint: disable=protected-access


def _grouped_layer(*, groups=4, strides=1, padding="same", use_bias=False, activation=None,
                   dtype="float32", channels=8, filters=12):
  layer = keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, groups=groups,
                              use_bias=use_bias, activation=activation, dtype=dtype)
  layer.build((None, 9, 9, channels))
  rng = np.random.default_rng(1)
  layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype(np.float32))
  if use_bias:
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(np.float32))
  return layer


def _outputs_and_gradients(fn, layer, inputs):
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    outputs = fn(inputs)
    loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * tf.cast(outputs, tf.float32))
  return [t.numpy() for t in [outputs, *tape.gradient(loss, [inputs, layer.kernel])]]


@pytest.mark.parametrize("mode", ["native", "split"])
@pytest.mark.parametrize("options", [
    dict(), dict(strides=2, padding="valid"), dict(use_bias=True, activation="relu", groups=2)])
def test_kernels_compute_the_keras_layer(mode, options):
  layer = _grouped_layer(**options)
  inputs = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 8)), tf.float32)
  expected = _outputs_and_gradients(layer, layer, inputs)

  def ours(x):
    return grouped.grouped_convolution(layer, x, mode)

  if mode == "native" and not NATIVE_KERNEL:
    np.testing.assert_allclose(ours(inputs).numpy(), expected[0], rtol=1e-5, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="grouped convolutions are not supported"):
      _outputs_and_gradients(ours, layer, inputs)
    return
  got = _outputs_and_gradients(ours, layer, inputs)
  assert np.abs(expected[0]).max() > 1.0  # not a degenerate layer
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-4)


def test_mixed_bfloat16_layer_stays_bfloat16_and_close_to_keras():
  layer = _grouped_layer(dtype="mixed_bfloat16")
  inputs = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 8)), tf.float32)
  expected = layer(inputs).numpy().astype(np.float32)
  for mode in ("native", "split"):
    got = grouped.grouped_convolution(layer, inputs, mode)
    assert got.dtype == tf.bfloat16
    # Both round the same bfloat16 operands; the sums (24 products) may differ in their last
    # bfloat16 bit: 2^-8 relative to the largest output.
    np.testing.assert_allclose(got.numpy().astype(np.float32), expected,
                               atol=2.0**-8 * np.abs(expected).max())


def test_resolve():
  assert grouped.resolve("auto", jit_compile=False, accelerator=False, onednn=True) == "native"
  assert grouped.resolve("auto", jit_compile=True, accelerator=False, onednn=True) == "split"
  assert grouped.resolve("auto", jit_compile=False, accelerator=False, onednn=False) == "split"
  assert grouped.resolve("auto", jit_compile=True, accelerator=True, onednn=False) == "native"
  assert grouped.resolve("split", jit_compile=False, accelerator=True, onednn=True) == "split"
  with pytest.raises(ValueError, match="grouped_convolutions must be one of"):
    grouped.resolve("xla", jit_compile=False, accelerator=False, onednn=True)


def _thin_resnext() -> keras.Model:
  keras.utils.set_random_seed(0)
  return models.create_model("resnext50_32x4d", num_classes=10, image_size=32, units=(1, 1, 1, 1),
                             widths=(16, 32, 64, 128))


def _xla_functions(concrete) -> list[str]:
  """Names of the functions in `concrete`'s graph library that carry XLA's must-compile mark."""
  library = concrete.graph.as_graph_def().library
  return [f.signature.name for f in library.function
          if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]


@pytest.mark.parametrize("mode", ["native", "split"])
def test_fused_call_of_a_resnext_equals_keras_without_nested_xla(mode):
  model = _thin_resnext()
  images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
  expected = model(images, training=False)["logits"].numpy()
  keras_graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(images)
  assert _xla_functions(keras_graph)  # Keras' own grouped Conv2D: a nested XLA function
  ours = tf.function(lambda x: fused.fused_call(model, x, training=False,
                                                grouped_convolutions=mode))
  assert not _xla_functions(ours.get_concrete_function(images))
  if mode == "native" and not NATIVE_KERNEL:  # TF's graph optimizer fuses conv + batch norm + ReLU
    with pytest.raises(tf.errors.UnimplementedError, match="does not support grouped convolutions"):
      ours(images)
    return
  np.testing.assert_allclose(ours(images)["logits"].numpy(), expected, rtol=1e-4, atol=1e-5)


def _gradients(model, images, call):
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(call(images)["logits"] ** 2)
  return tape.gradient(loss, model.trainable_variables)


def _grouped_net() -> keras.Model:
  """Input -> grouped conv (stride 2) -> batch norm -> ReLU -> grouped conv -> pool -> logits."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((12, 12, 8))
  x = keras.layers.Conv2D(16, 3, strides=2, groups=4, use_bias=False)(inputs)
  x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
  x = keras.layers.Conv2D(16, 3, padding="same", groups=8)(x)
  logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
  return keras.Model(inputs, {"logits": logits})


def test_fused_call_trains_like_keras_under_xla():
  """jit_compile=True: "auto" takes the ungrouped convolutions; gradients equal Keras' (batch
  statistics in both calls)."""
  model = _grouped_net()
  images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 12, 12, 8)), tf.float32)
  expected = _gradients(model, images, lambda x: model(x, training=True))
  ours = tf.function(lambda x: _gradients(
      model, x, lambda y: fused.fused_call(model, y, training=True, jit_compile=True)),
      jit_compile=True)(images)
  assert len(ours) == len(expected) == len(model.trainable_variables)
  for e, g in zip(expected, ours):
    assert np.abs(e.numpy()).max() > 0
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5)
