"""Serving signatures: encoded image bytes in, top-k classes with names out, all inside the graph.

`ServingModule(model, ...)` wraps an inference model (see `inference.make_inference_model`) in two
`tf.function`s, exported as SavedModel signatures by `export_saved_model`:

  serving_default(images: string[N])            JPEG / PNG / GIF (first frame) / BMP bytes
      -> classes int64[N, k], probabilities float32[N, k], class_names string[N, k],
         class_ids string[N, k] (e.g. WordNet synsets), all_probabilities float32[N, C]
  predict_images(images: float32[N, S, S, 3])   already preprocessed (the model's preprocessing)
      -> logits float32[N, C], probabilities float32[N, C]

Each image is decoded and preprocessed with the model's own eval preprocessing
(`inception_tf.data.preprocessing.by_kind`: Inception's central crop and [-1, 1] scaling, slim's VGG
mean subtraction, torchvision's mean/std, or the CIFAR nets' whole image in [-1, 1]), so a served
image gets the probabilities the evaluation pipeline gives it.

Bad input fails only its request, with an `InvalidArgumentError` naming the image and the cause:
the format is sniffed from the magic bytes and the width and height are read from the header
*before* anything is decoded. An image above `max_pixels` is decoded at 1/2, 1/4 or 1/8 scale when it
is a JPEG (libjpeg's DCT scaling: the cost stays bounded and the result differs from a full decode
only by that downscale, which the resize to the model's size mostly absorbs); other formats above the
limit, and JPEGs above 64 x `max_pixels`, are rejected with a message saying so. A GIF is cut after
its first image before decoding (TF's decoder would otherwise decode every frame of an animation).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from inception_tf.labels import LabelMap
from inception_tf.models import fused

# 4096 x 4096: 48 MiB as decoded uint8 RGB, ~200 MiB through preprocessing in float32.
DEFAULT_MAX_PIXELS = 4096 * 4096
FORMATS = ("JPEG", "PNG", "GIF", "BMP")
_JPEG, _PNG, _GIF, _BMP = range(4)
_JPEG_RATIOS = (1, 2, 4, 8)
_HEADER_BYTES = 32


def _preprocessing():
  from inception_tf.data import preprocessing  # pylint: disable=import-outside-toplevel
  return preprocessing


def _big_endian(header, start: int, length: int):
  value = tf.constant(0, tf.int64)
  for i in range(length):
    value = value * 256 + header[start + i]
  return value


def _little_endian(header, start: int, length: int):
  value = tf.constant(0, tf.int64)
  for i in reversed(range(length)):
    value = value * 256 + header[start + i]
  return value


def _matches(header, magic: bytes):
  return tf.reduce_all(tf.equal(header[:len(magic)], tf.constant(list(magic), tf.int64)))


def image_header(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """Format, height and width of encoded image bytes, read from the header without decoding.

  Args:
    data: scalar tf.string.

  Returns:
    (format index into `FORMATS` or -1 for anything else, height int64, width int64,
     the first 8 bytes as int64 for error messages).
  """
  padded = tf.strings.join([data, tf.constant(b"\0" * _HEADER_BYTES)])
  header = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEADER_BYTES), tf.uint8),
                   tf.int64)
  is_jpeg = _matches(header, b"\xff\xd8\xff")
  is_png = _matches(header, b"\x89PNG\r\n\x1a\n")
  is_gif = _matches(header, b"GIF8")
  is_bmp = _matches(header, b"BM")
  image_format = tf.where(is_jpeg, _JPEG, tf.where(is_png, _PNG, tf.where(
      is_gif, _GIF, tf.where(is_bmp, _BMP, -1))))

  # BMP: a 12-byte BITMAPCOREHEADER has 16-bit sizes, later headers signed 32-bit ones (a negative
  # height means top-down rows).
  bmp_core = tf.equal(_little_endian(header, 14, 4), 12)
  bmp_width = tf.where(bmp_core, _little_endian(header, 18, 2), _little_endian(header, 18, 4))
  bmp_height = _little_endian(header, 22, 4)
  bmp_height = tf.abs(tf.where(bmp_height >= 2**31, bmp_height - 2**32, bmp_height))
  bmp_height = tf.where(bmp_core, _little_endian(header, 20, 2), bmp_height)
  bmp_width = tf.abs(tf.where(bmp_width >= 2**31, bmp_width - 2**32, bmp_width))

  def jpeg_shape():
    return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

  def other_shape():
    return tf.stack([
        tf.where(is_png, _big_endian(header, 20, 4),
                 tf.where(is_gif, _little_endian(header, 8, 2), bmp_height)),
        tf.where(is_png, _big_endian(header, 16, 4),
                 tf.where(is_gif, _little_endian(header, 6, 2), bmp_width)),
    ])

  shape = tf.cond(is_jpeg, jpeg_shape, other_shape)
  return image_format, shape[0], shape[1], header[:8]


def _byte_at(data: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.io.decode_raw(tf.strings.substr(data, position, 1), tf.uint8)[0], tf.int64)


def gif_first_frame(data: tf.Tensor) -> tf.Tensor:
  """The bytes of a GIF cut after its first image, plus the trailer: a valid one-frame GIF.

  TF's GIF decoder decodes every frame even with `expand_animations=False`, so a long animation
  costs frames x pixels although only the first frame is used. Walking the block structure (GIF89a
  spec: header, screen descriptor, colour tables, extension and image blocks of length-prefixed
  sub-blocks) to the end of the first image bounds the decode by one frame. Bytes that do not parse
  are returned unchanged (the decoder then reports them).

  Args:
    data: scalar tf.string holding a GIF.

  Returns:
    scalar tf.string.
  """
  length = tf.cast(tf.strings.length(data), tf.int64)
  global_flags = tf.cond(length > 13, lambda: _byte_at(data, tf.constant(10, tf.int64)),
                         lambda: tf.constant(0, tf.int64))
  global_table = tf.where(global_flags >= 128, 3 * tf.bitwise.left_shift(
      tf.constant(2, tf.int64), global_flags % 8), tf.constant(0, tf.int64))
  # State: position, inside sub-blocks, first image seen, finished, parsed cleanly.
  start = (13 + global_table, tf.constant(False), tf.constant(False), tf.constant(False),
           tf.constant(False))

  def step(position, in_sub_blocks, image_seen, done, ok):
    del done, ok
    code = _byte_at(data, position)

    def sub_block():
      finished = tf.equal(code, 0)
      return (position + 1 + code, tf.logical_not(finished), image_seen,
              tf.logical_and(finished, image_seen), tf.logical_and(finished, image_seen))

    def block():
      is_extension = tf.equal(code, 0x21)
      is_image = tf.equal(code, 0x2C)
      image_flags = tf.cond(tf.logical_and(is_image, position + 9 < length),
                            lambda: _byte_at(data, position + 9),
                            lambda: tf.constant(0, tf.int64))
      local_table = tf.where(image_flags >= 128, 3 * tf.bitwise.left_shift(
          tf.constant(2, tf.int64), image_flags % 8), tf.constant(0, tf.int64))
      # Extension: introducer + label. Image: descriptor + local table + LZW minimum code size.
      advance = tf.where(is_extension, tf.constant(2, tf.int64), 10 + local_table + 1)
      known = tf.logical_or(is_extension, is_image)
      return (position + advance, known, tf.logical_or(image_seen, is_image),
              tf.logical_not(known), tf.constant(False))

    return tf.cond(in_sub_blocks, sub_block, block)

  def keep_going(position, in_sub_blocks, image_seen, done, ok):
    del in_sub_blocks, image_seen, ok
    return tf.logical_and(tf.logical_not(done), position < length)

  end, _, _, _, ok = tf.while_loop(keep_going, step, start,
                                   maximum_iterations=tf.cast(length, tf.int32))
  return tf.cond(ok, lambda: tf.strings.join([tf.strings.substr(data, tf.constant(0, tf.int64), end), b";"]),
                 lambda: data)


def decode_image_bounded(data: tf.Tensor, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                         index: tf.Tensor | int = 0, accurate_jpeg: bool = False) -> tf.Tensor:
  """Decodes JPEG/PNG/GIF/BMP bytes to uint8 RGB [H, W, 3] with the decode size bounded.

  Up to `max_pixels` this is `preprocessing.decode_image_rgb`. Larger JPEGs are decoded at the
  smallest DCT scale 1/2, 1/4 or 1/8 that fits; anything else larger is rejected.

  Args:
    data: scalar tf.string.
    max_pixels: the largest height x width decoded at full scale.
    index: position of the image in its batch, for error messages.
    accurate_jpeg: JPEGs with the accurate integer IDCT (`preprocessing.decode_image_rgb`).

  Returns:
    uint8 tensor [H, W, 3].

  Raises:
    tf.errors.InvalidArgumentError (when run): not an image of a supported format, an empty
      image, or an image too large for the limit.
  """
  image_format, height, width, head = image_header(data)
  pixels = height * width
  known = tf.debugging.Assert(image_format >= 0, [tf.strings.format(
      "Image {} of the request is not a JPEG, PNG, GIF or BMP image (it starts with the bytes {}); "
      "send the encoded file bytes.", (index, head), summarize=8)])
  with tf.control_dependencies([known]):
    non_empty = tf.debugging.Assert(pixels > 0, [tf.strings.format(
        "Image {} of the request has an empty or unreadable size {}x{} in its header.",
        (index, width, height))])
  format_name = tf.gather(tf.constant(FORMATS), tf.maximum(image_format, 0))
  max_scaled = max_pixels * _JPEG_RATIOS[-1]**2
  limit = tf.where(tf.equal(image_format, _JPEG), tf.constant(max_scaled, tf.int64),
                   tf.constant(max_pixels, tf.int64))
  with tf.control_dependencies([non_empty]):
    bounded = tf.debugging.Assert(pixels <= limit, [tf.strings.join([
        tf.strings.format("Image {} of the request is a ", [index]), format_name,
        tf.strings.format(
            " of {}x{} = {} pixels, above the {} pixels this model decodes (max_pixels={}, JPEGs "
            "up to 64x that are decoded at reduced scale); downscale it before sending.",
            (width, height, pixels, limit, max_pixels))])])
  with tf.control_dependencies([bounded]):
    # The smallest DCT scale that brings the JPEG under max_pixels: 0 -> 1/1, ..., 3 -> 1/8.
    ratio_index = tf.reduce_sum(tf.cast(
        pixels > tf.constant([max_pixels * r * r for r in _JPEG_RATIOS[:-1]], tf.int64), tf.int32))
    ratio_index = tf.where(tf.equal(image_format, _JPEG), ratio_index, 0)
    # Only the first frame of a GIF is decoded (see `gif_first_frame`).
    single = tf.cond(tf.equal(image_format, _GIF), lambda: gif_first_frame(data), lambda: data)
    dct_method = "INTEGER_ACCURATE" if accurate_jpeg else ""
    branches = [lambda: _preprocessing().decode_image_rgb(single, accurate_jpeg=accurate_jpeg)]
    branches += [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method=dct_method)
                 for r in _JPEG_RATIOS[1:]]
    image = tf.switch_case(ratio_index, branches)
  image.set_shape([None, None, 3])
  return image


class ServingModule(tf.Module):
  """The serving functions of one inference model (see the module docstring)."""

  def __init__(self, model: keras.Model, *, label_map: LabelMap, image_size: int,
               crop_fraction: float = 0.875, top_k: int = 5, max_pixels: int = DEFAULT_MAX_PIXELS,
               preprocessing: str = "inception"):
    """Wraps `model`.

    Args:
      model: returns `{"logits": [N, C]}` for float [N, image_size, image_size, 3] inputs
        preprocessed as `preprocessing` says.
      label_map: C class ids and names.
      image_size: the model's input height and width.
      crop_fraction: the eval crop's share (0.875 for the Inception family; 224 of 256 for VGG and
        torchvision preprocessing).
      top_k: how many classes `serving_default` returns (capped at C).
      max_pixels: decode bound, see `decode_image_bounded`.
      preprocessing: a kind of `preprocessing.PREPROCESSING_KINDS` (`preprocessing.by_kind`).

    Raises:
      ValueError: label map and logits disagree, or a bad top_k / crop_fraction / max_pixels.
    """
    super().__init__(name="inception_serving")
    num_classes = int(model.output["logits"].shape[-1])
    if len(label_map) != num_classes:
      raise ValueError(f"The label map has {len(label_map)} classes but the model has "
                       f"{num_classes} logits.")
    if top_k < 1:
      raise ValueError(f"--top_k={top_k} must be >= 1.")
    if not 0.0 < crop_fraction <= 1.0:
      raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}.")
    if max_pixels < image_size * image_size:
      raise ValueError(f"max_pixels={max_pixels} is below the model's own input "
                       f"{image_size}x{image_size}.")
    # The model itself is kept out of the SavedModel's object graph (saving would trace every Keras
    # layer); its variables are tracked directly, which is all the signatures need.
    object.__setattr__(self, "model", model)
    self.model_variables = list(model.variables)
    self.image_size = image_size
    self.crop_fraction = crop_fraction
    self.top_k = min(top_k, num_classes)
    self.max_pixels = max_pixels
    self.num_classes = num_classes
    self.preprocessing = preprocessing
    self._preprocess_one = _preprocessing().by_kind(preprocessing, image_size,
                                                    crop_fraction=crop_fraction)
    self._class_ids = tf.constant(list(label_map.ids))
    self._class_names = tf.constant(list(label_map.names))
    # No AutoGraph: Python control flow only, on Python values (see data.pipeline.plain_map).
    self.serving_default = tf.function(
        self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="images")],
        autograph=False)
    self.predict_images = tf.function(self._predict_images, input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")],
        autograph=False)

  def preprocess(self, images: tf.Tensor) -> tf.Tensor:
    """Encoded bytes [N] -> float32 [N, S, S, 3] model inputs, as the evaluation pipeline."""
    size = self.image_size

    def one(args):
      index, data = args
      return self._preprocess_one(decode_image_bounded(
          data, max_pixels=self.max_pixels, index=index,
          accurate_jpeg=self.preprocessing in _preprocessing().ACCURATE_JPEG_KINDS))

    return tf.map_fn(one, (tf.range(tf.shape(images)[0]), images),
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))

  def _logits(self, images: tf.Tensor) -> tf.Tensor:
    # Grouped convolutions as ungrouped ones ("split"): runs wherever the SavedModel goes (TF's
    # grouped CPU kernel exists only with oneDNN on; TFLite has no grouped CONV_2D everywhere).
    outputs = fused.fused_call(self.model, images, training=False, grouped_convolutions="split")
    return tf.cast(outputs["logits"], tf.float32)

  def _predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
    logits = self._logits(images)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

  def _serve_bytes(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
    probabilities = tf.nn.softmax(self._logits(self.preprocess(images)))
    top = tf.math.top_k(probabilities, k=self.top_k)
    return {
        "classes": tf.cast(top.indices, tf.int64),
        "probabilities": top.values,
        "class_names": tf.gather(self._class_names, top.indices),
        "class_ids": tf.gather(self._class_ids, top.indices),
        "all_probabilities": probabilities,
    }


def export_saved_model(module: ServingModule, export_dir: str) -> str:
  """Writes `module` as a SavedModel with the `serving_default` and `predict_images` signatures.

  Returns:
    `export_dir`.
  """
  signatures = {
      "serving_default": module.serving_default.get_concrete_function(),
      "predict_images": module.predict_images.get_concrete_function(),
  }
  tf.saved_model.save(module, export_dir, signatures=signatures)
  return export_dir


__all__ = ["ServingModule", "decode_image_bounded", "image_header", "export_saved_model",
           "DEFAULT_MAX_PIXELS", "FORMATS"]
