"""Inception-ResNet-v1 and -v2 (Szegedy et al. 2016, arXiv:1602.07261) with TF-slim's names.

Two networks share the residual blocks of this module:

* `inception_resnet_v2`, by default in TF-slim's layout (`research/slim/nets/inception_resnet_v2.py`,
  scope `InceptionResnetV2`), which loads the published `inception_resnet_v2_2016_08_30.ckpt` by name
  and which keras.applications' `InceptionResNetV2` ports layer for layer. `layout="paper"` builds
  the network of the paper's figures instead (Inception-v4 stem, 5/10/5 blocks, no final 1x1 conv).
* `inception_resnet_v1`, as in the paper (Figure 15 with the blocks of Figures 10-14). TF-slim never
  published it; its layers are named in slim's style, consistently with Inception-ResNet-v2, so a
  checkpoint of that layout would load by name (scope `InceptionResnetV1`).

Paper figure <-> slim scope, Inception-ResNet-v2 in slim's layout (`layout="slim"`, 299 x 299 input):

    paper / slim                             slim scope                        output
    stem (slim's, not Fig 3):
      3x3/2 V conv 32, 3x3 V 32, 3x3 64      Conv2d_1a_3x3, _2a_3x3, _2b_3x3   147 x 147 x 64
      3x3/2 V max pool                       MaxPool_3a_3x3                    73 x 73 x 64
      1x1 conv 80, 3x3 V conv 192            Conv2d_3b_1x1, Conv2d_4a_3x3      71 x 71 x 192
      3x3/2 V max pool                       MaxPool_5a_3x3                    35 x 35 x 192
      Inception-v3-like mixed block          Mixed_5b                          35 x 35 x 320
    Fig 16 10 x Inception-ResNet-A (x0.17)   Repeat/block35_1 .. block35_10    35 x 35 x 320
    Fig 7  Reduction-A (k,l,m,n =            Mixed_6a                          17 x 17 x 1088
           256, 256, 384, 384)
    Fig 17 20 x Inception-ResNet-B (x0.10)   Repeat_1/block17_1 .. block17_20  17 x 17 x 1088
                                             (end point PreAuxLogits)
    Fig 18 Reduction-B                       Mixed_7a                          8 x 8 x 2080
    Fig 19 9 x Inception-ResNet-C (x0.20)    Repeat_2/block8_1 .. block8_9     8 x 8 x 2080
           + 1 without scale and ReLU        Block8                            8 x 8 x 2080
    (slim) 1x1 conv 1536                     Conv2d_7b_1x1                     8 x 8 x 1536
    Fig 15 avg pool, dropout (keep 0.8)      Logits/AvgPool_1a_8x8, Dropout,   1536 -> classes
                                             Logits (fully connected)
    (slim) aux head on PreAuxLogits          AuxLogits/Conv2d_1a_3x3 (a 5x5/3 V avg pool),
                                             Conv2d_1b_1x1 (128), Conv2d_2a_5x5 (768, kernel =
                                             pooled grid, V), Logits (fully connected)

Inception-ResNet-v2 in the paper's layout (`layout="paper"`): the Inception-v4 stem of Figure 3
(`Conv2d_1a_3x3` .. `Mixed_5a`, 35 x 35 x 384, built by `inception_v4.stem`), 5 x Figure 16
(`Repeat/block35_1..5`), Reduction-A (k, l, m, n) = (256, 256, 384, 384) (`Mixed_6a`, 17 x 17 x
1152), 10 x Figure 17 (`Repeat_1/block17_1..10`), Figure 18 (`Mixed_7a`, 8 x 8 x 2144), 5 x Figure
19 (`Repeat_2/block8_1..5`, all with ReLU), then the logits. The paper's figures are inconsistent
here: Figure 17 draws a "1x1 Conv (1154 Linear)" and Figure 19 a "1x1 Conv (2048 Linear)", but the
residual sum needs the up-projection to match its input, which by Figures 3/7/18 is 1152 and 2144
channels. We use the input width (as slim does, `net.get_shape()[3]`), i.e. 1152 and 2144.

Inception-ResNet-v1 (`inception_resnet_v1`, 299 x 299 input):

    paper                                    slim-style scope                  output
    Fig 14 stem: 3x3/2 V 32, 3x3 V 32, 3x3 64 Conv2d_1a_3x3, _2a_3x3, _2b_3x3  147 x 147 x 64
           3x3/2 V max pool                  MaxPool_3a_3x3                    73 x 73 x 64
           1x1 80, 3x3 V 192                 Conv2d_3b_1x1, Conv2d_4a_3x3      71 x 71 x 192
           3x3/2 V conv 256                  Conv2d_4b_3x3                     35 x 35 x 256
    Fig 10 5 x Inception-ResNet-A (x0.17)    Repeat/block35_1 .. block35_5     35 x 35 x 256
    Fig 7  Reduction-A (192, 192, 256, 384)  Mixed_6a                          17 x 17 x 896
    Fig 11 10 x Inception-ResNet-B (x0.10)   Repeat_1/block17_1 .. block17_10  17 x 17 x 896
    Fig 12 Reduction-B                       Mixed_7a                          8 x 8 x 1792
    Fig 13 5 x Inception-ResNet-C (x0.20)    Repeat_2/block8_1 .. block8_5     8 x 8 x 1792
    Fig 15 avg pool, dropout (keep 0.8)      Logits/...                        1792 -> classes

The paper's figures for v1 are consistent (256 + ... -> 896 -> 1792). The paper describes no
auxiliary classifier for either Inception-ResNet network (Figure 15 has none), so
`inception_resnet_v1` has no aux head. `inception_resnet_v2` keeps slim's aux head by default in
both layouts (in the paper layout it reads the 17 x 17 x 1152 grid); pass `aux_logits=False` for
the figure's network alone.

Residual scaling (paper §3.3: "scaling down the residuals before adding them ... factors between 0.1
and 0.3"): each block computes `relu(x + scale * up)` with `layers.residual_add` (Rescaling + Add +
ReLU). The defaults are slim's 0.17 (35 x 35), 0.10 (17 x 17), 0.20 (8 x 8); `residual_scale` takes
one number for all three or a triple. slim's final `Block8` always has scale 1.0 and no ReLU.

`output_stride=8` (slim layout only) keeps Mixed_6a at stride 1 and runs the 17 x 17 blocks with
atrous rate 2; as in slim, the network then ends at PreAuxLogits (`include_top=False` only).
`align_feature_maps=True` turns slim's VALID paddings in the stem and reductions into SAME, so every
grid is the input size divided by the stride, rounded up (299 -> 150, 75, 38, 19, 10).

Input sizes: the default is 299, the minimum 75 for every layout (75 -> 37 -> 35 -> 17 -> 15 -> 7
-> 3 -> 1). The logits use global average pooling (slim's AvgPool_1a_8x8 over the whole final grid).
slim's aux head pools 5 x 5 at stride 3 and fails when PreAuxLogits is smaller than 5 x 5 (inputs
below 107); here the pool kernel is reduced to the grid there (as slim's Inception-v3 does), exactly
slim's head from 107 up.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras

from inception_tf.models import inception_v4
from inception_tf.models import layers
from inception_tf.models import registry

# slim's defaults (`slim.repeat(..., scale=0.17)`, 0.10, 0.20), within paper §3.3's 0.1 .. 0.3.
DEFAULT_RESIDUAL_SCALES = (0.17, 0.10, 0.20)
MIN_IMAGE_SIZE = 75
SLIM_AUX_MIN_IMAGE_SIZE = 107

# slim's end_points of inception_resnet_v2, in slim's order.
ENDPOINTS_V2 = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_6a", "PreAuxLogits", "Mixed_7a",
    "Conv2d_7b_1x1", "AuxLogits", "global_pool", "PreLogitsFlatten", "Logits",
)
# inception_resnet_v2(layout="paper"): the Inception-v4 stem; "Repeat_2" is the last 8 x 8 block.
ENDPOINTS_V2_PAPER = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a",
    "Mixed_6a", "PreAuxLogits", "Mixed_7a", "Repeat_2", "AuxLogits", "global_pool",
    "PreLogitsFlatten", "Logits",
)
ENDPOINTS_V1 = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "Conv2d_4b_3x3", "Mixed_6a", "PreAuxLogits", "Mixed_7a", "Repeat_2",
    "global_pool", "PreLogitsFlatten", "Logits",
)

LAYOUTS = ("slim", "paper")
OUTPUT_STRIDES = (8, 16)


# ------------------------------------------------------------------------------------------------
# Residual blocks (Figures 10/16, 11/17, 13/19). The up-projection is a linear 1x1 conv with bias
# and no batch norm (slim: `normalizer_fn=None, activation_fn=None`) back to the input width.


def block35(x, *, scope: str, scale: float, batch_norm: layers.BatchNorm, tower_1x1: int,
            tower_3x3: tuple[int, int], tower_double_3x3: tuple[int, int, int],
            activation: bool = True):
  """Inception-ResNet-A on the 35 x 35 grid: `relu(x + scale * up(concat(towers)))`.

  Args:
    x: 35 x 35 x C (C = 320 in slim's IRv2, 384 in the paper's IRv2, 256 in IRv1).
    scope: e.g. "Repeat.block35_3".
    scale: the residual scale (paper §3.3).
    batch_norm: batch-norm settings.
    tower_1x1: Branch_0's 1x1 width (32 in both networks).
    tower_3x3: Branch_1's 1x1 -> 3x3 widths (IRv2 Fig 16: (32, 32); IRv1 Fig 10: (32, 32)).
    tower_double_3x3: Branch_2's 1x1 -> 3x3 -> 3x3 widths (IRv2 (32, 48, 64); IRv1 (32, 32, 32)).
    activation: the ReLU after the sum.

  Returns:
    35 x 35 x C.
  """
  channels = x.shape[-1]
  branch_0 = layers.conv_bn(x, tower_1x1, 1, name=f"{scope}.Branch_0.Conv2d_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, tower_3x3[0], 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_3x3[1], 3, name=f"{scope}.Branch_1.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(x, tower_double_3x3[0], 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, tower_double_3x3[1], 3,
                            name=f"{scope}.Branch_2.Conv2d_0b_3x3", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, tower_double_3x3[2], 3,
                            name=f"{scope}.Branch_2.Conv2d_0c_3x3", batch_norm=batch_norm)
  mixed = layers.concat([branch_0, branch_1, branch_2], name=f"{scope}.concat")
  up = layers.conv_bias(mixed, channels, 1, name=f"{scope}.Conv2d_1x1")
  return layers.residual_add(x, up, scale=scale, name=scope, activation=activation)


def block17(x, *, scope: str, scale: float, batch_norm: layers.BatchNorm, tower_1x1: int,
            tower_7x7: tuple[int, int, int], dilation_rate: int = 1, activation: bool = True):
  """Inception-ResNet-B on the 17 x 17 grid: towers 1x1 | 1x1 -> 1x7 -> 7x1, then the residual.

  Args:
    x: 17 x 17 x C (1088 slim IRv2, 1152 paper IRv2, 896 IRv1).
    scope: e.g. "Repeat_1.block17_20".
    scale: the residual scale.
    batch_norm: batch-norm settings.
    tower_1x1: Branch_0 width (IRv2 Fig 17: 192; IRv1 Fig 11: 128).
    tower_7x7: Branch_1 widths (IRv2 (128, 160, 192); IRv1 (128, 128, 128)).
    dilation_rate: 2 for IRv2's output_stride=8 (slim's `rate=2` arg scope over these blocks).
    activation: the ReLU after the sum.

  Returns:
    17 x 17 x C.
  """
  channels = x.shape[-1]
  branch_0 = layers.conv_bn(x, tower_1x1, 1, name=f"{scope}.Branch_0.Conv2d_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, tower_7x7[0], 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_7x7[1], (1, 7), dilation_rate=dilation_rate,
                            name=f"{scope}.Branch_1.Conv2d_0b_1x7", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_7x7[2], (7, 1), dilation_rate=dilation_rate,
                            name=f"{scope}.Branch_1.Conv2d_0c_7x1", batch_norm=batch_norm)
  mixed = layers.concat([branch_0, branch_1], name=f"{scope}.concat")
  up = layers.conv_bias(mixed, channels, 1, name=f"{scope}.Conv2d_1x1")
  return layers.residual_add(x, up, scale=scale, name=scope, activation=activation)


def block8(x, *, scope: str, scale: float, batch_norm: layers.BatchNorm, tower_1x1: int,
           tower_3x3: tuple[int, int, int], activation: bool = True):
  """Inception-ResNet-C on the 8 x 8 grid: towers 1x1 | 1x1 -> 1x3 -> 3x1, then the residual.

  Args:
    x: 8 x 8 x C (2080 slim IRv2, 2144 paper IRv2, 1792 IRv1).
    scope: e.g. "Repeat_2.block8_9", or "Block8" for slim's last block.
    scale: the residual scale (slim's last Block8: 1.0).
    batch_norm: batch-norm settings.
    tower_1x1: Branch_0 width (192 in both networks).
    tower_3x3: Branch_1 widths (IRv2 Fig 19: (192, 224, 256); IRv1 Fig 13: (192, 192, 192)).
    activation: the ReLU after the sum (slim's last Block8: none).

  Returns:
    8 x 8 x C.
  """
  channels = x.shape[-1]
  branch_0 = layers.conv_bn(x, tower_1x1, 1, name=f"{scope}.Branch_0.Conv2d_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, tower_3x3[0], 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_3x3[1], (1, 3), name=f"{scope}.Branch_1.Conv2d_0b_1x3",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_3x3[2], (3, 1), name=f"{scope}.Branch_1.Conv2d_0c_3x1",
                            batch_norm=batch_norm)
  mixed = layers.concat([branch_0, branch_1], name=f"{scope}.concat")
  up = layers.conv_bias(mixed, channels, 1, name=f"{scope}.Conv2d_1x1")
  return layers.residual_add(x, up, scale=scale, name=scope, activation=activation)


def reduction_b(x, *, batch_norm: layers.BatchNorm, tower_0: int, tower_1: int,
                tower_2: tuple[int, int], padding: str = "valid", scope: str = "Mixed_7a"):
  """Inception-ResNet's Reduction-B, 17 x 17 -> 8 x 8 (IRv2 Figure 18, IRv1 Figure 12).

  Args:
    x: the 17 x 17 grid.
    batch_norm: batch-norm settings.
    tower_0: Branch_0's 1x1 256 -> 3x3/2 width (384 in both networks).
    tower_1: Branch_1's 1x1 256 -> 3x3/2 width (IRv2 288, IRv1 256).
    tower_2: Branch_2's 1x1 256 -> 3x3 -> 3x3/2 widths (IRv2 (288, 320), IRv1 (256, 256)).
    padding: "valid"; "same" for align_feature_maps.
    scope: "Mixed_7a".

  Returns:
    8 x 8 x (tower_0 + tower_1 + tower_2[1] + input channels).
  """
  branch_0 = layers.conv_bn(x, 256, 1, name=f"{scope}.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_0 = layers.conv_bn(branch_0, tower_0, 3, strides=2, padding=padding,
                            name=f"{scope}.Branch_0.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 256, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, tower_1, 3, strides=2, padding=padding,
                            name=f"{scope}.Branch_1.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(x, 256, 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, tower_2[0], 3, name=f"{scope}.Branch_2.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, tower_2[1], 3, strides=2, padding=padding,
                            name=f"{scope}.Branch_2.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_3 = layers.max_pool(x, 3, strides=2, padding=padding, name=f"{scope}.Branch_3.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=scope)


# ------------------------------------------------------------------------------------------------
# Stems.


def _stem_v2_slim(x, *, batch_norm: layers.BatchNorm, padding: str):
  """slim's Inception-ResNet-v2 stem up to Mixed_5b (35 x 35 x 320 at 299)."""
  # 299 x 299 x 3
  x = layers.conv_bn(x, 32, 3, strides=2, padding=padding, name="Conv2d_1a_3x3",
                     batch_norm=batch_norm)
  # 149 x 149 x 32
  x = layers.conv_bn(x, 32, 3, padding=padding, name="Conv2d_2a_3x3", batch_norm=batch_norm)
  # 147 x 147 x 32
  x = layers.conv_bn(x, 64, 3, name="Conv2d_2b_3x3", batch_norm=batch_norm)
  # 147 x 147 x 64
  x = layers.max_pool(x, 3, strides=2, padding=padding, name="MaxPool_3a_3x3")
  # 73 x 73 x 64
  x = layers.conv_bn(x, 80, 1, padding=padding, name="Conv2d_3b_1x1", batch_norm=batch_norm)
  # 73 x 73 x 80
  x = layers.conv_bn(x, 192, 3, padding=padding, name="Conv2d_4a_3x3", batch_norm=batch_norm)
  # 71 x 71 x 192
  x = layers.max_pool(x, 3, strides=2, padding=padding, name="MaxPool_5a_3x3")
  # 35 x 35 x 192
  branch_0 = layers.conv_bn(x, 96, 1, name="Mixed_5b.Branch_0.Conv2d_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 48, 1, name="Mixed_5b.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 64, 5, name="Mixed_5b.Branch_1.Conv2d_0b_5x5",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(x, 64, 1, name="Mixed_5b.Branch_2.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 96, 3, name="Mixed_5b.Branch_2.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 96, 3, name="Mixed_5b.Branch_2.Conv2d_0c_3x3",
                            batch_norm=batch_norm)
  branch_3 = layers.avg_pool(x, 3, padding="same", name="Mixed_5b.Branch_3.AvgPool_0a_3x3")
  branch_3 = layers.conv_bn(branch_3, 64, 1, name="Mixed_5b.Branch_3.Conv2d_0b_1x1",
                            batch_norm=batch_norm)
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name="Mixed_5b")
  # 35 x 35 x 320


def _stem_v1(x, *, batch_norm: layers.BatchNorm):
  """Figure 14: the Inception-ResNet-v1 stem (35 x 35 x 256 at 299)."""
  # 299 x 299 x 3
  x = layers.conv_bn(x, 32, 3, strides=2, padding="valid", name="Conv2d_1a_3x3",
                     batch_norm=batch_norm)
  # 149 x 149 x 32
  x = layers.conv_bn(x, 32, 3, padding="valid", name="Conv2d_2a_3x3", batch_norm=batch_norm)
  # 147 x 147 x 32
  x = layers.conv_bn(x, 64, 3, name="Conv2d_2b_3x3", batch_norm=batch_norm)
  # 147 x 147 x 64
  x = layers.max_pool(x, 3, strides=2, padding="valid", name="MaxPool_3a_3x3")
  # 73 x 73 x 64
  x = layers.conv_bn(x, 80, 1, name="Conv2d_3b_1x1", batch_norm=batch_norm)
  # 73 x 73 x 80
  x = layers.conv_bn(x, 192, 3, padding="valid", name="Conv2d_4a_3x3", batch_norm=batch_norm)
  # 71 x 71 x 192
  return layers.conv_bn(x, 256, 3, strides=2, padding="valid", name="Conv2d_4b_3x3",
                        batch_norm=batch_norm)
  # 35 x 35 x 256


# ------------------------------------------------------------------------------------------------
# Heads.


def _aux_head(x, *, num_classes: int, batch_norm: layers.BatchNorm):
  """slim's Inception-ResNet-v2 `AuxLogits` on PreAuxLogits (17 x 17 x 1088 at 299)."""
  pool = inception_v4.aux_pool_size(x.shape[1])
  # slim names this 5x5/3 average pool "Conv2d_1a_3x3".
  x = layers.avg_pool(x, pool, strides=3, padding="valid", name="AuxLogits.Conv2d_1a_3x3")
  # 5 x 5 x 1088
  x = layers.conv_bn(x, 128, 1, name="AuxLogits.Conv2d_1b_1x1", batch_norm=batch_norm)
  # 5 x 5 x 128
  x = layers.conv_bn(x, 768, (x.shape[1], x.shape[2]), padding="valid",
                     name="AuxLogits.Conv2d_2a_5x5", batch_norm=batch_norm)
  # 1 x 1 x 768
  x = keras.layers.Flatten(name="AuxLogits.Flatten")(x)
  x = layers.dense_logits(x, num_classes, name="AuxLogits.Logits")
  return layers.identity(x, name="AuxLogits", dtype="float32")


def _logits_head(x, *, num_classes: int, dropout_keep_prob: float):
  """slim's `Logits`: global average pool, flatten, dropout, fully connected."""
  x = layers.global_avg_pool(x, name="Logits.AvgPool_1a_8x8")
  x = layers.identity(x, name="global_pool")
  # 1 x 1 x C
  x = keras.layers.Flatten(name="Logits.Flatten")(x)
  x = layers.dropout(x, dropout_keep_prob, name="Logits.Dropout")
  x = layers.identity(x, name="PreLogitsFlatten")
  # C
  x = layers.dense_logits(x, num_classes, name="Logits.Logits")
  return layers.identity(x, name="Logits", dtype="float32")


def residual_scales(residual_scale: float | Sequence[float] | None) -> tuple[float, float, float]:
  """(35 x 35, 17 x 17, 8 x 8) residual scales from the `residual_scale` option.

  Args:
    residual_scale: None (slim's 0.17, 0.10, 0.20), one number for all blocks, or three numbers.

  Raises:
    ValueError: not one or three positive numbers.
  """
  if residual_scale is None:
    return DEFAULT_RESIDUAL_SCALES
  if isinstance(residual_scale, (int, float)):
    scales = (float(residual_scale),) * 3
  else:
    scales = tuple(float(s) for s in residual_scale)
  if len(scales) != 3 or any(not s > 0.0 for s in scales):
    raise ValueError(f"residual_scale must be None, a positive number or three positive numbers "
                     f"(35x35, 17x17, 8x8 blocks; paper §3.3 uses 0.1 .. 0.3), got {residual_scale!r}.")
  return scales  # type: ignore[return-value]


def _top(x, pre_aux, *, inputs, name: str, num_classes: int, include_top: bool,
         pooling: str | None, aux_logits: bool, dropout_keep_prob: float,
         batch_norm: layers.BatchNorm) -> keras.Model:
  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name=name)
  outputs = {}
  if aux_logits:
    outputs["aux_logits"] = _aux_head(pre_aux, num_classes=num_classes, batch_norm=batch_norm)
  outputs["logits"] = _logits_head(x, num_classes=num_classes, dropout_keep_prob=dropout_keep_prob)
  return keras.Model(inputs, outputs, name=name)


# ------------------------------------------------------------------------------------------------
# The paper's Figure 15: 5 x A, Reduction-A, 10 x B, Reduction-B, 5 x C on a 35 x 35 stem output.


@dataclasses.dataclass(frozen=True)
class PaperWidths:
  """Filter counts of one Figure 15 network (the block figures and Table 1)."""

  block35: tuple[int, tuple[int, int], tuple[int, int, int]]  # tower_1x1, tower_3x3, double 3x3
  reduction_a: tuple[int, int, int, int]  # k, l, m, n (Table 1)
  block17: tuple[int, tuple[int, int, int]]  # tower_1x1, tower_7x7
  reduction_b: tuple[int, int, tuple[int, int]]  # tower_0, tower_1, tower_2
  block8: tuple[int, tuple[int, int, int]]  # tower_1x1, tower_3x3


V1_WIDTHS = PaperWidths(block35=(32, (32, 32), (32, 32, 32)),  # Figure 10
                        reduction_a=(192, 192, 256, 384),  # Table 1
                        block17=(128, (128, 128, 128)),  # Figure 11
                        reduction_b=(384, 256, (256, 256)),  # Figure 12
                        block8=(192, (192, 192, 192)))  # Figure 13
V2_PAPER_WIDTHS = PaperWidths(block35=(32, (32, 32), (32, 48, 64)),  # Figure 16
                              reduction_a=(256, 256, 384, 384),  # Table 1
                              block17=(192, (128, 160, 192)),  # Figure 17
                              reduction_b=(384, 288, (288, 320)),  # Figure 18
                              block8=(192, (192, 224, 256)))  # Figure 19


def _figure_15_body(x, *, widths: PaperWidths, scales: tuple[float, float, float],
                    batch_norm: layers.BatchNorm):
  """Figure 15 after the stem. Returns (the 8 x 8 map "Repeat_2", the 17 x 17 "PreAuxLogits").

  Channels at 299 for Inception-ResNet-v1 / the paper's -v2: 35 x 35 x 256 / 384, 17 x 17 x
  896 / 1152, 8 x 8 x 1792 / 2144 (every block keeps its input width).
  """
  tower_1x1, tower_3x3, tower_double_3x3 = widths.block35
  for i in range(1, 6):
    x = block35(x, scope=f"Repeat.block35_{i}", scale=scales[0], batch_norm=batch_norm,
                tower_1x1=tower_1x1, tower_3x3=tower_3x3, tower_double_3x3=tower_double_3x3)
  # 35 x 35 x 256 / 384
  k, l, m, n = widths.reduction_a
  x = inception_v4.reduction_a(x, k=k, l=l, m=m, n=n, scope="Mixed_6a", batch_norm=batch_norm)
  # 17 x 17 x 896 / 1152
  tower_1x1, tower_7x7 = widths.block17
  for i in range(1, 11):
    x = block17(x, scope=f"Repeat_1.block17_{i}", scale=scales[1], batch_norm=batch_norm,
                tower_1x1=tower_1x1, tower_7x7=tower_7x7)
  pre_aux = x = layers.identity(x, name="PreAuxLogits")
  # 17 x 17 x 896 / 1152
  tower_0, tower_1, tower_2 = widths.reduction_b
  x = reduction_b(x, batch_norm=batch_norm, tower_0=tower_0, tower_1=tower_1, tower_2=tower_2)
  # 8 x 8 x 1792 / 2144
  tower_1x1, tower_3x3 = widths.block8
  for i in range(1, 6):
    x = block8(x, scope=f"Repeat_2.block8_{i}", scale=scales[2], batch_norm=batch_norm,
               tower_1x1=tower_1x1, tower_3x3=tower_3x3)
  # 8 x 8 x 1792 / 2144
  return layers.identity(x, name="Repeat_2"), pre_aux


# ------------------------------------------------------------------------------------------------
# Networks.


@registry.register_model(
    "inception_resnet_v2",
    slim_scope="InceptionResnetV2",
    default_image_size=299,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=True,
    endpoints=ENDPOINTS_V2,
    paper="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
          "Connections on Learning (arXiv:1602.07261), Figure 15 (layout='paper'); TF-slim's "
          "inception_resnet_v2 (layout='slim', default)",
)
def inception_resnet_v2(inputs,
                        *,
                        num_classes: int,
                        include_top: bool,
                        pooling: str | None,
                        aux_logits: bool,
                        dropout_keep_prob: float,
                        batch_norm: layers.BatchNorm,
                        layout: str = "slim",
                        residual_scale: float | Sequence[float] | None = None,
                        output_stride: int = 16,
                        align_feature_maps: bool = False) -> keras.Model:
  """Builds Inception-ResNet-v2, by default exactly TF-slim's (scope `InceptionResnetV2`).

  Args:
    inputs: a `keras.Input` of shape (size, size, 3), size >= 75, values in [-1, 1].
    num_classes: logits width (1001 for the published checkpoint: class 0 = background).
    include_top: the logits (and aux) heads; False returns the last feature map per `pooling`.
    pooling: with include_top=False: None, "avg" or "max".
    aux_logits: slim's auxiliary head on the 17 x 17 grid (PreAuxLogits).
    dropout_keep_prob: keep probability before the logits (paper Fig 15: 0.8).
    batch_norm: batch-norm settings (slim: decay 0.9997, epsilon 1e-3, no gamma).
    layout: "slim" (the published checkpoint; 10/20/9+1 blocks) or "paper" (Figure 15 with the
      Inception-v4 stem and 5/10/5 blocks).
    residual_scale: None (0.17, 0.10, 0.20), one scale for all blocks, or three (paper §3.3).
    output_stride: 16, or 8 (slim layout, include_top=False; ends at PreAuxLogits, atrous rate 2).
    align_feature_maps: slim's option: SAME instead of VALID padding in the stem and the
      reductions (slim layout only).

  Returns:
    A `keras.Model` named "InceptionResnetV2".

  Raises:
    ValueError: unknown layout or output_stride, or an option the chosen layout does not have.

  Examples:
    >>> from inception_tf.models import create_model
    >>> model = create_model("inception_resnet_v2", include_top=False, output_stride=8)
    >>> model.output.shape
    (None, 33, 33, 1088)
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}.")
  if layout == "paper" and (output_stride != 16 or align_feature_maps):
    raise ValueError("output_stride and align_feature_maps are options of TF-slim's layout; "
                     f"with layout='paper' leave them at 16 and False (got output_stride="
                     f"{output_stride}, align_feature_maps={align_feature_maps}).")
  if output_stride == 8 and include_top:
    raise ValueError("output_stride=8 builds the network only up to PreAuxLogits (as TF-slim); "
                     "pass include_top=False.")
  scales = residual_scales(residual_scale)
  scale_35, scale_17, scale_8 = scales
  bn = batch_norm

  if layout == "paper":
    x = inception_v4.stem(inputs, batch_norm=bn)
    # 35 x 35 x 384
    x, pre_aux = _figure_15_body(x, widths=V2_PAPER_WIDTHS, scales=scales, batch_norm=bn)
    # 8 x 8 x 2144
    return _top(x, pre_aux, inputs=inputs, name="InceptionResnetV2", num_classes=num_classes,
                include_top=include_top, pooling=pooling, aux_logits=aux_logits,
                dropout_keep_prob=dropout_keep_prob, batch_norm=bn)

  padding = "same" if align_feature_maps else "valid"
  atrous = output_stride == 8
  x = _stem_v2_slim(inputs, batch_norm=bn, padding=padding)
  # 35 x 35 x 320
  for i in range(1, 11):
    x = block35(x, scope=f"Repeat.block35_{i}", scale=scale_35, batch_norm=bn, tower_1x1=32,
                tower_3x3=(32, 32), tower_double_3x3=(32, 48, 64))
  # 35 x 35 x 320
  x = inception_v4.reduction_a(x, k=256, l=256, m=384, n=384, scope="Mixed_6a", batch_norm=bn,
                               strides=1 if atrous else 2, padding=padding)
  # 17 x 17 x 1088 (33 x 33 x 1088 with output_stride=8)
  for i in range(1, 21):
    x = block17(x, scope=f"Repeat_1.block17_{i}", scale=scale_17, batch_norm=bn, tower_1x1=192,
                tower_7x7=(128, 160, 192), dilation_rate=2 if atrous else 1)
  pre_aux = x = layers.identity(x, name="PreAuxLogits")
  # 17 x 17 x 1088 (33 x 33 x 1088 with output_stride=8)
  if atrous:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="InceptionResnetV2")
  x = reduction_b(x, batch_norm=bn, tower_0=384, tower_1=288, tower_2=(288, 320), padding=padding)
  # 8 x 8 x 2080
  for i in range(1, 10):
    x = block8(x, scope=f"Repeat_2.block8_{i}", scale=scale_8, batch_norm=bn, tower_1x1=192,
               tower_3x3=(192, 224, 256))
  # slim: `block8(net, activation_fn=None)` -- the default scale 1.0 and no ReLU.
  x = block8(x, scope="Block8", scale=1.0, batch_norm=bn, tower_1x1=192, tower_3x3=(192, 224, 256),
             activation=False)
  # 8 x 8 x 2080
  x = layers.conv_bn(x, 1536, 1, name="Conv2d_7b_1x1", batch_norm=bn)
  # 8 x 8 x 1536
  return _top(x, pre_aux, inputs=inputs, name="InceptionResnetV2", num_classes=num_classes,
              include_top=include_top, pooling=pooling, aux_logits=aux_logits,
              dropout_keep_prob=dropout_keep_prob, batch_norm=bn)


@registry.register_model(
    "inception_resnet_v1",
    slim_scope="InceptionResnetV1",
    default_image_size=299,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=False,
    endpoints=ENDPOINTS_V1,
    paper="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
          "Connections on Learning (arXiv:1602.07261), Figures 10-15",
)
def inception_resnet_v1(inputs,
                        *,
                        num_classes: int,
                        include_top: bool,
                        pooling: str | None,
                        aux_logits: bool,
                        dropout_keep_prob: float,
                        batch_norm: layers.BatchNorm,
                        residual_scale: float | Sequence[float] | None = None) -> keras.Model:
  """Builds Inception-ResNet-v1 as in the paper (Figures 10-15), scope `InceptionResnetV1`.

  Args:
    inputs: a `keras.Input` of shape (size, size, 3), size >= 75.
    num_classes: logits width.
    include_top: the logits head; False returns the 8 x 8 x 1792 features per `pooling`.
    pooling: with include_top=False: None, "avg" or "max".
    aux_logits: must be False (the paper gives this network no auxiliary head).
    dropout_keep_prob: keep probability before the logits (Figure 15: 0.8).
    batch_norm: batch-norm settings.
    residual_scale: None (0.17, 0.10, 0.20), one scale for all blocks, or three (paper §3.3).

  Returns:
    A `keras.Model` named "InceptionResnetV1".

  Examples:
    >>> from inception_tf.models import create_model
    >>> create_model("inception_resnet_v1", include_top=False).output.shape
    (None, 8, 8, 1792)
  """
  if aux_logits:
    raise ValueError("inception_resnet_v1 has no auxiliary head (none in the paper).")
  x = _stem_v1(inputs, batch_norm=batch_norm)
  # 35 x 35 x 256
  x, pre_aux = _figure_15_body(x, widths=V1_WIDTHS, scales=residual_scales(residual_scale),
                               batch_norm=batch_norm)
  # 8 x 8 x 1792
  return _top(x, pre_aux, inputs=inputs, name="InceptionResnetV1", num_classes=num_classes,
              include_top=include_top, pooling=pooling, aux_logits=False,
              dropout_keep_prob=dropout_keep_prob, batch_norm=batch_norm)
