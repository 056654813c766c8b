"""Calling a functional model with TF's fastest exact kernels: fused batch norm, and bfloat16
convolutions with float32 arithmetic on CPUs that have no bfloat16 arithmetic.

Keras 3's `BatchNormalization` computes batch norm from primitive ops: `tf.nn.moments` (mean, then
squared differences, each a pass over the activations) and a separate multiply and add, and under
mixed precision it casts bfloat16 activations to float32 and back around all of that. The backward
pass is as many ops again. TF has one kernel for the whole thing, `FusedBatchNormV3` (one op
forward, one op backward; XLA lowers it too, for TPUs), and grappler's remapper has fusions of
`Conv2D -> FusedBatchNormV3 (-> Relu)` for inference (not checked here which of them fire on this
CPU). TF-slim trained the published checkpoints with that kernel (`slim.batch_norm(fused=None)`).

`fused_call(model, inputs, training=...)` runs a functional model's graph exactly like
`model(inputs, training=...)` does, except that each `BatchNormalization` layer is computed by that
kernel on the layer's own variables:

  - the same maths as the Keras layer: batch statistics when training, moving statistics otherwise;
    moving averages updated with the layer's momentum from the biased batch variance (the kernel
    reports the Bessel-corrected variance, n / (n - 1) times larger, which is undone), so a run with
    `fused_call` and one with `model(...)` train the same model (tests: equal within float rounding);
  - a frozen layer (`trainable=False`) uses its moving statistics, as in Keras;
  - layers the kernel does not cover (channels not last, rank other than 4, `synchronized=True`,
    `renorm=True`) run as the Keras layer.

bfloat16 convolutions on CPUs without bfloat16 arithmetic: where the CPU has no bfloat16
instructions, TF's CPU kernels for the backward bfloat16 convolutions (`Conv2DBackpropFilter`/
`Input`) are emulated, an order of magnitude slower than the float32 ones, and they dominate a
mixed_bfloat16 training step (measurements: WORKSPACE_NOTES.md, "bfloat16 convolutions"). With
`bfloat16_convolutions="float32"` and `training=True` each mixed_bfloat16 `Conv2D`,
`DepthwiseConv2D` and `SeparableConv2D` multiplies its bfloat16 operands (inputs and kernel rounded
to bfloat16, as the Keras layer rounds them) and sums the products in float32, rounding the result
to bfloat16: what a TPU's matrix unit does. For an undilated `Conv2D` the forward pass stays TF's
bfloat16 kernel (the very op the Keras layer runs, so its outputs are the Keras layer's) and only
the gradients are taken by the float32 backprop kernels and rounded to bfloat16. Depthwise,
separable and dilated convolutions run in float32 on the bfloat16 operands (TF's emulated bfloat16
depthwise kernel sums in bfloat16). With `training=False` (inference: no backward pass to speed up)
the Keras layers run as they are.

Grouped convolutions (`Conv2D(groups > 1)`, ResNeXt) are computed by `inception_tf.models.grouped`
("native" or "split" kernels, `grouped_convolutions`), not by Keras' nested XLA function, which is
very slow on CPUs; callers that XLA-compile the call say so (`jit_compile`).

"auto" (the default) picks "native" where bfloat16 arithmetic is real: a visible GPU or TPU, or a
CPU with bfloat16 instructions (`avx512_bf16`, `amx_bf16`) *and* TF's oneDNN kernels switched on
(they are what use those instructions; with `TF_ENABLE_ONEDNN_OPTS=0` TF falls back to the
emulated kernels on any CPU). Everywhere else it picks "float32". Both modes compute the same
model; they differ in the rounding of the sums, so a run's numbers depend on the mode (the
trainer's start line names it).

The model itself is not changed: it keeps built-in layers only, so `.keras` files and checkpoints
are the same whichever way it is called. The trainer, the evaluator, the serving signatures and the
benchmark's "ours" side call models this way; their speed is measured by `tools/benchmark.py`
(WORKSPACE_NOTES.md).
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Callable

import keras
import tensorflow as tf

from inception_tf.models import grouped
from inception_tf.models import keras_internals


def is_fusable(layer: keras.layers.Layer, inputs) -> bool:
  """Whether `layer` is a batch norm that the fused kernel computes exactly for `inputs`."""
  if type(layer) is not keras.layers.BatchNormalization:  # pylint: disable=unidiomatic-typecheck
    return False
  rank = len(inputs.shape)
  return (rank == 4 and layer.axis in (-1, 3) and not layer.synchronized and not layer.renorm
          and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16))


@tf.autograph.experimental.do_not_convert  # Python control flow on layer settings only
def fused_batch_norm(layer: keras.layers.BatchNormalization, inputs, *, training: bool):
  """`layer(inputs, training=training)` computed by `FusedBatchNormV3`.

  Args:
    layer: a built Keras `BatchNormalization` over the last axis of NHWC inputs.
    inputs: NHWC activations in the layer's compute dtype (float32 or bfloat16).
    training: use and fold into the moving averages the batch's statistics (if the layer is
      trainable), else normalize with the moving statistics.

  Returns:
    The normalized activations, in the dtype of `inputs`.
  """
  channels = inputs.shape[-1]
  scale = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels], tf.float32)
  offset = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels], tf.float32)
  moving_mean = tf.cast(layer.moving_mean, tf.float32)
  moving_variance = tf.cast(layer.moving_variance, tf.float32)
  if not (training and layer.trainable):
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs, scale, offset, mean=moving_mean, variance=moving_variance,
        epsilon=layer.epsilon, is_training=False)
    return outputs
  outputs, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
      inputs, scale, offset, epsilon=layer.epsilon, is_training=True)
  count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
  variance = corrected_variance * ((count - 1.0) / count)
  momentum = layer.momentum
  layer.moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
  layer.moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
  return outputs


BFLOAT16_CONVOLUTIONS = ("auto", "native", "float32")
_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
_CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str] | None:
  """The CPU's instruction-set flags (Linux), None where /proc/cpuinfo does not exist."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
      return set(cpuinfo.read().split())
  except OSError:
    return None


# TF's default for its oneDNN CPU kernels when TF_ENABLE_ONEDNN_OPTS is unset (x86-64 Linux,
# `DefaultOneDnnPolicy` in tensorflow/core/util/util.cc): on for CPUs with any of these
# instructions, off elsewhere - e.g. on AVX2-only CPUs, where TF runs its Eigen kernels.
ONEDNN_DEFAULT_CPU_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                                      "amx_int8", "amx_bf16"})


def _onednn_enabled() -> bool:
  """Whether TF runs its oneDNN CPU kernels: TF_ENABLE_ONEDNN_OPTS=0/1 where it is set, otherwise
  TF's default for this CPU (on with VNNI, bfloat16 or AMX instructions; off on AVX2-only CPUs).
  oneDNN is what uses the CPU's bfloat16 instructions and TF's only grouped-convolution gradient."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):  # the private module moved: apply TF's rule ourselves
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if setting:
      return setting not in ("0", "false")
    return bool(ONEDNN_DEFAULT_CPU_FLAGS & (_cpu_flags() or set()))


def _has_accelerator() -> bool:
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


@functools.cache
def has_bfloat16_arithmetic() -> bool:
  """Whether this machine computes bfloat16 convolutions natively: a GPU or TPU is visible, or
  the CPU has bfloat16 instructions and TF's oneDNN kernels (which use them) are on. Unknown CPUs
  (no /proc/cpuinfo) count as native."""
  if _has_accelerator():
    return True
  flags = _cpu_flags()
  if flags is None:
    return True
  return any(flag in flags for flag in _CPU_BFLOAT16_FLAGS) and _onednn_enabled()


def resolve_bfloat16_convolutions(mode: str) -> str:
  """"native" or "float32" for `mode` ("auto" decides by `has_bfloat16_arithmetic`)."""
  if mode not in BFLOAT16_CONVOLUTIONS:
    raise ValueError(f"bfloat16_convolutions={mode!r} is not one of {BFLOAT16_CONVOLUTIONS}: "
                     "'native' runs TF's bfloat16 kernels, 'float32' multiplies bfloat16 operands "
                     "in float32, 'auto' picks by hardware.")
  if mode == "auto":
    return "native" if has_bfloat16_arithmetic() else "float32"
  return mode


def is_float32_convolvable(layer: keras.layers.Layer, inputs) -> bool:
  """Whether `layer` is a mixed_bfloat16 2-D convolution that `float32_convolution` computes."""
  if type(layer) not in _CONVOLUTIONS:  # subclasses may change call()
    return False
  return (layer.compute_dtype == "bfloat16" and layer.data_format == "channels_last"
          and len(inputs.shape) == 4 and getattr(layer, "groups", 1) == 1)


def _bfloat16_valued(tensor):
  """`tensor` rounded to bfloat16, held in float32 (exact: bfloat16 is a float32 prefix)."""
  return tf.cast(tf.cast(tensor, tf.bfloat16), tf.float32)


def _conv2d_with_float32_gradients(inputs, kernel, *, strides, padding):
  """A bfloat16 NHWC convolution whose gradients are computed by the float32 backprop kernels on
  the same bfloat16 operands and rounded to bfloat16 (where TF's bfloat16 backprop kernels are
  emulated). The forward pass is TF's bfloat16 kernel, as in the Keras layer."""
  strides4, padding = (1, *strides, 1), padding.upper()

  @tf.custom_gradient
  def convolve(x, k):
    def gradients(upstream):
      x32, k32, dy32 = (tf.cast(t, tf.float32) for t in (x, k, upstream))
      dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), k32, dy32, strides4, padding)
      dk = tf.compat.v1.nn.conv2d_backprop_filter(x32, tf.shape(k), dy32, strides4, padding)
      return tf.cast(dx, x.dtype), tf.cast(dk, k.dtype)

    return tf.nn.conv2d(x, k, strides4, padding), gradients

  return convolve(inputs, kernel)


@tf.autograph.experimental.do_not_convert  # Python control flow on layer settings only
def float32_convolution(layer: keras.layers.Layer, inputs):
  """`layer(inputs)` for a mixed_bfloat16 convolution, with products summed in float32.

  Operands are rounded to bfloat16 exactly as the Keras layer rounds them. Undilated `Conv2D`:
  TF's bfloat16 forward kernel (the op the Keras layer runs) and float32 backprop kernels. Dilated,
  depthwise and separable: float32 convolutions on the bfloat16 operands, the result (and a
  separable one's depthwise result, as TF's kernels do) rounded to bfloat16 - TF's bfloat16
  depthwise kernel sums in bfloat16. Bias and activation run in bfloat16, as in Keras.
  """
  x = _bfloat16_valued(inputs)
  options = dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
                 data_format=layer.data_format)
  if isinstance(layer, keras.layers.SeparableConv2D):
    depthwise = keras.ops.depthwise_conv(x, _bfloat16_valued(layer.depthwise_kernel), **options)
    outputs = keras.ops.conv(_bfloat16_valued(depthwise), _bfloat16_valued(layer.pointwise_kernel),
                             strides=1, padding="valid", data_format=layer.data_format)
  elif isinstance(layer, keras.layers.DepthwiseConv2D):
    outputs = keras.ops.depthwise_conv(x, _bfloat16_valued(layer.kernel), **options)
  elif tuple(layer.dilation_rate) != (1, 1):
    # TF's CPU backprop kernels take no dilation; keras.ops.conv in float32 dilates by
    # space-to-batch around an undilated convolution, differentiable by autodiff.
    outputs = keras.ops.conv(x, _bfloat16_valued(layer.kernel), **options)
  else:
    outputs = _conv2d_with_float32_gradients(
        tf.cast(inputs, tf.bfloat16), tf.cast(layer.kernel, tf.bfloat16), strides=layer.strides,
        padding=layer.padding)
  outputs = tf.cast(outputs, tf.bfloat16)
  if layer.use_bias:
    outputs = outputs + tf.cast(layer.bias, tf.bfloat16)  # broadcasts over the last axis
  if layer.activation is not None:
    outputs = layer.activation(outputs)
  return outputs


def _accepts_training(operation) -> bool:
  call = getattr(operation, "call", None)
  if call is None:
    return False
  try:
    return "training" in inspect.signature(call).parameters
  except (TypeError, ValueError):
    return False


def _grouped(layer: keras.layers.Conv2D, inputs, *, training: bool | None, convolutions: str,
             grouped_mode: str):
  """A grouped convolution by `grouped_mode`; bfloat16 operands summed in float32 where
  `convolutions` is "float32" and the call trains (as `float32_convolution`)."""
  if convolutions == "float32" and training and layer.compute_dtype == "bfloat16":
    return grouped.grouped_convolution(layer, _bfloat16_valued(inputs), grouped_mode,
                                       operand_dtype=tf.float32)
  return grouped.grouped_convolution(layer, inputs, grouped_mode)


def _operation_fn(training: bool | None, convolutions: str, grouped_mode: str) -> Callable:
  def wrap(operation):
    def call(*args, **kwargs):
      if isinstance(operation, keras.layers.BatchNormalization) and is_fusable(operation, args[0]):
        return fused_batch_norm(operation, args[0], training=bool(training))
      if grouped.is_grouped(operation, args[0]):
        return _grouped(operation, args[0], training=training, convolutions=convolutions,
                        grouped_mode=grouped_mode)
      if convolutions == "float32" and training and is_float32_convolvable(operation, args[0]):
        return float32_convolution(operation, args[0])
      if isinstance(operation, keras.Model) and _is_functional(operation):
        return fused_call(operation, *args, training=training, bfloat16_convolutions=convolutions,
                          grouped_convolutions=grouped_mode)
      if training is not None and _accepts_training(operation):
        kwargs["training"] = training
      return operation(*args, **kwargs)

    return call

  return wrap


def _is_functional(model) -> bool:
  return keras_internals.is_functional(model)


@tf.autograph.experimental.do_not_convert  # walks the Python graph of layers
def fused_call(model: keras.Model, inputs, *, training: bool | None = False,
               bfloat16_convolutions: str = "auto", grouped_convolutions: str = "auto",
               jit_compile: bool = False):
  """`model(inputs, training=training)` with every batch norm on the fused kernel (and bfloat16
  convolutions in float32 arithmetic where that is faster).

  Args:
    model: a functional Keras model (any of `create_model`'s, a `.keras` reload, an inference
      model); other models are simply called.
    inputs: what `model` takes (a tensor, or the structure of its inputs).
    training: as for `model(...)`.
    bfloat16_convolutions: "native" (TF's bfloat16 kernels), "float32" (`float32_convolution`) or
      "auto" (by `has_bfloat16_arithmetic`); only mixed_bfloat16 layers with `training=True` are
      concerned.
    grouped_convolutions: how `Conv2D(groups > 1)` layers are computed: "native", "split" or
      "auto" (`inception_tf.models.grouped`; Keras' own way XLA-compiles them, very slowly on CPUs).
    jit_compile: whether the caller compiles this call with XLA (it picks the grouped-convolution
      kernel for "auto").

  Returns:
    The model's outputs, with the structure `model(...)` returns.
  """
  convolutions = resolve_bfloat16_convolutions(bfloat16_convolutions)
  grouped_mode = grouped.resolve(grouped_convolutions, jit_compile=jit_compile,
                                 accelerator=_has_accelerator(), onednn=_onednn_enabled())
  if not _is_functional(model):
    return model(inputs, training=training)
  # Functional.call's own path (the private Keras API, isolated in keras_internals; tests compare
  # it with model(...)).
  return keras_internals.run_through_graph(model, inputs,
                                           _operation_fn(training, convolutions, grouped_mode))
