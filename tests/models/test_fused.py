"""`fused_call`: the fused batch-norm kernel gives the Keras layer's outputs, gradients and
moving averages, eagerly, in a tf.function, under XLA and in mixed bfloat16."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import fused
from inception_tf.models import layers

SIZE = 75
ENDPOINTS = ("Conv2d_1a_3x3", "Mixed_5b", "Mixed_7c", "PreLogits")


def _small_v3(**options):
  # No dropout: its random masks would differ between the two calls compared.
  return create_model("inception_v3", num_classes=10, image_size=SIZE, depth_multiplier=0.1,
                      dropout_keep_prob=1.0, **options)


def _randomize(model, seed=0):
  """Moving statistics and betas far from their initial values, so that every term counts."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      shape = layer.moving_mean.shape
      layer.moving_mean.assign(rng.normal(0.0, 0.3, shape).astype(np.float32))
      layer.moving_variance.assign(rng.uniform(0.3, 3.0, shape).astype(np.float32))
      layer.beta.assign(rng.normal(0.0, 0.3, shape).astype(np.float32))
      if layer.scale:
        layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))


def _twins(**options):
  """Two equal models (built alike, weights copied). Seeded: the training-mode comparisons go
  through ~94 batch norms over 4 images, whose conditioning depends on the random kernels, so an
  unseeded build made the float32-vs-float64 gap vary from run to run (once past 2e-3)."""
  keras.utils.set_random_seed(0)
  a, b = _small_v3(**options), _small_v3(**options)
  _randomize(a)
  b.set_weights(a.get_weights())
  return a, b


def _images(batch=4, seed=1):
  return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, SIZE, SIZE, 3)),
                     tf.float32)


def _close(got, want, rel):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  np.testing.assert_allclose(got, want, rtol=0, atol=rel * max(np.abs(want).max(), 1e-6))


def test_inference_equals_keras_call_and_endpoints_too():
  model, _ = _twins()
  images = _images()
  for network in (model, feature_extractor(model, ENDPOINTS)):
    want = network(images, training=False)
    got = fused.fused_call(network, images, training=False)
    assert set(got) == set(want)
    for key in want:
      _close(got[key], want[key], 1e-5)


def _float64_twin(model):
  """`model`'s network in float64: the Keras layers' maths with negligible rounding."""
  twin = _small_v3(dtype="float64")
  twin.set_weights(model.get_weights())
  return twin


def test_training_call_equals_keras_maths_in_outputs_and_moving_averages():
  """The whole network in training mode against Keras' layers in float64. Gradients are checked
  on the conv+BN stack below: through 94 training-mode batch norms over 4 images (1x1 maps at the
  top) they are ill-conditioned at random init - two float64/float32 Keras runs were measured
  1e-1 apart on some variables, whatever the batch-norm implementation."""
  model, _ = _twins()
  reference = _float64_twin(model)
  images = _images()
  want = reference(tf.cast(images, tf.float64), training=True)
  got = fused.fused_call(model, images, training=True)
  for key in ("logits", "aux_logits"):
    _close(got[key], want[key], 2e-3)  # both float32 paths measured ~2e-4 from float64
  moved = 0
  for a, b in zip(model.non_trainable_variables, reference.non_trainable_variables):
    assert a.path == b.path
    _close(a.numpy(), b.numpy(), 1e-5)
    moved += "moving" in a.path
  assert moved > 100
  # The moving averages really moved (a missing update would also be "close" to the start).
  start, _ = _twins()
  changed = [np.abs(a.numpy() - b.numpy()).max() for a, b in
             zip(model.non_trainable_variables, start.non_trainable_variables)]
  assert min(changed) > 0


def test_moving_variance_uses_the_biased_batch_variance():
  inputs = keras.Input((3, 3, 2))
  layer = keras.layers.BatchNormalization(momentum=0.5)
  model = keras.Model(inputs, layer(inputs))
  x = np.random.default_rng(0).normal(2.0, 3.0, (2, 3, 3, 2)).astype(np.float32)
  fused.fused_call(model, tf.constant(x), training=True)
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * x.mean((0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * x.var((0, 1, 2)),
                             rtol=1e-5)


def _conv_bn_stack(dtype="float32", policy=None):
  """Three slim conv+BN+ReLU layers and a linear head: short enough that float32 rounding stays
  far below the tolerance whichever batch-norm gradient formula is used."""
  bn = layers.BatchNorm(scale=True)
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy or dtype)
  try:
    inputs = keras.Input((12, 12, 3), dtype=dtype)
    x = inputs
    for i, filters in enumerate((8, 16, 16)):
      x = layers.conv_bn(x, filters, 3, name=f"Conv2d_{i}", batch_norm=bn)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(5, name="logits", dtype=dtype)(x)
  finally:
    keras.config.set_dtype_policy(previous)
  return keras.Model(inputs, logits)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["tf_function", "xla"])
def test_conv_bn_stack_training_step_equals_keras_maths(jit_compile):
  model = _conv_bn_stack()
  _randomize(model)
  reference = _conv_bn_stack("float64")
  reference.set_weights(model.get_weights())
  images = tf.constant(np.random.default_rng(2).normal(1.0, 2.0, (6, 12, 12, 3)), tf.float32)

  def loss_and_gradients(m, call, x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.cast(call(m, x), tf.float64) ** 2)
    return loss, tape.gradient(loss, m.trainable_variables)

  want_loss, want_gradients = loss_and_gradients(
      reference, lambda m, x: m(tf.cast(x, tf.float64), training=True), images)
  step = tf.function(lambda x: loss_and_gradients(
      model, lambda m, y: fused.fused_call(m, y, training=True), x), jit_compile=jit_compile)
  loss, gradients = step(images)
  _close(loss, want_loss, 1e-5)
  for got, want in zip(gradients, want_gradients):
    _close(got, want, 1e-3)
  for got, want in zip(model.non_trainable_variables, reference.non_trainable_variables):
    _close(got.numpy(), want.numpy(), 1e-6)  # the biased variance, under XLA too


def test_mixed_bfloat16_inference_stays_bfloat16_and_close_to_keras():
  keras_model, fused_model = _twins(dtype="mixed_bfloat16")
  images = _images()
  want = feature_extractor(keras_model, ENDPOINTS)(images, training=False)
  got = fused.fused_call(feature_extractor(fused_model, ENDPOINTS), images, training=False)
  for key in ENDPOINTS:
    assert got[key].dtype == want[key].dtype
    _close(got[key], want[key], 0.05)
  assert got["Mixed_7c"].dtype == tf.bfloat16


def test_mixed_bfloat16_training_close_to_float32():
  # The stack, not the 94-layer net: at 4 images, training-mode batch norm amplifies bfloat16
  # rounding there to ~0.7x the logits' size for Keras' own layer and for the kernel alike.
  model = _conv_bn_stack()
  _randomize(model)
  mixed = _conv_bn_stack(policy="mixed_bfloat16")
  mixed.set_weights(model.get_weights())
  images = tf.constant(np.random.default_rng(2).normal(1.0, 2.0, (6, 12, 12, 3)), tf.float32)
  want = model(images, training=True)
  got = fused.fused_call(mixed, images, training=True)
  _close(got, want, 0.03)
  for a, b in zip(model.non_trainable_variables, mixed.non_trainable_variables):
    _close(b.numpy(), a.numpy(), 0.01)


def test_frozen_batch_norm_uses_moving_statistics_and_does_not_update_them():
  model, _ = _twins()
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.trainable = False
  before = [v.numpy() for v in model.non_trainable_variables]
  images = _images()
  _close(fused.fused_call(model, images, training=True)["logits"],
         model(images, training=False)["logits"], 1e-5)
  for a, b in zip(before, model.non_trainable_variables):
    np.testing.assert_array_equal(a, b.numpy())


def test_layers_the_kernel_does_not_cover_run_as_keras():
  inputs = keras.Input((4, 4, 3))
  channels_first = keras.layers.BatchNormalization(axis=1, name="channels_first")
  synchronized = keras.layers.BatchNormalization(synchronized=True, name="synchronized")
  model = keras.Model(inputs, synchronized(channels_first(inputs)))
  x = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), tf.float32)
  assert not fused.is_fusable(channels_first, x)
  assert not fused.is_fusable(synchronized, x)
  twin = keras.Model.from_config(model.get_config())
  twin.set_weights(model.get_weights())
  _close(fused.fused_call(model, x, training=True), twin(x, training=True), 1e-6)


def test_model_is_not_changed_by_a_fused_call():
  model, _ = _twins()
  nodes = {layer.name: len(layer._inbound_nodes) for layer in model.layers}  # pylint: disable=protected-access
  fused.fused_call(model, _images(), training=False)
  assert {layer.name: len(layer._inbound_nodes) for layer in model.layers} == nodes  # pylint: disable=protected-access
  assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)


def test_dropout_follows_training_flag():
  inputs = keras.Input((8,))
  model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=1)(inputs))
  x = tf.ones((4, 8))
  np.testing.assert_array_equal(fused.fused_call(model, x, training=False).numpy(), x.numpy())
  assert (fused.fused_call(model, x, training=True).numpy() == 0).any()
