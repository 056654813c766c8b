"""`fused_call(..., bfloat16_convolutions="float32")`: mixed_bfloat16 convolutions multiplied and
summed in float32.

Only what holds on every machine is asserted here. The "float32" mode runs float32 kernels on
bfloat16 operands, so its results are bounded by bfloat16 rounding alone, on any CPU; how accurate
or fast TF's own ("native") bfloat16 kernels are depends on the CPU (emulated on AVX2, oneDNN with
float32 sums on AMX / avx512_bf16) and is measured by `tools/benchmark.py --sections=kernels`,
recorded in WORKSPACE_NOTES.md, never asserted.

bfloat16 keeps 8 significant bits: rounding to nearest moves a value by at most 2^-8 of it
(`UNIT_ROUNDOFF`). A result that passes through R roundings (operands, activations, gradients) is
off by at most R * u + (R * u)^2 relative (first order plus a second-order allowance), which is
where the bounds below come from.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import fused

ENDPOINTS = ("Conv2d_1a_3x3", "Mixed_5b", "Mixed_7c", "PreLogits")
UNIT_ROUNDOFF = 2.0 ** -8  # bfloat16: 8 significant bits (7 stored), round to nearest


def _as_float32(tensor):
  return np.asarray(tf.cast(tensor, tf.float32))


def _with_policy(policy, build):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)
  try:
    return build()
  finally:
    keras.config.set_dtype_policy(previous)


def test_inception_v3_training_forward_is_unchanged_by_the_float32_mode():
  """Inception-v3 has only undilated Conv2D layers, whose forward pass in "float32" mode is the op
  the Keras layer runs: the wiring (bias, batch norm, activation, concatenations) must leave every
  endpoint bit-equal to "native" mode's. A changed forward kernel or a misplaced rounding breaks
  this on any CPU."""
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


# The stack's gradient path: every weight's gradient passes through at most the rounding of its
# layer's operands (2), its output (1), the upstream gradient of each later layer (5) and the
# rounded gradient itself (1), and the forward activations feeding the later layers (5): 14
# roundings.
GRADIENT_ROUNDINGS = 14
FORWARD_ROUNDINGS = 10  # operands and output of each of the 5 convolutions


def _rounding_bound(roundings):
  first_order = roundings * UNIT_ROUNDOFF
  return first_order + first_order ** 2


@pytest.mark.parametrize("jit_compile", [False, True], ids=["tf_function", "xla"])
def test_gradients_are_within_bfloat16_rounding_of_float64(jit_compile):
  model, reference, images = _stack_and_reference()
  _, want = _loss_and_gradients(reference, lambda m, x: m(tf.cast(x, tf.float64)), images)
  step = tf.function(lambda x: _loss_and_gradients(
      model, lambda m, y: fused.fused_call(m, y, training=True, bfloat16_convolutions="float32"),
      x), jit_compile=jit_compile)
  _, gradients = step(images)
  errors = [_relative_error(g, w) for g, w in zip(gradients, want)]
  assert max(errors) < _rounding_bound(GRADIENT_ROUNDINGS), errors
  # Not vacuous: bfloat16 operands do move the gradients away from float64's.
  assert max(errors) > UNIT_ROUNDOFF / 16, errors


def test_forward_is_within_bfloat16_rounding_of_float64():
  model, reference, images = _stack_and_reference(seed=1)
  want = reference(tf.cast(images, tf.float64)).numpy()
  got = _as_float32(fused.fused_call(model, images, training=True,
                                     bfloat16_convolutions="float32"))
  assert _relative_error(got, want) < _rounding_bound(FORWARD_ROUNDINGS)
  assert _relative_error(got, want) > 0


@pytest.mark.parametrize("layer_name", ["conv", "depthwise", "separable"])
def test_float32_sums_are_the_float64_sums_rounded_once(layer_name):
  """Dilated, depthwise and separable convolutions in "float32" mode: the products of bfloat16
  operands are exact in float32 and their float32 sum is within ~1e-6 of the float64 sum, so the
  result is the float64 convolution of the same operands rounded to bfloat16, give or take a tie:
  within half a bfloat16 ulp of the float64 value (plus the float32 sum's error)."""
  model, _, images = _stack_and_reference(seed=2)
  layer = model.get_layer(layer_name)
  x = tf.cast(keras.Model(model.input, layer.input)(images), tf.bfloat16)
  got = _as_float32(fused.float32_convolution(layer, x)).astype(np.float64)
  x64 = tf.cast(x, tf.float64)
  f64 = lambda variable: tf.cast(variable, tf.float64)
  options = dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate)
  if layer_name == "conv":
    sums = keras.ops.conv(x64, f64(layer.kernel), **options)
  elif layer_name == "depthwise":
    sums = keras.ops.depthwise_conv(x64, f64(layer.kernel), **options)
  else:  # TF's kernels round the separable's depthwise result to bfloat16 too
    depthwise = keras.ops.depthwise_conv(x64, f64(layer.depthwise_kernel), **options)
    depthwise = tf.cast(tf.cast(depthwise, tf.bfloat16), tf.float64)
    sums = keras.ops.conv(depthwise, f64(layer.pointwise_kernel))
  sums = sums.numpy()
  biased = sums + (f64(layer.bias).numpy() if layer.use_bias else 0.0)
  want = np.maximum(biased, 0.0) if layer.activation is keras.activations.relu else biased
  # Rounding to nearest: |bf16(v) - v| <= 2^-8 |v|, once for the float32 sums (whose own error
  # is ~1e-7 relative) and, where the layer has a bias, once for the bias added in bfloat16 as
  # in Keras. ReLU is exact.
  bound = UNIT_ROUNDOFF * (np.abs(sums) + (np.abs(biased) if layer.use_bias else 0.0))
  np.testing.assert_array_less(np.abs(got - want), bound * (1 + 1e-6) + 1e-30)
  assert np.abs(got - want).max() > 0  # bfloat16 results: not the float64 ones


@pytest.mark.parametrize("strides, padding, size", [
    ((1, 1), "same", 9), ((2, 2), "valid", 9), ((2, 2), "same", 10), ((1, 2), "valid", 8)])
def test_conv2d_gradients_are_those_of_the_float32_convolution(strides, padding, size):
  """The custom gradient is the float32 convolution's gradient on the bfloat16 operands, rounded
  to bfloat16: the same float32 backprop kernels on the same operands, so bit-equal anywhere."""
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
  # The forward pass is TF's bfloat16 kernel itself (how it sums is the CPU's business).
  np.testing.assert_array_equal(_as_float32(y),
                                _as_float32(tf.nn.conv2d(x, k, (1, *strides, 1), padding.upper())))
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


@pytest.mark.parametrize("flags, onednn, accelerator, native", [
    ({"avx2", "fma"}, True, False, False),          # AVX2-only: TF's bfloat16 kernels emulated
    ({"avx2", "avx512_bf16"}, True, False, True),
    ({"amx_bf16", "amx_tile"}, True, False, True),
    ({"amx_bf16", "amx_tile"}, False, False, False),  # TF_ENABLE_ONEDNN_OPTS=0: emulated again
    ({"avx2"}, True, True, True),                    # a TPU (or GPU) is visible
    (None, True, False, True),                       # no /proc/cpuinfo: trust the platform
])
def test_auto_uses_native_kernels_only_where_the_hardware_has_bfloat16(monkeypatch, flags, onednn,
                                                                        accelerator, native):
  monkeypatch.setattr(fused, "_cpu_flags", lambda: flags)
  monkeypatch.setattr(fused, "_onednn_enabled", lambda: onednn)
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind: ["device"] if accelerator and kind == "TPU" else [])
  assert fused.has_bfloat16_arithmetic.__wrapped__() is native
  fused.has_bfloat16_arithmetic.cache_clear()
  try:
    assert fused.resolve_bfloat16_convolutions("auto") == ("native" if native else "float32")
  finally:
    fused.has_bfloat16_arithmetic.cache_clear()


@pytest.mark.parametrize("setting", ["0", "1", None])
def test_onednn_switch_is_read_from_tensorflow(setting):
  """`_onednn_enabled` reports TF's own switch, read when TF starts: checked in a fresh process."""
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if setting is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = setting
  code = "from inception_tf.models import fused; print(fused._onednn_enabled())"
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=300)
  # Unset, TF's switch depends on the CPU: on where it has VNNI, bfloat16 or AMX instructions, off
  # elsewhere (e.g. AVX2-only CPUs); `ONEDNN_DEFAULT_CPU_FLAGS` is the fallback's copy of TF's rule.
  default = bool(fused.ONEDNN_DEFAULT_CPU_FLAGS & (fused._cpu_flags() or set()))
  enabled = {"0": False, "1": True}.get(setting, default)
  assert result.stdout.strip().splitlines()[-1] == str(enabled)


@pytest.mark.parametrize("setting, flags, enabled", [
    (None, {"avx2", "fma"}, False),              # AVX2-only: TF leaves oneDNN off
    (None, {"avx2", "avx_vnni"}, True),          # a desktop CPU with AVX-VNNI
    (None, {"avx2", "amx_bf16", "amx_tile"}, True),
    ("1", {"avx2", "fma"}, True), ("0", {"amx_bf16", "amx_tile"}, False),
    (None, None, False),                         # no /proc/cpuinfo: nothing claims oneDNN
])
def test_onednn_fallback_applies_tensorflows_rule(monkeypatch, setting, flags, enabled):
  """Where TF's private switch cannot be imported, `_onednn_enabled` applies TF's rule itself."""
  from tensorflow.python import util  # pylint: disable=import-outside-toplevel
  monkeypatch.delattr(util, "_pywrap_util_port")  # as if TF had moved its private module
  monkeypatch.setitem(sys.modules, "tensorflow.python.util._pywrap_util_port", None)
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  if setting is not None:
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", setting)
  monkeypatch.setattr(fused, "_cpu_flags", lambda: flags)
  assert fused._onednn_enabled() is enabled  # pylint: disable=protected-access
