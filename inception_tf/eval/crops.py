"""Crop geometry of the evaluation protocols (1, 10, 12 and 144 crops) and the ops that cut them.

Every protocol turns one decoded image of `height` x `width` pixels into `K` crops of
`image_size` x `image_size` (S x S) pixels, evaluated as one batch whose softmax probabilities are
averaged. The geometry is the pure function `crop_geometry(height, width, image_size, crops)`; the
TF op `make_crops(image, geometry_args...)` cuts exactly those boxes. All integer arithmetic below is
exact (no float rounding except TF-slim's own central-crop formula), so `crop_geometry` gives the same
boxes for Python ints and for scalar tensors (inside `tf.data`).

Notation: `round(x)` = floor(x + 1/2); `m = min(height, width)`; resizes are TF1 `resize_bilinear`
(`align_corners=False`, no half-pixel centers) on the image scaled to [0, 1] — the resize TF-slim's
`preprocess_for_eval` used — and every crop is finally mapped to [-1, 1] by `2 * (x - 0.5)`.

**1 crop** (TF-slim's eval, `central_fraction` = 0.875 by default): on the original image, the
central box `tf.image.central_crop` takes — top = int((height - height * f) / 2) computed in float64,
left likewise, box height = height - 2 * top, box width = width - 2 * left — resized to S x S.
Identical to `inception_tf.data.preprocessing.preprocess_for_eval`.

**Scales** of the multi-crop protocols: GoogLeNet (Szegedy et al. 2015, section 7) resized the shorter
side to 256, 288, 320 and 352 pixels for 224 x 224 inputs; for another input size S these scale
proportionally: L = round(base * S / 224), e.g. 342, 384, 427, 470 for S = 299 (and L > S always).
The image is resized (aspect ratio kept) to scaled_height = round(height * L / m),
scaled_width = round(width * L / m), so its shorter side is exactly L. 224 / 256 = 0.875, so the first
scale frames the image as the single central crop does.

**Squares**: three L x L squares of the scaled image, at offsets along the longer side 0,
(long - L) // 2 and long - L (left/centre/right for a landscape image, top/middle/bottom for a
portrait one; they coincide for a square image, as in GoogLeNet's protocol, which then counts them
three times).

**Positions** inside a square with top-left corner (y, x): the S x S crops at the top-left (y, x),
top-right (y, x + L - S), bottom-left (y + L - S, x), bottom-right (y + L - S, x + L - S) corners and
the centre (y + (L - S) // 2, x + (L - S) // 2) — cut without resizing — and the whole square resized
to S x S: six positions.

**Mirrors**: every protocol except 1 crop adds the left-right mirror of each crop. The crop list is
ordered: all unmirrored crops first (scale-major, then square, then position in the order above),
followed by their mirrors in the same order (crop k + K/2 is the mirror of crop k).

- **144 crops** = 4 scales x 3 squares x 6 positions x 2 mirrors.
- **12 crops** = 1 scale (the first, 256 * S / 224) x the centre square x 6 positions x 2 mirrors.
- **10 crops** = the first scale, the 4 corners and the centre of the *whole scaled image* (not of a
  square; Krizhevsky et al.'s and Caffe's oversampling) x 2 mirrors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import tensorflow as tf

VALID_CROPS = (1, 10, 12, 144)
# GoogLeNet's shorter-side scales for 224 x 224 inputs (Szegedy et al. 2015, section 7).
GOOGLENET_SCALES = (256, 288, 320, 352)
GOOGLENET_INPUT_SIZE = 224
POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "centre", "whole")
SQUARES = ("first", "centre", "last")  # left/centre/right (landscape) or top/middle/bottom (portrait)

Int = Any  # a Python int or a scalar int32 tensor


@dataclasses.dataclass(frozen=True)
class Crop:
  """One crop: a box of the image at scale `scale` (None: the original image), resized to S x S.

  The box is (top, left, height, width) in pixels of the image at that scale; it is resized to
  S x S when it is not already S x S, then mirrored left-right when `mirror`.
  """

  scale: int | None
  top: Int
  left: Int
  height: Int
  width: Int
  mirror: bool
  square: str | None = None
  position: str | None = None


@dataclasses.dataclass(frozen=True)
class CropGeometry:
  """The crops of one image: `scales[i]` is the (height, width) the image is resized to."""

  crops_per_image: int
  image_size: int
  scales: tuple[tuple[Int, Int], ...]
  crops: tuple[Crop, ...]


def validate_crops(crops: int) -> int:
  """Returns `crops` if it is one of 1, 10, 12, 144; raises ValueError naming the valid values."""
  if isinstance(crops, str) and crops.strip().isdigit():
    crops = int(crops)
  if isinstance(crops, bool) or crops not in VALID_CROPS:
    raise ValueError(f"Unknown number of crops {crops!r}; valid values: "
                     f"{', '.join(map(str, VALID_CROPS))} (1 = central crop, 10 = corners+centre "
                     "with mirrors, 12 = one scale's centre square, 144 = GoogLeNet's protocol).")
  return int(crops)


def scale_sizes(image_size: int, crops: int) -> tuple[int, ...]:
  """Shorter-side lengths L of a protocol's scales for S x S inputs (empty for 1 crop)."""
  crops = validate_crops(crops)
  if crops == 1:
    return ()
  bases = GOOGLENET_SCALES if crops == 144 else GOOGLENET_SCALES[:1]
  # round(base * S / 224) in exact integer arithmetic.
  return tuple((2 * base * image_size + GOOGLENET_INPUT_SIZE) // (2 * GOOGLENET_INPUT_SIZE)
               for base in bases)


def _minimum(a: Int, b: Int) -> Int:
  if isinstance(a, int) and isinstance(b, int):
    return min(a, b)
  return tf.minimum(a, b)


def _central_offset(n: Int, fraction: float) -> Int:
  """`tf.image.central_crop`'s start offset: int((n - n * fraction) / 2) in float64."""
  if isinstance(n, int):
    return int((float(n) - float(n) * fraction) / 2)
  nd = tf.cast(n, tf.float64)
  return tf.cast((nd - nd * tf.constant(fraction, tf.float64)) / 2, tf.int32)


def _scaled(n: Int, length: int, shorter: Int) -> Int:
  # round(n * length / shorter) in exact integer arithmetic.
  return (2 * n * length + shorter) // (2 * shorter)


def crop_geometry(height: Int, width: Int, image_size: int, crops: int,
                  central_fraction: float = 0.875) -> CropGeometry:
  """The crops of a `height` x `width` image under a protocol (see the module docstring).

  Args:
    height: image height in pixels (Python int or scalar int32 tensor).
    width: image width in pixels (Python int or scalar int32 tensor).
    image_size: S, the model's square input size.
    crops: 1, 10, 12 or 144.
    central_fraction: the 1-crop protocol's central fraction (TF-slim: 0.875).

  Returns:
    A `CropGeometry` with `crops` crops.

  Raises:
    ValueError: an unknown `crops`, a non-positive `image_size` or a bad `central_fraction`.
  """
  crops = validate_crops(crops)
  if not isinstance(image_size, int) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
  if not 0.0 < central_fraction <= 1.0:
    raise ValueError(f"central_fraction must be in (0, 1], got {central_fraction!r}.")
  size = image_size
  if crops == 1:
    top = _central_offset(height, central_fraction)
    left = _central_offset(width, central_fraction)
    box = Crop(scale=None, top=top, left=left, height=height - 2 * top, width=width - 2 * left,
               mirror=False, position="centre")
    return CropGeometry(crops_per_image=1, image_size=size, scales=(), crops=(box,))

  shorter = _minimum(height, width)
  scales, unmirrored = [], []
  for scale_index, length in enumerate(scale_sizes(size, crops)):
    scaled_h, scaled_w = _scaled(height, length, shorter), _scaled(width, length, shorter)
    scales.append((scaled_h, scaled_w))
    if crops == 10:
      margin_h, margin_w = scaled_h - size, scaled_w - size
      corners = ((0, 0), (0, margin_w), (margin_h, 0), (margin_h, margin_w),
                 (margin_h // 2, margin_w // 2))
      for position, (top, left) in zip(POSITIONS[:5], corners):
        unmirrored.append(Crop(scale=scale_index, top=top, left=left, height=size, width=size,
                               mirror=False, position=position))
      continue
    # Square offsets along each axis; along the shorter one all three are 0.
    square_offsets = [(0, 0), ((scaled_h - length) // 2, (scaled_w - length) // 2),
                      (scaled_h - length, scaled_w - length)]
    squares = SQUARES if crops == 144 else SQUARES[1:2]
    for square in squares:
      y, x = square_offsets[SQUARES.index(square)]
      margin = length - size
      boxes = ((y, x, size), (y, x + margin, size), (y + margin, x, size),
               (y + margin, x + margin, size), (y + margin // 2, x + margin // 2, size),
               (y, x, length))
      for position, (top, left, extent) in zip(POSITIONS, boxes):
        unmirrored.append(Crop(scale=scale_index, top=top, left=left, height=extent, width=extent,
                               mirror=False, square=square, position=position))
  mirrored = [dataclasses.replace(c, mirror=True) for c in unmirrored]
  all_crops = tuple(unmirrored + mirrored)
  assert len(all_crops) == crops, (len(all_crops), crops)
  return CropGeometry(crops_per_image=crops, image_size=size, scales=tuple(scales),
                      crops=all_crops)


def describe(image_size: int, crops: int, central_fraction: float = 0.875) -> dict:
  """A JSON-able description of a protocol's geometry, written into evaluation reports."""
  crops = validate_crops(crops)
  description = {"crops": crops, "image_size": image_size, "resize": "TF1 resize_bilinear, "
                 "align_corners=False, no half-pixel centers, on [0, 1] pixels; then each model's "
                 "normalisation (inception: 2 * (x - 0.5); vgg: 255 x - RGB means; torchvision: "
                 "ImageNet mean / std)"}
  if crops == 1:
    description.update(protocol="central_crop", central_fraction=central_fraction,
                       boxes="tf.image.central_crop box of the original image, resized to S x S")
    return description
  description.update(
      protocol={10: "ten_crop", 12: "twelve_crop", 144: "googlenet_144"}[crops],
      shorter_side_scales=list(scale_sizes(image_size, crops)),
      scale_rule=f"L = round(base * {image_size} / 224) for base in "
                 f"{list(GOOGLENET_SCALES if crops == 144 else GOOGLENET_SCALES[:1])}; "
                 "image resized so its shorter side is L (aspect kept, sides rounded)",
      mirrors=True,
      order="unmirrored crops (scale, square, position) then their mirrors in the same order")
  if crops == 10:
    description.update(squares=[], positions=list(POSITIONS[:5]),
                       boxes="S x S corners and centre of the whole scaled image")
  else:
    description.update(
        squares=list(SQUARES if crops == 144 else SQUARES[1:2]),
        square_rule="L x L squares at offsets 0, (long - L) // 2, long - L along the longer side",
        positions=list(POSITIONS),
        boxes="S x S crops at the 4 corners and the centre ((L - S) // 2) of the square, and the "
              "whole square resized to S x S")
  return description


def resize_bilinear_v1(images: tf.Tensor, size: Sequence[Int]) -> tf.Tensor:
  """TF1 `resize_bilinear(align_corners=False)`: no half-pixel centers, float32 output."""
  squeeze = images.shape.rank == 3
  if squeeze:
    images = images[tf.newaxis]
  out = tf.raw_ops.ResizeBilinear(images=images, size=tf.stack([size[0], size[1]]),
                                  align_corners=False, half_pixel_centers=False)
  return out[0] if squeeze else out


def normalizer(kind: str):
  """[0, 1] RGB crops -> the network's input, for a preprocessing kind of the multi-crop protocols.

  "inception" and "cifar": `2 * (x - 0.5)`; "vgg": slim's mean subtraction on the 0..255 scale;
  "torchvision": ImageNet mean/std. The geometry (and its TF1 bilinear resizes) is the protocol's
  for every kind.
  """
  # pylint: disable=import-outside-toplevel
  if kind in ("inception", "cifar"):
    return lambda batch: (batch - 0.5) * 2.0
  if kind == "vgg":
    from inception_tf.data import vgg_preprocessing
    return lambda batch: vgg_preprocessing.normalize(batch * 255.0)
  if kind == "torchvision":
    from inception_tf.data import torchvision_preprocessing
    return lambda batch: torchvision_preprocessing.normalize(batch * 255.0)
  raise ValueError(f"Unknown preprocessing {kind!r}; use inception, vgg, torchvision or cifar.")


def make_crops(image: tf.Tensor, image_size: int, crops: int,
               central_fraction: float = 0.875, normalize=None) -> tf.Tensor:
  """Cuts one decoded image into its `crops` crops, as one batch of model inputs.

  Works eagerly and inside `tf.data` (dynamic image shapes). The image is converted to float in
  [0, 1] as TF-slim does (`tf.image.convert_image_dtype`), each scale is resized once, the boxes are
  sliced, boxes that are not S x S are resized, mirrors are flipped, and the batch is scaled to
  [-1, 1] (or mapped by `normalize`).

  Args:
    image: [height, width, 3] uint8 (or float in [0, 1]) image.
    image_size: S.
    crops: 1, 10, 12 or 144.
    central_fraction: the 1-crop central fraction.
    normalize: [0, 1] crops -> model input (`normalizer(kind)`); None: Inception's [-1, 1].

  Returns:
    float32 [crops, S, S, 3].
  """
  crops = validate_crops(crops)
  if image.dtype != tf.float32:
    image = tf.image.convert_image_dtype(image, tf.float32)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  if image.shape[0] is not None and image.shape[1] is not None:
    height, width = int(image.shape[0]), int(image.shape[1])
  geometry = crop_geometry(height, width, image_size, crops, central_fraction)
  scaled = [resize_bilinear_v1(image, hw) for hw in geometry.scales]
  size = image_size
  out = []
  for crop in geometry.crops[:len(geometry.crops) // 2] if crops > 1 else geometry.crops:
    source = image if crop.scale is None else scaled[crop.scale]
    box = source[crop.top:crop.top + crop.height, crop.left:crop.left + crop.width]
    if crop.position == "whole" or crop.scale is None:
      box = resize_bilinear_v1(box, (size, size))
    out.append(tf.reshape(box, [size, size, 3]))
  batch = tf.stack(out)
  if crops > 1:
    batch = tf.concat([batch, tf.reverse(batch, axis=[2])], axis=0)
  return (normalize or normalizer("inception"))(batch)
