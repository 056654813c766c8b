"""ResNet v1 (50/101/152/200) as TF-slim lays it out: `resnet_v1_50` ... `resnet_v1_200`.

He et al., "Deep Residual Learning for Image Recognition" (arXiv:1512.03385), Table 1, in the form
of TF-slim's `nets/resnet_v1.py` (slim scopes `resnet_v1_50` ...), which loads the published
`resnet_v1_{50,101,152}` checkpoints (MSRA's Caffe models converted; 1000 classes, no background
class, VGG preprocessing) by name. ResNet-200 v1 is slim's table entry (Identity Mappings paper,
arXiv:1603.05027); no checkpoint of it was published. Facts of slim's layout:

- batch norm after every convolution WITH gamma, epsilon 1e-5, decay 0.997 (`resnet_arg_scope`);
- a block's stride sits in its LAST unit (e.g. block1/unit_3), where the paper downsamples in the
  first unit of the next stage, and in the 3x3 `conv2` (the paper's Caffe model strides in the first
  1x1); see `resnet_utils.Block`;
- strided convolutions use slim's `conv2d_same` (`resnet_utils.same_padding`);
- `pool1` is a 3x3/2 max pool with 'SAME' padding;
- the shortcut is a 1x1 projection (with BN, no ReLU) where the width changes, a 1x1/stride max
  pool (`subsample`) where only the resolution changes, else the identity;
- the classifier is a global mean then a 1x1 convolution with bias named `logits`; inputs are
  VGG-preprocessed (RGB minus the ImageNet mean, 0..255 scale).

    paper (Table 1)                       slim scope (`.` in Keras layer names)    output at 224
    conv1 7x7, 64, /2                     conv1 (conv2d_same)                      112 x 112 x 64
    3x3 max pool, /2                      pool1                                     56 x 56 x 64
    conv2_x [1x1,64 3x3,64 1x1,256]       block1/unit_{1..3}/bottleneck_v1          28 x 28 x 256
    conv3_x [1x1,128 3x3,128 1x1,512]     block2/unit_{1..n2}/bottleneck_v1         14 x 14 x 512
    conv4_x [1x1,256 3x3,256 1x1,1024]    block3/unit_{1..n3}/bottleneck_v1          7 x 7 x 1024
    conv5_x [1x1,512 3x3,512 1x1,2048]    block4/unit_{1..3}/bottleneck_v1           7 x 7 x 2048
    average pool                          global_pool (slim: `pool5`, a global mean)  1 x 1 x 2048
    1000-d fc                             logits (1x1 conv, bias)                    1 x 1 x 1000
                                          spatial_squeeze                           1000

(n2, n3) = (4, 6), (4, 23), (8, 36), (24, 36) for 50, 101, 152, 200 layers (`resnet_utils.STAGES`);
the output sizes are those of slim's last-unit striding (block1 ends at 28 x 28).

Inside a unit `blockB/unit_U/bottleneck_v1`: `shortcut`, `conv1` (1x1), `conv2` (3x3, the unit's
stride or atrous rate), `conv3` (1x1, no ReLU), then ReLU(shortcut + conv3). Endpoints
(feature_extractor names): `conv1`, `pool1`, every unit output (e.g. `block1.unit_1.bottleneck_v1`,
slim's `resnet_v1_50/block1/unit_1/bottleneck_v1`), `block1`..`block4`, `global_pool` and `logits`.

Options (slim's): `output_stride` 8 or 16 keeps block4 at input/8 or input/16 by atrous 3x3
convolutions (`resnet_utils.stack_blocks_dense`); `global_pool=False` gives logits as a spatial map.
All padding is 'SAME' or conv2d_same, so the network computes for any input; the minimum input size
is 32, the total stride, so block4 is at least a full 1x1 cell.
"""

from __future__ import annotations

from inception_tf.models import layers
from inception_tf.models import resnet_utils

UNIT_SCOPE = "bottleneck_v1"


def bottleneck_v1(x, depth: int, depth_bottleneck: int, stride: int, rate: int, *, name: str,
                  batch_norm: layers.BatchNorm):
  """slim's `bottleneck` (v1): ReLU(shortcut + conv3(conv2(conv1(x)))), BN after every conv.

  Args:
    x: the unit's input.
    depth: output width (4 x depth_bottleneck).
    depth_bottleneck: width of conv1 and conv2.
    stride: the unit's stride, applied in conv2 (and the shortcut).
    rate: conv2's atrous rate (> 1 only at stride 1, past the target output_stride).
    name: the unit's slim scope, e.g. "block1.unit_1.bottleneck_v1"; its output layer has it.
    batch_norm: the network's batch-norm settings.

  Returns:
    The unit's output (layer `name.Relu`).
  """
  if x.shape[-1] == depth:
    shortcut = resnet_utils.subsample(x, stride, name=f"{name}.shortcut")
  else:
    shortcut = layers.conv_bn(x, depth, 1, strides=stride, activation=False,
                              name=f"{name}.shortcut", batch_norm=batch_norm)
  residual = layers.conv_bn(x, depth_bottleneck, 1, name=f"{name}.conv1", batch_norm=batch_norm)
  residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                      name=f"{name}.conv2", batch_norm=batch_norm)
  residual = layers.conv_bn(residual, depth, 1, activation=False, name=f"{name}.conv3",
                            batch_norm=batch_norm)
  return layers.residual_add(shortcut, residual, scale=1.0, name=name)


def resnet_v1(inputs, *, stage_blocks: tuple[resnet_utils.Block, ...],
              batch_norm: layers.BatchNorm, output_stride: int | None):
  """slim's `resnet_v1(...)` up to the head: conv1, pool1 and the stage table's blocks.

  Args:
    inputs: a `keras.Input` [H, W, 3], VGG-preprocessed.
    stage_blocks: `resnet_utils.blocks(depth)`.
    batch_norm: slim's resnet_arg_scope batch norm (gamma, epsilon 1e-5, decay 0.997).
    output_stride: None, 4, 8, 16 or 32.

  Returns:
    block4's output (`resnet_utils.head` adds the classifier).
  """
  # 224 x 224 x 3
  x = resnet_utils.conv2d_same(inputs, 64, 7, 2, name="conv1", batch_norm=batch_norm)
  # 112 x 112 x 64
  x = layers.max_pool(x, 3, strides=2, padding="same", name="pool1")
  # 56 x 56 x 64
  x = resnet_utils.stack_blocks_dense(x, stage_blocks, bottleneck_v1, unit_scope=UNIT_SCOPE,
                                      output_stride=output_stride, batch_norm=batch_norm)
  # 7 x 7 x 2048 (224 / output_stride)
  return x


BUILDERS = resnet_utils.register_family(
    "resnet_v1", resnet_v1,
    unit_scope=UNIT_SCOPE,
    default_image_size=224,
    min_image_size=resnet_utils.MIN_IMAGE_SIZE,
    has_aux_logits=False,
    preprocessing="vgg",
    num_classes=1000,  # the published v1 checkpoints have no background class
    batch_norm_scale=True,
    batch_norm_epsilon=resnet_utils.BATCH_NORM_EPSILON,
    batch_norm_momentum=resnet_utils.BATCH_NORM_MOMENTUM,
    paper="He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385); "
          "200 layers: He et al. 2016, Identity Mappings in Deep Residual Networks "
          "(arXiv:1603.05027)")
resnet_v1_50 = BUILDERS[50]
resnet_v1_101 = BUILDERS[101]
resnet_v1_152 = BUILDERS[152]
resnet_v1_200 = BUILDERS[200]
