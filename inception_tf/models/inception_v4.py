"""Inception-v4 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, arXiv:1602.07261) in TF-slim's layout.

The layer names are TF-slim's scopes under `InceptionV4` (`research/slim/nets/inception_v4.py`), so
the published `inception_v4.ckpt` loads by name (`inception_tf.checkpoints.load_slim_checkpoint`).

Paper figure <-> slim scope (grid sizes at 299 x 299 input):

    paper                                   slim scope                      output
    Fig 3  stem: 3x3/2 V conv 32            Conv2d_1a_3x3                   149 x 149 x 32
                 3x3 V conv 32              Conv2d_2a_3x3                   147 x 147 x 32
                 3x3 conv 64                Conv2d_2b_3x3                   147 x 147 x 64
                 maxpool 3x3/2 V | conv 96  Mixed_3a                        73 x 73 x 160
                 two 1x1 -> 3x3 V towers    Mixed_4a                        71 x 71 x 192
                 conv 192 /2 V | maxpool    Mixed_5a                        35 x 35 x 384
    Fig 4  4 x Inception-A                  Mixed_5b .. Mixed_5e            35 x 35 x 384
    Fig 7  Reduction-A (k,l,m,n =           Mixed_6a                        17 x 17 x 1024
           192, 224, 256, 384; Table 1)
    Fig 5  7 x Inception-B                  Mixed_6b .. Mixed_6h            17 x 17 x 1024
    Fig 8  Reduction-B                      Mixed_7a                        8 x 8 x 1536
    Fig 6  3 x Inception-C                  Mixed_7b .. Mixed_7d            8 x 8 x 1536
    Fig 9  avg pool, dropout (keep 0.8),    Logits/AvgPool_1a, Dropout_1b,  1536 -> num_classes
           softmax                          PreLogitsFlatten, Logits (fully connected)
    (not in the paper) auxiliary head       AuxLogits/AvgPool_1a_5x5 (5x5/3 V),
           on Mixed_6h, as slim             Conv2d_1b_1x1 (128), Conv2d_2a (768, kernel = the
                                            pooled grid, V), Aux_logits (fully connected)

Where the paper's figures and slim differ, slim wins (it is what the checkpoint holds): Mixed_4a's
factorized tower runs 1x7 before 7x1 (Fig 3 draws 7x1 first) and Mixed_7x's second tower runs
3x1 -> 1x3 (448 -> 512) before its 1x3 | 3x1 split (Fig 6 draws 1x3 first).

Input sizes: the default is 299; the smallest input is 75 (Mixed_7a needs a 3 x 3 grid at Mixed_6x:
75 -> 37 -> 35 -> 35 -> 17 -> 15 -> 7 -> 3 -> 1). The logits use global average pooling (slim's
AvgPool_1a over the whole final grid), so any size >= 75 works. Slim's auxiliary head pools 5 x 5
and fails below 107 x 107 inputs (Mixed_6h smaller than 5 x 5); here the pool kernel is reduced to
the grid for such inputs, as slim's Inception-v3 does (`_reduced_kernel_size_for_small_input`), so
the aux head is available at every size >= 75. At and above 107 the head is exactly slim's.

Parameters (num_classes=1001, counting BN moving statistics as the checkpoint does): 46,074,066 with
the aux head, 42,712,937 without (slim's published variable list; the issue's "42.7M").
"""

from __future__ import annotations

import keras

from inception_tf.models import layers
from inception_tf.models import registry

# slim's end_points, in slim's order (AuxLogits, global_pool, PreLogitsFlatten, Logits exist only
# with include_top; AuxLogits only with the aux head).
ENDPOINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_5e", "Mixed_6a",
    "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_6f", "Mixed_6g", "Mixed_6h",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "Mixed_7d",
    "AuxLogits", "global_pool", "PreLogitsFlatten", "Logits",
)

MIN_IMAGE_SIZE = 75
# Below this input size Mixed_6h is smaller than slim's 5 x 5 aux pool (see the module docstring).
SLIM_AUX_MIN_IMAGE_SIZE = 107


def stem(x, *, batch_norm: layers.BatchNorm):
  """Figure 3: the Inception-v4 stem (also the stem of Inception-ResNet-v2 in the paper).

  Args:
    x: images, 299 x 299 x 3 at the default size.
    batch_norm: the network's batch-norm settings.

  Returns:
    The Mixed_5a output, 35 x 35 x 384 at 299.
  """
  # 299 x 299 x 3
  x = layers.conv_bn(x, 32, 3, strides=2, padding="valid", name="Conv2d_1a_3x3",
                     batch_norm=batch_norm)
  # 149 x 149 x 32
  x = layers.conv_bn(x, 32, 3, padding="valid", name="Conv2d_2a_3x3", batch_norm=batch_norm)
  # 147 x 147 x 32
  x = layers.conv_bn(x, 64, 3, name="Conv2d_2b_3x3", batch_norm=batch_norm)
  # 147 x 147 x 64
  branch_0 = layers.max_pool(x, 3, strides=2, padding="valid", name="Mixed_3a.Branch_0.MaxPool_0a_3x3")
  branch_1 = layers.conv_bn(x, 96, 3, strides=2, padding="valid",
                            name="Mixed_3a.Branch_1.Conv2d_0a_3x3", batch_norm=batch_norm)
  x = layers.concat([branch_0, branch_1], name="Mixed_3a")
  # 73 x 73 x 160
  branch_0 = layers.conv_bn(x, 64, 1, name="Mixed_4a.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_0 = layers.conv_bn(branch_0, 96, 3, padding="valid", name="Mixed_4a.Branch_0.Conv2d_1a_3x3",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 64, 1, name="Mixed_4a.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 64, (1, 7), name="Mixed_4a.Branch_1.Conv2d_0b_1x7",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 64, (7, 1), name="Mixed_4a.Branch_1.Conv2d_0c_7x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 96, 3, padding="valid", name="Mixed_4a.Branch_1.Conv2d_1a_3x3",
                            batch_norm=batch_norm)
  x = layers.concat([branch_0, branch_1], name="Mixed_4a")
  # 71 x 71 x 192
  branch_0 = layers.conv_bn(x, 192, 3, strides=2, padding="valid",
                            name="Mixed_5a.Branch_0.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_1 = layers.max_pool(x, 3, strides=2, padding="valid", name="Mixed_5a.Branch_1.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1], name="Mixed_5a")
  # 35 x 35 x 384


def inception_a(x, *, scope: str, batch_norm: layers.BatchNorm):
  """Figure 4: Inception-A, 35 x 35 x 384 -> 35 x 35 x 384."""
  branch_0 = layers.conv_bn(x, 96, 1, name=f"{scope}.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 64, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 96, 3, name=f"{scope}.Branch_1.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(x, 64, 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 96, 3, name=f"{scope}.Branch_2.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 96, 3, name=f"{scope}.Branch_2.Conv2d_0c_3x3",
                            batch_norm=batch_norm)
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{scope}.Branch_3.AvgPool_0a_3x3")
  branch_3 = layers.conv_bn(branch_3, 96, 1, name=f"{scope}.Branch_3.Conv2d_0b_1x1",
                            batch_norm=batch_norm)
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=scope)


def reduction_a(x, *, k: int, l: int, m: int, n: int, scope: str, batch_norm: layers.BatchNorm,
                strides: int = 2, padding: str = "valid"):
  """Figure 7: Reduction-A, 35 x 35 -> 17 x 17 with n + m + input channels.

  Table 1 of the paper: Inception-v4 (k, l, m, n) = (192, 224, 256, 384), Inception-ResNet-v1
  (192, 192, 256, 384), Inception-ResNet-v2 (256, 256, 384, 384). slim's scopes are the same in
  Inception-v4 and Inception-ResNet-v2 (`Mixed_6a`).

  Args:
    x: the 35 x 35 grid.
    k, l, m, n: the filter counts of Figure 7 (1x1 k -> 3x3 l -> 3x3/2 m; 3x3/2 n).
    scope: "Mixed_6a".
    batch_norm: batch-norm settings.
    strides: 2; 1 for Inception-ResNet-v2's output_stride=8 (atrous).
    padding: "valid"; "same" for Inception-ResNet-v2's align_feature_maps.

  Returns:
    The concatenation [n | m | input channels].
  """
  branch_0 = layers.conv_bn(x, n, 3, strides=strides, padding=padding,
                            name=f"{scope}.Branch_0.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, k, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, l, 3, name=f"{scope}.Branch_1.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, m, 3, strides=strides, padding=padding,
                            name=f"{scope}.Branch_1.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_2 = layers.max_pool(x, 3, strides=strides, padding=padding,
                             name=f"{scope}.Branch_2.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1, branch_2], name=scope)


def inception_b(x, *, scope: str, batch_norm: layers.BatchNorm):
  """Figure 5: Inception-B, 17 x 17 x 1024 -> 17 x 17 x 1024."""
  branch_0 = layers.conv_bn(x, 384, 1, name=f"{scope}.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 192, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 224, (1, 7), name=f"{scope}.Branch_1.Conv2d_0b_1x7",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 256, (7, 1), name=f"{scope}.Branch_1.Conv2d_0c_7x1",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(x, 192, 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 192, (7, 1), name=f"{scope}.Branch_2.Conv2d_0b_7x1",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 224, (1, 7), name=f"{scope}.Branch_2.Conv2d_0c_1x7",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 224, (7, 1), name=f"{scope}.Branch_2.Conv2d_0d_7x1",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 256, (1, 7), name=f"{scope}.Branch_2.Conv2d_0e_1x7",
                            batch_norm=batch_norm)
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{scope}.Branch_3.AvgPool_0a_3x3")
  branch_3 = layers.conv_bn(branch_3, 128, 1, name=f"{scope}.Branch_3.Conv2d_0b_1x1",
                            batch_norm=batch_norm)
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=scope)


def reduction_b(x, *, scope: str, batch_norm: layers.BatchNorm):
  """Figure 8: Inception-v4's Reduction-B, 17 x 17 x 1024 -> 8 x 8 x 1536."""
  branch_0 = layers.conv_bn(x, 192, 1, name=f"{scope}.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_0 = layers.conv_bn(branch_0, 192, 3, strides=2, padding="valid",
                            name=f"{scope}.Branch_0.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 256, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 256, (1, 7), name=f"{scope}.Branch_1.Conv2d_0b_1x7",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 320, (7, 1), name=f"{scope}.Branch_1.Conv2d_0c_7x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, 320, 3, strides=2, padding="valid",
                            name=f"{scope}.Branch_1.Conv2d_1a_3x3", batch_norm=batch_norm)
  branch_2 = layers.max_pool(x, 3, strides=2, padding="valid", name=f"{scope}.Branch_2.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1, branch_2], name=scope)


def inception_c(x, *, scope: str, batch_norm: layers.BatchNorm):
  """Figure 6: Inception-C, 8 x 8 x 1536 -> 8 x 8 x 1536."""
  branch_0 = layers.conv_bn(x, 256, 1, name=f"{scope}.Branch_0.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, 384, 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_1 = layers.concat([
      layers.conv_bn(branch_1, 256, (1, 3), name=f"{scope}.Branch_1.Conv2d_0b_1x3",
                     batch_norm=batch_norm),
      layers.conv_bn(branch_1, 256, (3, 1), name=f"{scope}.Branch_1.Conv2d_0c_3x1",
                     batch_norm=batch_norm),
  ], name=f"{scope}.Branch_1.concat")
  branch_2 = layers.conv_bn(x, 384, 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1", batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 448, (3, 1), name=f"{scope}.Branch_2.Conv2d_0b_3x1",
                            batch_norm=batch_norm)
  branch_2 = layers.conv_bn(branch_2, 512, (1, 3), name=f"{scope}.Branch_2.Conv2d_0c_1x3",
                            batch_norm=batch_norm)
  branch_2 = layers.concat([
      layers.conv_bn(branch_2, 256, (1, 3), name=f"{scope}.Branch_2.Conv2d_0d_1x3",
                     batch_norm=batch_norm),
      layers.conv_bn(branch_2, 256, (3, 1), name=f"{scope}.Branch_2.Conv2d_0e_3x1",
                     batch_norm=batch_norm),
  ], name=f"{scope}.Branch_2.concat")
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{scope}.Branch_3.AvgPool_0a_3x3")
  branch_3 = layers.conv_bn(branch_3, 256, 1, name=f"{scope}.Branch_3.Conv2d_0b_1x1",
                            batch_norm=batch_norm)
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=scope)


def aux_pool_size(grid: int) -> int:
  """slim's 5 x 5 aux pool, reduced to the grid when the grid is smaller (inputs below 107)."""
  return min(5, grid)


def _aux_head(x, *, num_classes: int, batch_norm: layers.BatchNorm):
  """slim's `AuxLogits` of Inception-v4 on Mixed_6h (17 x 17 x 1024 at 299)."""
  grid = x.shape[1]
  pool = aux_pool_size(grid)
  x = layers.avg_pool(x, pool, strides=3, padding="valid", name="AuxLogits.AvgPool_1a_5x5")
  # 5 x 5 x 1024
  x = layers.conv_bn(x, 128, 1, name="AuxLogits.Conv2d_1b_1x1", batch_norm=batch_norm)
  # 5 x 5 x 128; slim's Conv2d_2a takes the whole remaining grid as its kernel.
  x = layers.conv_bn(x, 768, (x.shape[1], x.shape[2]), padding="valid", name="AuxLogits.Conv2d_2a",
                     batch_norm=batch_norm)
  # 1 x 1 x 768
  x = keras.layers.Flatten(name="AuxLogits.Flatten")(x)
  return layers.dense_logits(x, num_classes, name="AuxLogits.Aux_logits")


@registry.register_model(
    "inception_v4",
    slim_scope="InceptionV4",
    default_image_size=299,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=True,
    endpoints=ENDPOINTS,
    paper="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
          "Connections on Learning (arXiv:1602.07261), Figure 9",
)
def inception_v4(inputs,
                 *,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 aux_logits: bool,
                 dropout_keep_prob: float,
                 batch_norm: layers.BatchNorm) -> keras.Model:
  """Builds Inception-v4 (Figure 9) with TF-slim's layout and names (scope `InceptionV4`).

  Args:
    inputs: a `keras.Input` of shape (size, size, 3), size >= 75, values in [-1, 1].
    num_classes: logits width (1001 for the published checkpoint: class 0 = background).
    include_top: the logits (and aux) heads; False returns the Mixed_7d features per `pooling`.
    pooling: with include_top=False: None (8 x 8 x 1536 map at 299), "avg" or "max".
    aux_logits: the auxiliary head on Mixed_6h (slim's `create_aux_logits`).
    dropout_keep_prob: keep probability of `Logits/Dropout_1b` (paper Fig 9: 0.8).
    batch_norm: batch-norm settings (slim: decay 0.9997, epsilon 1e-3, no gamma).

  Returns:
    A `keras.Model` named "InceptionV4": with include_top `{"logits"[, "aux_logits"]}`, else the
    features.

  Examples:
    >>> from inception_tf.models import create_model
    >>> model = create_model("inception_v4", image_size=299)
    >>> model.output["logits"].shape
    (None, 1001)
  """
  x = stem(inputs, batch_norm=batch_norm)
  # 35 x 35 x 384
  for scope in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_5e"):
    x = inception_a(x, scope=scope, batch_norm=batch_norm)
  # 35 x 35 x 384
  x = reduction_a(x, k=192, l=224, m=256, n=384, scope="Mixed_6a", batch_norm=batch_norm)
  # 17 x 17 x 1024
  for scope in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_6f", "Mixed_6g", "Mixed_6h"):
    x = inception_b(x, scope=scope, batch_norm=batch_norm)
  mixed_6h = x
  # 17 x 17 x 1024
  x = reduction_b(x, scope="Mixed_7a", batch_norm=batch_norm)
  # 8 x 8 x 1536
  for scope in ("Mixed_7b", "Mixed_7c", "Mixed_7d"):
    x = inception_c(x, scope=scope, batch_norm=batch_norm)
  # 8 x 8 x 1536

  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="InceptionV4")

  outputs = {}
  if aux_logits:
    aux = _aux_head(mixed_6h, num_classes=num_classes, batch_norm=batch_norm)
    outputs["aux_logits"] = layers.identity(aux, name="AuxLogits", dtype="float32")
  x = layers.global_avg_pool(x, name="Logits.AvgPool_1a")
  x = layers.identity(x, name="global_pool")
  # 1 x 1 x 1536
  x = layers.dropout(x, dropout_keep_prob, name="Logits.Dropout_1b")
  x = keras.layers.Flatten(name="PreLogitsFlatten")(x)
  # 1536
  logits = layers.dense_logits(x, num_classes, name="Logits.Logits")
  outputs["logits"] = layers.identity(logits, name="Logits", dtype="float32")
  return keras.Model(inputs, outputs, name="InceptionV4")
