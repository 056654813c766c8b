"""Inception-v2 (BN-Inception) as TF-slim lays it out, including its separable first convolution.

Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift" (arXiv:1502.03167), Figure 5, in the form of TF-slim's `nets/inception_v2.py`
(slim scope `InceptionV2`), which loads the published `inception_v2_2016_08_28` checkpoint.

The first convolution is, by default, slim's separable 7x7/2: a depthwise 7x7 with channel
multiplier `min(int(depth(64) / 3), 8)` (8 at full width: 3 -> 24 channels), then a pointwise 1x1
to depth(64). slim builds it with `separable_conv2d` outside the batch-norm arg scope, so it has a
bias and a ReLU and no batch norm: its published variables are `Conv2d_1a_7x7/depthwise_weights`
[7, 7, 3, 8], `pointwise_weights` [1, 1, 24, 64] and `biases` [64]. `use_separable_conv=False`
gives the paper's plain 7x7/2 convolution with batch norm (slim's option of that name).

    paper (Figure 5)          slim scope (`.` in Keras layer names)   output at 224
    convolution 7x7/2         Conv2d_1a_7x7 (separable, bias)         112 x 112 x 64
    max pool 3x3/2            MaxPool_2a_3x3                           56 x 56 x 64
    convolution (1x1)         Conv2d_2b_1x1                            56 x 56 x 64
    convolution 3x3/1         Conv2d_2c_3x3                            56 x 56 x 192
    max pool 3x3/2            MaxPool_3a_3x3                           28 x 28 x 192
    inception (3a)            Mixed_3b                                 28 x 28 x 256
    inception (3b)            Mixed_3c                                 28 x 28 x 320
    inception (3c), stride 2  Mixed_4a                                 14 x 14 x 576
    inception (4a)            Mixed_4b                                 14 x 14 x 576
    inception (4b)            Mixed_4c                                 14 x 14 x 576
    inception (4c)            Mixed_4d                                 14 x 14 x 576
    inception (4d)            Mixed_4e                                 14 x 14 x 576
    inception (4e), stride 2  Mixed_5a                                  7 x 7 x 1024
    inception (5a)            Mixed_5b                                  7 x 7 x 1024
    inception (5b)            Mixed_5c                                  7 x 7 x 1024
    avg pool 7x7/1            AvgPool_1a (global mean)                  1 x 1 x 1024
    (dropout)                 Logits/Dropout_1b (keep 0.8)
    linear                    Logits/Conv2d_1c_1x1 (1x1 conv, bias)     1 x 1 x num_classes
                              Logits (spatial squeeze)                 num_classes

Inside a module: Branch_0 = "#1x1"; Branch_1 = "#3x3 reduce" (Conv2d_0a_1x1) + "#3x3"
(Conv2d_0b_3x3, or Conv2d_1a_3x3 with stride 2); Branch_2 = "double #3x3 reduce" (Conv2d_0a_1x1) +
"double #3x3" (Conv2d_0b_3x3, Conv2d_0c_3x3 / Conv2d_1a_3x3); Branch_3 = "pool + proj" (an average
pool AvgPool_0a_3x3, a max pool MaxPool_0a_3x3 in Mixed_5c, + Conv2d_0b_1x1). The stride-2 modules
have a third branch MaxPool_1a_3x3 and no projection. Every layer pads 'SAME' (slim's arg scope).
The variable-free head layers carry slim's end_points keys (`AvgPool_1a`, `Logits`), so
`feature_extractor(model, ["AvgPool_1a"])` reaches them under slim's names.

Input size: every layer pads 'SAME', so the network computes for any input. Slim shrinks its 7x7
'VALID' final pool to the feature map when the map is smaller than 7x7, which is a global mean; at
every size our `AvgPool_1a` is that global mean (slim's `global_pool=True`), so inputs larger than
224 work too. The minimum input size is 32, the total stride, so Mixed_5c is at least a full 1x1
cell.

`depth_multiplier`/`min_depth`: every width d becomes `max(int(d * depth_multiplier), min_depth)`,
as in slim (and the first layer's channel multiplier follows depth(64), as in slim).
"""

from __future__ import annotations

import functools

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

# Output stride of Mixed_5c: the smallest input whose last feature map is a full 1x1 cell.
MIN_IMAGE_SIZE = 32

ENDPOINTS = (
    "Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3",
    "Mixed_3b", "Mixed_3c", "Mixed_4a", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_5a", "Mixed_5b", "Mixed_5c", "AvgPool_1a", "Logits")


def _separable_conv_relu(x, filters: int, kernel_size: int, *, channel_multiplier: int,
                         strides: int, name: str):
  """slim.separable_conv2d without batch norm: depthwise -> pointwise (+ bias) -> ReLU.

  Layers: `name` (SeparableConv2D: depthwise_weights, pointwise_weights, biases) and `name.Relu`.
  """
  x = keras.layers.SeparableConv2D(
      filters, kernel_size, strides=strides, padding="same", depth_multiplier=channel_multiplier,
      use_bias=True, name=name)(x)
  return keras.layers.ReLU(name=f"{name}.Relu")(x)


@register_model(
    "inception_v2",
    slim_scope="InceptionV2",
    default_image_size=224,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=False,
    endpoints=ENDPOINTS,
    preprocessing="inception",
    paper="Ioffe & Szegedy 2015, Batch Normalization (arXiv:1502.03167)")
def inception_v2(inputs,
                 *,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 aux_logits: bool,
                 dropout_keep_prob: float,
                 batch_norm: layers.BatchNorm,
                 depth_multiplier: float = 1.0,
                 min_depth: int = 16,
                 use_separable_conv: bool = True) -> keras.Model:
  """Builds Inception-v2 with TF-slim's layout and layer names (use `create_model`).

  Args:
    inputs: a `keras.Input` of shape [H, W, 3] with H, W >= 32.
    num_classes: logits width (1001 for the published checkpoint).
    include_top: with the classifier (`{"logits": ...}` output) or features only.
    pooling: with include_top=False: None, "avg" or "max" (keras.applications semantics).
    aux_logits: must be False; Inception-v2 in slim has no auxiliary head.
    dropout_keep_prob: keep probability of `Logits/Dropout_1b`.
    batch_norm: batch-norm settings (slim: no gamma, epsilon 1e-3).
    depth_multiplier: multiplies every convolution's width (> 0).
    min_depth: lower bound of every thinned width.
    use_separable_conv: slim's separable first convolution (the published layout); False uses a
      plain 7x7/2 convolution with batch norm.

  Returns:
    A functional `keras.Model` named "InceptionV2".

  Raises:
    ValueError: for depth_multiplier <= 0 or an unknown `pooling`.
  """
  if aux_logits:
    raise ValueError("inception_v2 has no auxiliary head; aux_logits must be False.")
  depth = layers.scaled_depth(depth_multiplier, min_depth)
  conv = functools.partial(layers.conv_bn, batch_norm=batch_norm)

  # 224 x 224 x 3
  if use_separable_conv:
    # Keep in_channels * multiplier <= out_channels, so the separable conv is not overparameterized.
    channel_multiplier = min(int(depth(64) / 3), 8)
    x = _separable_conv_relu(inputs, depth(64), 7, channel_multiplier=channel_multiplier,
                             strides=2, name="Conv2d_1a_7x7")
  else:
    x = conv(inputs, depth(64), 7, strides=2, name="Conv2d_1a_7x7")
  # 112 x 112 x 64
  x = layers.max_pool(x, 3, strides=2, padding="same", name="MaxPool_2a_3x3")
  # 56 x 56 x 64
  x = conv(x, depth(64), 1, name="Conv2d_2b_1x1")
  # 56 x 56 x 64
  x = conv(x, depth(192), 3, name="Conv2d_2c_3x3")
  # 56 x 56 x 192
  x = layers.max_pool(x, 3, strides=2, padding="same", name="MaxPool_3a_3x3")
  # 28 x 28 x 192

  # Inception (3a).
  b0 = conv(x, depth(64), 1, name="Mixed_3b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(64), 1, name="Mixed_3b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(64), 3, name="Mixed_3b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(64), 1, name="Mixed_3b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(96), 3, name="Mixed_3b.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(96), 3, name="Mixed_3b.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_3b.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(32), 1, name="Mixed_3b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_3b")
  # 28 x 28 x 256

  # Inception (3b).
  b0 = conv(x, depth(64), 1, name="Mixed_3c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(64), 1, name="Mixed_3c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(96), 3, name="Mixed_3c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(64), 1, name="Mixed_3c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(96), 3, name="Mixed_3c.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(96), 3, name="Mixed_3c.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_3c.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_3c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_3c")
  # 28 x 28 x 320

  # Inception (3c), stride 2.
  b0 = conv(x, depth(128), 1, name="Mixed_4a.Branch_0.Conv2d_0a_1x1")
  b0 = conv(b0, depth(160), 3, strides=2, name="Mixed_4a.Branch_0.Conv2d_1a_3x3")
  b1 = conv(x, depth(64), 1, name="Mixed_4a.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(96), 3, name="Mixed_4a.Branch_1.Conv2d_0b_3x3")
  b1 = conv(b1, depth(96), 3, strides=2, name="Mixed_4a.Branch_1.Conv2d_1a_3x3")
  b2 = layers.max_pool(x, 3, strides=2, padding="same", name="Mixed_4a.Branch_2.MaxPool_1a_3x3")
  x = layers.concat([b0, b1, b2], name="Mixed_4a")
  # 14 x 14 x 576

  # Inception (4a).
  b0 = conv(x, depth(224), 1, name="Mixed_4b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(64), 1, name="Mixed_4b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(96), 3, name="Mixed_4b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(96), 1, name="Mixed_4b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(128), 3, name="Mixed_4b.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(128), 3, name="Mixed_4b.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_4b.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_4b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4b")
  # 14 x 14 x 576

  # Inception (4b).
  b0 = conv(x, depth(192), 1, name="Mixed_4c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(96), 1, name="Mixed_4c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(128), 3, name="Mixed_4c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(96), 1, name="Mixed_4c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(128), 3, name="Mixed_4c.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(128), 3, name="Mixed_4c.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_4c.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_4c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4c")
  # 14 x 14 x 576

  # Inception (4c).
  b0 = conv(x, depth(160), 1, name="Mixed_4d.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(128), 1, name="Mixed_4d.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(160), 3, name="Mixed_4d.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(128), 1, name="Mixed_4d.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(160), 3, name="Mixed_4d.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(160), 3, name="Mixed_4d.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_4d.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(96), 1, name="Mixed_4d.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4d")
  # 14 x 14 x 576

  # Inception (4d).
  b0 = conv(x, depth(96), 1, name="Mixed_4e.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(128), 1, name="Mixed_4e.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(192), 3, name="Mixed_4e.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(160), 1, name="Mixed_4e.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(192), 3, name="Mixed_4e.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(192), 3, name="Mixed_4e.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_4e.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(96), 1, name="Mixed_4e.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4e")
  # 14 x 14 x 576

  # Inception (4e), stride 2.
  b0 = conv(x, depth(128), 1, name="Mixed_5a.Branch_0.Conv2d_0a_1x1")
  b0 = conv(b0, depth(192), 3, strides=2, name="Mixed_5a.Branch_0.Conv2d_1a_3x3")
  b1 = conv(x, depth(192), 1, name="Mixed_5a.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(256), 3, name="Mixed_5a.Branch_1.Conv2d_0b_3x3")
  b1 = conv(b1, depth(256), 3, strides=2, name="Mixed_5a.Branch_1.Conv2d_1a_3x3")
  b2 = layers.max_pool(x, 3, strides=2, padding="same", name="Mixed_5a.Branch_2.MaxPool_1a_3x3")
  x = layers.concat([b0, b1, b2], name="Mixed_5a")
  # 7 x 7 x 1024

  # Inception (5a).
  b0 = conv(x, depth(352), 1, name="Mixed_5b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(192), 1, name="Mixed_5b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(320), 3, name="Mixed_5b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(160), 1, name="Mixed_5b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(224), 3, name="Mixed_5b.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(224), 3, name="Mixed_5b.Branch_2.Conv2d_0c_3x3")
  b3 = layers.avg_pool(x, 3, padding="same", name="Mixed_5b.Branch_3.AvgPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_5b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_5b")
  # 7 x 7 x 1024

  # Inception (5b): its pool branch takes the maximum.
  b0 = conv(x, depth(352), 1, name="Mixed_5c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(192), 1, name="Mixed_5c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(320), 3, name="Mixed_5c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(192), 1, name="Mixed_5c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(224), 3, name="Mixed_5c.Branch_2.Conv2d_0b_3x3")
  b2 = conv(b2, depth(224), 3, name="Mixed_5c.Branch_2.Conv2d_0c_3x3")
  b3 = layers.max_pool(x, 3, padding="same", name="Mixed_5c.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_5c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_5c")
  # 7 x 7 x 1024

  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="InceptionV2")

  x = layers.global_avg_pool(x, name="AvgPool_1a")
  # 1 x 1 x 1024
  x = layers.dropout(x, dropout_keep_prob, name="Logits.Dropout_1b")
  x = layers.conv_bias(x, num_classes, 1, name="Logits.Conv2d_1c_1x1", dtype="float32")
  # 1 x 1 x num_classes
  logits = layers.squeeze_logits(x, num_classes, name="Logits")
  return keras.Model(inputs, {"logits": logits}, name="InceptionV2")
