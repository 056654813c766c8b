"""Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision").

The layout, the scopes and the options are TF-slim's `nets/inception_v3.py`, so a published
`inception_v3.ckpt` loads by name (see `inception_tf.checkpoints`). Layer names carry slim's scopes
literally with `.` for `/`, including slim's irregular ones: `Mixed_5c.Branch_1.Conv2d_0b_1x1` /
`Mixed_5c.Branch_1.Conv_1_0c_5x5` (where Mixed_5b and Mixed_5d say `Conv2d_0a_1x1` /
`Conv2d_0b_5x5`), and the 3x3 stride-2 convolutions of Mixed_6a called `Conv2d_1a_1x1`.

Paper name (Table 1, Figures 5-7, 10) <-> slim scope, with the shapes at 299 x 299:

    paper                               slim scope                 output
    conv 3x3/2                          Conv2d_1a_3x3              149 x 149 x 32
    conv 3x3/1                          Conv2d_2a_3x3              147 x 147 x 32
    conv padded 3x3/1                   Conv2d_2b_3x3              147 x 147 x 64
    pool 3x3/2                          MaxPool_3a_3x3             73 x 73 x 64
    conv 1x1 (Table 1: conv 3x3/1)      Conv2d_3b_1x1              73 x 73 x 80
    conv 3x3 (Table 1: conv 3x3/2)      Conv2d_4a_3x3              71 x 71 x 192
    pool 3x3/2 (Table 1: conv 3x3/1)    MaxPool_5a_3x3             35 x 35 x 192
    3 x Inception, Figure 5             Mixed_5b, Mixed_5c, Mixed_5d  35 x 35 x 256/288/288
    grid reduction, Figure 10           Mixed_6a                   17 x 17 x 768
    Inception, Figure 6 (n = 7)         Mixed_6b ... Mixed_6e      17 x 17 x 768
      (Table 1 says 5 modules; the released network, like slim, has 4)
    grid reduction, Figure 10           Mixed_7a                   8 x 8 x 1280
    2 x Inception, Figure 7             Mixed_7b, Mixed_7c         8 x 8 x 2048
    pool 8x8                            Logits/AvgPool_1a_8x8      1 x 1 x 2048 (PreLogits)
    linear, softmax                     Logits/Conv2d_1c_1x1       1001 (logits)
    auxiliary classifier, Figure 8      AuxLogits/...              1001 (aux_logits), on Mixed_6e

The Figure 5 modules of the released network keep a 5x5 branch (Branch_1) beside the factorised
double-3x3 branch (Branch_2), as slim and keras.applications do; Table 1's stem differs from the
released stem as noted in the table above. Parameter count of the base (up to Mixed_7c, what
keras.applications' `include_top=False` holds): 21,802,784; its multiply-adds at 299: 5.71G
(5.71G with the 1001-way logits, +5.7M for the aux head; `inception_tf.models.stats`).

Paper studies, as options (defaults build slim's network):

* `factorized_7x7` (Table 3, row "+Factorized 7x7", §10; factorisation §3): the "Inception-v2" rows
  of Table 3 start with one 7x7 convolution, which Inception-v3 factorises into the three 3x3
  convolutions Conv2d_1a_3x3 / Conv2d_2a_3x3 / Conv2d_2b_3x3. `factorized_7x7=False` replaces those
  three by a single 7x7 stride-2 'VALID' convolution with depth(64) outputs, `Conv2d_1a_7x7` (the
  name slim's inception_v1/v2 give their 7x7 first convolution); its 147 x 147 x 64 output has the
  same shape as Conv2d_2b_3x3's, so everything after it is unchanged (base: 5.30G multiply-adds
  against 5.71G, 19,296 fewer parameters).
* `aux_batch_norm` (Table 3, row "BN-auxiliary", §10; §4 on the side head's batch norm acting as a
  regularizer): BN-auxiliary batch-normalises the side head's fully connected layer too, not only
  its convolutions. In slim the auxiliary head's fully connected layer is `AuxLogits/Conv2d_2a_5x5`,
  a 5x5 'VALID' convolution over the 5x5 grid (768 outputs, i.e. a fully connected layer), and
  slim's arg scope gives it batch norm: slim is BN-auxiliary, so the default is True.
  `aux_batch_norm=False` makes that layer a convolution with bias and ReLU and no batch norm
  (variables `weights`, `biases`); `Conv2d_1b_1x1` keeps its batch norm and the aux logits layer
  `Conv2d_2b_1x1` never had one.
* `receptive_field` (Table 2, §9, "Performance on Lower Resolution Input"): the paper compares
  networks of the same layout fed 299x299, 151x151 and 79x79 crops, at nearly the same cost: the 299
  one with a stride-2 first layer followed by max pooling, the 151 one with a stride-1 first layer
  followed by max pooling, the 79 one with a stride-1 first layer and no pooling after it (Table 2:
  76.6%, 76.4%, 75.2% top-1). Here 151 gives Conv2d_1a_3x3 stride 1 (149 x 149 from a 151 crop, as
  stride 2 gives from 299, so the rest of the network and its cost are the same), and 79 gives
  Conv2d_1a_3x3 stride 1 and drops the stem's first pooling MaxPool_3a_3x3 (77 -> 75 -> 75 -> 75 ->
  73 -> 36 -> 17 -> 8: the final grid is 8 x 8 as at 299). Our stem has two more convolutions
  between the first layer and that pooling than the paper's wording suggests, and at 79 they run at
  75 x 75 instead of 147 x 147: up to Mixed_7c the 79 network costs 5.36G multiply-adds against
  5.71G at 299 and 151 (6% fewer; the paper calls the costs almost identical, the 79 one slightly
  cheaper). Pass `image_size` equal to `receptive_field`.

Global pooling: the logits use the mean over the whole final grid, which equals slim's
`AvgPool_1a_8x8` at 299 and its reduced kernel (`_reduced_kernel_size_for_small_input`) for inputs
down to the minimum 75 (slim's `global_pool=True` beyond). The aux head follows slim's reduced
kernel logic: `AuxLogits/Conv2d_2a_{k}x{k}` with k = min(5, grid after the 5x5/3 pooling), so a
slim checkpoint made at that input size loads unchanged. Beyond slim (which fails there): for
inputs up to 106 pixels, where Mixed_6e is smaller than 5 x 5, the aux pooling window shrinks to
the grid as well; from 347 pixels on, where Conv2d_2a's output is larger than 1 x 1, the aux head
averages it before its logits layer (slim's spatial squeeze would fail). The main logits pool is
named `AvgPool_1a_{k}x{k}` as slim's for grids up to 8 x 8 (inputs up to 330) and `GlobalPool`
(slim's `global_pool=True` name) beyond.
"""

from __future__ import annotations

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

ENDPOINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "PreLogits")

RECEPTIVE_FIELDS = (299, 151, 79)

PAPER = ("Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. Rethinking the Inception Architecture for "
         "Computer Vision. CVPR 2016. arXiv:1512.00567")


def _grid(x) -> tuple[int, int]:
  return int(x.shape[1]), int(x.shape[2])


def _stem(x, *, depth, batch_norm, factorized_7x7: bool, receptive_field: int):
  """Conv2d_1a_3x3 ... MaxPool_5a_3x3 (slim 'VALID' unless noted). Shapes at 299 (default)."""
  first_stride = 2 if receptive_field == 299 else 1  # §9: stride 1 for the 151 and 79 fields.
  if factorized_7x7:
    x = layers.conv_bn(x, depth(32), 3, strides=first_stride, padding="valid",
                       name="Conv2d_1a_3x3", batch_norm=batch_norm)  # 149 x 149 x 32
    x = layers.conv_bn(x, depth(32), 3, padding="valid", name="Conv2d_2a_3x3",
                       batch_norm=batch_norm)  # 147 x 147 x 32
    x = layers.conv_bn(x, depth(64), 3, padding="same", name="Conv2d_2b_3x3",
                       batch_norm=batch_norm)  # 147 x 147 x 64
  else:
    # Table 3's "Inception-v2": one unfactorised 7x7 convolution instead of the three above.
    x = layers.conv_bn(x, depth(64), 7, strides=first_stride, padding="valid",
                       name="Conv2d_1a_7x7", batch_norm=batch_norm)  # 147 x 147 x 64
  if receptive_field != 79:  # §9: the 79x79 network has no pooling after the first layer.
    x = layers.max_pool(x, 3, strides=2, name="MaxPool_3a_3x3")  # 73 x 73 x 64
  x = layers.conv_bn(x, depth(80), 1, padding="valid", name="Conv2d_3b_1x1",
                     batch_norm=batch_norm)  # 73 x 73 x 80
  x = layers.conv_bn(x, depth(192), 3, padding="valid", name="Conv2d_4a_3x3",
                     batch_norm=batch_norm)  # 71 x 71 x 192
  return layers.max_pool(x, 3, strides=2, name="MaxPool_5a_3x3")  # 35 x 35 x 192


def _figure5_module(x, name: str, *, pool_filters: int, irregular_names: bool, depth, batch_norm):
  """Mixed_5b/5c/5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 (Figure 5) | avgpool-1x1, 'SAME'.

  `irregular_names` gives Mixed_5c's Branch_1 scopes `Conv2d_0b_1x1` / `Conv_1_0c_5x5`.
  """
  def conv(t, filters, kernel, scope):
    return layers.conv_bn(t, depth(filters), kernel, name=f"{name}.{scope}", batch_norm=batch_norm)

  branch_0 = conv(x, 64, 1, "Branch_0.Conv2d_0a_1x1")
  if irregular_names:
    branch_1 = conv(x, 48, 1, "Branch_1.Conv2d_0b_1x1")
    branch_1 = conv(branch_1, 64, 5, "Branch_1.Conv_1_0c_5x5")
  else:
    branch_1 = conv(x, 48, 1, "Branch_1.Conv2d_0a_1x1")
    branch_1 = conv(branch_1, 64, 5, "Branch_1.Conv2d_0b_5x5")
  branch_2 = conv(x, 64, 1, "Branch_2.Conv2d_0a_1x1")
  branch_2 = conv(branch_2, 96, 3, "Branch_2.Conv2d_0b_3x3")
  branch_2 = conv(branch_2, 96, 3, "Branch_2.Conv2d_0c_3x3")
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{name}.Branch_3.AvgPool_0a_3x3")
  branch_3 = conv(branch_3, pool_filters, 1, "Branch_3.Conv2d_0b_1x1")
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=name)


def _grid_reduction_35_to_17(x, *, depth, batch_norm):
  """Mixed_6a (Figure 10): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2, stride-2 layers 'VALID'."""
  name = "Mixed_6a"
  branch_0 = layers.conv_bn(x, depth(384), 3, strides=2, padding="valid",
                            name=f"{name}.Branch_0.Conv2d_1a_1x1", batch_norm=batch_norm)
  branch_1 = layers.conv_bn(x, depth(64), 1, name=f"{name}.Branch_1.Conv2d_0a_1x1",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, depth(96), 3, name=f"{name}.Branch_1.Conv2d_0b_3x3",
                            batch_norm=batch_norm)
  branch_1 = layers.conv_bn(branch_1, depth(96), 3, strides=2, padding="valid",
                            name=f"{name}.Branch_1.Conv2d_1a_1x1", batch_norm=batch_norm)
  branch_2 = layers.max_pool(x, 3, strides=2, name=f"{name}.Branch_2.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1, branch_2], name=name)


def _figure6_module(x, name: str, *, width: int, depth, batch_norm):
  """Mixed_6b..6e (Figure 6, n = 7): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1.

  `width` is the inner width of the factorised 7x7 branches: 128, 160, 160, 192.
  """
  def conv(t, filters, kernel, scope):
    return layers.conv_bn(t, depth(filters), kernel, name=f"{name}.{scope}", batch_norm=batch_norm)

  branch_0 = conv(x, 192, 1, "Branch_0.Conv2d_0a_1x1")
  branch_1 = conv(x, width, 1, "Branch_1.Conv2d_0a_1x1")
  branch_1 = conv(branch_1, width, (1, 7), "Branch_1.Conv2d_0b_1x7")
  branch_1 = conv(branch_1, 192, (7, 1), "Branch_1.Conv2d_0c_7x1")
  branch_2 = conv(x, width, 1, "Branch_2.Conv2d_0a_1x1")
  branch_2 = conv(branch_2, width, (7, 1), "Branch_2.Conv2d_0b_7x1")
  branch_2 = conv(branch_2, width, (1, 7), "Branch_2.Conv2d_0c_1x7")
  branch_2 = conv(branch_2, width, (7, 1), "Branch_2.Conv2d_0d_7x1")
  branch_2 = conv(branch_2, 192, (1, 7), "Branch_2.Conv2d_0e_1x7")
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{name}.Branch_3.AvgPool_0a_3x3")
  branch_3 = conv(branch_3, 192, 1, "Branch_3.Conv2d_0b_1x1")
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=name)


def _grid_reduction_17_to_8(x, *, depth, batch_norm):
  """Mixed_7a (Figure 10 at 17x17): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""
  name = "Mixed_7a"

  def conv(t, filters, kernel, scope, **kwargs):
    return layers.conv_bn(t, depth(filters), kernel, name=f"{name}.{scope}", batch_norm=batch_norm,
                          **kwargs)

  branch_0 = conv(x, 192, 1, "Branch_0.Conv2d_0a_1x1")
  branch_0 = conv(branch_0, 320, 3, "Branch_0.Conv2d_1a_3x3", strides=2, padding="valid")
  branch_1 = conv(x, 192, 1, "Branch_1.Conv2d_0a_1x1")
  branch_1 = conv(branch_1, 192, (1, 7), "Branch_1.Conv2d_0b_1x7")
  branch_1 = conv(branch_1, 192, (7, 1), "Branch_1.Conv2d_0c_7x1")
  branch_1 = conv(branch_1, 192, 3, "Branch_1.Conv2d_1a_3x3", strides=2, padding="valid")
  branch_2 = layers.max_pool(x, 3, strides=2, name=f"{name}.Branch_2.MaxPool_1a_3x3")
  return layers.concat([branch_0, branch_1, branch_2], name=name)


def _figure7_module(x, name: str, *, split_3x1_scope: str, depth, batch_norm):
  """Mixed_7b/7c (Figure 7): 1x1 | 1x1-(1x3 & 3x1) | 1x1-3x3-(1x3 & 3x1) | avgpool-1x1.

  `split_3x1_scope` is Branch_1's 3x1 scope: `Conv2d_0b_3x1` in Mixed_7b, `Conv2d_0c_3x1` in 7c.
  """
  def conv(t, filters, kernel, scope):
    return layers.conv_bn(t, depth(filters), kernel, name=f"{name}.{scope}", batch_norm=batch_norm)

  branch_0 = conv(x, 320, 1, "Branch_0.Conv2d_0a_1x1")
  branch_1 = conv(x, 384, 1, "Branch_1.Conv2d_0a_1x1")
  branch_1 = layers.concat([conv(branch_1, 384, (1, 3), "Branch_1.Conv2d_0b_1x3"),
                            conv(branch_1, 384, (3, 1), f"Branch_1.{split_3x1_scope}")],
                           name=f"{name}.Branch_1.concat")
  branch_2 = conv(x, 448, 1, "Branch_2.Conv2d_0a_1x1")
  branch_2 = conv(branch_2, 384, 3, "Branch_2.Conv2d_0b_3x3")
  branch_2 = layers.concat([conv(branch_2, 384, (1, 3), "Branch_2.Conv2d_0c_1x3"),
                            conv(branch_2, 384, (3, 1), "Branch_2.Conv2d_0d_3x1")],
                           name=f"{name}.Branch_2.concat")
  branch_3 = layers.avg_pool(x, 3, padding="same", name=f"{name}.Branch_3.AvgPool_0a_3x3")
  branch_3 = conv(branch_3, 192, 1, "Branch_3.Conv2d_0b_1x1")
  return layers.concat([branch_0, branch_1, branch_2, branch_3], name=name)


def _aux_head(x, *, num_classes: int, depth, batch_norm, aux_batch_norm: bool):
  """AuxLogits on Mixed_6e (Figure 8): avgpool 5x5/3 -> 1x1 conv -> "fully connected" -> logits."""
  pool = min(5, *_grid(x))  # slim needs a >= 5x5 grid; smaller inputs get a smaller window.
  x = layers.avg_pool(x, pool, strides=3, name="AuxLogits.AvgPool_1a_5x5")  # 5 x 5 x 768
  x = layers.conv_bn(x, depth(128), 1, name="AuxLogits.Conv2d_1b_1x1",
                     batch_norm=batch_norm)  # 5 x 5 x 128
  # slim's _reduced_kernel_size_for_small_input: kernel (and so scope) shrink with the grid.
  kh, kw = min(5, _grid(x)[0]), min(5, _grid(x)[1])
  scope = f"AuxLogits.Conv2d_2a_{kh}x{kw}"
  if aux_batch_norm:  # Table 3 "BN-auxiliary" (slim's layout).
    x = layers.conv_bn(x, depth(768), (kh, kw), padding="valid", name=scope,
                       batch_norm=batch_norm)  # 1 x 1 x 768
  else:
    x = layers.conv_bias(x, depth(768), (kh, kw), padding="valid", name=scope)
    x = keras.layers.ReLU(name=f"{scope}.Relu")(x)
  if _grid(x) != (1, 1):  # Inputs of 347 pixels and more: average the remaining grid.
    x = layers.global_avg_pool(x, name="AuxLogits.GlobalPool", dtype="float32")
  x = layers.conv_bias(x, num_classes, 1, name="AuxLogits.Conv2d_2b_1x1", dtype="float32")
  return layers.squeeze_logits(x, num_classes, name="aux_logits")


@register_model("inception_v3",
                slim_scope="InceptionV3",
                default_image_size=299,
                min_image_size=75,
                has_aux_logits=True,
                endpoints=ENDPOINTS,
                paper=PAPER)
def inception_v3(inputs,
                 *,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 aux_logits: bool,
                 dropout_keep_prob: float,
                 batch_norm: layers.BatchNorm,
                 depth_multiplier: float = 1.0,
                 min_depth: int = 16,
                 factorized_7x7: bool = True,
                 aux_batch_norm: bool = True,
                 receptive_field: int = 299) -> keras.Model:
  """Builds Inception-v3 as TF-slim's `inception_v3` (use `create_model("inception_v3", ...)`).

  Args:
    inputs: `keras.Input` of shape (H, W, 3), pixels in [-1, 1]; H, W >= 75.
    num_classes: logits width (1001 for the published checkpoint, class 0 = background).
    include_top: False returns the Mixed_7c features, pooled per `pooling`.
    pooling: with include_top=False: None, "avg" or "max" (keras.applications).
    aux_logits: build the auxiliary head on Mixed_6e (slim's `create_aux_logits`).
    dropout_keep_prob: keep probability of `Logits/Dropout_1b` (TF-slim's default 0.8).
    batch_norm: batch-norm settings (slim: decay 0.9997, epsilon 0.001, no gamma).
    depth_multiplier: multiplies every convolution's depth (slim), > 0.
    min_depth: smallest depth when depth_multiplier < 1 (slim: 16).
    factorized_7x7: False builds Table 3's "Inception-v2" stem with one 7x7 first convolution.
    aux_batch_norm: False removes batch norm from the aux head's fully connected layer
      (Table 3 row "BN-auxiliary" is True, slim's layout).
    receptive_field: 299 (default), 151 or 79: the Table 2 low-resolution networks (§9); feed an
      image of that size.

  Returns:
    A `keras.Model` named "InceptionV3": with include_top `{"logits": [N, num_classes]}` plus
    `"aux_logits"` when on (both float32), else the (pooled) Mixed_7c features.

  Raises:
    ValueError: for a bad depth_multiplier, min_depth or receptive_field, or an input too small.
  """
  if receptive_field not in RECEPTIVE_FIELDS:
    raise ValueError(f"receptive_field must be one of {RECEPTIVE_FIELDS} (paper Table 2), "
                     f"got {receptive_field!r}.")
  if not 0.0 < dropout_keep_prob <= 1.0:
    raise ValueError(f"dropout_keep_prob must be in (0, 1], got {dropout_keep_prob!r}.")
  if not isinstance(min_depth, int) or min_depth < 1:
    raise ValueError(f"min_depth must be a positive integer, got {min_depth!r}.")
  depth = layers.scaled_depth(depth_multiplier, min_depth)
  blocks = dict(depth=depth, batch_norm=batch_norm)

  x = _stem(inputs, factorized_7x7=factorized_7x7, receptive_field=receptive_field,
            **blocks)  # 35 x 35 x 192
  if min(_grid(x)) < 7:
    raise ValueError(f"Input {tuple(inputs.shape[1:3])} is too small for inception_v3 with "
                     f"receptive_field={receptive_field}: MaxPool_5a_3x3 is {_grid(x)}, needs >= "
                     f"7 x 7 (image_size >= 75 for the default network).")
  # Figure 5 modules; Mixed_5b's pool branch has 32 filters, 5c/5d 64.
  x = _figure5_module(x, "Mixed_5b", pool_filters=32, irregular_names=False,
                      **blocks)  # 35 x 35 x 256
  x = _figure5_module(x, "Mixed_5c", pool_filters=64, irregular_names=True,
                      **blocks)  # 35 x 35 x 288
  x = _figure5_module(x, "Mixed_5d", pool_filters=64, irregular_names=False,
                      **blocks)  # 35 x 35 x 288
  x = _grid_reduction_35_to_17(x, **blocks)  # 17 x 17 x 768
  x = _figure6_module(x, "Mixed_6b", width=128, **blocks)  # 17 x 17 x 768
  x = _figure6_module(x, "Mixed_6c", width=160, **blocks)  # 17 x 17 x 768
  x = _figure6_module(x, "Mixed_6d", width=160, **blocks)  # 17 x 17 x 768
  mixed_6e = _figure6_module(x, "Mixed_6e", width=192, **blocks)  # 17 x 17 x 768
  x = _grid_reduction_17_to_8(mixed_6e, **blocks)  # 8 x 8 x 1280
  x = _figure7_module(x, "Mixed_7b", split_3x1_scope="Conv2d_0b_3x1", **blocks)  # 8 x 8 x 2048
  x = _figure7_module(x, "Mixed_7c", split_3x1_scope="Conv2d_0c_3x1", **blocks)  # 8 x 8 x 2048

  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="InceptionV3")

  outputs = {}
  # Logits: slim's AvgPool_1a_8x8 at 299, its reduced kernel below, a global pool above.
  grid = _grid(x)
  pool_scope = f"AvgPool_1a_{grid[0]}x{grid[1]}" if max(grid) <= 8 else "GlobalPool"
  x = layers.global_avg_pool(x, name=f"Logits.{pool_scope}", dtype="float32")  # 1 x 1 x 2048
  x = keras.layers.Dropout(1.0 - dropout_keep_prob, name="Logits.Dropout_1b", dtype="float32")(x)
  x = layers.identity(x, name="PreLogits", dtype="float32")  # slim's end_points['PreLogits']
  x = layers.conv_bias(x, num_classes, 1, name="Logits.Conv2d_1c_1x1", dtype="float32")
  outputs["logits"] = layers.squeeze_logits(x, num_classes, name="logits")  # num_classes
  if aux_logits:
    outputs["aux_logits"] = _aux_head(mixed_6e, num_classes=num_classes,
                                      aux_batch_norm=aux_batch_norm, **blocks)
  return keras.Model(inputs, outputs, name="InceptionV3")
