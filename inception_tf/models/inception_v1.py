"""Inception-v1 (GoogLeNet) as TF-slim lays it out: batch norm after every convolution.

Szegedy et al., "Going deeper with convolutions" (arXiv:1409.4842), Table 1, in the form of TF-slim's
`nets/inception_v1.py` (slim scope `InceptionV1`), which loads the published
`inception_v1_2016_08_28` checkpoint. Slim differs from the paper in four ways: batch norm (no
gamma, epsilon 1e-3) after every convolution, the "5x5" branch uses a 3x3 kernel, `MaxPool_5a` is
2x2/2 instead of 3x3/2, and there are no auxiliary classifiers.

    paper (Table 1)          slim scope (`.` in Keras layer names)    output at 224
    conv 7x7/2               Conv2d_1a_7x7                            112 x 112 x 64
    max pool 3x3/2           MaxPool_2a_3x3                            56 x 56 x 64
    conv 3x3 (reduce 1x1)    Conv2d_2b_1x1                             56 x 56 x 64
    conv 3x3                 Conv2d_2c_3x3                             56 x 56 x 192
    max pool 3x3/2           MaxPool_3a_3x3                            28 x 28 x 192
    inception (3a)           Mixed_3b                                  28 x 28 x 256
    inception (3b)           Mixed_3c                                  28 x 28 x 480
    max pool 3x3/2           MaxPool_4a_3x3                            14 x 14 x 480
    inception (4a)           Mixed_4b                                  14 x 14 x 512
    inception (4b)           Mixed_4c                                  14 x 14 x 512
    inception (4c)           Mixed_4d                                  14 x 14 x 512
    inception (4d)           Mixed_4e                                  14 x 14 x 528
    inception (4e)           Mixed_4f                                  14 x 14 x 832
    max pool 3x3/2           MaxPool_5a_2x2 (2x2/2 in slim)             7 x 7 x 832
    inception (5a)           Mixed_5b                                   7 x 7 x 832
    inception (5b)           Mixed_5c                                   7 x 7 x 1024
    avg pool 7x7/1           AvgPool_0a_7x7 (global mean)               1 x 1 x 1024
    dropout (40%)            Logits/Dropout_0b (keep 0.8 in slim)
    linear                   Logits/Conv2d_0c_1x1 (1x1 conv, bias)      1 x 1 x num_classes
                             Logits (spatial squeeze)                  num_classes

Inside a module: Branch_0 = "#1x1"; Branch_1 = "#3x3 reduce" (Conv2d_0a_1x1) + "#3x3"
(Conv2d_0b_3x3); Branch_2 = "#5x5 reduce" (Conv2d_0a_1x1) + "#5x5" (Conv2d_0b_3x3, a 3x3 kernel in
slim; in Mixed_5b slim calls it Conv2d_0a_3x3); Branch_3 = 3x3 max pool (MaxPool_0a_3x3) + "pool
proj" (Conv2d_0b_1x1). Every convolution and pool uses 'SAME' padding, as slim's arg scope sets.
The variable-free head layers carry slim's end_points keys (`AvgPool_0a_7x7`, `Logits`), so
`feature_extractor(model, ["AvgPool_0a_7x7"])` reaches them under slim's names.

Input size: every layer pads 'SAME', so the network computes for any input; the final 7x7 pool is
a global average (slim's `global_pool=True`, which equals slim's 7x7 'VALID' pool at 224). The
minimum input size is 32, the total stride, so that Mixed_5c is at least one full 1x1 cell.

`depth_multiplier`/`min_depth` thin every convolution as `max(int(d * depth_multiplier),
min_depth)`, the rule slim applies to Inception-v2/v3 (slim's v1 has no such option; the default
1.0 gives exactly slim's v1).
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
    "Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool_5a_2x2", "Mixed_5b", "Mixed_5c", "AvgPool_0a_7x7", "Logits")


@register_model(
    "inception_v1",
    slim_scope="InceptionV1",
    default_image_size=224,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=False,
    endpoints=ENDPOINTS,
    preprocessing="inception",
    paper="Szegedy et al. 2014, Going deeper with convolutions (arXiv:1409.4842)")
def inception_v1(inputs,
                 *,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 aux_logits: bool,
                 dropout_keep_prob: float,
                 batch_norm: layers.BatchNorm,
                 depth_multiplier: float = 1.0,
                 min_depth: int = 16) -> keras.Model:
  """Builds Inception-v1 with TF-slim's layout and layer names (use `create_model`).

  Args:
    inputs: a `keras.Input` of shape [H, W, 3] with H, W >= 32.
    num_classes: logits width (1001 for the published checkpoint).
    include_top: with the classifier (`{"logits": ...}` output) or features only.
    pooling: with include_top=False: None, "avg" or "max" (keras.applications semantics).
    aux_logits: must be False; Inception-v1 in slim has no auxiliary head.
    dropout_keep_prob: keep probability of `Logits/Dropout_0b`.
    batch_norm: batch-norm settings (slim: no gamma, epsilon 1e-3).
    depth_multiplier: multiplies every convolution's width (> 0).
    min_depth: lower bound of every thinned width.

  Returns:
    A functional `keras.Model` named "InceptionV1".

  Raises:
    ValueError: for depth_multiplier <= 0 or an unknown `pooling`.
  """
  if aux_logits:
    raise ValueError("inception_v1 has no auxiliary head; aux_logits must be False.")
  depth = layers.scaled_depth(depth_multiplier, min_depth)
  conv = functools.partial(layers.conv_bn, batch_norm=batch_norm)
  pool = layers.max_pool

  # 224 x 224 x 3
  x = conv(inputs, depth(64), 7, strides=2, name="Conv2d_1a_7x7")
  # 112 x 112 x 64
  x = pool(x, 3, strides=2, padding="same", name="MaxPool_2a_3x3")
  # 56 x 56 x 64
  x = conv(x, depth(64), 1, name="Conv2d_2b_1x1")
  # 56 x 56 x 64
  x = conv(x, depth(192), 3, name="Conv2d_2c_3x3")
  # 56 x 56 x 192
  x = pool(x, 3, strides=2, padding="same", name="MaxPool_3a_3x3")
  # 28 x 28 x 192

  # Inception (3a).
  b0 = conv(x, depth(64), 1, name="Mixed_3b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(96), 1, name="Mixed_3b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(128), 3, name="Mixed_3b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(16), 1, name="Mixed_3b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(32), 3, name="Mixed_3b.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_3b.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(32), 1, name="Mixed_3b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_3b")
  # 28 x 28 x 256

  # Inception (3b).
  b0 = conv(x, depth(128), 1, name="Mixed_3c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(128), 1, name="Mixed_3c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(192), 3, name="Mixed_3c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(32), 1, name="Mixed_3c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(96), 3, name="Mixed_3c.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_3c.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_3c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_3c")
  # 28 x 28 x 480

  x = pool(x, 3, strides=2, padding="same", name="MaxPool_4a_3x3")
  # 14 x 14 x 480

  # Inception (4a).
  b0 = conv(x, depth(192), 1, name="Mixed_4b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(96), 1, name="Mixed_4b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(208), 3, name="Mixed_4b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(16), 1, name="Mixed_4b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(48), 3, name="Mixed_4b.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_4b.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_4b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4b")
  # 14 x 14 x 512

  # Inception (4b).
  b0 = conv(x, depth(160), 1, name="Mixed_4c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(112), 1, name="Mixed_4c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(224), 3, name="Mixed_4c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(24), 1, name="Mixed_4c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(64), 3, name="Mixed_4c.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_4c.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_4c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4c")
  # 14 x 14 x 512

  # Inception (4c).
  b0 = conv(x, depth(128), 1, name="Mixed_4d.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(128), 1, name="Mixed_4d.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(256), 3, name="Mixed_4d.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(24), 1, name="Mixed_4d.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(64), 3, name="Mixed_4d.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_4d.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_4d.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4d")
  # 14 x 14 x 512

  # Inception (4d).
  b0 = conv(x, depth(112), 1, name="Mixed_4e.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(144), 1, name="Mixed_4e.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(288), 3, name="Mixed_4e.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(32), 1, name="Mixed_4e.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(64), 3, name="Mixed_4e.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_4e.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(64), 1, name="Mixed_4e.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4e")
  # 14 x 14 x 528

  # Inception (4e).
  b0 = conv(x, depth(256), 1, name="Mixed_4f.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(160), 1, name="Mixed_4f.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(320), 3, name="Mixed_4f.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(32), 1, name="Mixed_4f.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(128), 3, name="Mixed_4f.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_4f.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_4f.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_4f")
  # 14 x 14 x 832

  x = pool(x, 2, strides=2, padding="same", name="MaxPool_5a_2x2")
  # 7 x 7 x 832

  # Inception (5a). Slim names the "5x5" conv of this module Conv2d_0a_3x3.
  b0 = conv(x, depth(256), 1, name="Mixed_5b.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(160), 1, name="Mixed_5b.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(320), 3, name="Mixed_5b.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(32), 1, name="Mixed_5b.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(128), 3, name="Mixed_5b.Branch_2.Conv2d_0a_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_5b.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_5b.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_5b")
  # 7 x 7 x 832

  # Inception (5b).
  b0 = conv(x, depth(384), 1, name="Mixed_5c.Branch_0.Conv2d_0a_1x1")
  b1 = conv(x, depth(192), 1, name="Mixed_5c.Branch_1.Conv2d_0a_1x1")
  b1 = conv(b1, depth(384), 3, name="Mixed_5c.Branch_1.Conv2d_0b_3x3")
  b2 = conv(x, depth(48), 1, name="Mixed_5c.Branch_2.Conv2d_0a_1x1")
  b2 = conv(b2, depth(128), 3, name="Mixed_5c.Branch_2.Conv2d_0b_3x3")
  b3 = pool(x, 3, padding="same", name="Mixed_5c.Branch_3.MaxPool_0a_3x3")
  b3 = conv(b3, depth(128), 1, name="Mixed_5c.Branch_3.Conv2d_0b_1x1")
  x = layers.concat([b0, b1, b2, b3], name="Mixed_5c")
  # 7 x 7 x 1024

  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="InceptionV1")

  # Paper: 7x7 average pool, 40% dropout, linear layer (Table 1).
  x = layers.global_avg_pool(x, name="AvgPool_0a_7x7")
  # 1 x 1 x 1024
  x = layers.dropout(x, dropout_keep_prob, name="Logits.Dropout_0b")
  x = layers.conv_bias(x, num_classes, 1, name="Logits.Conv2d_0c_1x1", dtype="float32")
  # 1 x 1 x num_classes
  logits = layers.squeeze_logits(x, num_classes, name="Logits")
  return keras.Model(inputs, {"logits": logits}, name="InceptionV1")
