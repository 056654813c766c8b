"""TF-slim's `vgg_preprocessing`, the input of slim's `resnet_v1_*` (and VGG) checkpoints.

slim's code (`preprocessing/vgg_preprocessing.py`, the version with `tf.rint` sizes):

* eval: `_aspect_preserving_resize(image, 256)` — the shorter side becomes 256, the other side
  `rint(side * (256 / shorter))` computed in float32, with TF1 `resize_bilinear(align_corners=False)`
  (no half-pixel centers) on the uint8 image, float32 out in 0..255; `_central_crop` of
  `output_height` x `output_width` at offsets `(resized - crop) // 2`; the RGB means
  123.68 / 116.78 / 103.94 subtracted.
* train: the shorter side resized to a random integer in [256, 512], a random crop (offsets uniform
  over the valid range), a random left-right flip, mean subtraction.

The resize and the central crop are `_aspect_preserving_resize` and `preprocess_vgg_for_eval`
(also `preprocessing.preprocess_vgg_for_eval`, the input pipeline's (height, width) form), bit-exact with slim's TF1 ops (eval and train:
tests/data/test_model_preprocessing.py, on scikit-image's photos at two sizes). This module
makes them a function of the model's input size: for `image_size` S the eval side is
`floor(S / crop_fraction)` and the train range [that, twice that] — slim's 256 and [256, 512] at
S = 224 with crop fraction 0.875 (slim keeps 256 whatever the output size).

Multi-crop evaluation hooks (the same four functions in `torchvision_preprocessing`):
`to_pixels(image)` decodes / converts the input to 0..255 RGB, `resize_shorter_side(pixels, side)`
gives a scale (float32 0..255, slim's sizes and resize), boxes are sliced from it, `resize(pixels,
S, S)` resizes a box that is not S x S, and `normalize` maps 0..255 crops to the network's input;
`normalize(central box of resize_shorter_side(to_pixels(x), resize_side_for_crop(S)))` is
`preprocess_for_eval(x, S)`.
"""

from __future__ import annotations

import tensorflow as tf

from inception_tf.data.image_ops import TensorLike as _TensorLike
from inception_tf.data.image_ops import as_image as _as_image
from inception_tf.data.image_ops import check_size as _check_size
from inception_tf.data.image_ops import resize_side_for_crop
from inception_tf.data.image_ops import seed_table as _seeds
from inception_tf.data.image_ops import to_float

VGG_MEANS = (123.68, 116.78, 103.94)  # RGB, 0..255 scale
RESIZE_SIDE_MIN = 256  # eval side, smallest train side (S = 224)
RESIZE_SIDE_MAX = 512  # largest train side (S = 224)
_NUM_DRAWS = 4  # resize side, crop top, crop left, flip


def _aspect_preserving_resize(image: tf.Tensor, smallest_side) -> tf.Tensor:
  """Slim's `_aspect_preserving_resize`: smallest side -> `smallest_side` (rint of the scaled
  sizes in float32), TF1 bilinear resize without half-pixel centers. float32 output."""
  shape = tf.shape(image)
  height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  side = tf.cast(smallest_side, tf.float32)
  scale = tf.where(height > width, side / width, side / height)
  new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
  new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
  resized = tf.raw_ops.ResizeBilinear(images=image[tf.newaxis], size=tf.stack([new_height, new_width]),
                                      align_corners=False, half_pixel_centers=False)
  return resized[0]


def preprocess_vgg_for_eval(image: _TensorLike, height: int, width: int,
                            resize_side: int = RESIZE_SIDE_MIN) -> tf.Tensor:
  """TF-slim's `vgg_preprocessing.preprocess_for_eval`: aspect-preserving resize of the smallest
  side to `resize_side`, central `height` x `width` crop, RGB mean subtraction (0..255 scale).

  Args:
    image: encoded bytes or `[H, W, C]` uint8 image (C in 1..4).
    height: output height.
    width: output width.
    resize_side: smallest side after the resize (must be >= height and width).

  Returns:
    float32 `[height, width, 3]`, mean-subtracted.
  """
  _check_size(height, width)
  if resize_side < max(height, width):
    raise ValueError(f"resize_side={resize_side} must be >= the crop size {height}x{width}.")
  resized = _aspect_preserving_resize(_as_image(image), resize_side)
  shape = tf.shape(resized)
  top, left = (shape[0] - height) // 2, (shape[1] - width) // 2
  crop = tf.ensure_shape(resized[top:top + height, left:left + width], [height, width, 3])
  return crop - tf.constant(VGG_MEANS, tf.float32)


def preprocess_vgg_for_train(image: _TensorLike, height: int, width: int, *, seed=None,
                             resize_side_min: int = RESIZE_SIDE_MIN,
                             resize_side_max: int = RESIZE_SIDE_MAX) -> tf.Tensor:
  """TF-slim's `vgg_preprocessing.preprocess_for_train`: aspect-preserving resize of the smallest
  side to a random size in [resize_side_min, resize_side_max], random crop, random left-right flip,
  RGB mean subtraction. Stateless: equal seeds give equal outputs.

  Returns:
    float32 `[height, width, 3]`, mean-subtracted.
  """
  _check_size(height, width)
  if resize_side_min < max(height, width) or resize_side_max < resize_side_min:
    raise ValueError(f"Need crop size <= resize_side_min <= resize_side_max; got {height}x{width}, "
                     f"{resize_side_min}, {resize_side_max}.")
  seeds = _seeds(seed)
  side = tf.random.stateless_uniform([], seed=seeds[1], minval=resize_side_min,
                                     maxval=resize_side_max + 1, dtype=tf.int32)
  resized = _aspect_preserving_resize(_as_image(image), side)
  crop = tf.image.stateless_random_crop(resized, [height, width, 3], seed=seeds[0])
  crop = tf.image.stateless_random_flip_left_right(crop, seed=seeds[2])
  return crop - tf.constant(VGG_MEANS, tf.float32)


def to_pixels(image) -> tf.Tensor:
  """Bytes or an image (C in 1..4) -> RGB pixels on slim's 0..255 scale.

  Bytes are decoded as slim did (`decode_image`, TF's default JPEG decoder); uint8 images are kept
  as they are (the resize converts them, as slim's); floats are taken to be in [0, 1] and scaled
  to 0..255 (float32); other integer types are scaled to 0..255.
  """
  image = _as_image(image)
  if image.dtype == tf.uint8:
    return image
  if image.dtype.is_floating:
    return tf.cast(image, tf.float32) * 255.0
  return to_float(image) * 255.0


def resize_shorter_side(pixels: tf.Tensor, side) -> tf.Tensor:
  """slim's `_aspect_preserving_resize`: float32 `[H', W', 3]` in 0..255, shorter side `side`."""
  return _aspect_preserving_resize(pixels, side)


def resize(pixels: tf.Tensor, height, width) -> tf.Tensor:
  """TF1 `resize_bilinear(align_corners=False)` (no half-pixel centers) on 0..255 pixels.

  slim's resize without the aspect-preserving size: for multi-crop boxes resized to S x S.
  Returns float32 `[height, width, C]` on the input's 0..255 scale.
  """
  resized = tf.raw_ops.ResizeBilinear(images=pixels[tf.newaxis], size=tf.stack([height, width]),
                                      align_corners=False, half_pixel_centers=False)
  return resized[0]


def normalize(pixels: tf.Tensor) -> tf.Tensor:
  """slim's `_mean_image_subtraction`: 0..255 RGB pixels (uint8 or float) minus the RGB means."""
  return tf.cast(pixels, tf.float32) - tf.constant(VGG_MEANS, tf.float32)


def preprocess_for_eval(image, image_size: int = 224, resize_side: int | None = None) -> tf.Tensor:
  """slim's `vgg_preprocessing.preprocess_for_eval` at an `image_size` x `image_size` output.

  Args:
    image: encoded bytes or an image `[H, W, C]` (C in 1..4; uint8, or float in [0, 1]).
    image_size: the square crop S.
    resize_side: the shorter side before the crop; None: `resize_side_for_crop(S)` (256 for 224).

  Returns:
    float32 `[S, S, 3]`, RGB minus the means (0..255 scale).

  Raises:
    ValueError: a bad size, or `resize_side` below the crop size.
  """
  if resize_side is None:
    resize_side = resize_side_for_crop(image_size)
  return preprocess_vgg_for_eval(to_pixels(image), image_size, image_size,
                                 resize_side=resize_side)


def train_draws(seed, resize_side_min: int, resize_side_max: int) -> dict:
  """The random numbers of `preprocess_for_train` for `seed` (a pure function of the seed).

  Returns:
    `{"side": int32 in [resize_side_min, resize_side_max], "top", "left": int32 in [0, 2^31 - 1)
    (reduced modulo the number of valid offsets once the resized size is known), "flip": bool}`.
  """
  seeds = tf.random.experimental.stateless_split(
      _seeds(seed)[0], num=_NUM_DRAWS)
  side = tf.random.stateless_uniform([], seeds[0], minval=resize_side_min,
                                     maxval=resize_side_max + 1, dtype=tf.int32)
  top = tf.random.stateless_uniform([], seeds[1], minval=0, maxval=2**31 - 1, dtype=tf.int32)
  left = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=2**31 - 1, dtype=tf.int32)
  flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
  return {"side": side, "top": top, "left": left, "flip": flip}


def preprocess_for_train(image, image_size: int = 224, *, seed=None,
                         resize_side_min: int | None = None, resize_side_max: int | None = None,
                         random_flip: bool = True) -> tf.Tensor:
  """slim's `vgg_preprocessing.preprocess_for_train` at an `image_size` x `image_size` output.

  Args:
    image: encoded bytes or an image `[H, W, C]` (C in 1..4; uint8, or float in [0, 1]).
    image_size: the square crop S.
    seed: None (random), an int or a shape [2] integer tensor; equal seeds give equal outputs.
    resize_side_min: smallest shorter side; None: `resize_side_for_crop(S)` (256 for 224).
    resize_side_max: largest shorter side; None: twice `resize_side_min` (512).
    random_flip: the random left-right flip.

  Returns:
    float32 `[S, S, 3]`, RGB minus the means (0..255 scale).

  Raises:
    ValueError: a bad size or side range.
  """
  _check_size(image_size, image_size)
  if resize_side_min is None:
    resize_side_min = resize_side_for_crop(image_size)
  if resize_side_max is None:
    resize_side_max = 2 * resize_side_min
  if not image_size <= resize_side_min <= resize_side_max:
    raise ValueError(f"Need image_size <= resize_side_min <= resize_side_max; got {image_size}, "
                     f"{resize_side_min}, {resize_side_max}.")
  draws = train_draws(seed, resize_side_min, resize_side_max)
  resized = resize_shorter_side(to_pixels(image), draws["side"])  # [H', W', 3], shorter = side
  shape = tf.shape(resized)
  top = draws["top"] % (shape[0] - image_size + 1)
  left = draws["left"] % (shape[1] - image_size + 1)
  crop = tf.ensure_shape(resized[top:top + image_size, left:left + image_size],
                         [image_size, image_size, 3])
  if random_flip:
    crop = tf.where(draws["flip"], tf.reverse(crop, axis=[1]), crop)
  return normalize(crop)
