"""The FID Inception network: the 2015-12-05 Inception graph (`classify_image_graph_def.pb`).

FID (Heusel et al. 2017), the Inception Score (Salimans et al. 2016) and KID (Binkowski et al.
2018) as published are all computed with one network: the Inception graph Google released on
2015-12-05 for `classify_image.py`, 1008 classes, whose 2048-d `pool_3` output gives the FID
statistics. pytorch-fid and torch-fidelity ship its weights as a PyTorch state_dict
(`pt_inception-2015-12-05-*.pth`) on torchvision's `Inception3` with pytorch-fid's FID blocks. This
module builds that network with torchvision's module paths as layer names, so such a state_dict
loads by name (`inception_tf.checkpoints.load_torch_checkpoint`), and the graph's own constants
load by node name (`inception_tf.checkpoints.inception_graphdef`).

It is not slim's Inception-v3 (`inception_v3.py`), although the layout is the same:

* every average pool inside the blocks is 3x3/1 'SAME' and averages over the valid pixels only
  (pytorch-fid: `avg_pool2d(..., count_include_pad=False)`; TF's and Keras' 'SAME' average pool do
  exactly that);
* the pool branch of the last block (Mixed_7c, the graph's `mixed_10`) is a 3x3/1 'SAME' *max* pool;
* batch norm has a gamma (`scale=True`), epsilon 1e-3, and the classifier `fc` is a 2048 -> 1008
  dense layer on the global mean of Mixed_7c (the graph's `pool_3`, then `softmax/logits`).

The graph itself also resizes its input to 299 x 299 with TF1's `resize_bilinear` (no half-pixel
centres) and scales it as (x - 128) / 128; that front end lives in `inception_tf.metrics` (this
model takes 299 x 299 x 3 inputs already scaled to [-1, 1], like the other zoo models).

Layer names (torchvision `Inception3` module paths) <-> graph scopes, shapes at 299 x 299:

    layer (torch module)     graph scope     output
    Conv2d_1a_3x3            conv            149 x 149 x 32   3x3/2 'VALID'
    Conv2d_2a_3x3            conv_1          147 x 147 x 32   3x3 'VALID'
    Conv2d_2b_3x3            conv_2          147 x 147 x 64   3x3 'SAME'
    maxpool1                 pool            73 x 73 x 64     3x3/2 'VALID'
    Conv2d_3b_1x1            conv_3          73 x 73 x 80
    Conv2d_4a_3x3            conv_4          71 x 71 x 192    3x3 'VALID'
    maxpool2                 pool_1          35 x 35 x 192    3x3/2 'VALID'
    Mixed_5b, 5c, 5d         mixed, mixed_1, mixed_2        35 x 35 x 256 / 288 / 288
    Mixed_6a                 mixed_3         17 x 17 x 768
    Mixed_6b ... 6e          mixed_4 ... mixed_7            17 x 17 x 768
    Mixed_7a                 mixed_8         8 x 8 x 1280
    Mixed_7b, 7c             mixed_9, mixed_10              8 x 8 x 2048
    avgpool                  pool_3          2048 (output "pool_3")
    fc                       softmax         1008 (outputs "logits", "logits_unbiased")

Each convolution `X` is torchvision's `BasicConv2d`: layers `X.conv` (Conv2D, no bias), `X.bn`
(BatchNormalization) and `X.relu`. Inside the blocks the branches keep torchvision's names
(`branch1x1`, `branch5x5_1`, `branch3x3dbl_3a`, `branch_pool`, ...), listed with their graph scopes
in `inception_tf.checkpoints.inception_graphdef`.

Parameters (without batch-norm statistics): 23,850,960, as the pytorch-fid network.
"""

from __future__ import annotations

from typing import Sequence

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

NUM_CLASSES = 1008
FEATURE_DIM = 2048
BATCH_NORM_EPSILON = 1e-3  # torchvision's BasicConv2d and the graph's batch norm

ENDPOINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "pool_3")

PAPER = ("Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter. GANs Trained by a Two Time-Scale "
         "Update Rule Converge to a Local Nash Equilibrium. NIPS 2017. arXiv:1706.08500 (FID, on "
         "the 2015-12-05 Inception graph of Szegedy et al., arXiv:1512.00567)")


def basic_conv2d(x, filters: int, kernel_size: int | Sequence[int], *, name: str,
                 batch_norm: layers.BatchNorm, strides: int = 1, padding: str = "same"):
  """torchvision's `BasicConv2d`: `{name}.conv` (no bias) -> `{name}.bn` -> `{name}.relu`.

  torchvision pads stride-1 convolutions by kernel // 2 on each side, which is 'SAME' for the odd
  kernels used here; its stride-2 convolutions are unpadded ('VALID').
  """
  kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
  x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                          name=f"{name}.conv")(x)
  x = batch_norm(x, name=f"{name}.bn")
  return keras.layers.ReLU(name=f"{name}.relu")(x)


def _block_a(x, name: str, *, pool_features: int, batch_norm):
  """FIDInceptionA (Mixed_5b/5c/5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool (no pad) -1x1."""
  def conv(t, filters, kernel, branch):
    return basic_conv2d(t, filters, kernel, name=f"{name}.{branch}", batch_norm=batch_norm)

  branch1x1 = conv(x, 64, 1, "branch1x1")
  branch5x5 = conv(x, 48, 1, "branch5x5_1")
  branch5x5 = conv(branch5x5, 64, 5, "branch5x5_2")
  branch3x3dbl = conv(x, 64, 1, "branch3x3dbl_1")
  branch3x3dbl = conv(branch3x3dbl, 96, 3, "branch3x3dbl_2")
  branch3x3dbl = conv(branch3x3dbl, 96, 3, "branch3x3dbl_3")
  branch_pool = layers.avg_pool(x, 3, padding="same", name=f"{name}.avg_pool")
  branch_pool = conv(branch_pool, pool_features, 1, "branch_pool")
  return layers.concat([branch1x1, branch5x5, branch3x3dbl, branch_pool], name=name)


def _block_b(x, *, batch_norm):
  """InceptionB (Mixed_6a), 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""
  name = "Mixed_6a"
  branch3x3 = basic_conv2d(x, 384, 3, strides=2, padding="valid", name=f"{name}.branch3x3",
                           batch_norm=batch_norm)
  branch3x3dbl = basic_conv2d(x, 64, 1, name=f"{name}.branch3x3dbl_1", batch_norm=batch_norm)
  branch3x3dbl = basic_conv2d(branch3x3dbl, 96, 3, name=f"{name}.branch3x3dbl_2",
                              batch_norm=batch_norm)
  branch3x3dbl = basic_conv2d(branch3x3dbl, 96, 3, strides=2, padding="valid",
                              name=f"{name}.branch3x3dbl_3", batch_norm=batch_norm)
  branch_pool = layers.max_pool(x, 3, strides=2, name=f"{name}.max_pool")
  return layers.concat([branch3x3, branch3x3dbl, branch_pool], name=name)


def _block_c(x, name: str, *, channels_7x7: int, batch_norm):
  """FIDInceptionC (Mixed_6b..6e): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1."""
  def conv(t, filters, kernel, branch):
    return basic_conv2d(t, filters, kernel, name=f"{name}.{branch}", batch_norm=batch_norm)

  c7 = channels_7x7
  branch1x1 = conv(x, 192, 1, "branch1x1")
  branch7x7 = conv(x, c7, 1, "branch7x7_1")
  branch7x7 = conv(branch7x7, c7, (1, 7), "branch7x7_2")
  branch7x7 = conv(branch7x7, 192, (7, 1), "branch7x7_3")
  branch7x7dbl = conv(x, c7, 1, "branch7x7dbl_1")
  branch7x7dbl = conv(branch7x7dbl, c7, (7, 1), "branch7x7dbl_2")
  branch7x7dbl = conv(branch7x7dbl, c7, (1, 7), "branch7x7dbl_3")
  branch7x7dbl = conv(branch7x7dbl, c7, (7, 1), "branch7x7dbl_4")
  branch7x7dbl = conv(branch7x7dbl, 192, (1, 7), "branch7x7dbl_5")
  branch_pool = layers.avg_pool(x, 3, padding="same", name=f"{name}.avg_pool")
  branch_pool = conv(branch_pool, 192, 1, "branch_pool")
  return layers.concat([branch1x1, branch7x7, branch7x7dbl, branch_pool], name=name)


def _block_d(x, *, batch_norm):
  """InceptionD (Mixed_7a), 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""
  name = "Mixed_7a"

  def conv(t, filters, kernel, branch, **kwargs):
    return basic_conv2d(t, filters, kernel, name=f"{name}.{branch}", batch_norm=batch_norm,
                        **kwargs)

  branch3x3 = conv(x, 192, 1, "branch3x3_1")
  branch3x3 = conv(branch3x3, 320, 3, "branch3x3_2", strides=2, padding="valid")
  branch7x7x3 = conv(x, 192, 1, "branch7x7x3_1")
  branch7x7x3 = conv(branch7x7x3, 192, (1, 7), "branch7x7x3_2")
  branch7x7x3 = conv(branch7x7x3, 192, (7, 1), "branch7x7x3_3")
  branch7x7x3 = conv(branch7x7x3, 192, 3, "branch7x7x3_4", strides=2, padding="valid")
  branch_pool = layers.max_pool(x, 3, strides=2, name=f"{name}.max_pool")
  return layers.concat([branch3x3, branch7x7x3, branch_pool], name=name)


def _block_e(x, name: str, *, max_pool_branch: bool, batch_norm):
  """FIDInceptionE_1 (Mixed_7b) / FIDInceptionE_2 (Mixed_7c).

  1x1 | 1x1-(1x3 & 3x1) | 1x1-3x3-(1x3 & 3x1) | pool-1x1, where the pool is a 3x3/1 average
  without padding in Mixed_7b and a 3x3/1 max pool in Mixed_7c (`max_pool_branch`), as the graph.
  """
  def conv(t, filters, kernel, branch):
    return basic_conv2d(t, filters, kernel, name=f"{name}.{branch}", batch_norm=batch_norm)

  branch1x1 = conv(x, 320, 1, "branch1x1")
  branch3x3 = conv(x, 384, 1, "branch3x3_1")
  branch3x3 = layers.concat([conv(branch3x3, 384, (1, 3), "branch3x3_2a"),
                             conv(branch3x3, 384, (3, 1), "branch3x3_2b")],
                            name=f"{name}.branch3x3")  # 8 x 8 x 768
  branch3x3dbl = conv(x, 448, 1, "branch3x3dbl_1")
  branch3x3dbl = conv(branch3x3dbl, 384, 3, "branch3x3dbl_2")
  branch3x3dbl = layers.concat([conv(branch3x3dbl, 384, (1, 3), "branch3x3dbl_3a"),
                                conv(branch3x3dbl, 384, (3, 1), "branch3x3dbl_3b")],
                               name=f"{name}.branch3x3dbl")  # 8 x 8 x 768
  if max_pool_branch:
    branch_pool = layers.max_pool(x, 3, padding="same", name=f"{name}.max_pool")
  else:
    branch_pool = layers.avg_pool(x, 3, padding="same", name=f"{name}.avg_pool")
  branch_pool = conv(branch_pool, 192, 1, "branch_pool")
  return layers.concat([branch1x1, branch3x3, branch3x3dbl, branch_pool], name=name)


@register_model("fid_inception_v3",
                slim_scope="FIDInceptionV3",
                default_image_size=299,
                min_image_size=75,
                has_aux_logits=False,
                endpoints=ENDPOINTS,
                preprocessing="fid",  # TF1 bilinear resize, (x - 128) / 128: inception_tf.metrics
                num_classes=NUM_CLASSES,
                crop_fraction=1.0,  # the graph resizes the whole image
                interpolation="bilinear",
                batch_norm_scale=True,
                batch_norm_epsilon=BATCH_NORM_EPSILON,
                batch_norm_momentum=0.9,  # torch's BatchNorm2d momentum 0.1
                paper=PAPER)
def fid_inception_v3(inputs,
                     *,
                     num_classes: int,
                     include_top: bool,
                     pooling: str | None,
                     aux_logits: bool,
                     dropout_keep_prob: float,
                     batch_norm: layers.BatchNorm) -> keras.Model:
  """Builds the FID Inception network (use `create_model("fid_inception_v3")`).

  Args:
    inputs: `keras.Input` of shape (H, W, 3), pixels in [-1, 1] (the metrics' front end gives 299
      x 299 from images of any size); H, W >= 75.
    num_classes: width of `fc` (1008 for the released weights).
    include_top: False returns the Mixed_7c features, pooled per `pooling`.
    pooling: with include_top=False: None, "avg" or "max".
    aux_logits: must be False (the network has no auxiliary head; the registry checks it).
    dropout_keep_prob: keep probability of the dropout before `fc` (training only).
    batch_norm: batch-norm settings (epsilon 1e-3, with gamma).

  Returns:
    A `keras.Model` named "FIDInceptionV3". With include_top its outputs are (float32)
    `{"logits": [N, num_classes], "pool_3": [N, 2048], "logits_unbiased": [N, num_classes]}`:
    `pool_3` is the FID / KID feature, `logits_unbiased` is `pool_3 @ fc.kernel` without the bias,
    what the Inception Score's reference code takes (`softmax/logits/MatMul`).

  Raises:
    ValueError: input smaller than 75 x 75, or a bad dropout_keep_prob.

  Examples:
    >>> from inception_tf.models import create_model
    >>> model = create_model("fid_inception_v3")
    >>> sorted(model.output)
    ['logits', 'logits_unbiased', 'pool_3']
  """
  del aux_logits  # no auxiliary head (ModelInfo.has_aux_logits=False)
  if min(int(inputs.shape[1]), int(inputs.shape[2])) < 75:
    raise ValueError(f"fid_inception_v3 needs inputs of at least 75 x 75, got "
                     f"{tuple(inputs.shape[1:3])}; the metrics front end resizes to 299.")
  bn = dict(batch_norm=batch_norm)
  x = basic_conv2d(inputs, 32, 3, strides=2, padding="valid", name="Conv2d_1a_3x3",
                   **bn)  # 149 x 149 x 32
  x = basic_conv2d(x, 32, 3, padding="valid", name="Conv2d_2a_3x3", **bn)  # 147 x 147 x 32
  x = basic_conv2d(x, 64, 3, name="Conv2d_2b_3x3", **bn)  # 147 x 147 x 64
  x = layers.max_pool(x, 3, strides=2, name="maxpool1")  # 73 x 73 x 64
  x = basic_conv2d(x, 80, 1, padding="valid", name="Conv2d_3b_1x1", **bn)  # 73 x 73 x 80
  x = basic_conv2d(x, 192, 3, padding="valid", name="Conv2d_4a_3x3", **bn)  # 71 x 71 x 192
  x = layers.max_pool(x, 3, strides=2, name="maxpool2")  # 35 x 35 x 192
  x = _block_a(x, "Mixed_5b", pool_features=32, **bn)  # 35 x 35 x 256
  x = _block_a(x, "Mixed_5c", pool_features=64, **bn)  # 35 x 35 x 288
  x = _block_a(x, "Mixed_5d", pool_features=64, **bn)  # 35 x 35 x 288
  x = _block_b(x, **bn)  # 17 x 17 x 768
  x = _block_c(x, "Mixed_6b", channels_7x7=128, **bn)  # 17 x 17 x 768
  x = _block_c(x, "Mixed_6c", channels_7x7=160, **bn)  # 17 x 17 x 768
  x = _block_c(x, "Mixed_6d", channels_7x7=160, **bn)  # 17 x 17 x 768
  x = _block_c(x, "Mixed_6e", channels_7x7=192, **bn)  # 17 x 17 x 768
  x = _block_d(x, **bn)  # 8 x 8 x 1280
  x = _block_e(x, "Mixed_7b", max_pool_branch=False, **bn)  # 8 x 8 x 2048
  x = _block_e(x, "Mixed_7c", max_pool_branch=True, **bn)  # 8 x 8 x 2048
  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="FIDInceptionV3")

  pool_3 = keras.layers.GlobalAveragePooling2D(name="avgpool", dtype="float32")(x)  # 2048
  pool_3 = layers.identity(pool_3, name="pool_3", dtype="float32")
  x = layers.dropout(pool_3, dropout_keep_prob, name="dropout")
  fc = keras.layers.Dense(num_classes, name="fc", dtype="float32")
  logits = fc(x)  # num_classes
  # The bias-free logits with built-in layers only: fc(pool_3) - fc(0) = pool_3 @ W + b - b (0 @ W
  # is exactly 0, so fc(0) is exactly b); within one float32 rounding of pool_3 @ W.
  zeros = keras.layers.Rescaling(0.0, name="fc_zero_input", dtype="float32")(pool_3)
  unbiased = keras.layers.Subtract(name="fc_unbiased", dtype="float32")([fc(pool_3), fc(zeros)])
  outputs = {"logits": layers.identity(logits, name="logits", dtype="float32"),
             "pool_3": pool_3,
             "logits_unbiased": layers.identity(unbiased, name="logits_unbiased",
                                                dtype="float32")}
  return keras.Model(inputs, outputs, name="FIDInceptionV3")
