"""ResNet-50 (v1) as TF-slim lays it out: the baseline the Inception-v4 paper compares against.

He et al., "Deep Residual Learning for Image Recognition" (arXiv:1512.03385), Table 1 (50-layer),
in the form of TF-slim's `nets/resnet_v1.py` `resnet_v1_50` (slim scope `resnet_v1_50`), which loads
the published `resnet_v1_50_2016_08_28` checkpoint. Facts of slim's layout:

- batch norm after every convolution WITH gamma, epsilon 1e-5, decay 0.997 (`resnet_arg_scope`);
- a block's stride sits in its LAST unit (block1/unit_3, block2/unit_4, block3/unit_6), where the
  paper downsamples in the first unit of the next stage, and in the 3x3 `conv2` (the paper's Caffe
  model strides in the first 1x1);
- strided convolutions use slim's `conv2d_same`: explicit zero padding (kernel - 1, split
  floor/ceil) then a 'VALID' convolution, which differs from 'SAME' on even inputs;
- `pool1` is a 3x3/2 max pool with 'SAME' padding;
- the shortcut is a 1x1 projection (with BN, no ReLU) where the width changes, a 1x1/stride max
  pool (`subsample`) where only the resolution changes, else the identity;
- the classifier is a global mean then a 1x1 convolution with bias named `logits`; inputs are
  VGG-preprocessed (RGB minus the ImageNet mean, 0..255 scale).

    paper (Table 1, 50-layer)      slim scope (`.` in Keras layer names)       output at 224
    conv1 7x7, 64, /2              conv1 (conv2d_same)                         112 x 112 x 64
    3x3 max pool, /2               pool1                                        56 x 56 x 64
    conv2_x [1x1,64 3x3,64 1x1,256] x3   block1/unit_{1..3}/bottleneck_v1        28 x 28 x 256
    conv3_x [1x1,128 ... 1x1,512] x4     block2/unit_{1..4}/bottleneck_v1        14 x 14 x 512
    conv4_x [1x1,256 ... 1x1,1024] x6    block3/unit_{1..6}/bottleneck_v1         7 x 7 x 1024
    conv5_x [1x1,512 ... 1x1,2048] x3    block4/unit_{1..3}/bottleneck_v1         7 x 7 x 2048
    average pool                   global_pool (slim: `pool5`, a global mean)    1 x 1 x 2048
    1000-d fc                      logits (1x1 conv, bias)                       1 x 1 x num_classes
                                   spatial_squeeze                              num_classes

Inside a unit `blockB/unit_U/bottleneck_v1`: `shortcut`, `conv1` (1x1), `conv2` (3x3, the unit's
stride), `conv3` (1x1, no ReLU), then ReLU(shortcut + conv3). Endpoints (feature_extractor names):
`conv1`, `pool1`, every unit output (e.g. `block1.unit_1.bottleneck_v1`, slim's
`resnet_v1_50/block1/unit_1/bottleneck_v1`), `block1`..`block4`, `global_pool` and `logits`.

Input size: all padding is 'SAME' or conv2d_same, so the network computes for any input; the
global mean makes the logits size-independent (slim's `global_pool=True`). The minimum input size
is 32, the total stride, so block4 is at least a full 1x1 cell.
"""

from __future__ import annotations

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

# Output stride of block4: the smallest input whose last feature map is a full 1x1 cell.
MIN_IMAGE_SIZE = 32

# TF-slim's resnet_arg_scope batch norm: gamma on, epsilon 1e-5, decay 0.997.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.997

ENDPOINTS = (
    "conv1", "pool1",
    "block1.unit_1.bottleneck_v1", "block1.unit_2.bottleneck_v1", "block1.unit_3.bottleneck_v1",
    "block1",
    "block2.unit_1.bottleneck_v1", "block2.unit_2.bottleneck_v1", "block2.unit_3.bottleneck_v1",
    "block2.unit_4.bottleneck_v1",
    "block2",
    "block3.unit_1.bottleneck_v1", "block3.unit_2.bottleneck_v1", "block3.unit_3.bottleneck_v1",
    "block3.unit_4.bottleneck_v1", "block3.unit_5.bottleneck_v1", "block3.unit_6.bottleneck_v1",
    "block3",
    "block4.unit_1.bottleneck_v1", "block4.unit_2.bottleneck_v1", "block4.unit_3.bottleneck_v1",
    "block4",
    "global_pool", "logits")


def _conv2d_same(x, filters: int, kernel_size: int, stride: int, *, name: str,
                 batch_norm: layers.BatchNorm):
  """slim's resnet_utils.conv2d_same + BN + ReLU: 'SAME' at stride 1, else pad then 'VALID'.

  The padding (layer `name.Pad`) is kernel_size - 1 in total, the smaller half before.
  """
  if stride == 1:
    return layers.conv_bn(x, filters, kernel_size, name=name, batch_norm=batch_norm)
  pad_total = kernel_size - 1
  pad_begin = pad_total // 2
  pad_end = pad_total - pad_begin
  x = keras.layers.ZeroPadding2D(((pad_begin, pad_end), (pad_begin, pad_end)),
                                 name=f"{name}.Pad")(x)
  return layers.conv_bn(x, filters, kernel_size, strides=stride, padding="valid", name=name,
                        batch_norm=batch_norm)


def _bottleneck(x, depth: int, depth_bottleneck: int, stride: int, *, name: str,
                batch_norm: layers.BatchNorm):
  """slim's `bottleneck` (v1): ReLU(shortcut + conv3(conv2(conv1(x)))), BN after every conv.

  Args:
    x: the unit's input.
    depth: output width (4 x depth_bottleneck).
    depth_bottleneck: width of conv1 and conv2.
    stride: the unit's stride, applied in conv2 (and the shortcut).
    name: the unit's slim scope, e.g. "block1.unit_1.bottleneck_v1"; its output layer has it.
    batch_norm: the network's batch-norm settings.

  Returns:
    The unit's output (layer `name.Relu`).
  """
  if x.shape[-1] == depth:
    if stride == 1:
      shortcut = x
    else:
      shortcut = layers.max_pool(x, 1, strides=stride, name=f"{name}.shortcut")
  else:
    shortcut = layers.conv_bn(x, depth, 1, strides=stride, activation=False,
                              name=f"{name}.shortcut", batch_norm=batch_norm)
  residual = layers.conv_bn(x, depth_bottleneck, 1, name=f"{name}.conv1", batch_norm=batch_norm)
  residual = _conv2d_same(residual, depth_bottleneck, 3, stride, name=f"{name}.conv2",
                          batch_norm=batch_norm)
  residual = layers.conv_bn(residual, depth, 1, activation=False, name=f"{name}.conv3",
                            batch_norm=batch_norm)
  return layers.residual_add(shortcut, residual, scale=1.0, name=name)


@register_model(
    "resnet_v1_50",
    slim_scope="resnet_v1_50",
    default_image_size=224,
    min_image_size=MIN_IMAGE_SIZE,
    has_aux_logits=False,
    endpoints=ENDPOINTS,
    preprocessing="vgg",
    batch_norm_scale=True,
    batch_norm_epsilon=BATCH_NORM_EPSILON,
    batch_norm_momentum=BATCH_NORM_MOMENTUM,
    paper="He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)")
def resnet_v1_50(inputs,
                 *,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 aux_logits: bool,
                 dropout_keep_prob: float,
                 batch_norm: layers.BatchNorm) -> keras.Model:
  """Builds ResNet-50 v1 with TF-slim's layout and layer names (use `create_model`).

  Args:
    inputs: a `keras.Input` of shape [H, W, 3] with H, W >= 32, VGG-preprocessed.
    num_classes: logits width (1001 for the published checkpoint).
    include_top: with the classifier (`{"logits": ...}` output) or features only.
    pooling: with include_top=False: None, "avg" or "max" (keras.applications semantics).
    aux_logits: must be False; ResNet has no auxiliary head.
    dropout_keep_prob: unused: slim's ResNet has no dropout (accepted for a uniform signature).
    batch_norm: batch-norm settings (slim's resnet_arg_scope: gamma, epsilon 1e-5, decay 0.997).

  Returns:
    A functional `keras.Model` named "resnet_v1_50".

  Raises:
    ValueError: for aux_logits or an unknown `pooling`.
  """
  del dropout_keep_prob  # ResNet-50 has no dropout.
  if aux_logits:
    raise ValueError("resnet_v1_50 has no auxiliary head; aux_logits must be False.")

  def unit(x, depth, depth_bottleneck, stride, name):
    return _bottleneck(x, depth, depth_bottleneck, stride, name=name, batch_norm=batch_norm)

  # 224 x 224 x 3
  x = _conv2d_same(inputs, 64, 7, 2, name="conv1", batch_norm=batch_norm)
  # 112 x 112 x 64
  x = layers.max_pool(x, 3, strides=2, padding="same", name="pool1")
  # 56 x 56 x 64

  # conv2_x (+ the downsampling of conv3_1, which slim does in block1's last unit).
  x = unit(x, 256, 64, 1, name="block1.unit_1.bottleneck_v1")
  # 56 x 56 x 256
  x = unit(x, 256, 64, 1, name="block1.unit_2.bottleneck_v1")
  x = unit(x, 256, 64, 2, name="block1.unit_3.bottleneck_v1")
  x = layers.identity(x, name="block1")
  # 28 x 28 x 256

  # conv3_x.
  x = unit(x, 512, 128, 1, name="block2.unit_1.bottleneck_v1")
  # 28 x 28 x 512
  x = unit(x, 512, 128, 1, name="block2.unit_2.bottleneck_v1")
  x = unit(x, 512, 128, 1, name="block2.unit_3.bottleneck_v1")
  x = unit(x, 512, 128, 2, name="block2.unit_4.bottleneck_v1")
  x = layers.identity(x, name="block2")
  # 14 x 14 x 512

  # conv4_x.
  x = unit(x, 1024, 256, 1, name="block3.unit_1.bottleneck_v1")
  # 14 x 14 x 1024
  x = unit(x, 1024, 256, 1, name="block3.unit_2.bottleneck_v1")
  x = unit(x, 1024, 256, 1, name="block3.unit_3.bottleneck_v1")
  x = unit(x, 1024, 256, 1, name="block3.unit_4.bottleneck_v1")
  x = unit(x, 1024, 256, 1, name="block3.unit_5.bottleneck_v1")
  x = unit(x, 1024, 256, 2, name="block3.unit_6.bottleneck_v1")
  x = layers.identity(x, name="block3")
  # 7 x 7 x 1024

  # conv5_x.
  x = unit(x, 2048, 512, 1, name="block4.unit_1.bottleneck_v1")
  x = unit(x, 2048, 512, 1, name="block4.unit_2.bottleneck_v1")
  x = unit(x, 2048, 512, 1, name="block4.unit_3.bottleneck_v1")
  x = layers.identity(x, name="block4")
  # 7 x 7 x 2048

  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name="resnet_v1_50")

  x = layers.global_avg_pool(x, name="global_pool")
  # 1 x 1 x 2048
  x = layers.conv_bias(x, num_classes, 1, name="logits", dtype="float32")
  # 1 x 1 x num_classes
  logits = layers.squeeze_logits(x, num_classes, name="spatial_squeeze")
  return keras.Model(inputs, {"logits": logits}, name="resnet_v1_50")
