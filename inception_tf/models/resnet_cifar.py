"""The small-image networks of the ResNet and ResNeXt papers, built from `resnet.py`'s units.

ResNet paper (He et al. 2015, arXiv:1512.03385) §4.2, "CIFAR-10 and Analysis": a 3x3 convolution,
then 3 stages of 2n 3x3 layers (n basic blocks) with 16, 32, 64 filters on 32x32, 16x16, 8x8 maps,
global average pooling and a fully connected layer: 6n + 2 weighted layers.

    paper (§4.2)                     layers here                     output at 32
    3x3 conv, 16                     conv1, bn1, relu                32 x 32 x 16
    2n layers, 3x3, 16               layer1.{0..n-1}                 32 x 32 x 16
    2n layers, 3x3, 32, first /2     layer2.{0..n-1}                 16 x 16 x 32
    2n layers, 3x3, 64, first /2     layer3.{0..n-1}                  8 x 8 x 64
    global average pool              avgpool                         64
    10-way fc                        fc (float32)                    num_classes

Shortcuts are option A (§3.3, §4.2: "identity shortcuts in all cases", so residual and plain nets
have exactly the same parameters): where a unit halves the grid and doubles the width, the shortcut
takes every second pixel (`layerS.0.shortcut.subsample`, a 1x1 max pool with stride 2) and pads the
missing channels with zeros, half before and half after the input's channels (`.expand` / `.pad` /
`.shortcut`: Reshape, ZeroPadding3D over the channel axis, Reshape; built-in layers only). The
widely used PyTorch re-implementations pad the same way. `shortcut="B"` uses torchvision's 1x1
projections there instead. `plain20` ... `plain110` are the same stacks without shortcuts (Fig. 6
left). Parameter counts (10 classes) against the paper's Table 6:

    net        n    parameters   Table 6        net        n    parameters   Table 6
    resnet20   3    269,722      0.27M          resnet56   9    853,018      0.85M
    resnet32   5    464,154      0.46M          resnet110  18   1,727,962    1.7M
    resnet44   7    658,586      0.66M          (plainN: the same counts)

ResNeXt paper (Xie et al. 2017, arXiv:1611.05431) §5.3, CIFAR: `resnext_cifar` is its template,
a 3x3 stem of 64 filters then 3 stages of 3 bottleneck blocks (29 layers) with output widths 256,
512, 1024, a 3x3 of `cardinality` groups of `bottleneck_width` channels in the first stage (doubled
at each stage, as the outputs), projection shortcuts where the shape changes, global average pool,
fc. The default is ResNeXt-29, 8x64d (Table 7: 34.4M parameters; 34,426,698 here with 10 classes);
`cardinality=16` gives 16x64d (Table 7: 68.1M; 68,155,210 here, i.e. the paper's figures are
truncated to 0.1M, not rounded). "Same complexity, different cardinality"
(Table 3's idea at CIFAR scale) is a change of `cardinality` and `bottleneck_width`, and `units` /
`widths` / `stem_width` scale the template down (e.g. Fashion-MNIST studies).

Inputs: "cifar" preprocessing (`inception_tf.data.cifar_preprocessing`), §4.2's augmentation:
4 pixels of padding, a random 32x32 crop and a random horizontal flip in training; evaluation on
the whole image (crop fraction 1.0). Instead of the paper's per-pixel mean subtraction, images are
scaled to [-1, 1]; both centre the input, and the batch norm after `conv1` normalises the first
layer's responses either way. Training recipe of §4.2 (for experiments): SGD momentum 0.9, weight
decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations.
"""

from __future__ import annotations

import keras

from inception_tf.models import layers
from inception_tf.models import resnet
from inception_tf.models.registry import register_model

# §4.2: n basic blocks per stage for the 6n + 2 layer nets.
CIFAR_DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
STAGE_WIDTHS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)
SHORTCUT_TYPES = ("A", "B")
# ResNeXt-29 (ResNeXt paper §5.3): 3 x 3 bottleneck blocks, output widths 256 / 512 / 1024.
RESNEXT_UNITS = (3, 3, 3)
RESNEXT_WIDTHS = (256, 512, 1024)
RESNEXT_STEM_WIDTH = 64
# The total stride: the smallest input whose last stage is a full 1 x 1 cell.
MIN_IMAGE_SIZE = 4
DEFAULT_IMAGE_SIZE = 32
NUM_CLASSES = 10


def zero_pad_shortcut(x, filters: int, strides: int, *, name: str):
  """Option A: subsample by `strides`, then pad zero channels up to `filters` (half each side)."""
  if strides > 1:
    x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}.subsample")(x)
  missing = filters - x.shape[-1]
  if missing < 0:
    raise ValueError(f"Option A shortcuts cannot reduce the width ({x.shape[-1]} -> {filters}).")
  if missing == 0:
    return x
  height, width, channels = x.shape[1:]
  x = keras.layers.Reshape((height, width, channels, 1), name=f"{name}.expand")(x)
  x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (missing // 2, missing - missing // 2)),
                                 name=f"{name}.pad")(x)
  return keras.layers.Reshape((height, width, filters), name=name)(x)


def _head(inputs, x, *, name: str, num_classes: int, include_top: bool, pooling: str | None):
  if not include_top:
    return keras.Model(inputs, layers.feature_output(x, pooling), name=name)
  x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  return keras.Model(inputs, {"logits": layers.dense_logits(x, num_classes, name="fc")}, name=name)


def _stem(inputs, filters: int, batch_norm: layers.BatchNorm):
  x = resnet.conv(inputs, filters, 3, name="conv1")
  x = batch_norm(x, name="bn1")
  return keras.layers.ReLU(name="relu")(x)


def cifar_resnet(inputs,
                 *,
                 name: str,
                 n: int,
                 shortcuts: bool,
                 shortcut: str,
                 num_classes: int,
                 include_top: bool,
                 pooling: str | None,
                 batch_norm: layers.BatchNorm) -> keras.Model:
  """The 6n + 2 layer CIFAR ResNet (or plain net) of §4.2.

  Args:
    inputs: a `keras.Input` [H, W, C] (32 x 32 x 3 in the paper).
    name: the model name.
    n: basic blocks per stage.
    shortcuts: False builds the plain net.
    shortcut: "A" (zero-padding identity, the paper's CIFAR choice) or "B" (1x1 projections where
      the shape changes).
    num_classes, include_top, pooling, batch_norm: see `create_model`.

  Returns:
    A functional `keras.Model` named `name`.
  """
  if not isinstance(n, int) or n < 1:
    raise ValueError(f"n (blocks per stage, depth 6n + 2) must be a positive integer, got {n!r}.")
  if shortcut not in SHORTCUT_TYPES:
    raise ValueError(f"shortcut must be one of {SHORTCUT_TYPES}, got {shortcut!r}.")
  # 32 x 32 x 3
  x = _stem(inputs, STAGE_WIDTHS[0], batch_norm)
  # 32 x 32 x 16
  for stage, (planes, stage_stride) in enumerate(zip(STAGE_WIDTHS, STAGE_STRIDES), start=1):
    for unit in range(n):
      unit_name, strides = f"layer{stage}.{unit}", stage_stride if unit == 0 else 1
      option_a = None
      if shortcuts and shortcut == "A":
        option_a = zero_pad_shortcut(x, planes, strides, name=f"{unit_name}.shortcut")
      x = resnet.basic_block(x, planes, strides, name=unit_name, batch_norm=batch_norm,
                             shortcuts=shortcuts, shortcut=option_a)
    x = layers.identity(x, name=f"layer{stage}")
    # layer1: 32 x 32 x 16, layer2: 16 x 16 x 32, layer3: 8 x 8 x 64
  return _head(inputs, x, name=name, num_classes=num_classes, include_top=include_top,
               pooling=pooling)


def _endpoints(units: tuple[int, ...]) -> tuple[str, ...]:
  unit_names = [f"layer{s}.{u}" for s, n in enumerate(units, start=1) for u in range(n)]
  stages = [f"layer{s}" for s in range(1, len(units) + 1)]
  return ("relu", *unit_names, *stages, "avgpool", "fc")


_INFO = dict(default_image_size=DEFAULT_IMAGE_SIZE, min_image_size=MIN_IMAGE_SIZE,
             has_aux_logits=False, preprocessing="cifar", num_classes=NUM_CLASSES,
             crop_fraction=1.0, batch_norm_scale=True,
             batch_norm_epsilon=resnet.BATCH_NORM_EPSILON,
             batch_norm_momentum=resnet.BATCH_NORM_MOMENTUM)


def _cifar_builder(name: str, n: int, shortcuts: bool):
  """The registry builder of one §4.2 net; `shortcut` ("A"/"B") is its family option."""

  def build(inputs,
            *,
            num_classes: int,
            include_top: bool,
            pooling: str | None,
            aux_logits: bool,
            dropout_keep_prob: float,
            batch_norm: layers.BatchNorm,
            shortcut: str = "A") -> keras.Model:
    # No aux head (create_model refuses aux_logits); no dropout in the papers.
    del aux_logits, dropout_keep_prob
    return cifar_resnet(inputs, name=name, n=n, shortcuts=shortcuts, shortcut=shortcut,
                        num_classes=num_classes, include_top=include_top, pooling=pooling,
                        batch_norm=batch_norm)

  build.__name__ = build.__qualname__ = name
  kind = "ResNet" if shortcuts else "plain net"
  build.__doc__ = (f"Builds the {6 * n + 2}-layer CIFAR {kind} of the ResNet paper §4.2 "
                   f"(n = {n}; use `create_model({name!r}, ...)`; option: shortcut='A'|'B').\n")
  return build


def _register_cifar_nets() -> dict[str, object]:
  builders = {}
  for depth, n in CIFAR_DEPTHS.items():
    for prefix, shortcuts in (("resnet", True), ("plain", False)):
      name = f"{prefix}{depth}"
      builders[name] = register_model(
          name, slim_scope=name, endpoints=_endpoints((n, n, n)), paper=resnet.PAPER_RESNET,
          **_INFO)(_cifar_builder(name, n, shortcuts))
  return builders


BUILDERS = _register_cifar_nets()


@register_model("resnext_cifar", slim_scope="resnext_cifar", endpoints=_endpoints(RESNEXT_UNITS),
                paper=resnet.PAPER_RESNEXT, **_INFO)
def resnext_cifar(inputs,
                  *,
                  num_classes: int,
                  include_top: bool,
                  pooling: str | None,
                  aux_logits: bool,
                  dropout_keep_prob: float,
                  batch_norm: layers.BatchNorm,
                  cardinality: int = 8,
                  bottleneck_width: int = 64,
                  units: tuple[int, ...] = RESNEXT_UNITS,
                  widths: tuple[int, ...] = RESNEXT_WIDTHS,
                  stem_width: int = RESNEXT_STEM_WIDTH) -> keras.Model:
  """The ResNeXt paper's CIFAR template (§5.3); defaults build ResNeXt-29, 8x64d.

  Args:
    inputs: a `keras.Input` [H, W, C].
    num_classes, include_top, pooling, batch_norm: see `create_model`.
    aux_logits: always False here (create_model refuses it: no auxiliary head).
    dropout_keep_prob: ignored (the paper uses no dropout).
    cardinality: C, the groups of every 3x3 convolution.
    bottleneck_width: d, channels per group in the first stage (doubled at every stage).
    units: bottleneck blocks per stage (29 layers: (3, 3, 3)); the stage count follows its length.
    widths: output widths of the stages (256, 512, 1024).
    stem_width: filters of the 3x3 stem convolution (64).

  Returns:
    A functional `keras.Model` named "resnext_cifar".
  """
  # No aux head (create_model refuses aux_logits); no dropout in the papers.
  del aux_logits, dropout_keep_prob
  units, widths = tuple(units), tuple(widths)
  resnet.check_options(units, widths, cardinality, bottleneck_width, True,
                       block=resnet.BOTTLENECK, stages=len(units))
  if not isinstance(stem_width, int) or stem_width < 1:
    raise ValueError(f"stem_width must be a positive integer, got {stem_width!r}.")
  # 32 x 32 x 3
  x = _stem(inputs, stem_width, batch_norm)
  # 32 x 32 x 64
  for stage, (num_units, out_width) in enumerate(zip(units, widths), start=1):
    group_width = cardinality * bottleneck_width * 2 ** (stage - 1)
    for unit in range(num_units):
      strides = 2 if unit == 0 and stage > 1 else 1
      x = resnet.bottleneck_block(x, group_width, out_width, strides, name=f"layer{stage}.{unit}",
                                  batch_norm=batch_norm, groups=cardinality)
    x = layers.identity(x, name=f"layer{stage}")
    # layer1: 32 x 32 x 256, layer2: 16 x 16 x 512, layer3: 8 x 8 x 1024
  return _head(inputs, x, name="resnext_cifar", num_classes=num_classes, include_top=include_top,
               pooling=pooling)
