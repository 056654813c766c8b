"""Image helpers every preprocessing kind shares (a leaf: it imports no other module of the package).

Decoding to RGB, channel and dtype conversion, TF1's bilinear resize (slim's eval resize), size
checks, the stateless seed table the random transforms draw from, and the eval resize side of a
crop fraction. `preprocessing` (Inception), `vgg_preprocessing`, `torchvision_preprocessing` and
`cifar_preprocessing` build on these; `preprocessing.by_kind` picks among them, so none of them may
import `preprocessing`.
"""

from __future__ import annotations

import math
from typing import Union

import tensorflow as tf

TensorLike = Union[tf.Tensor, "np.ndarray", bytes, str]  # noqa: F821

CENTRAL_FRACTION = 0.875  # slim's eval central crop (and 224 / 256 of the VGG / torchvision evals)
# Independent stateless seeds per example: crop, resize method, flip, colour order, brightness,
# saturation, hue, contrast (Inception's train draws; the other kinds use the first entries).
NUM_SEEDS = 8


# Preprocessing kinds whose reference decodes JPEGs with libjpeg's accurate integer IDCT (PIL, so
# torchvision); TF-slim's kinds decode with TF's default (fast) IDCT, as slim does.
ACCURATE_JPEG_KINDS = ("torchvision",)


def decode_image_rgb(image_bytes: TensorLike, *, accurate_jpeg: bool = False) -> tf.Tensor:
  """Decodes JPEG, PNG, GIF (first frame) or BMP bytes to a uint8 RGB image `[H, W, 3]`.

  Grayscale is replicated to RGB and alpha is dropped; CMYK JPEGs are converted by libjpeg.

  Args:
    image_bytes: scalar string tensor (or Python bytes) with the encoded image.
    accurate_jpeg: decode JPEGs with the accurate integer IDCT (PIL's and so torchvision's) rather
      than TF's default fast one (TF-slim's); see `ACCURATE_JPEG_KINDS`. Lossless formats decode
      the same either way.

  Returns:
    uint8 tensor `[H, W, 3]`.

  Raises:
    tf.errors.InvalidArgumentError: at run time, if the bytes are not a decodable image.
  """
  if accurate_jpeg:
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: decode_image_rgb(image_bytes))
  else:
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Returns `image` (`[..., H, W, C]`, C in 1..4) with 3 channels: gray replicated, alpha dropped.

  Raises:
    ValueError: if the static channel count is not 1, 2, 3 or 4.
  """
  image = tf.convert_to_tensor(image)
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels in (1, 2):
    return tf.concat([image[..., :1]] * 3, axis=-1)
  if channels == 4:
    return image[..., :3]
  if channels is not None:
    raise ValueError(f"Images must have 1, 2, 3 or 4 channels (gray, gray+alpha, RGB, RGBA); got "
                     f"shape {image.shape}.")
  num_channels = tf.shape(image)[-1]
  image = tf.cond(num_channels < 3, lambda: tf.concat([image[..., :1]] * 3, axis=-1),
                  lambda: image[..., :3])
  return tf.ensure_shape(image, image.shape[:-1].concatenate([3]))


def to_float(image: tf.Tensor) -> tf.Tensor:
  """Integer images -> float32 in [0, 1] (`convert_image_dtype`, as slim); floats -> float32."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.float32:
    return image
  if image.dtype.is_floating:
    return tf.cast(image, tf.float32)
  return tf.image.convert_image_dtype(image, tf.float32)


def resize_bilinear_tf1(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """TF1 `resize_bilinear(align_corners=False)`: no half-pixel centers. float32 output."""
  batched = image if image.shape.rank == 4 else image[tf.newaxis]
  resized = tf.raw_ops.ResizeBilinear(images=to_float(batched), size=[height, width],
                                      align_corners=False, half_pixel_centers=False)
  return resized if image.shape.rank == 4 else resized[0]


def as_image(image_bytes_or_image: TensorLike) -> tf.Tensor:
  """Decodes bytes, converts to RGB; keeps the input dtype of decoded images."""
  image = tf.convert_to_tensor(image_bytes_or_image)
  if image.dtype == tf.string:
    return decode_image_rgb(image)
  if image.shape.rank is not None and image.shape.rank not in (3, 4):
    raise ValueError(f"Expected an image [H, W, C] (or a batch [N, H, W, C]) or encoded bytes; got "
                     f"shape {image.shape}.")
  return to_rgb(image)


def check_size(height: int, width: int) -> None:
  if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
    raise ValueError(f"height and width must be positive ints; got height={height!r}, "
                     f"width={width!r}.")


def seed_table(seed) -> tf.Tensor:
  """A `[NUM_SEEDS, 2]` table of independent stateless seeds derived from `seed`."""
  if seed is None:
    base = tf.random.uniform([2], minval=0, maxval=2**31 - 1, dtype=tf.int64)
  else:
    base = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if base.shape.rank == 0:
      base = tf.stack([base, tf.constant(0, tf.int64)])
    elif base.shape != (2,):
      raise ValueError(f"seed must be an int or a shape [2] integer tensor; got shape {base.shape}.")
  return tf.random.experimental.stateless_split(base, num=NUM_SEEDS)



def resize_side_for_crop(image_size: int, crop_fraction: float = CENTRAL_FRACTION) -> int:
  """The shorter side an eval crop of `image_size` is cut from: `floor(image_size / crop_fraction)`.

  256 for 224 and 0.875: slim's vgg_preprocessing and torchvision's Resize(256) + CenterCrop(224);
  the same rule as timm's `scale_size = floor(img_size / crop_pct)` at other sizes.

  Raises:
    ValueError: a fraction outside (0, 1].
  """
  if not 0.0 < crop_fraction <= 1.0:
    raise ValueError(f"crop_fraction must be in (0, 1]; got {crop_fraction!r}.")
  return int(math.floor(image_size / crop_fraction + 1e-9))
