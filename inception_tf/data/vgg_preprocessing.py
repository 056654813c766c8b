"""TF-slim's `vgg_preprocessing`, the input of slim's `resnet_v1_*` (and VGG) checkpoints.

slim's code (`preprocessing/vgg_preprocessing.py`, the version with `tf.rint` sizes):

* eval: `_aspect_preserving_resize(image, 256)` — the shorter side becomes 256, the other side
  `rint(side * (256 / shorter))` computed in float32, with TF1 `resize_bilinear(align_corners=False)`
  (no half-pixel centers) on the uint8 image, float32 out in 0..255; `_central_crop` of
  `output_height` x `output_width` at offsets `(resized - crop) // 2`; the RGB means
  123.68 / 116.78 / 103.94 subtracted.
* train: the shorter side resized to a random integer in [256, 512], a random crop (offsets uniform
  over the valid range), a random left-right flip, mean subtraction.

The resize and the central crop are `preprocessing._aspect_preserving_resize` and
`preprocessing.preprocess_vgg_for_eval`, bit-exact with slim's TF1 ops (eval and train:
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

from inception_tf.data import preprocessing

VGG_MEANS = preprocessing.VGG_MEANS  # RGB, 0..255 scale
RESIZE_SIDE_MIN = preprocessing.VGG_RESIZE_SIDE_MIN  # 256: eval side, smallest train side (S = 224)
RESIZE_SIDE_MAX = preprocessing.VGG_RESIZE_SIDE_MAX  # 512: largest train side (S = 224)
_NUM_DRAWS = 4  # resize side, crop top, crop left, flip


def to_pixels(image) -> tf.Tensor:
  """Bytes or an image (C in 1..4) -> RGB pixels on slim's 0..255 scale.

  Bytes are decoded as slim did (`decode_image`, TF's default JPEG decoder); uint8 images are kept
  as they are (the resize converts them, as slim's); floats are taken to be in [0, 1] and scaled
  to 0..255 (float32); other integer types are scaled to 0..255.
  """
  image = preprocessing._as_image(image)  # pylint: disable=protected-access
  if image.dtype == tf.uint8:
    return image
  if image.dtype.is_floating:
    return tf.cast(image, tf.float32) * 255.0
  return preprocessing.to_float(image) * 255.0


def resize_shorter_side(pixels: tf.Tensor, side) -> tf.Tensor:
  """slim's `_aspect_preserving_resize`: float32 `[H', W', 3]` in 0..255, shorter side `side`."""
  return preprocessing._aspect_preserving_resize(pixels, side)  # pylint: disable=protected-access


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
    resize_side = preprocessing.resize_side_for_crop(image_size)
  return preprocessing.preprocess_vgg_for_eval(to_pixels(image), image_size, image_size,
                                               resize_side=resize_side)


def train_draws(seed, resize_side_min: int, resize_side_max: int) -> dict:
  """The random numbers of `preprocess_for_train` for `seed` (a pure function of the seed).

  Returns:
    `{"side": int32 in [resize_side_min, resize_side_max], "top", "left": int32 in [0, 2^31 - 1)
    (reduced modulo the number of valid offsets once the resized size is known), "flip": bool}`.
  """
  seeds = tf.random.experimental.stateless_split(
      preprocessing._seeds(seed)[0], num=_NUM_DRAWS)  # pylint: disable=protected-access
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
  preprocessing._check_size(image_size, image_size)  # pylint: disable=protected-access
  if resize_side_min is None:
    resize_side_min = preprocessing.resize_side_for_crop(image_size)
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
