"""ResNet and ResNeXt in torchvision's layout: torchvision / timm / HF weights load by name.

He et al. 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385), Table 1, and
Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks" (arXiv:1611.05431),
as torchvision's `models/resnet.py` builds them ("ResNet v1.5"):

- a stage's stride sits in its FIRST unit, in the 3x3 convolution of a bottleneck (`conv2`) and in
  the first convolution of a basic block (`conv1`), and in the 1x1 projection `downsample.0`;
- padding is symmetric (PyTorch's `padding=k // 2`): every strided convolution is an explicit
  `ZeroPadding2D` and a 'valid' convolution (Keras' 'same' pads a strided conv on even inputs by
  one pixel at the bottom/right only). Stride-1 3x3 convolutions use 'same', which is symmetric;
- the stem's max pool pads with zeros where PyTorch pads with -inf; its input is a ReLU output
  (>= 0) and every window holds a real pixel, so the maxima are the same;
- batch norm with gamma, epsilon 1e-5 and PyTorch's momentum 0.1, i.e. Keras momentum 0.9;
- shortcuts are the identity, or a 1x1 projection with batch norm where the shape changes
  (the paper's option B, §3.3);
- no dropout (`dropout_keep_prob` is ignored); 1000 classes; inputs normalized with ImageNet's
  mean and std ("torchvision" preprocessing).

Keras layer names are torchvision's module paths, so
`inception_tf.checkpoints.load_torch_checkpoint` maps `layer3.5.conv2.weight` to the layer
`layer3.5.conv2` by rule. Paper <-> torchvision <-> shape
at 224 (50-layer column of Table 1):

    paper (Table 1)                 layers here                             output at 224
    conv1 7x7, 64, /2               conv1.pad, conv1, bn1, relu             112 x 112 x 64
    3x3 max pool, /2                maxpool.pad, maxpool                     56 x 56 x 64
    conv2_x  [1x1 64, 3x3 64, 1x1 256] x 3     layer1.{0..2}                 56 x 56 x 256
    conv3_x  [1x1 128, 3x3 128, 1x1 512] x 4   layer2.{0..3}                 28 x 28 x 512
    conv4_x  [1x1 256, 3x3 256, 1x1 1024] x 6  layer3.{0..5}                 14 x 14 x 1024
    conv5_x  [1x1 512, 3x3 512, 1x1 2048] x 3  layer4.{0..2}                  7 x 7 x 2048
    average pool                    avgpool                                  2048
    1000-d fc                       fc (float32)                             num_classes

Inside a unit `layerS.U` (bottleneck): `conv1` 1x1, `bn1`, `relu1`, `conv2` 3x3 (the unit's stride,
`groups` for ResNeXt), `bn2`, `relu2`, `conv3` 1x1, `bn3`, then `add` of the shortcut
(`downsample.0` conv and `downsample.1` BN where the shape changes) and the unit's ReLU named
`layerS.U`. A basic block has `conv1`/`bn1`/`relu1`/`conv2`/`bn2`. `layer1` ... `layer4` name each
stage's output. Endpoints: `relu`, `maxpool`, every unit, `layer1` ... `layer4`, `avgpool`, `fc`.

The nets come from one stage table (`TABLE_1`: block type and units per stage; stage widths
64/128/256/512). ResNeXt (paper §3.3, Fig. 3c) is the bottleneck whose 3x3 is a grouped convolution:
torchvision's `width = int(planes * width_per_group / 64) * groups`, so the ResNeXt paper's Table 3
templates at ResNet-50's complexity are one option away: `create_model("resnet50", groups=g,
width_per_group=d)` with (g, d) = (1, 64), (2, 40), (4, 24), (8, 14), (32, 4) (3x3 widths 64, 80,
96, 112, 128 in conv2_x, Table 2). `shortcuts=False` builds the paper's plain twins (§4.1, Fig. 3
middle): the same stacks without shortcut additions or projections (`plain18`, `plain34`).

Grouped convolutions: the model holds Keras' `Conv2D(groups=g)`, which Keras 3 runs inside a nested
XLA function - correct, but a ResNeXt-50 training step measured 90x slower on a CPU. The
trainer, evaluator, serving signatures and benchmarks call models through `fused_call`, which
computes these layers with TF's fast kernels instead (`inception_tf.models.grouped`).
"""

from __future__ import annotations

import dataclasses

import keras

from inception_tf.models import layers
from inception_tf.models.registry import register_model

BASIC = "basic"
BOTTLENECK = "bottleneck"
EXPANSION = {BASIC: 1, BOTTLENECK: 4}  # output width / stage width


@dataclasses.dataclass(frozen=True)
class Net:
  """One column of the ResNet paper's Table 1 (plus ResNeXt's cardinality and group width)."""

  block: str  # BASIC or BOTTLENECK
  units: tuple[int, int, int, int]  # units in conv2_x .. conv5_x (torchvision layer1 .. layer4)
  groups: int = 1
  width_per_group: int = 64
  shortcuts: bool = True


# ResNet paper Table 1 (18 ... 152 layers); torchvision's ResNeXt-50 32x4d (ResNeXt paper Table 1),
# ResNeXt-101 64x4d (its Table 5) and 32x8d (torchvision's own); the plain nets of ResNet §4.1.
TABLE_1 = {
    "resnet18": Net(BASIC, (2, 2, 2, 2)),
    "resnet34": Net(BASIC, (3, 4, 6, 3)),
    "resnet50": Net(BOTTLENECK, (3, 4, 6, 3)),
    "resnet101": Net(BOTTLENECK, (3, 4, 23, 3)),
    "resnet152": Net(BOTTLENECK, (3, 8, 36, 3)),
    "resnext50_32x4d": Net(BOTTLENECK, (3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": Net(BOTTLENECK, (3, 4, 23, 3), groups=32, width_per_group=8),
    "resnext101_64x4d": Net(BOTTLENECK, (3, 4, 23, 3), groups=64, width_per_group=4),
    "plain18": Net(BASIC, (2, 2, 2, 2), shortcuts=False),
    "plain34": Net(BASIC, (3, 4, 6, 3), shortcuts=False),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # Table 1: the 3x3 widths of conv2_x .. conv5_x
STAGE_STRIDES = (1, 2, 2, 2)  # conv2_x follows the max pool; conv3_x .. conv5_x halve the grid

# torchvision: BatchNorm2d(eps=1e-5, momentum=0.1) -> Keras momentum 1 - 0.1.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9
# The total stride: the smallest input whose layer4 is a full 1 x 1 cell.
MIN_IMAGE_SIZE = 32

PAPER_RESNET = "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)"
PAPER_RESNEXT = ("Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks "
                 "(arXiv:1611.05431)")


def conv(x, filters: int, kernel_size: int, *, name: str, strides: int = 1, groups: int = 1):
  """PyTorch's `Conv2d(kernel_size=k, stride=s, padding=k // 2, bias=False)` as Keras layers.

  Stride 1 uses 'same' (symmetric for odd kernels); a strided conv gets `{name}.pad`
  (ZeroPadding2D(k // 2)) and a 'valid' convolution, as PyTorch pads.
  """
  padding = "same"
  if strides > 1:
    padding = "valid"
    if kernel_size > 1:
      x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}.pad")(x)
  return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, groups=groups,
                             use_bias=False, name=name)(x)


def unit_output(shortcut, residual, *, name: str, shortcuts: bool):
  """ReLU(shortcut + residual), or ReLU(residual) in a plain net; the ReLU has the unit's name."""
  if shortcuts:
    residual = keras.layers.Add(name=f"{name}.add")([shortcut, residual])
  return keras.layers.ReLU(name=name)(residual)


def projection(x, filters: int, strides: int, *, name: str, batch_norm: layers.BatchNorm):
  """torchvision's `downsample`: 1x1 conv (`.0`, the unit's stride) and batch norm (`.1`)."""
  x = conv(x, filters, 1, strides=strides, name=f"{name}.downsample.0")
  return batch_norm(x, name=f"{name}.downsample.1")


def basic_block(x, planes: int, strides: int, *, name: str, batch_norm: layers.BatchNorm,
                shortcuts: bool = True, shortcut=None):
  """Fig. 2 left / Fig. 5 left: two 3x3 convolutions, the stride in the first (`BasicBlock`).

  Args:
    x: the unit's input.
    planes: the unit's width (input width of the next unit).
    strides: the unit's stride (first unit of conv3_x .. conv5_x: 2).
    name: the unit's module path, e.g. "layer2.0".
    batch_norm: the network's batch-norm settings.
    shortcuts: False for a plain net.
    shortcut: a ready shortcut tensor (e.g. the CIFAR nets' option A); None gives the identity or
      torchvision's projection.

  Returns:
    The unit's output (ReLU layer `name`).
  """
  if shortcuts and shortcut is None:
    shortcut = x
    if strides != 1 or x.shape[-1] != planes:
      shortcut = projection(x, planes, strides, name=name, batch_norm=batch_norm)
  y = conv(x, planes, 3, strides=strides, name=f"{name}.conv1")
  y = batch_norm(y, name=f"{name}.bn1")
  y = keras.layers.ReLU(name=f"{name}.relu1")(y)
  y = conv(y, planes, 3, name=f"{name}.conv2")
  y = batch_norm(y, name=f"{name}.bn2")
  return unit_output(shortcut, y, name=name, shortcuts=shortcuts)


def bottleneck_block(x, width: int, out_width: int, strides: int, *, name: str,
                     batch_norm: layers.BatchNorm, groups: int = 1, shortcuts: bool = True):
  """Fig. 5 right (ResNet) / Fig. 3c (ResNeXt): 1x1 -> 3x3 (stride, groups) -> 1x1 (`Bottleneck`).

  Args:
    x: the unit's input.
    width: the 3x3's width (ResNeXt: cardinality x group width).
    out_width: the unit's output width.
    strides: the unit's stride, applied in the 3x3 (torchvision's "v1.5") and the projection.
    name: the unit's module path, e.g. "layer3.0".
    batch_norm: the network's batch-norm settings.
    groups: the 3x3's groups (ResNeXt's cardinality).
    shortcuts: False for a plain net.

  Returns:
    The unit's output (ReLU layer `name`).
  """
  shortcut = x
  if shortcuts and (strides != 1 or x.shape[-1] != out_width):
    shortcut = projection(x, out_width, strides, name=name, batch_norm=batch_norm)
  y = conv(x, width, 1, name=f"{name}.conv1")
  y = batch_norm(y, name=f"{name}.bn1")
  y = keras.layers.ReLU(name=f"{name}.relu1")(y)
  y = conv(y, width, 3, strides=strides, groups=groups, name=f"{name}.conv2")
  y = batch_norm(y, name=f"{name}.bn2")
  y = keras.layers.ReLU(name=f"{name}.relu2")(y)
  y = conv(y, out_width, 1, name=f"{name}.conv3")
  y = batch_norm(y, name=f"{name}.bn3")
  return unit_output(shortcut, y, name=name, shortcuts=shortcuts)


def check_options(units, widths, groups: int, width_per_group: int, shortcuts, *, block: str,
                  stages: int) -> None:
  """Validates the family options; errors state the received and the allowed values."""
  if len(units) != stages or not all(isinstance(u, int) and u >= 1 for u in units):
    raise ValueError(f"units must be {stages} positive integers (units per stage), got {units!r}.")
  if len(widths) != stages or not all(isinstance(w, int) and w >= 1 for w in widths):
    raise ValueError(f"widths must be {stages} positive integers (stage widths), got {widths!r}.")
  if not isinstance(groups, int) or groups < 1:
    raise ValueError(f"groups must be a positive integer (ResNeXt's cardinality), got {groups!r}.")
  if not isinstance(width_per_group, int) or width_per_group < 1:
    raise ValueError(f"width_per_group must be a positive integer, got {width_per_group!r}.")
  if block == BASIC and (groups != 1 or width_per_group != 64):
    raise ValueError(f"Basic blocks support only groups=1 and width_per_group=64 (as torchvision); "
                     f"got groups={groups}, width_per_group={width_per_group}. Use a bottleneck "
                     "net (e.g. resnet50) for ResNeXt templates.")
  if not isinstance(shortcuts, bool):
    raise ValueError(f"shortcuts must be True (ResNet) or False (plain net), got {shortcuts!r}.")


def resnet(inputs,
           *,
           name: str,
           block: str,
           units: tuple[int, ...],
           widths: tuple[int, ...] = STAGE_WIDTHS,
           groups: int = 1,
           width_per_group: int = 64,
           shortcuts: bool = True,
           num_classes: int,
           include_top: bool,
           pooling: str | None,
           batch_norm: layers.BatchNorm) -> keras.Model:
  """torchvision's `ResNet(block, layers, groups, width_per_group)` as a Keras functional model.

  Args:
    inputs: a `keras.Input` [H, W, 3], normalized with ImageNet's mean and std.
    name: the model name (the registry name).
    block: BASIC or BOTTLENECK.
    units: units per stage (Table 1, e.g. (3, 4, 23, 3)).
    widths: stage widths ("planes"; outputs are EXPANSION[block] x wider); thin nets for tests.
    groups: the 3x3 convolutions' groups (ResNeXt's cardinality; bottleneck only).
    width_per_group: channels per group at stage width 64 (ResNeXt's d; bottleneck only).
    shortcuts: False builds the plain net.
    num_classes: width of `fc`.
    include_top: `{"logits": ...}` output, else the layer4 features pooled per `pooling`.
    pooling: with include_top=False: None, "avg" or "max".
    batch_norm: torchvision's batch norm (gamma, epsilon 1e-5, momentum 0.9 in Keras terms).

  Returns:
    A functional `keras.Model` named `name`.
  """
  units, widths = tuple(units), tuple(widths)
  check_options(units, widths, groups, width_per_group, shortcuts, block=block,
                stages=len(STAGE_WIDTHS))
  # 224 x 224 x 3
  x = conv(inputs, widths[0], 7, strides=2, name="conv1")  # torchvision: inplanes = 64
  x = batch_norm(x, name="bn1")
  x = keras.layers.ReLU(name="relu")(x)
  # 112 x 112 x 64
  x = keras.layers.ZeroPadding2D(1, name="maxpool.pad")(x)
  x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
  # 56 x 56 x 64
  for stage, (num_units, planes, stage_stride) in enumerate(
      zip(units, widths, STAGE_STRIDES), start=1):
    for unit in range(num_units):
      unit_name, strides = f"layer{stage}.{unit}", stage_stride if unit == 0 else 1
      if block == BASIC:
        x = basic_block(x, planes, strides, name=unit_name, batch_norm=batch_norm,
                        shortcuts=shortcuts)
      else:
        width = int(planes * (width_per_group / 64.0)) * groups
        if width < 1:
          raise ValueError(f"Stage width {planes} with width_per_group={width_per_group} leaves "
                           "no channel per group (torchvision: int(planes * width_per_group / 64)"
                           "); raise widths or width_per_group.")
        x = bottleneck_block(x, width, planes * EXPANSION[BOTTLENECK], strides, name=unit_name,
                             batch_norm=batch_norm, groups=groups, shortcuts=shortcuts)
    x = layers.identity(x, name=f"layer{stage}")
    # layer1: 56 x 56 x 256, layer2: 28 x 28 x 512, layer3: 14 x 14 x 1024, layer4: 7 x 7 x 2048
    # (basic blocks: 64 / 128 / 256 / 512 channels)
  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name=name)
  x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  # 2048 (basic blocks: 512)
  logits = layers.dense_logits(x, num_classes, name="fc")
  # num_classes
  return keras.Model(inputs, {"logits": logits}, name=name)


def endpoints(net: Net) -> tuple[str, ...]:
  """Endpoint names of one Table 1 column (feature_extractor names)."""
  units = [f"layer{s}.{u}" for s, n in enumerate(net.units, start=1) for u in range(n)]
  return ("relu", "maxpool", *units, "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")


def _builder(name: str, net: Net):
  """The registry builder of one Table 1 column; its keyword-only options are the family options."""

  def build(inputs,
            *,
            num_classes: int,
            include_top: bool,
            pooling: str | None,
            aux_logits: bool,
            dropout_keep_prob: float,
            batch_norm: layers.BatchNorm,
            units: tuple[int, ...] = net.units,
            widths: tuple[int, ...] = STAGE_WIDTHS,
            groups: int = net.groups,
            width_per_group: int = net.width_per_group,
            shortcuts: bool = net.shortcuts) -> keras.Model:
    # No aux head (create_model refuses aux_logits); torchvision has no dropout.
    del aux_logits, dropout_keep_prob
    return resnet(inputs, name=name, block=net.block, units=units, widths=widths, groups=groups,
                  width_per_group=width_per_group, shortcuts=shortcuts, num_classes=num_classes,
                  include_top=include_top, pooling=pooling, batch_norm=batch_norm)

  build.__name__ = build.__qualname__ = name
  build.__doc__ = (
      f"Builds torchvision's {name} ({net.block} blocks, {'/'.join(map(str, net.units))} units; "
      f"use `create_model({name!r}, ...)`).\n\n"
      "  Options (keyword, via create_model): units, widths, groups, width_per_group, shortcuts;\n"
      "  see `resnet`.\n")
  return build


def _register_all() -> dict[str, object]:
  builders = {}
  for name, net in TABLE_1.items():
    builders[name] = register_model(
        name,
        slim_scope=name,
        default_image_size=224,
        min_image_size=MIN_IMAGE_SIZE,
        has_aux_logits=False,
        endpoints=endpoints(net),
        preprocessing="torchvision",
        num_classes=1000,
        crop_fraction=0.875,  # Resize(256) + CenterCrop(224)
        batch_norm_scale=True,
        batch_norm_epsilon=BATCH_NORM_EPSILON,
        batch_norm_momentum=BATCH_NORM_MOMENTUM,
        paper=PAPER_RESNEXT if net.groups > 1 else PAPER_RESNET)(_builder(name, net))
  return builders


BUILDERS = _register_all()
