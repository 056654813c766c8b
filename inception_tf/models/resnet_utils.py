"""What TF-slim's ResNet v1 and v2 share: the stage table, conv2d_same, atrous stacking, the head.

TF-slim writes a ResNet as a list of blocks (`nets/resnet_v1.py`):

    resnet_v1_block('block3', base_depth=256, num_units=23, stride=2)

i.e. a row of the ResNet paper's Table 1 (He et al. 2015, arXiv:1512.03385): `num_units` bottleneck
units of widths base_depth -> base_depth -> 4 x base_depth, the block's stride in its LAST unit
(slim's choice; the paper subsamples in the first unit of the next stage, see `Block`). `STAGES`
holds the units per block for the four depths slim publishes; `blocks(depth)` turns one row into
the four `Block`s, and `stack_blocks_dense` builds them with any unit function (v1's
`bottleneck_v1`, v2's `bottleneck_v2`), honouring slim's `output_stride` with atrous convolution
exactly as slim's `resnet_utils.stack_blocks_dense`.

    depth   block1  block2  block3  block4   (units per block; widths 256 / 512 / 1024 / 2048)
    50      3       4       6       3        paper Table 1
    101     3       4       23      3        paper Table 1
    152     3       8       36      3        paper Table 1
    200     3       24      36      3        Identity Mappings (arXiv:1603.05027) §4.3

`register_family` registers `<prefix>_50` ... `<prefix>_200` for one body, with the options
slim's `resnet_v1_50(...)` / `resnet_v2_50(...)` take: `output_stride` and `global_pool`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

# Units per block (block1..block4) for each published depth; see the module docstring.
STAGES = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
# Bottleneck widths (slim's base_depth) and strides of block1..block4.
BASE_DEPTHS = (64, 128, 256, 512)
BLOCK_STRIDES = (2, 2, 2, 1)
# slim's resnet_arg_scope batch norm: gamma on, epsilon 1e-5, decay 0.997.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.997
# conv1 and pool1 halve twice; then block1..block3 halve once each.
ROOT_STRIDE = 4
OUTPUT_STRIDES = (4, 8, 16, 32)
# The total stride: the smallest input whose block4 is a full 1 x 1 cell.
MIN_IMAGE_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Block:
  """One row of the stage table: slim's `resnet_v{1,2}_block(scope, base_depth, num_units, stride)`.

  Every unit outputs 4 x base_depth channels through a base_depth-wide bottleneck; the block's
  stride sits in the last unit (in its 3x3 conv2 and its shortcut). The paper strides the first
  unit of the next stage instead (slim's resnet_utils calls its own choice the more
  memory-efficient one); the map sizes after each block are the same.
  """

  scope: str
  base_depth: int
  num_units: int
  stride: int

  @property
  def depth(self) -> int:
    return 4 * self.base_depth

  def unit_strides(self) -> tuple[int, ...]:
    """The stride of each unit: 1, ..., 1, `stride`."""
    return (1,) * (self.num_units - 1) + (self.stride,)


def blocks(depth: int) -> tuple[Block, ...]:
  """The four blocks of the `depth`-layer network (a row of `STAGES`)."""
  if depth not in STAGES:
    raise ValueError(f"No ResNet stage table for depth {depth!r}; valid depths: {sorted(STAGES)}.")
  return tuple(Block(f"block{i + 1}", base_depth, units, stride) for i, (base_depth, units, stride)
               in enumerate(zip(BASE_DEPTHS, STAGES[depth], BLOCK_STRIDES)))


def unit_names(stage_blocks: tuple[Block, ...], unit_scope: str) -> list[list[str]]:
  """Per block, the units' slim scopes, e.g. `block1.unit_1.bottleneck_v1` (`.` for `/`)."""
  return [[f"{block.scope}.unit_{u + 1}.{unit_scope}" for u in range(block.num_units)]
          for block in stage_blocks]


def endpoints(stage_blocks: tuple[Block, ...], unit_scope: str, *, before_head=()) -> tuple:
  """Endpoint names: conv1, pool1, every unit and block, `before_head`, global_pool, logits."""
  names = ["conv1", "pool1"]
  for block, units in zip(stage_blocks, unit_names(stage_blocks, unit_scope)):
    names += units + [block.scope]
  return tuple(names + list(before_head) + ["global_pool", "logits"])


def same_padding(x, kernel_size: int, stride: int, *, rate: int = 1, name: str):
  """The padding of slim's `conv2d_same`: returns (input to convolve, Keras padding).

  At stride 1 slim convolves with 'SAME'. At a larger stride it zero-pads kernel_size_effective - 1
  pixels, the smaller half first, then convolves 'VALID'; TF's strided 'SAME' would pad an even
  input 0 before and 1 after instead (slim's ResnetUtilsTest.testConv2DSameEven). The pad layer is
  `name.Pad`.
  """
  if stride == 1:
    return x, "same"
  pad_total = kernel_size + (kernel_size - 1) * (rate - 1) - 1
  pad_begin = pad_total // 2
  pad_end = pad_total - pad_begin
  x = keras.layers.ZeroPadding2D(((pad_begin, pad_end), (pad_begin, pad_end)),
                                 name=f"{name}.Pad")(x)
  return x, "valid"


def conv2d_same(x, filters: int, kernel_size: int, stride: int, *, rate: int = 1, name: str,
                batch_norm: layers.BatchNorm):
  """slim's `conv2d_same` under resnet_arg_scope: `same_padding`, then conv + BN + ReLU."""
  x, padding = same_padding(x, kernel_size, stride, rate=rate, name=name)
  return layers.conv_bn(x, filters, kernel_size, strides=stride, padding=padding,
                        dilation_rate=rate, name=name, batch_norm=batch_norm)


def subsample(x, stride: int, *, name: str):
  """slim's `subsample`: the input itself at stride 1, else a 1x1 max pool with that stride."""
  if stride == 1:
    return x
  return layers.max_pool(x, 1, strides=stride, name=name)


def check_output_stride(output_stride: int | None) -> None:
  """slim accepts None (32) or a multiple of 4 that the strides 2, 2, 2 after the root can reach."""
  if output_stride is not None and output_stride not in OUTPUT_STRIDES:
    raise ValueError(f"output_stride must be None or one of {OUTPUT_STRIDES} (the input-to-output "
                     f"resolution ratio of block4), got {output_stride!r}.")


# unit(x, depth, depth_bottleneck, stride, rate, *, name, batch_norm) -> the unit's output.
UnitFn = Callable[..., object]


def stack_blocks_dense(x, stage_blocks: tuple[Block, ...], unit: UnitFn, *, unit_scope: str,
                       output_stride: int | None, batch_norm: layers.BatchNorm):
  """slim's `stack_blocks_dense` after the root block (conv1 + pool1, stride 4).

  Once the network reaches the target `output_stride`, every further unit runs at stride 1 and its
  3x3 convolutions at the atrous rate accumulated so far; the unit's own stride then multiplies the
  rate for the units after it (so the unit that would have subsampled still runs at the old rate).

  Args:
    x: pool1's output.
    stage_blocks: `blocks(depth)`.
    unit: the unit function, called as
      `unit(x, depth, depth_bottleneck, stride, rate, name=..., batch_norm=batch_norm)`.
    unit_scope: "bottleneck_v1" or "bottleneck_v2" (the units' slim scope).
    output_stride: None, 4, 8, 16 or 32 (`check_output_stride`).
    batch_norm: the network's batch-norm settings.

  Returns:
    block4's output; each block's output is the identity layer named after its scope.
  """
  check_output_stride(output_stride)
  target = None if output_stride is None else output_stride // ROOT_STRIDE
  current_stride, rate = 1, 1
  for block, names in zip(stage_blocks, unit_names(stage_blocks, unit_scope)):
    for stride, name in zip(block.unit_strides(), names):
      if target is not None and current_stride == target:
        x = unit(x, block.depth, block.base_depth, 1, rate, name=name, batch_norm=batch_norm)
        rate *= stride
      else:
        x = unit(x, block.depth, block.base_depth, stride, 1, name=name, batch_norm=batch_norm)
        current_stride *= stride
    x = layers.identity(x, name=block.scope)
  return x


def head(inputs, x, *, scope: str, num_classes: int, include_top: bool, pooling: str | None,
         global_pool: bool) -> keras.Model:
  """The model after block4 (after v2's postnorm): features, or slim's pool5 + 1x1 `logits` conv.

  With `global_pool` (slim's default) the logits are [N, num_classes] (the global mean, layer
  `global_pool`, then `logits` and `spatial_squeeze`); without it they stay a spatial map
  [N, H / output_stride, W / output_stride, num_classes], as slim's dense-prediction mode.
  """
  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name=scope)
  if global_pool:
    x = layers.global_avg_pool(x, name="global_pool")
    # 1 x 1 x 2048
  x = layers.conv_bias(x, num_classes, 1, name="logits", dtype="float32")
  # 1 x 1 x num_classes (H/os x W/os x num_classes without global_pool)
  if global_pool:
    x = layers.squeeze_logits(x, num_classes, name="spatial_squeeze")
  return keras.Model(inputs, {"logits": x}, name=scope)


def register_family(prefix: str, body: Callable, *, unit_scope: str, before_head=(),
                    **info) -> dict[int, Callable[..., keras.Model]]:
  """Registers `<prefix>_<depth>` for every depth of `STAGES`; returns {depth: builder}.

  Args:
    prefix: "resnet_v1" or "resnet_v2" (slim's scope is `<prefix>_<depth>`).
    body: `body(inputs, *, stage_blocks, batch_norm, output_stride)` -> the features before the
      head (slim's `resnet_v1(...)` / `resnet_v2(...)` up to `pool5`); the builder adds `head`.
    unit_scope: the units' slim scope ("bottleneck_v1" / "bottleneck_v2"), for the endpoints.
    before_head: endpoints between block4 and global_pool (v2: "postnorm").
    **info: the remaining `ModelInfo` fields, shared by the depths.
  """
  builders = {}
  for depth in STAGES:
    name = f"{prefix}_{depth}"
    stage_blocks = blocks(depth)
    builders[depth] = register_model(
        name, slim_scope=name,
        endpoints=endpoints(stage_blocks, unit_scope, before_head=before_head),
        **info)(_builder(name, stage_blocks, body))
  return builders


def _builder(name: str, stage_blocks: tuple[Block, ...], body) -> Callable[..., keras.Model]:
  """The registry builder of one depth (its keyword-only options are the family options)."""

  def build(inputs,
            *,
            num_classes: int,
            include_top: bool,
            pooling: str | None,
            aux_logits: bool,
            dropout_keep_prob: float,
            batch_norm: layers.BatchNorm,
            output_stride: int | None = None,
            global_pool: bool = True) -> keras.Model:
    del dropout_keep_prob  # slim's ResNets have no dropout.
    if aux_logits:
      raise ValueError(f"{name} has no auxiliary head; aux_logits must be False.")
    if not isinstance(global_pool, bool):
      raise ValueError(f"global_pool must be True or False, got {global_pool!r}.")
    features = body(inputs, stage_blocks=stage_blocks, batch_norm=batch_norm,
                    output_stride=output_stride)
    return head(inputs, features, scope=name, num_classes=num_classes, include_top=include_top,
                pooling=pooling, global_pool=global_pool)

  build.__name__ = build.__qualname__ = name
  units = "/".join(str(b.num_units) for b in stage_blocks)
  build.__doc__ = (
      f"Builds TF-slim's {name} ({units} units per block; use `create_model({name!r}, ...)`).\n\n"
      "  Args:\n"
      "    inputs: a `keras.Input` [H, W, 3], preprocessed as the model's `ModelInfo` says.\n"
      "    num_classes, include_top, pooling, batch_norm: see `create_model`.\n"
      "    aux_logits: must be False (no auxiliary head).\n"
      "    dropout_keep_prob: unused (slim's ResNets have no dropout).\n"
      "    output_stride: None (32), 4, 8, 16 or 32: atrous convolution keeps block4 at\n"
      "      input / output_stride (slim's stack_blocks_dense).\n"
      "    global_pool: True: logits [N, num_classes] from the global mean; False: a map.\n\n"
      "  Returns:\n"
      f"    A functional `keras.Model` named {name!r}.\n")
  return build
