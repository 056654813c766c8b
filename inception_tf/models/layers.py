"""Building blocks shared by every network: slim's conv+BN, pools, concat, residual scale, heads.

Every helper names its Keras layers after the TF-slim scope they reproduce, with `.` standing for
slim's `/` (Keras forbids `/` in layer names). `conv_bn(x, 64, 3, name="Mixed_5b.Branch_1.Conv2d_0b_3x3")`
creates three layers:

    Mixed_5b.Branch_1.Conv2d_0b_3x3            Conv2D, no bias     -> .../Conv2d_0b_3x3/weights
    Mixed_5b.Branch_1.Conv2d_0b_3x3.BatchNorm  BatchNormalization  -> .../Conv2d_0b_3x3/BatchNorm/{beta,...}
    Mixed_5b.Branch_1.Conv2d_0b_3x3.Relu       ReLU                (the slim endpoint of that conv)

so `inception_tf.models.naming` maps every variable to its slim name by rule, with no side table.
Only built-in Keras layers are used, so a saved `.keras` file loads without custom objects.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras

# TF-slim's inception arg scope (nets/inception_utils.py): batch norm decay 0.9997, epsilon 0.001,
# no gamma ("scale=False"), and convolutions followed by batch norm carry no bias.
BATCH_NORM_MOMENTUM = 0.9997
BATCH_NORM_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class BatchNorm:
  """Batch-norm settings of one network (slim: `batch_norm_decay`, `batch_norm_epsilon`, `scale`)."""

  momentum: float = BATCH_NORM_MOMENTUM
  epsilon: float = BATCH_NORM_EPSILON
  scale: bool = False

  def __post_init__(self):
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"batch norm momentum must be in [0, 1), got {self.momentum}.")
    if self.epsilon <= 0.0:
      raise ValueError(f"batch norm epsilon must be > 0, got {self.epsilon}.")

  def __call__(self, x, *, name: str):
    return keras.layers.BatchNormalization(
        momentum=self.momentum, epsilon=self.epsilon, scale=self.scale, center=True, name=name)(x)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
  if isinstance(value, int):
    return (value, value)
  return tuple(value)  # type: ignore[return-value]


def conv_bn(x,
            filters: int,
            kernel_size: int | Sequence[int],
            *,
            name: str,
            batch_norm: BatchNorm,
            strides: int | Sequence[int] = 1,
            padding: str = "same",
            dilation_rate: int = 1,
            activation: bool = True):
  """slim.conv2d with batch norm: Conv2D (no bias) -> BatchNorm -> ReLU.

  Args:
    x: input tensor, NHWC.
    filters: output channels.
    kernel_size: int or (height, width), e.g. (1, 7).
    name: the slim scope with `.` for `/`, e.g. "Mixed_6b.Branch_1.Conv2d_0b_1x7".
    batch_norm: the network's `BatchNorm` settings.
    strides: int or pair.
    padding: "same" (slim 'SAME') or "valid" (slim 'VALID').
    dilation_rate: atrous rate (IRv2 with output_stride=8).
    activation: False for slim's `activation_fn=None` convolutions.

  Returns:
    The activated output; its layer is named `name + ".Relu"` (or `name + ".BatchNorm"`).
  """
  x = keras.layers.Conv2D(
      filters, _pair(kernel_size), strides=_pair(strides), padding=padding,
      dilation_rate=dilation_rate, use_bias=False, name=name)(x)
  x = batch_norm(x, name=f"{name}.BatchNorm")
  if activation:
    x = keras.layers.ReLU(name=f"{name}.Relu")(x)
  return x


def conv_bias(x,
              filters: int,
              kernel_size: int | Sequence[int],
              *,
              name: str,
              strides: int | Sequence[int] = 1,
              padding: str = "same",
              dtype: str | None = None):
  """slim.conv2d with `normalizer_fn=None, activation_fn=None`: a convolution with bias, no BN.

  Used for logits layers (pass dtype="float32" so the head stays float32 under mixed precision) and
  the linear up-projections of Inception-ResNet blocks.
  """
  return keras.layers.Conv2D(
      filters, _pair(kernel_size), strides=_pair(strides), padding=padding,
      use_bias=True, name=name, dtype=dtype)(x)


def max_pool(x, pool_size: int | Sequence[int], *, name: str, strides: int = 1,
             padding: str = "valid"):
  """slim.max_pool2d (slim's default padding is 'VALID')."""
  return keras.layers.MaxPooling2D(_pair(pool_size), strides=strides, padding=padding, name=name)(x)


def avg_pool(x, pool_size: int | Sequence[int], *, name: str, strides: int = 1,
             padding: str = "valid"):
  """slim.avg_pool2d. With 'SAME', TF (and so Keras) averages over the valid pixels only."""
  return keras.layers.AveragePooling2D(
      _pair(pool_size), strides=strides, padding=padding, name=name)(x)


def concat(branches: Sequence, *, name: str):
  """tf.concat of the branches on channels; the layer carries the block's endpoint name."""
  return keras.layers.Concatenate(axis=-1, name=name)(list(branches))


def global_avg_pool(x, *, name: str, dtype: str | None = None):
  """Mean over height and width keeping 1x1 spatial dims (slim `global_pool` / AvgPool 8x8 at 299)."""
  return keras.layers.GlobalAveragePooling2D(keepdims=True, name=name, dtype=dtype)(x)


def residual_add(shortcut, residual, *, scale: float, name: str, activation: bool = True):
  """Inception-ResNet's `net += scale * up` then ReLU (v4 paper §3.3), from built-in layers.

  Layers: `{name}.Scale` (Rescaling), `{name}.Add`, and `{name}.Relu` when activated.
  """
  if scale != 1.0:
    residual = keras.layers.Rescaling(scale, name=f"{name}.Scale")(residual)
  x = keras.layers.Add(name=f"{name}.Add")([shortcut, residual])
  if activation:
    x = keras.layers.ReLU(name=f"{name}.Relu")(x)
  return x


def dropout(x, keep_prob: float, *, name: str):
  """slim.dropout(keep_prob): Keras' rate is 1 - keep_prob."""
  if not 0.0 < keep_prob <= 1.0:
    raise ValueError(f"dropout_keep_prob must be in (0, 1], got {keep_prob}.")
  return keras.layers.Dropout(1.0 - keep_prob, name=name)(x)


def squeeze_logits(x, num_classes: int, *, name: str = "logits"):
  """slim's `spatial_squeeze`: [N, 1, 1, C] -> [N, C], float32 under mixed precision."""
  return keras.layers.Reshape((num_classes,), name=name, dtype="float32")(x)


def dense_logits(x, num_classes: int, *, name: str):
  """slim.fully_connected(activation_fn=None) for logits (v4, Inception-ResNet), kept in float32."""
  return keras.layers.Dense(num_classes, name=name, dtype="float32")(x)


def identity(x, *, name: str, dtype: str | None = None):
  """Names a tensor (e.g. the `logits` output) without changing it."""
  return keras.layers.Identity(name=name, dtype=dtype)(x)


def feature_output(x, pooling: str | None, *, name: str = "features"):
  """The `include_top=False` output, as keras.applications: None (feature map), 'avg' or 'max'."""
  if pooling is None:
    return x
  if pooling == "avg":
    return keras.layers.GlobalAveragePooling2D(name=name)(x)
  if pooling == "max":
    return keras.layers.GlobalMaxPooling2D(name=name)(x)
  raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")


def scaled_depth(depth_multiplier: float, min_depth: int):
  """slim's `depth(d) = max(int(d * depth_multiplier), min_depth)` for v1/v2/v3."""
  if depth_multiplier <= 0:
    raise ValueError(f"depth_multiplier must be greater than zero, got {depth_multiplier}.")

  def depth(channels: int) -> int:
    return max(int(channels * depth_multiplier), min_depth)

  return depth
