"""ResNet v2 (pre-activation; 50/101/152/200) as TF-slim lays it out: `resnet_v2_50` ... `_200`.

He et al., "Identity Mappings in Deep Residual Networks" (arXiv:1603.05027), the full
pre-activation unit of its Figure 1(b) / Figure 4(e), in the form of TF-slim's `nets/resnet_v2.py`
(slim scopes `resnet_v2_50` ...), which loads the published `resnet_v2_{50,101,152}` checkpoints
(trained by Google; 1001 classes, class 0 = background) by name. Stage table: the ResNet paper's
Table 1 for 50/101/152, the Identity Mappings paper's ResNet-200 (`resnet_utils.STAGES`).

Input: the published v2 checkpoints were trained and evaluated with Inception preprocessing
([-1, 1] inputs) at 299 x 299 (TF-slim's model table: "ResNet V2 models use Inception
pre-processing and input image size of 299"), although slim's code sets
`resnet_v2.default_image_size = 224`; our `default_image_size` is therefore 299, the size the
published accuracy belongs to.

Facts of slim's layout, where it differs from v1 (`resnet_v1.py`):

- `conv1` (7x7/2, conv2d_same) has a bias and neither batch norm nor ReLU: every unit normalises
  its own input;
- a unit is `bottleneck_v2`: `preact` = ReLU(BN(x)) (gamma, epsilon 1e-5, decay 0.997); the
  shortcut is a 1x1 projection of `preact` WITH bias and no BN where the width changes, else the
  input `x` itself (max-pool subsampled at stride 2); `conv1` (1x1) and `conv2` (3x3, the unit's
  stride or atrous rate) carry BN + ReLU; `conv3` (1x1) has a bias and no BN; the output is
  shortcut + conv3, with no ReLU (layer named after the unit's scope);
- after block4 `postnorm` = ReLU(BN(x)), then the global mean and the 1x1 `logits` convolution.

    paper                                 slim scope (`.` in Keras layer names)     output at 299
    conv 7x7, 64, /2                      conv1 (conv2d_same, bias)                 150 x 150 x 64
    3x3 max pool, /2                      pool1                                      75 x 75 x 64
    conv2_x: 3 x pre-act bottleneck 256   block1/unit_{1..3}/bottleneck_v2           38 x 38 x 256
    conv3_x: n2 x ... 512                 block2/unit_{1..n2}/bottleneck_v2          19 x 19 x 512
    conv4_x: n3 x ... 1024                block3/unit_{1..n3}/bottleneck_v2          10 x 10 x 1024
    conv5_x: 3 x ... 2048                 block4/unit_{1..3}/bottleneck_v2           10 x 10 x 2048
    final BN + ReLU                       postnorm                                   10 x 10 x 2048
    average pool                          global_pool (slim: `pool5`)                 1 x 1 x 2048
    1000-d fc (+ background)              logits (1x1 conv, bias)                     1 x 1 x 1001
                                          spatial_squeeze                            1001

(n2, n3) = (4, 6), (4, 23), (8, 36), (24, 36) for 50, 101, 152, 200 layers. Endpoints: `conv1`,
`pool1`, every unit (`block1.unit_1.bottleneck_v2`), `block1`..`block4`, `postnorm` (slim
records no endpoint for it), `global_pool` and `logits`. Options as v1: `output_stride` (8/16:
atrous convolution) and `global_pool`. Minimum input size 32 (the total stride).
"""

from __future__ import annotations

import keras

from inception_tf.models import layers
from inception_tf.models import resnet_utils

UNIT_SCOPE = "bottleneck_v2"


def batch_norm_relu(x, *, name: str, batch_norm: layers.BatchNorm):
  """slim.batch_norm(activation_fn=relu): layers `name` (BatchNorm) and `name.Relu`."""
  x = batch_norm(x, name=name)
  return keras.layers.ReLU(name=f"{name}.Relu")(x)


def bottleneck_v2(x, depth: int, depth_bottleneck: int, stride: int, rate: int, *, name: str,
                  batch_norm: layers.BatchNorm):
  """slim's `bottleneck` (v2): shortcut + conv3(conv2(conv1(preact))), preact = ReLU(BN(x)).

  The arguments are those of `resnet_v1.bottleneck_v1` (name: e.g. "block1.unit_1.bottleneck_v2").
  Returns the unit's output: shortcut + conv3 with no ReLU, the Add layer named `name`.
  """
  preact = batch_norm_relu(x, name=f"{name}.preact", batch_norm=batch_norm)
  if x.shape[-1] == depth:
    shortcut = resnet_utils.subsample(x, stride, name=f"{name}.shortcut")
  else:
    shortcut = layers.conv_bias(preact, depth, 1, strides=stride, name=f"{name}.shortcut")
  residual = layers.conv_bn(preact, depth_bottleneck, 1, name=f"{name}.conv1",
                            batch_norm=batch_norm)
  residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                      name=f"{name}.conv2", batch_norm=batch_norm)
  residual = layers.conv_bias(residual, depth, 1, name=f"{name}.conv3")
  return keras.layers.Add(name=name)([shortcut, residual])


def resnet_v2(inputs, *, stage_blocks: tuple[resnet_utils.Block, ...],
              batch_norm: layers.BatchNorm, output_stride: int | None):
  """slim's `resnet_v2(...)` up to the head: conv1, pool1, the stage table's blocks, postnorm.

  Args:
    inputs: a `keras.Input` [H, W, 3] in [-1, 1] (Inception preprocessing).
    stage_blocks: `resnet_utils.blocks(depth)`.
    batch_norm: slim's resnet_arg_scope batch norm (gamma, epsilon 1e-5, decay 0.997).
    output_stride: None, 4, 8, 16 or 32.

  Returns:
    postnorm's output (`resnet_utils.head` adds the classifier).
  """
  # 299 x 299 x 3
  x, padding = resnet_utils.same_padding(inputs, 7, 2, name="conv1")
  x = layers.conv_bias(x, 64, 7, strides=2, padding=padding, name="conv1")
  # 150 x 150 x 64
  x = layers.max_pool(x, 3, strides=2, padding="same", name="pool1")
  # 75 x 75 x 64
  x = resnet_utils.stack_blocks_dense(x, stage_blocks, bottleneck_v2, unit_scope=UNIT_SCOPE,
                                      output_stride=output_stride, batch_norm=batch_norm)
  # 10 x 10 x 2048 (ceil(299 / output_stride))
  return batch_norm_relu(x, name="postnorm", batch_norm=batch_norm)


BUILDERS = resnet_utils.register_family(
    "resnet_v2", resnet_v2,
    unit_scope=UNIT_SCOPE,
    before_head=("postnorm",),
    default_image_size=299,  # the published checkpoints' size (module docstring)
    min_image_size=resnet_utils.MIN_IMAGE_SIZE,
    has_aux_logits=False,
    preprocessing="inception",
    num_classes=1001,
    batch_norm_scale=True,
    batch_norm_epsilon=resnet_utils.BATCH_NORM_EPSILON,
    batch_norm_momentum=resnet_utils.BATCH_NORM_MOMENTUM,
    paper="He et al. 2016, Identity Mappings in Deep Residual Networks (arXiv:1603.05027)")
resnet_v2_50 = BUILDERS[50]
resnet_v2_101 = BUILDERS[101]
resnet_v2_152 = BUILDERS[152]
resnet_v2_200 = BUILDERS[200]
