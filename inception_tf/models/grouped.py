"""Grouped convolutions (ResNeXt's cardinality) at the speed of TF's own kernels.

Keras 3's TensorFlow backend runs every `Conv2D(groups=g > 1)` inside a nested
`tf.function(jit_compile=True)` ("grouped convolutions are broken on CPU without XLA"), and XLA's
CPU code for a grouped convolution and its gradients is orders of magnitude slower than oneDNN's
grouped kernel: ResNeXt-50 (32x4d) trained at 0.017x ResNet-50's rate (WORKSPACE_NOTES.md,
"Grouped convolutions"). `grouped_convolution(layer, inputs, mode)` computes such a layer's output
from the layer's own variables in one of two ways:

  - "native": `tf.nn.convolution` with the grouped kernel, i.e. TF's `Conv2D` op with
    `feature_group_count = g`: oneDNN's grouped kernel on CPUs, cuDNN's on GPUs, XLA's on TPUs.
    Where oneDNN is off (`TF_ENABLE_ONEDNN_OPTS=0`, and by default on CPUs without VNNI, bfloat16
    or AMX instructions, e.g. AVX2-only ones: `fused.ONEDNN_DEFAULT_CPU_FLAGS`) TF's other CPU
    kernel computes it forward only: no gradient, no fused convolution + batch norm + ReLU.
    With oneDNN on but no bfloat16 instructions, its bfloat16 gradient fails as well (seen on an
    emulated AVX2 CPU with TF_ENABLE_ONEDNN_OPTS=1); `fused_call`'s defaults never meet that
    case: on CPUs without bfloat16 instructions they train with float32 operands.
  - "split": g ungrouped convolutions, one per group of input channels, concatenated - the
    definition of a grouped convolution, computed by the fast ungrouped kernels anywhere (oneDNN,
    Eigen, XLA's CPU and TFLite's `CONV_2D`), each output by the same products as "native".

"auto" picks "native" where that kernel is fast - a visible GPU or TPU, or a CPU with oneDNN on
when the call is not XLA-compiled - and "split" otherwise (a CPU under XLA, or oneDNN off).
Numbers: WORKSPACE_NOTES.md, "Grouped convolutions". Mixed precision as the Keras layer: the
operands in the layer's compute dtype, bias and activation after the convolution.
"""

from __future__ import annotations

import keras
import tensorflow as tf

MODES = ("auto", "native", "split")


def is_grouped(layer: keras.layers.Layer, inputs) -> bool:
  """Whether `layer` is a channels-last 2-D `Conv2D` with groups > 1 that this module computes."""
  return (type(layer) is keras.layers.Conv2D  # pylint: disable=unidiomatic-typecheck
          and layer.groups > 1 and layer.data_format == "channels_last"
          and len(inputs.shape) == 4)


def resolve(mode: str, *, jit_compile: bool, accelerator: bool, onednn: bool) -> str:
  """The concrete mode of `mode` ("auto", "native" or "split") for the given execution.

  Args:
    mode: one of MODES.
    jit_compile: the convolution is traced inside an XLA-compiled function.
    accelerator: a GPU or TPU is visible (or the call is placed on one).
    onednn: TF's oneDNN CPU kernels are on.
  """
  if mode not in MODES:
    raise ValueError(f"grouped_convolutions must be one of {MODES}; got {mode!r}.")
  if mode != "auto":
    return mode
  if accelerator or (onednn and not jit_compile):
    return "native"
  return "split"


def _convolve(inputs, kernel, *, groups: int, strides, padding: str, dilation_rate, mode: str):
  options = dict(strides=strides, padding=padding.upper(), dilations=dilation_rate)
  if mode == "native":  # the kernel is [kh, kw, in / groups, out]: TF infers the groups
    return tf.nn.convolution(inputs, kernel, **options)
  parts = zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1))
  return tf.concat([tf.nn.convolution(x, k, **options) for x, k in parts], axis=-1)


@tf.autograph.experimental.do_not_convert  # Python control flow on layer settings only
def grouped_convolution(layer: keras.layers.Conv2D, inputs, mode: str, *,
                        operand_dtype: tf.DType | None = None):
  """`layer(inputs)` for a grouped `Conv2D`, by `mode` ("native" or "split", not "auto").

  Args:
    layer: a built Keras `Conv2D` with `groups > 1`, channels last.
    inputs: NHWC activations.
    mode: "native" or "split" (see the module docstring).
    operand_dtype: the dtype the convolution computes in (default: the layer's compute dtype). A
      caller that sums bfloat16 operands in float32 passes float32 with bfloat16-valued inputs.

  Returns:
    The layer's outputs in the layer's compute dtype.
  """
  dtype = tf.as_dtype(operand_dtype or layer.compute_dtype)
  kernel = tf.cast(layer.kernel, layer.compute_dtype)  # Keras' autocast: rounds like the layer
  outputs = _convolve(tf.cast(inputs, dtype), tf.cast(kernel, dtype), groups=layer.groups,
                      strides=layer.strides, padding=layer.padding,
                      dilation_rate=layer.dilation_rate, mode=mode)
  outputs = tf.cast(outputs, layer.compute_dtype)
  if layer.use_bias:
    outputs = outputs + tf.cast(layer.bias, layer.compute_dtype)
  if layer.activation is not None:
    outputs = layer.activation(outputs)
  return outputs
