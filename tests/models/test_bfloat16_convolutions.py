"""`fused_call(..., bfloat16_convolutions="float32")`: mixed_bfloat16 convolutions multiplied and
summed in float32 give the Keras layer's forward outputs (bit-equal for Conv2D) and gradients at
least as close to float64 as TF's bfloat16 kernels, eagerly and under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import fused

ENDPOINTS = ("Conv2d_1a_3x3", "Mixed_5b", "Mixed_7c", "PreLogits")


def _as_float32(tensor):
  return np.asarray(tf.cast(tensor, tf.float32))


def _with_policy(policy, build):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)
  try:
    return build()
  finally:
    keras.config.set_dtype_policy(previous)


def test_inception_v3_forward_is_bit_equal_to_tf_bfloat16_kernels():
  model = create_model("inception_v3", num_classes=10, image_size=75, depth_multiplier=0.1,
                       dropout_keep_prob=1.0, dtype="mixed_bfloat16")
  network = feature_extractor(model, ENDPOINTS)
  images = tf.random.stateless_uniform([3, 75, 75, 3], [0, 1], -1.0, 1.0)
  # Training mode (batch statistics; the moving averages move alike in both calls).
  want = fused.fused_call(network, images, training=True, bfloat16_convolutions="native")
  got = fused.fused_call(network, images, training=True, bfloat16_convolutions="float32")
  for key in ENDPOINTS:
    assert got[key].dtype == want[key].dtype
    np.testing.assert_array_equal(_as_float32(got[key]), _as_float32(want[key]))


def _convolution_stack(policy):
  """Every convolution type the models use, with bias, activation, stride and dilation."""
  def build():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.SeparableConv2D(16, 5, strides=2, depth_multiplier=4, padding="same",
                                     activation="relu", name="separable")(inputs)
    x = keras.layers.Conv2D(24, 3, padding="same", dilation_rate=2, use_bias=False,
                            name="conv")(x)
    x = keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu",
                                     name="depthwise")(x)
    x = keras.layers.Conv2D(32, (1, 3), padding="valid", activation="relu", name="conv_bias")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="valid", name="conv_strided")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(7, name="head")(x))
  return _with_policy(policy, build)


def _stack_and_reference(seed=0):
  model = _convolution_stack("mixed_bfloat16")
  rng = np.random.default_rng(seed)
  # Weights that are bfloat16 numbers, so that the float64 reference starts from the same ones.
  model.set_weights([_as_float32(tf.cast(rng.normal(0.0, 0.3, w.shape), tf.bfloat16))
                     for w in model.get_weights()])
  reference = _convolution_stack("float64")
  reference.set_weights(model.get_weights())
  images = _as_float32(tf.cast(rng.uniform(-1, 1, (8, 16, 16, 3)), tf.bfloat16))
  return model, reference, tf.constant(images)


def _loss_and_gradients(model, call, images):
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.cast(call(model, images), tf.float64) ** 2)
  return loss, tape.gradient(loss, model.trainable_variables)


def _relative_error(got, want):
  return float(np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["tf_function", "xla"])
def test_gradients_are_at_least_as_close_to_float64_as_bfloat16_kernels(jit_compile):
  model, reference, images = _stack_and_reference()
  _, want = _loss_and_gradients(reference, lambda m, x: m(tf.cast(x, tf.float64)), images)
  errors = {}
  for mode in ("native", "float32"):
    step = tf.function(lambda x, mode=mode: _loss_and_gradients(
        model, lambda m, y: fused.fused_call(m, y, training=True, bfloat16_convolutions=mode), x),
                       jit_compile=jit_compile)
    _, gradients = step(images)
    errors[mode] = [_relative_error(g, w) for g, w in zip(gradients, want)]
  # bfloat16 has 8 significant bits (rounding 2^-9 = 0.002) and every activation is rounded;
  # measured: float32 <= 0.030, native up to 0.13 (tf.function); under XLA both alike.
  assert max(errors["float32"]) < 0.05, errors
  assert sum(errors["float32"]) <= sum(errors["native"]) * 1.05, errors


def test_forward_is_at_least_as_close_to_float64_and_conv2d_bit_equal():
  model, reference, images = _stack_and_reference(seed=1)
  want = reference(tf.cast(images, tf.float64)).numpy()
  native, float32 = (_as_float32(fused.fused_call(model, images, training=True,
                                                  bfloat16_convolutions=mode))
                     for mode in ("native", "float32"))
  # TF's bfloat16 depthwise kernel sums in bfloat16; float32 sums are closer.
  assert _relative_error(float32, want) <= _relative_error(native, want)
  assert _relative_error(float32, want) < 0.02

  conv = model.get_layer("conv")
  x = tf.cast(images[..., :1] * tf.ones([1, 1, 1, conv.kernel.shape[2]]), tf.bfloat16)
  np.testing.assert_array_equal(_as_float32(fused.float32_convolution(conv, x)),
                                _as_float32(conv(x)))


@pytest.mark.parametrize("strides, padding, size", [
    ((1, 1), "same", 9), ((2, 2), "valid", 9), ((2, 2), "same", 10), ((1, 2), "valid", 8)])
def test_conv2d_gradients_are_those_of_the_float32_convolution(strides, padding, size):
  """The custom gradient is the float32 convolution's gradient on the bfloat16 operands."""
  rng = np.random.default_rng(3)
  x = tf.cast(rng.normal(size=(2, size, size, 5)), tf.bfloat16)
  k = tf.cast(rng.normal(size=(3, 3, 5, 4)), tf.bfloat16)
  upstream = lambda y: tf.cast(tf.range(tf.size(y)), y.dtype) % 7 / 7 - 0.4

  with tf.GradientTape() as tape:
    tape.watch([x, k])
    y = fused._conv2d_with_float32_gradients(  # pylint: disable=protected-access
        x, k, strides=strides, padding=padding)
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.reshape(upstream(tf.cast(y, tf.float32)),
                                                             y.shape))
  got = tape.gradient(loss, [x, k])
  x32, k32 = tf.cast(x, tf.float32), tf.cast(k, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([x32, k32])
    y32 = tf.nn.conv2d(x32, k32, (1, *strides, 1), padding.upper())
    loss = tf.reduce_sum(tf.cast(tf.cast(y32, tf.bfloat16), tf.float32)
                         * tf.reshape(upstream(y32), y32.shape))
  want = [tf.cast(tf.cast(g, tf.bfloat16), tf.float32) for g in tape.gradient(loss, [x32, k32])]
  np.testing.assert_array_equal(_as_float32(y), _as_float32(tf.cast(y32, tf.bfloat16)))
  for g, w in zip(got, want):
    assert g.dtype == tf.bfloat16
    np.testing.assert_array_equal(_as_float32(g), _as_float32(w))


def test_inference_runs_the_keras_layers(monkeypatch):
  model, _, images = _stack_and_reference()
  taken, float32_convolution = [], fused.float32_convolution

  def recording(layer, x):
    taken.append(layer.name)
    return float32_convolution(layer, x)

  monkeypatch.setattr(fused, "float32_convolution", recording)
  fused.fused_call(model, images, training=False, bfloat16_convolutions="float32")
  assert not taken
  fused.fused_call(model, images, training=True, bfloat16_convolutions="float32")
  assert taken == ["separable", "conv", "depthwise", "conv_bias", "conv_strided"]


def test_only_mixed_bfloat16_two_d_convolutions_are_taken():
  x = tf.zeros([1, 8, 8, 4])
  mixed = "mixed_bfloat16"
  assert fused.is_float32_convolvable(keras.layers.Conv2D(4, 3, dtype=mixed), x)
  assert not fused.is_float32_convolvable(keras.layers.Conv2D(4, 3), x)  # float32 layer
  assert not fused.is_float32_convolvable(keras.layers.Conv2D(4, 3, groups=2, dtype=mixed), x)
  assert not fused.is_float32_convolvable(
      keras.layers.Conv2D(4, 3, data_format="channels_first", dtype=mixed), x)


def test_unknown_mode_names_the_choices():
  with pytest.raises(ValueError, match="'native'.*'float32'.*'auto'"):
    fused.resolve_bfloat16_convolutions("fp32")


@pytest.mark.parametrize("flags, accelerator, native", [
    ({"avx2", "fma"}, False, False),
    ({"avx2", "avx512_bf16"}, False, True),
    ({"amx_bf16"}, False, True),
    ({"avx2"}, True, True),
    (None, False, True),
])
def test_auto_uses_native_kernels_only_where_the_hardware_has_bfloat16(monkeypatch, flags,
                                                                        accelerator, native):
  monkeypatch.setattr(fused, "_cpu_flags", lambda: flags)
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind: ["device"] if accelerator and kind == "TPU" else [])
  assert fused.has_bfloat16_arithmetic.__wrapped__() is native
  fused.has_bfloat16_arithmetic.cache_clear()
  try:
    assert fused.resolve_bfloat16_convolutions("auto") == ("native" if native else "float32")
  finally:
    fused.has_bfloat16_arithmetic.cache_clear()
