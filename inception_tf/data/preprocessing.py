"""Inception preprocessing: TF-slim's `inception_preprocessing` for TF 2, eager and inside tf.data.

* `preprocess_for_eval` is numerically identical to slim's eval path: central crop of 87.5% of each
  side (offsets computed in float64 and truncated, as `tf.image.central_crop`), TF1
  `resize_bilinear(align_corners=False)` — i.e. `ResizeBilinear` with `half_pixel_centers=False`, not
  TF2's half-pixel `tf.image.resize` — then `(x - 0.5) * 2`. The published checkpoints' accuracy was
  measured with exactly this.
* `preprocess_for_train` is slim's train path: a crop from `sample_distorted_bounding_box` around
  the annotated boxes (min_object_covered 0.1, aspect ratio 3/4..4/3, area 0.05..1, 100 attempts,
  the whole image when there is no box), a resize with one of 4 methods picked at random (bilinear
  only in fast mode), a random left-right flip (of the resized image, as slim), colour distortion in
  one of 4 random orders (brightness 32/255, saturation 0.5..1.5, hue 0.2, contrast 0.5..1.5; fast
  mode: brightness then saturation, slim's ordering 0 only), clipping to [0, 1] and scaling to [-1,
  1]. `fast_mode` defaults to True everywhere, as in slim (`preprocess_image(..., fast_mode=True)`,
  which is what slim's `train_image_classifier.py` ran). For JPEG bytes only the crop is decoded (`decode_and_crop_jpeg`; `preprocess_for_eval` decodes
  the whole image: with 4:2:0 chroma subsampling, as in most JPEGs, a cropped decode differs from
  decode-then-crop by up to 15/255 in ~0.1% of the pixels along the crop's edges (WORKSPACE_NOTES.md,
  "Measurements moved out of docstrings") - and the eval path must be exact). All randomness uses stateless
  ops, so a given `seed` gives the same output eagerly, in a `tf.function` and inside `tf.data`.

TPU-style split (`make_dataset(..., color_distortion_on_device=True)`): the host runs only
`preprocess_for_train_uint8` (crop-decode, resize, round to uint8, flip) and the training step runs
`distort_color_batch` on the whole batch on the accelerator: per image the same distributions and
orders as `distort_color`, equal to the tf.image adjustments in slim's order to float rounding,
vectorised at the cost of one ordering.

Inputs may be encoded bytes (JPEG, PNG, GIF, BMP) or images `[H, W, C]` with C in {1, 2, 3, 4}
(gray is replicated to RGB, alpha dropped), uint8/uint16 (scaled to [0, 1]) or float (assumed to be
in [0, 1], as slim), of any size.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from inception_tf.data import cifar_preprocessing
from inception_tf.data import torchvision_preprocessing
from inception_tf.data import vgg_preprocessing
# Shared with the other kinds (a leaf module, so that `by_kind` below can import them all).
from inception_tf.data.image_ops import ACCURATE_JPEG_KINDS
from inception_tf.data.image_ops import CENTRAL_FRACTION
from inception_tf.data.image_ops import TensorLike as _TensorLike
from inception_tf.data.image_ops import as_image as _as_image
from inception_tf.data.image_ops import check_size as _check_size
from inception_tf.data.image_ops import decode_image_rgb
from inception_tf.data.image_ops import resize_bilinear_tf1
from inception_tf.data.image_ops import resize_side_for_crop
from inception_tf.data.image_ops import seed_table as _seeds
from inception_tf.data.image_ops import to_float
from inception_tf.data.image_ops import to_rgb
# slim's vgg_preprocessing in the (height, width) form the input pipeline calls.
from inception_tf.data.vgg_preprocessing import VGG_MEANS
from inception_tf.data.vgg_preprocessing import preprocess_vgg_for_eval
from inception_tf.data.vgg_preprocessing import preprocess_vgg_for_train

# TF-slim's defaults (inception_preprocessing.distorted_bounding_box_crop / distort_color).
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)
HUE_MAX_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)

# tf.image.resize methods in slim's `apply_with_random_selector` order (ResizeMethod 0..3 in TF1).
_TRAIN_RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")


def central_crop(image: tf.Tensor, central_fraction: float) -> tf.Tensor:
  """`tf.image.central_crop` semantics for `[H, W, C]` or `[N, H, W, C]` with dynamic sizes.

  The offset is `int((size - size * fraction) / 2)` computed in float64, the crop keeps
  `size - 2 * offset` pixels (TF-slim / TF1 behaviour).
  """
  if not 0.0 < central_fraction <= 1.0:
    raise ValueError(f"central_fraction must be in (0, 1]; got {central_fraction!r}.")
  if central_fraction == 1.0:
    return image
  shape = tf.shape(image)
  h, w = shape[-3], shape[-2]
  fraction = tf.constant(central_fraction, tf.float64)

  def start(size):
    size = tf.cast(size, tf.float64)
    return tf.cast((size - size * fraction) / 2.0, tf.int32)

  top, left = start(h), start(w)
  return image[..., top:h - top, left:w - left, :]


def preprocess_for_eval(image: _TensorLike, height: int, width: int,
                        central_fraction: Optional[float] = CENTRAL_FRACTION) -> tf.Tensor:
  """TF-slim's Inception eval preprocessing (bit-exact).

  Args:
    image: encoded bytes, or an image `[H, W, C]` / batch `[N, H, W, C]` (C in 1..4; integer
      dtypes are scaled to [0, 1], floats are taken to be in [0, 1]).
    height: output height.
    width: output width.
    central_fraction: fraction of each side kept by the central crop; None or 1.0: no crop.

  Returns:
    float32 `[height, width, 3]` (or `[N, height, width, 3]`) in [-1, 1].

  Raises:
    ValueError: for a bad size, fraction or channel count.
  """
  _check_size(height, width)
  image = to_float(_as_image(image))
  if central_fraction:
    image = central_crop(image, central_fraction)
  image = resize_bilinear_tf1(image, height, width)
  return (image - 0.5) * 2.0


def _random_index(seed: tf.Tensor, num_cases: int) -> tf.Tensor:
  return tf.random.stateless_uniform([], seed=seed, minval=0, maxval=num_cases, dtype=tf.int32)


def distort_color(image: tf.Tensor, *, seeds: tf.Tensor, fast_mode: bool = True) -> tf.Tensor:
  """Slim's `distort_color` with the colour order drawn from `seeds[3]`; output clipped to [0, 1].

  Args:
    image: float32 `[H, W, 3]` in [0, 1].
    seeds: `[_NUM_SEEDS, 2]` table from `_seeds`.
    fast_mode: slim's fast mode: brightness then saturation, always in that order (slim applies
      its fast-mode `distort_color` with `num_cases=1`, i.e. ordering 0 only), instead of all
      four ops in one of 4 orders.
  """

  def brightness(x):
    return tf.image.stateless_random_brightness(x, BRIGHTNESS_MAX_DELTA, seed=seeds[4])

  def saturation(x):
    return tf.image.stateless_random_saturation(x, *SATURATION_RANGE, seed=seeds[5])

  def hue(x):
    return tf.image.stateless_random_hue(x, HUE_MAX_DELTA, seed=seeds[6])

  def contrast(x):
    return tf.image.stateless_random_contrast(x, *CONTRAST_RANGE, seed=seeds[7])

  if fast_mode:
    orders = ((brightness, saturation),)
  else:  # slim's four orderings
    orders = ((brightness, saturation, hue, contrast), (saturation, brightness, contrast, hue),
              (contrast, hue, brightness, saturation), (hue, saturation, contrast, brightness))

  def apply(ops):
    def fn():
      x = image
      for op in ops:
        x = op(x)
      return x
    return fn

  image = tf.switch_case(_random_index(seeds[3], len(orders)), [apply(ops) for ops in orders])
  return tf.clip_by_value(image, 0.0, 1.0)


def _crop_window(image_shape: tf.Tensor, bbox: tf.Tensor, seed: tf.Tensor, *,
                 min_object_covered: float, aspect_ratio_range: Sequence[float],
                 area_range: Sequence[float], max_attempts: int) -> tuple[tf.Tensor, tf.Tensor]:
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      image_size=image_shape, bounding_boxes=bbox, seed=seed, min_object_covered=min_object_covered,
      aspect_ratio_range=aspect_ratio_range, area_range=area_range, max_attempts=max_attempts,
      use_image_if_no_bounding_boxes=True)
  return begin, size


def _train_crop_resize(image_bytes_or_image: _TensorLike, height: int, width: int,
                       bbox: Optional[tf.Tensor], *, seeds: tf.Tensor, fast_mode: bool,
                       **window_kwargs) -> tuple[tf.Tensor, float]:
  """The geometric half of slim's train path without the flip: crop (fused decode-and-crop for
  JPEG bytes), resize with a random method (bilinear in fast mode). The caller flips the small
  output, as slim does (flipping the crop instead reverses a larger image; timings in
  WORKSPACE_NOTES.md).

  Returns:
    `(image, scale)`: float32 `[height, width, 3]` in the crop's own range (0..255 for uint8
    crops) and the factor that maps it to [0, 1].
  """
  _check_size(height, width)
  if bbox is None:
    bbox = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
  bbox = tf.cast(tf.convert_to_tensor(bbox), tf.float32)
  if bbox.shape.rank == 2:
    bbox = bbox[tf.newaxis]
  if bbox.shape.rank != 3 or bbox.shape[-1] not in (4, None):
    raise ValueError(f"bbox must be [1, num_boxes, 4] (ymin, xmin, ymax, xmax); got {bbox.shape}.")

  image = tf.convert_to_tensor(image_bytes_or_image)
  if image.dtype == tf.string:

    def decode_jpeg_crop():
      begin, size = _crop_window(tf.image.extract_jpeg_shape(image), bbox, seeds[0], **window_kwargs)
      window = tf.stack([begin[0], begin[1], size[0], size[1]])
      return tf.image.decode_and_crop_jpeg(image, window, channels=3)

    def decode_other_crop():
      decoded = decode_image_rgb(image)
      begin, size = _crop_window(tf.shape(decoded), bbox, seeds[0], **window_kwargs)
      return tf.slice(decoded, begin, size)

    crop = tf.cond(tf.io.is_jpeg(image), decode_jpeg_crop, decode_other_crop)
    crop.set_shape([None, None, 3])
  else:
    if image.shape.rank != 3:
      raise ValueError(f"Expected one image [H, W, C] or encoded bytes; got shape {image.shape}.")
    image = to_rgb(image)
    begin, size = _crop_window(tf.shape(image), bbox, seeds[0], **window_kwargs)
    crop = tf.slice(image, begin, size)
  # The resize keeps the crop's range (0..255 for uint8, float32 out); `scale` maps it to [0, 1]
  # afterwards, on the smaller output, instead of on the crop.
  scale = 1.0 / crop.dtype.max if crop.dtype.is_integer else 1.0
  size = [height, width]

  def resize(method):
    if method == "bilinear":
      return _resize_bilinear(crop, size)
    return tf.cast(tf.image.resize(crop, size, method=method), tf.float32)

  if fast_mode:
    image = resize("bilinear")
  else:
    image = tf.switch_case(_random_index(seeds[1], len(_TRAIN_RESIZE_METHODS)),
                           [lambda m=m: resize(m) for m in _TRAIN_RESIZE_METHODS])
  return tf.ensure_shape(image, [height, width, 3]), scale


def _resize_bilinear(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """`tf.image.resize(image, size)` (half-pixel bilinear, float32 out), the faster way for the size.

  `ResizeBilinear`'s uint8 input path is slower than a float32 cast followed by the float path for
  inputs up to ~3x the output's pixels (timings: WORKSPACE_NOTES.md, "Measurements moved out of
  docstrings"). Both give bit-identical results (the kernel converts every
  input to float; tests/data/test_data_preprocessing.py), so the choice is made per image.
  """
  if not image.dtype.is_integer:
    return tf.cast(tf.image.resize(image, size), tf.float32)
  shape = tf.shape(image)
  small = shape[0] * shape[1] <= 3 * size[0] * size[1]
  return tf.cond(small, lambda: tf.image.resize(tf.cast(image, tf.float32), size),
                 lambda: tf.image.resize(image, size))


def _maybe_flip(image: tf.Tensor, seeds: tf.Tensor, random_flip: bool) -> tf.Tensor:
  """Slim's random left-right flip after the resize (one coin per image, from `seeds[2]`)."""
  if not random_flip:
    return image
  return tf.image.stateless_random_flip_left_right(image, seed=seeds[2])


def preprocess_for_train(image_bytes_or_image: _TensorLike, height: int, width: int,
                         bbox: Optional[tf.Tensor] = None, *, fast_mode: bool = True, seed=None,
                         min_object_covered: float = MIN_OBJECT_COVERED,
                         aspect_ratio_range: Sequence[float] = ASPECT_RATIO_RANGE,
                         area_range: Sequence[float] = AREA_RANGE,
                         max_attempts: int = MAX_ATTEMPTS, random_flip: bool = True,
                         color_distortion: bool = True) -> tf.Tensor:
  """TF-slim's Inception train preprocessing.

  Args:
    image_bytes_or_image: encoded bytes (JPEG bytes take the fused decode-and-crop path) or an
      image `[H, W, C]`, C in 1..4, uint8/uint16 or float in [0, 1].
    height: output height.
    width: output width.
    bbox: float `[1, num_boxes, 4]` (or `[num_boxes, 4]`) boxes `(ymin, xmin, ymax, xmax)` in [0, 1];
      None or no boxes: the whole image.
    fast_mode: bilinear resize only and the cheaper colour distortion (slim's `fast_mode`).
    seed: None (random), an int or a shape [2] integer tensor. Equal seeds give equal outputs.
    min_object_covered: see `tf.image.sample_distorted_bounding_box`.
    aspect_ratio_range: allowed crop aspect ratios (width / height).
    area_range: allowed crop areas as fractions of the image.
    max_attempts: crop sampling attempts before falling back to the whole image.
    random_flip: random left-right flip.
    color_distortion: apply `distort_color`.

  Returns:
    float32 `[height, width, 3]` in [-1, 1].

  Raises:
    ValueError: for a bad size, seed, box shape or channel count.
  """
  seeds = _seeds(seed)
  image, scale = _train_crop_resize(
      image_bytes_or_image, height, width, bbox, seeds=seeds, fast_mode=fast_mode,
      min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range,
      area_range=area_range, max_attempts=max_attempts)
  image = _maybe_flip(image * scale, seeds, random_flip)
  if color_distortion:
    image = distort_color(image, seeds=seeds, fast_mode=fast_mode)
  else:
    image = tf.clip_by_value(image, 0.0, 1.0)
  return (image - 0.5) * 2.0


def preprocess_for_train_uint8(image_bytes_or_image: _TensorLike, height: int, width: int,
                               bbox: Optional[tf.Tensor] = None, *, fast_mode: bool = True,
                               seed=None, min_object_covered: float = MIN_OBJECT_COVERED,
                               aspect_ratio_range: Sequence[float] = ASPECT_RATIO_RANGE,
                               area_range: Sequence[float] = AREA_RANGE,
                               max_attempts: int = MAX_ATTEMPTS,
                               random_flip: bool = True) -> tf.Tensor:
  """The host half of the train preprocessing when the colour distortion runs on the accelerator.

  TPU input pipelines keep the host's per-image work minimal: the same crop (fused
  decode-and-crop for JPEG), flip and random-method resize as `preprocess_for_train` with the same
  `seed`, rounded and saturated to uint8 (4x fewer bytes to batch and transfer than float32). No
  colour distortion and no [-1, 1] scaling: the training step applies `distort_color_batch` to
  the batch, which does both.

  Args: as `preprocess_for_train` (without `color_distortion`).

  Returns:
    uint8 `[height, width, 3]`; `image / 255` equals the pre-distortion image of
    `preprocess_for_train` with the same seed within 1/255 (rounding).

  Raises:
    ValueError: for a bad size, seed, box shape or channel count.
  """
  seeds = _seeds(seed)
  image, scale = _train_crop_resize(
      image_bytes_or_image, height, width, bbox, seeds=seeds, fast_mode=fast_mode,
      min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range,
      area_range=area_range, max_attempts=max_attempts)
  if fast_mode and scale == 1.0 / 255.0:
    # Bilinear weights are convex: a uint8 crop resizes into [0, 255], so rounding (half up) is
    # all that is left (no clip; its cost: WORKSPACE_NOTES.md).
    image = tf.cast(image + 0.5, tf.uint8)
  else:
    if scale != 1.0 / 255.0:  # not a uint8 crop: bring it to 0..255 first
      image = image * (scale * 255.0)
    # Bicubic overshoots [0, 255]: saturate (the float path clips to [0, 1] likewise).
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
  return _maybe_flip(image, seeds, random_flip)  # on uint8: the cheapest place


# Colour distortion of a batch, on the accelerator ------------------------------------------------
#
# Brightness (x + d) and contrast ((x - m) * c + m, m = the image's per-channel mean) commute and
# compose into one affine step y = x * c + (m * (1 - c) + d). Saturation (s * f clipped to [0, 1])
# and hue ((h + dh) mod 1) commute in HSV and compose into one HSV round trip, written with
# (hue, min, max) per pixel rather than (h, s, v): AdjustHue rotates the hue keeping min and max
# even where max <= 0 (possible after contrast/brightness), which `hsv_to_rgb` cannot represent
# (measured: up to 0.11 off with tf.image.hsv_to_rgb; exact to float rounding this way). Each of slim's
# orders is then AFFINE1 -> HSV1 -> AFFINE2 -> HSV2 with identity parameters where an op is absent:
# every image of a batch runs the same 4 steps (2 HSV round trips, the cost of ONE ordering) with
# its own parameters. Per slot, the ops present: B(rightness), C(ontrast), S(aturation), H(ue).
_ORDERS = (  # (AFFINE1, HSV1, AFFINE2, HSV2) for slim's 4 orderings
    ("B", "SH", "C", ""),  # 0: brightness, saturation, hue, contrast
    ("", "S", "BC", "H"),  # 1: saturation, brightness, contrast, hue
    ("C", "H", "B", "S"),  # 2: contrast, hue, brightness, saturation
    ("", "HS", "CB", ""),  # 3: hue, saturation, contrast, brightness
)
_FAST_ORDERS = (  # fast mode: brightness, saturation (slim draws from 1 case: ordering 0 only)
    ("B", "S", "", ""),
)


def _order_table(fast_mode: bool, op: str) -> tf.Tensor:
  """bool `[num_orders, 4]`: whether `op` is present in each slot of each order."""
  orders = _FAST_ORDERS if fast_mode else _ORDERS
  return tf.constant([[op in slot for slot in order] for order in orders], tf.bool)


def _fmix32(h: tf.Tensor) -> tf.Tensor:
  """MurmurHash3's 32-bit finaliser (a bijective avalanche mix) on uint32 tensors."""
  h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
  h = h * tf.constant(0x85EBCA6B, tf.uint32)
  h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
  h = h * tf.constant(0xC2B2AE35, tf.uint32)
  return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _hash_uniform(seed, num_streams: int, count) -> tf.Tensor:
  """float32 `[num_streams, count]` uniform in [0, 1): a counter-based hash of (seed, stream, index).

  Integer ops only, so the values are the same eagerly, in tf.data, under XLA and on any device
  (TF's stateless RNG ops give different numbers with `jit_compile=True` than without on this
  TF 2.21, measured: same key and counter, other values).
  """
  seed = tf.convert_to_tensor(seed)
  if not seed.dtype.is_integer:
    raise ValueError(f"seed must be an int or a shape [2] integer tensor; got {seed.dtype!r}.")
  seed = tf.cast(seed, tf.int64)
  if seed.shape.rank == 0:
    seed = tf.stack([seed, tf.constant(0, tf.int64)])
  elif seed.shape != (2,):
    raise ValueError(f"seed must be an int or a shape [2] integer tensor; got shape {seed.shape}.")
  words = tf.cast(tf.stack([tf.bitwise.bitwise_and(seed, 0xFFFFFFFF),
                            tf.bitwise.right_shift(seed, 32)], axis=1), tf.uint32)
  golden = tf.constant(0x9E3779B9, tf.uint32)
  key = tf.constant(0x3C6EF372, tf.uint32)
  for i in range(4):
    key = _fmix32(tf.bitwise.bitwise_xor(key, words[i // 2, i % 2]) + golden)
  streams = _fmix32(key + tf.cast(tf.range(1, num_streams + 1), tf.uint32) * golden)
  index = tf.cast(tf.range(tf.cast(count, tf.int32)), tf.uint32)
  bits = _fmix32(_fmix32(tf.bitwise.bitwise_xor(streams[:, tf.newaxis], index[tf.newaxis])))
  return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (2.0 ** -24)


def color_distortion_params(seed, batch_size, *, fast_mode: bool = True) -> dict:
  """Per-image random parameters of `distort_color_batch`, a pure function of `seed`.

  Args:
    seed: an int or a shape [2] integer tensor.
    batch_size: number of images (int or scalar tensor).
    fast_mode: slim's fast mode: a single order (brightness, saturation).

  Returns:
    `{"brightness", "saturation", "hue", "contrast"}`: float32 `[B]` uniform in slim's ranges
    (brightness [-32/255, 32/255), saturation [0.5, 1.5), hue [-0.2, 0.2), contrast [0.5, 1.5)),
    and `"order"`: int32 `[B]` uniform in [0, 4) (fast mode: always 0).

  Raises:
    ValueError: a seed that is not an int or a [2] integer tensor.
  """
  u = _hash_uniform(seed, 5, batch_size)

  def uniform(row, low, high):
    return low + (high - low) * u[row]

  num_orders = len(_FAST_ORDERS if fast_mode else _ORDERS)
  return {
      "brightness": uniform(0, -BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA),
      "saturation": uniform(1, *SATURATION_RANGE),
      "hue": uniform(2, -HUE_MAX_DELTA, HUE_MAX_DELTA),
      "contrast": uniform(3, *CONTRAST_RANGE),
      "order": tf.minimum(tf.cast(u[4] * num_orders, tf.int32), num_orders - 1),
  }


def _batch_to_unit_float(images: tf.Tensor) -> tf.Tensor:
  images = tf.convert_to_tensor(images)
  if images.shape.rank != 4 or images.shape[-1] not in (3, None):
    raise ValueError(f"Expected a batch of RGB images [B, H, W, 3]; got shape {images.shape}.")
  if images.dtype == tf.uint8:
    return tf.cast(images, tf.float32) * (1.0 / 255.0)
  if images.dtype.is_floating:
    return tf.cast(images, tf.float32)
  raise ValueError(f"images must be uint8 (0..255) or float in [0, 1]; got {images.dtype!r}.")


def distort_color_batch_with_params(images: tf.Tensor, params: dict, *,
                                    fast_mode: bool = True) -> tf.Tensor:
  """`distort_color_batch` with explicit per-image parameters (see `color_distortion_params`).

  Image `i` equals slim's `distort_color` with ordering `params["order"][i]` and the tf.image
  adjustments' parameters `params[...][i]`, clipped to [0, 1] and scaled to [-1, 1].

  Args:
    images: `[B, H, W, 3]` uint8, or float (float32, bfloat16, float16) in [0, 1].
    params: dict of `[B]` tensors: brightness, saturation, hue, contrast (float), order (int).
    fast_mode: slim's fast mode (brightness then saturation; `params["order"]` must be 0).

  Returns:
    float32 `[B, H, W, 3]` in [-1, 1].
  """
  x = _batch_to_unit_float(images)
  order = tf.cast(params["order"], tf.int32)

  def present(op, slot):  # bool [B, 1, 1, 1]: op present in this slot of each image's order
    return tf.gather(_order_table(fast_mode, op)[:, slot], order)[:, None, None, None]

  def param(name):
    return tf.cast(params[name], tf.float32)[:, None, None, None]

  brightness, saturation = param("brightness"), param("saturation")
  hue, contrast = param("hue"), param("contrast")

  def affine(x, slot):
    c = tf.where(present("C", slot), contrast, 1.0)
    d = tf.where(present("B", slot), brightness, 0.0)
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return x * c + (mean * (1.0 - c) + d)

  def hsv(x, slot):
    has_s, has_h = present("S", slot), present("H", slot)
    high = tf.reduce_max(x, axis=-1, keepdims=True)
    low = tf.reduce_min(x, axis=-1, keepdims=True)
    # Saturation is s = (max - min) / max (0 when max <= 0), clipped to [0, 1] after scaling, and
    # keeps max: the new min is max * (1 - s'), as AdjustSaturation.
    s = tf.where(high > 0.0, tf.math.divide_no_nan(high - low, high), 0.0)
    new_low = tf.where(has_s, high * (1.0 - tf.clip_by_value(s * saturation, 0.0, 1.0)), low)
    if not any("H" in order[slot] for order in (_FAST_ORDERS if fast_mode else _ORDERS)):
      # Saturation only: every channel keeps its place between min and max (no hue needed).
      return high - (high - x) * tf.math.divide_no_nan(high - new_low, high - low)
    # Hue rotation keeps min and max (as AdjustHue, also for pixels outside [0, 1] where
    # `hsv_to_rgb` cannot represent them: after a contrast step max may be <= 0).
    h = tf.image.rgb_to_hsv(x)[..., :1] + tf.where(has_h, hue, 0.0)
    h = h - tf.floor(h)  # mod 1 (floormod is several times slower on CPU)
    # RGB from (hue, min, max): min + (max - min) * the piecewise-linear hue ramps (HSVToRGB's).
    ramps = tf.clip_by_value(
        tf.abs(h * 6.0 - tf.constant([3.0, 2.0, 4.0])) * tf.constant([1.0, -1.0, -1.0])
        + tf.constant([-1.0, 2.0, 2.0]), 0.0, 1.0)
    rgb = new_low + (high - new_low) * ramps
    return tf.where(has_s | has_h, rgb, x)

  if fast_mode:  # brightness then saturation: no contrast (no mean), no second round trip
    x = hsv(x + brightness, 1)
  else:
    x = hsv(affine(x, 0), 1)
    x = hsv(affine(x, 2), 3)
  return (tf.clip_by_value(x, 0.0, 1.0) - 0.5) * 2.0


def distort_color_batch(images: tf.Tensor, seed, *, fast_mode: bool = True) -> tf.Tensor:
  """Slim's colour distortion of a whole batch, for the accelerator (inside the training step).

  The device half of `preprocess_for_train_uint8`: every image gets its own random brightness,
  saturation, hue and contrast in its own random order of slim's 4 (fast mode: brightness and
  saturation in 2 orders), at the cost of one ordering (see `_ORDERS`). Compiles with XLA
  (`tf.function(jit_compile=True)`); computes in float32 whatever the input dtype.

  Args:
    images: `[B, H, W, 3]` uint8, or float (float32, bfloat16, float16) in [0, 1].
    seed: shape [2] integer tensor (or an int); equal seeds give equal outputs. In training,
      derive it from (run seed, step, replica) so a resumed run repeats the same distortions.
    fast_mode: slim's fast mode.

  Returns:
    float32 `[B, H, W, 3]` in [-1, 1], like `preprocess_for_train`'s output.

  Raises:
    ValueError: images that are not a `[B, H, W, 3]` uint8 or float batch, a bad seed shape.
  """
  x = _batch_to_unit_float(images)
  params = color_distortion_params(seed, tf.shape(x)[0], fast_mode=fast_mode)
  return distort_color_batch_with_params(x, params, fast_mode=fast_mode)


# The preprocessing a model was trained with, by registry name ------------------------------------

PREPROCESSING_KINDS = ("inception", "vgg", "torchvision", "cifar")


def by_kind(kind: str, image_size: int, *, is_training: bool = False,
            crop_fraction: float = CENTRAL_FRACTION, interpolation: str = "bilinear",
            **options):
  """The per-image preprocessing function of one kind, at `image_size` x `image_size`.

  Kinds: "inception" (this module: slim's inception_preprocessing, [-1, 1]), "vgg"
  (`vgg_preprocessing`: slim's, RGB minus the means on a 0..255 scale), "torchvision"
  (`torchvision_preprocessing`: ImageNet mean/std after scaling to [0, 1]), "cifar"
  (`cifar_preprocessing`: the ResNet paper's CIFAR augmentation, pad 4 + random crop + flip;
  evaluation on the whole image, [-1, 1]).

  Args:
    kind: one of `PREPROCESSING_KINDS`.
    image_size: the square output size S.
    is_training: the random training transform instead of the deterministic eval one.
    crop_fraction: the eval crop's share of the resized image: Inception's central fraction; for
      "vgg" / "torchvision" the shorter side is resized to `floor(S / crop_fraction)` (256 for S =
      224 and 0.875, as slim and torchvision). Not used by "cifar", whose eval view is the whole
      image (§4.2; its nets record 1.0).
    interpolation: the model's resize ("bilinear" is the only one these recipes use).
    **options: keyword options of the kind's function (e.g. `fast_mode`, `color_distortion` for
      Inception training, `resize_side` for VGG eval, `scale` / `ratio` for torchvision training,
      `pad` for CIFAR training).

  Returns:
    Eval: `fn(image) -> float32 [S, S, 3]`. Training: `fn(image, seed=None, bbox=None) -> float32
    [S, S, 3]` (`seed`: int or [2] integer tensor, equal seeds give equal outputs; `bbox`: boxes
    for Inception's crop, ignored by the other kinds, whose references take none). `image` is
    encoded bytes or `[H, W, C]` (C in 1..4) uint8, or float in [0, 1]. The functions run eagerly,
    in `tf.function` and in `tf.data`, with a static output shape.

  Raises:
    ValueError: an unknown kind or interpolation, or a bad image size.
  """
  if kind not in PREPROCESSING_KINDS:
    raise ValueError(f"Unknown preprocessing kind {kind!r}; valid kinds: "
                     f"{', '.join(PREPROCESSING_KINDS)}.")
  if interpolation != "bilinear":
    raise ValueError(f"Unsupported interpolation {interpolation!r} for {kind!r} preprocessing: "
                     "only 'bilinear' (what slim's and torchvision's recipes use) is implemented; "
                     "pass interpolation='bilinear'.")
  _check_size(image_size, image_size)
  size = image_size

  def fixed_shape(image):
    return tf.ensure_shape(image, [size, size, 3])

  if not is_training:
    if kind == "inception":
      options.setdefault("central_fraction", crop_fraction)
      return lambda image: fixed_shape(preprocess_for_eval(image, size, size, **options))
    if kind == "vgg":
      options.setdefault("resize_side", resize_side_for_crop(size, crop_fraction))
      return lambda image: fixed_shape(
          vgg_preprocessing.preprocess_for_eval(image, size, **options))
    if kind == "cifar":
      return lambda image: fixed_shape(
          cifar_preprocessing.preprocess_for_eval(image, size, **options))
    options.setdefault("resize_size", resize_side_for_crop(size, crop_fraction))
    return lambda image: fixed_shape(
        torchvision_preprocessing.preprocess_for_eval(image, size, **options))

  if kind == "inception":
    return lambda image, seed=None, bbox=None: fixed_shape(
        preprocess_for_train(image, size, size, bbox, seed=seed, **options))
  if kind == "vgg":
    options.setdefault("resize_side_min", resize_side_for_crop(size, crop_fraction))
    return lambda image, seed=None, bbox=None: fixed_shape(
        vgg_preprocessing.preprocess_for_train(image, size, seed=seed, **options))
  if kind == "cifar":
    return lambda image, seed=None, bbox=None: fixed_shape(
        cifar_preprocessing.preprocess_for_train(image, size, seed=seed, **options))
  return lambda image, seed=None, bbox=None: fixed_shape(
      torchvision_preprocessing.preprocess_for_train(image, size, seed=seed, **options))


def for_model(name: str, image_size: Optional[int] = None, is_training: bool = False, *,
              kind: Optional[str] = None, **options):
  """The per-image preprocessing function the registry records for model `name`.

  Reads `model_info(name)`: `preprocessing` (the kind), `default_image_size`, `crop_fraction`
  and `interpolation`; see `by_kind` for the kinds and the returned function.

  Args:
    name: a registered model (`inception_tf.models.list_models()`).
    image_size: the square input size; None: the model's default (e.g. 299 for inception_v3, 224
      for resnet_v1_50).
    is_training: the training transform instead of the eval one.
    kind: overrides the registry's kind (one of `PREPROCESSING_KINDS`), e.g. from a tool's
      `--preprocessing` flag.
    **options: passed to `by_kind` (the kind function's keyword options).

  Returns:
    Eval: `fn(image) -> float32 [S, S, 3]`; training: `fn(image, seed=None, bbox=None)`.

  Raises:
    ValueError: an unknown model name or kind, or a model whose recorded kind has no function.

  Examples:
    >>> fn = for_model("resnet_v1_50")  # slim's vgg_preprocessing, 224 x 224
    >>> fn(tf.zeros([300, 400, 3], tf.uint8)).shape
    TensorShape([224, 224, 3])
  """
  from inception_tf.models import model_info  # pylint: disable=import-outside-toplevel

  info = model_info(name)
  if kind is None and info.preprocessing not in PREPROCESSING_KINDS:
    raise ValueError(f"Model {name!r} records preprocessing {info.preprocessing!r}, which has no "
                     f"per-image function here; pass kind= one of {', '.join(PREPROCESSING_KINDS)} "
                     "(a tool's --preprocessing flag).")
  return by_kind(kind if kind is not None else info.preprocessing,
                 info.default_image_size if image_size is None else image_size,
                 is_training=is_training, crop_fraction=info.crop_fraction,
                 interpolation=info.interpolation, **options)
