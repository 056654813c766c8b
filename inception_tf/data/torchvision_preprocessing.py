"""torchvision's ImageNet transforms, the input of the torchvision-layout nets (resnet18, ...).

The published torchvision weights (`IMAGENET1K_V1`) were evaluated with

    Resize(256, bilinear, antialias=True) -> CenterCrop(224) -> ToDtype(float32, scale=True)
    -> Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

on the decoded uint8 image, and trained with `RandomResizedCrop(224, scale=(0.08, 1),
ratio=(3/4, 4/3))` and `RandomHorizontalFlip()` before the same scaling and normalisation.

* `resize_antialiased_uint8` is torch's uint8 antialiased bilinear kernel (what `transforms.v2`
  runs on a uint8 CPU tensor): per axis, PIL's triangle-filter windows and weights in float64
  (`center = scale * (i + 0.5)`, support `scale` when downscaling, weights normalised per output
  pixel), rescaled to int16 with a precision of `p` bits (the largest `p` < 22 with
  `round(max_weight * 2^(p+1)) < 2^15`), integer sums rounded as `(sum + 2^(p-1)) >> p` and
  saturated to uint8; the horizontal pass runs first and its uint8 output feeds the vertical pass.
  The arithmetic after the weights is integer, hence exact; on the three photos of
  `../shared/torch_references` the whole eval transform equals torchvision's output bit for bit
  (tests/data/test_model_preprocessing.py). TF's own `tf.image.resize(antialias=True)` (float, no
  intermediate rounding) stays within one uint8 level of it there (0.0175 after normalisation).
* JPEG bytes are decoded with libjpeg's accurate integer IDCT (`dct_method="INTEGER_ACCURATE"`,
  libjpeg's default and what torchvision and PIL decode with). TF's `decode_jpeg`/`decode_image`
  default to the fast IDCT, which moves the final input by up to 0.21 on those photos.
* `resized_size` is torchvision's `Resize(size)` output size: the shorter side becomes `size`, the
  longer `int(size * long / short)` (truncated, in float64); `center_crop` takes torchvision's
  `CenterCrop` offsets `int(round((side - crop) / 2))` with Python's round (half to even).
* `normalize` is `ToDtype(scale=True)` then `Normalize`, in float32 as torchvision: `x * (1/255)`,
  then `(x - mean) / std`.
* `preprocess_for_train` draws `RandomResizedCrop`'s box as torchvision does (10 attempts of an area
  fraction uniform in `scale` and a log-uniform aspect ratio, sides rounded, the first that fits;
  else the central crop clamped to the ratio range), from a stateless `seed`, so a seed gives the
  same output eagerly, in a `tf.function` and in `tf.data`.

Multi-crop evaluation hooks (the same four functions in `vgg_preprocessing`): `to_pixels(image)`
decodes / converts the input to uint8 RGB, `resize_shorter_side(pixels, side)` gives a scale (uint8,
torchvision's sizes and kernel), boxes are sliced from it, `resize(pixels, S, S)` resizes a box that
is not S x S, and `normalize` maps uint8 (or float 0..255) crops to the network's input;
`normalize(center_crop(resize_shorter_side(to_pixels(x), resize_side_for_crop(S)), S, S))` is
`preprocess_for_eval(x, S)`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from inception_tf.data.image_ops import as_image as _as_image
from inception_tf.data.image_ops import check_size as _check_size
from inception_tf.data.image_ops import decode_image_rgb
from inception_tf.data.image_ops import resize_side_for_crop
from inception_tf.data.image_ops import seed_table as _seeds

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_SIZE = 256  # torchvision's eval Resize for 224 x 224 inputs (crop fraction 0.875)
RANDOM_RESIZED_CROP_SCALE = (0.08, 1.0)
RANDOM_RESIZED_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params
_MAX_PRECISION = 22  # torch's bound on the int16 weights' fixed-point bits


def resized_size(height, width, size) -> tuple[tf.Tensor, tf.Tensor]:
  """torchvision's `Resize(size)` output `(new_height, new_width)` (int32 scalars).

  The shorter side becomes `size`; the longer one `int(size * long / short)` computed in float64
  and truncated, as torchvision's `_compute_resized_output_size`.
  """
  height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
  size = tf.cast(size, tf.int64)
  short, long = tf.minimum(height, width), tf.maximum(height, width)
  new_long = tf.cast(tf.cast(size * long, tf.float64) / tf.cast(short, tf.float64), tf.int64)
  new_long = tf.where(short == size, long, new_long)
  portrait = width <= height
  new_height = tf.where(portrait, new_long, size)
  new_width = tf.where(portrait, size, new_long)
  return tf.cast(new_height, tf.int32), tf.cast(new_width, tf.int32)


def _axis_weights(in_size, out_size) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """torch's int16 antialiased-bilinear weights along one axis.

  Returns:
    `(indices, weights, precision)`: int32 `[out, K]` input indices (clamped into range; their
    weights are 0 outside the window), int32 `[out, K]` fixed-point weights, int32 scalar bits.
  """
  in_f = tf.cast(in_size, tf.float64)
  scale = in_f / tf.cast(out_size, tf.float64)
  support = tf.where(scale >= 1.0, scale, tf.constant(1.0, tf.float64))  # interp_size 2 * 0.5
  taps = tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1
  invscale = tf.where(scale >= 1.0, 1.0 / scale, tf.constant(1.0, tf.float64))
  center = scale * (tf.cast(tf.range(out_size), tf.float64) + 0.5)  # [out]
  # static_cast<int64_t> truncates toward zero.
  xmin = tf.maximum(tf.cast(center - support + 0.5, tf.int64), 0)
  xmax = tf.minimum(tf.cast(center + support + 0.5, tf.int64), tf.cast(in_size, tf.int64))
  xsize = tf.clip_by_value(xmax - xmin, 0, tf.cast(taps, tf.int64))
  j = tf.range(tf.cast(taps, tf.int64))
  x = xmin[:, tf.newaxis] + j[tf.newaxis]  # [out, K]
  distance = tf.abs((tf.cast(x, tf.float64) - center[:, tf.newaxis] + 0.5) * invscale)
  inside = j[tf.newaxis] < xsize[:, tf.newaxis]
  weights = tf.where(inside & (distance < 1.0), 1.0 - distance, tf.constant(0.0, tf.float64))
  # The window's total in the kernel's order (a running sum left to right), then normalised.
  total = tf.math.cumsum(weights, axis=1)[:, -1:]
  weights = tf.where(total != 0.0, weights / tf.where(total != 0.0, total, 1.0), weights)
  wt_max = tf.reduce_max(weights)
  # The largest precision p < 22 whose doubled scale keeps the largest weight below 2^15.
  powers = tf.pow(tf.constant(2.0, tf.float64), tf.range(1, _MAX_PRECISION + 1, dtype=tf.float64))
  overflow = tf.cast(0.5 + wt_max * powers, tf.int64) >= 2**15
  precision = tf.where(tf.reduce_any(overflow), tf.argmax(tf.cast(overflow, tf.int32)),
                       tf.constant(_MAX_PRECISION, tf.int64))
  fixed = tf.cast(0.5 + weights * tf.pow(tf.constant(2.0, tf.float64),
                                         tf.cast(precision, tf.float64)), tf.int32)
  indices = tf.cast(tf.minimum(x, tf.cast(in_size, tf.int64) - 1), tf.int32)
  return indices, fixed, tf.cast(precision, tf.int32)


def _resample_rows(image: tf.Tensor, out_size) -> tf.Tensor:
  """One pass of torch's uint8 antialiased bilinear resize along axis 0 of a uint8 `[N, M, C]`.

  The sums are integers: in float32 (all taps at once, the fast way) when every one stays below
  2^24, where float32 is exact (downscaling by less than ~4x), else in int32 tap by tap (memory of
  one output whatever the window). Either way `(sum + 2^(p-1)) >> p`, saturated to uint8.
  """
  indices, weights, precision = _axis_weights(tf.shape(image)[0], out_size)
  bias = tf.bitwise.left_shift(tf.constant(1, tf.int32), precision - 1)
  largest = 255 * tf.reduce_max(tf.reduce_sum(weights, axis=1)) + bias

  def all_taps_float32():
    taps = tf.gather(tf.cast(image, tf.float32), indices)  # [out, K, M, C]
    total = tf.reduce_sum(taps * tf.cast(weights, tf.float32)[:, :, tf.newaxis, tf.newaxis], axis=1)
    scale = tf.pow(2.0, -tf.cast(precision, tf.float32))  # exact: a power of two
    return tf.cast(tf.floor((total + tf.cast(bias, tf.float32)) * scale), tf.int32)

  def tap_loop_int32():
    pixels = tf.cast(image, tf.int32)
    out_shape = tf.concat([[out_size], tf.shape(image)[1:]], axis=0)

    def body(k, total):
      return k + 1, total + tf.gather(pixels, indices[:, k]) * weights[:, k, tf.newaxis, tf.newaxis]

    _, total = tf.while_loop(lambda k, _: k < tf.shape(weights)[1], body,
                             (tf.constant(0), tf.fill(out_shape, bias)))
    return tf.bitwise.right_shift(total, precision)

  total = tf.cond(largest < 2**24, all_taps_float32, tap_loop_int32)
  return tf.cast(tf.clip_by_value(total, 0, 255), tf.uint8)


@tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8),
                              tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)],
             autograph=False)  # Python control flow only (see data.pipeline.plain_map)
def _resize_graph(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
  # One graph for every size: eagerly, the passes would otherwise run op by op.
  shape = tf.shape(image)

  def horizontal():  # columns first, as torch; gathers along the first axis are the fast ones
    return tf.transpose(_resample_rows(tf.transpose(image, [1, 0, 2]), width), [1, 0, 2])

  image = tf.cond(shape[1] == width, lambda: image, horizontal)
  return tf.cond(shape[0] == height, lambda: image, lambda: _resample_rows(image, height))


def resize_antialiased_uint8(image: tf.Tensor, height, width) -> tf.Tensor:
  """torch's uint8 antialiased bilinear resize (`interpolate(..., antialias=True)` on uint8).

  Args:
    image: uint8 `[H, W, C]`.
    height: output height (int or int32 scalar).
    width: output width.

  Returns:
    uint8 `[height, width, C]`: horizontal pass first, rounded to uint8, then the vertical pass.
  """
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise ValueError(f"resize_antialiased_uint8 takes a uint8 image; got {image.dtype!r}.")
  resized = _resize_graph(image, tf.cast(height, tf.int32), tf.cast(width, tf.int32))
  return tf.ensure_shape(resized, [None, None, image.shape[-1]])


resize = resize_antialiased_uint8  # the multi-crop hook's name (see the module docstring)


def resize_shorter_side(image: tf.Tensor, size) -> tf.Tensor:
  """torchvision's `Resize(size, antialias=True)` of a uint8 `[H, W, C]` image (uint8 out)."""
  shape = tf.shape(image)
  new_height, new_width = resized_size(shape[0], shape[1], size)
  return resize_antialiased_uint8(image, new_height, new_width)


def center_crop(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """torchvision's `CenterCrop`: offsets `int(round((side - crop) / 2))`, round half to even.

  The image must be at least `height` x `width` (torchvision would pad a smaller one).
  """
  shape = tf.shape(image)

  def offset(side, crop):
    return tf.cast(tf.round(tf.cast(side - crop, tf.float64) / 2.0), tf.int32)  # half to even

  top, left = offset(shape[0], height), offset(shape[1], width)
  crop = image[top:top + height, left:left + width]
  return tf.ensure_shape(crop, [height, width, image.shape[-1]])


def _normalize_table() -> np.ndarray:
  """float32 `[256 * 3]`: `normalize` of every uint8 value (v * 3 + channel), in numpy float32.

  numpy rounds each float32 operation as torch does. A lookup keeps graph optimisations from
  changing the result: inside a `tf.function`, `(x * c - mean) / std` with in-graph constants
  comes out up to 2.4e-7 off the eager result (measured, TF 2.21).
  """
  values = np.arange(256, dtype=np.float32)[:, np.newaxis]
  scaled = values * np.float32(1.0 / 255.0)
  table = (scaled - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
  return table.astype(np.float32).reshape(-1)


_NORMALIZE_TABLE = _normalize_table()


def normalize(pixels: tf.Tensor) -> tf.Tensor:
  """`ToDtype(float32, scale=True)` + ImageNet `Normalize`: 0..255 pixels -> the network's input.

  Args:
    pixels: `[..., 3]` uint8, or float in 0..255 (e.g. crops of a float resize).

  Returns:
    float32, `(x / 255 - mean) / std` per RGB channel, rounded as torchvision computes it in
    float32 (`x * float32(1/255)`, then subtract, then divide): uint8 input through a 768-entry
    lookup table (identical eagerly, in graphs and under XLA), float input arithmetically.
  """
  pixels = tf.convert_to_tensor(pixels)
  if pixels.dtype == tf.uint8:
    index = tf.cast(pixels, tf.int32) * 3 + tf.range(3, dtype=tf.int32)
    return tf.gather(tf.constant(_NORMALIZE_TABLE), index)
  scaled = tf.cast(pixels, tf.float32) * tf.constant(1.0 / 255.0, tf.float32)
  return (scaled - tf.constant(IMAGENET_MEAN, tf.float32)) / tf.constant(IMAGENET_STD, tf.float32)


def decode_rgb(image_bytes) -> tf.Tensor:
  """Decodes bytes to uint8 RGB `[H, W, 3]` as torchvision and PIL do: JPEG with the accurate IDCT.

  Other formats (PNG, GIF, BMP) are lossless and decode the same with any decoder.
  """
  return decode_image_rgb(image_bytes, accurate_jpeg=True)


def to_pixels(image) -> tf.Tensor:
  """Bytes or an image with 1..4 channels -> uint8 RGB `[H, W, 3]` (floats in [0, 1] rounded)."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.string:
    return decode_rgb(image)
  image = _as_image(image)
  if image.shape.rank != 3:
    raise ValueError(f"Expected one image [H, W, C] or encoded bytes; got shape {image.shape}.")
  if image.dtype != tf.uint8:
    image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
  return image


def preprocess_for_eval(image, image_size: int = 224, resize_size: int | None = None) -> tf.Tensor:
  """torchvision's eval transform: Resize(resize_size), CenterCrop(image_size), scale, Normalize.

  Args:
    image: encoded bytes or an image `[H, W, C]` (C in 1..4; uint8, or float in [0, 1]).
    image_size: the square crop S.
    resize_size: the shorter side before the crop; None: `resize_side_for_crop(S)` (256 for 224).

  Returns:
    float32 `[S, S, 3]`.

  Raises:
    ValueError: a bad size, a resize smaller than the crop, or a bad channel count.
  """
  _check_size(image_size, image_size)
  if resize_size is None:
    resize_size = resize_side_for_crop(image_size)
  if resize_size < image_size:
    raise ValueError(f"resize_size={resize_size} must be >= image_size={image_size} (the crop is "
                     "taken from the resized image).")
  resized = resize_shorter_side(to_pixels(image), resize_size)
  return normalize(center_crop(resized, image_size, image_size))


def random_resized_crop_box(height, width, seed, *,
                            scale: Sequence[float] = RANDOM_RESIZED_CROP_SCALE,
                            ratio: Sequence[float] = RANDOM_RESIZED_CROP_RATIO) -> tf.Tensor:
  """torchvision's `RandomResizedCrop.get_params` from a stateless seed.

  Args:
    height: image height (int or int32 scalar).
    width: image width.
    seed: shape [2] integer tensor.
    scale: range of the crop's area as a fraction of the image's.
    ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.

  Returns:
    int32 `[4]`: (top, left, crop_height, crop_width).
  """
  area = tf.cast(height * width, tf.float64)
  h_f, w_f = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
  target_area = area * tf.random.stateless_uniform([_CROP_ATTEMPTS], seeds[0], scale[0], scale[1],
                                                   dtype=tf.float64)
  log_ratio = tf.random.stateless_uniform([_CROP_ATTEMPTS], seeds[1], math.log(ratio[0]),
                                          math.log(ratio[1]), dtype=tf.float64)
  aspect = tf.exp(log_ratio)
  # int(round(...)) of Python: round half to even (tf.round).
  w = tf.cast(tf.round(tf.sqrt(target_area * aspect)), tf.int32)
  h = tf.cast(tf.round(tf.sqrt(target_area / aspect)), tf.int32)
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
  # Fallback: the whole image, clamped to the ratio range, centred.
  in_ratio = w_f / h_f
  fallback_h = tf.where(in_ratio < min(ratio), tf.cast(tf.round(w_f / min(ratio)), tf.int32),
                        height)
  fallback_w = tf.where(in_ratio > max(ratio), tf.cast(tf.round(h_f * max(ratio)), tf.int32), width)
  found = tf.reduce_any(fits)
  crop_h = tf.where(found, h[first], fallback_h)
  crop_w = tf.where(found, w[first], fallback_w)
  # torch.randint(0, side - crop + 1): uniform over the valid offsets.
  offsets = tf.random.stateless_uniform([2], seeds[2], minval=0, maxval=2**31 - 1, dtype=tf.int32)
  top = tf.where(found, offsets[0] % (height - crop_h + 1), (height - crop_h) // 2)
  left = tf.where(found, offsets[1] % (width - crop_w + 1), (width - crop_w) // 2)
  return tf.stack([top, left, crop_h, crop_w])


def preprocess_for_train(image, image_size: int = 224, *, seed=None,
                         scale: Sequence[float] = RANDOM_RESIZED_CROP_SCALE,
                         ratio: Sequence[float] = RANDOM_RESIZED_CROP_RATIO,
                         random_flip: bool = True) -> tf.Tensor:
  """torchvision's train transform: RandomResizedCrop(S), RandomHorizontalFlip, scale, Normalize.

  Args:
    image: encoded bytes or an image `[H, W, C]` (C in 1..4; uint8, or float in [0, 1]).
    image_size: S.
    seed: None (random), an int or a shape [2] integer tensor; equal seeds give equal outputs.
    scale: RandomResizedCrop's area range.
    ratio: RandomResizedCrop's aspect-ratio range.
    random_flip: the random left-right flip (p = 0.5).

  Returns:
    float32 `[S, S, 3]`.

  Raises:
    ValueError: a bad size, range, seed or channel count.
  """
  _check_size(image_size, image_size)
  if not 0.0 < scale[0] <= scale[1] <= 1.0 or not 0.0 < ratio[0] <= ratio[1]:
    raise ValueError(f"Need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]; got "
                     f"scale={tuple(scale)}, ratio={tuple(ratio)}.")
  seeds = _seeds(seed)
  image = to_pixels(image)
  shape = tf.shape(image)
  box = random_resized_crop_box(shape[0], shape[1], seeds[0], scale=scale, ratio=ratio)
  crop = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
  crop = tf.ensure_shape(resize_antialiased_uint8(crop, image_size, image_size),
                         [image_size, image_size, 3])
  if random_flip:
    crop = tf.image.stateless_random_flip_left_right(crop, seed=seeds[2])
  return normalize(crop)
