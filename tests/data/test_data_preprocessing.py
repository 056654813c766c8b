"""Inception preprocessing against TF-slim-era semantics, eagerly, in tf.function and in tf.data."""

import io

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf.data import preprocessing

PHOTOS = ("astronaut", "chelsea", "rocket")  # real RGB photos of different sizes


def _photo(name):
  return getattr(skimage.data, name)()


def _encode(array, fmt, **kwargs):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def slim_eval_reference(image_uint8, height, width, central_fraction=0.875):
  """TF-slim's `inception_preprocessing.preprocess_for_eval`, run with TF1 ops in a TF1 graph.

  Any dtype slim accepts: as slim, a non-float32 image goes through `convert_image_dtype` (uint8
  / 255, uint16 / 65535) and a float32 one is taken as already in [0, 1].
  """
  graph = tf.Graph()
  with graph.as_default():
    placeholder = tf.compat.v1.placeholder(tf.as_dtype(image_uint8.dtype),
                                           [None, None, image_uint8.shape[-1]])
    image = placeholder
    if image.dtype != tf.float32:
      image = tf.image.convert_image_dtype(placeholder, dtype=tf.float32)
    if central_fraction:
      image = tf.compat.v1.image.central_crop(image, central_fraction=central_fraction)
    image = tf.expand_dims(image, 0)
    image = tf.compat.v1.image.resize_bilinear(image, [height, width], align_corners=False)
    image = tf.squeeze(image, [0])
    image = tf.multiply(tf.subtract(image, 0.5), 2.0)
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run(image, {placeholder: image_uint8})


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("size", [299, (331, 257)])
def test_eval_equals_slim_reference_on_photos(name, size):
  photo = _photo(name)
  height, width = (size, size) if isinstance(size, int) else size
  expected = slim_eval_reference(photo, height, width)
  got = preprocessing.preprocess_for_eval(photo, height, width).numpy()
  assert got.shape == (height, width, 3)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
  # And it is not TF2's half-pixel resize (the difference the issue warns about).
  tf2 = (tf.image.resize(tf.image.central_crop(tf.image.convert_image_dtype(photo, tf.float32),
                                               0.875), [height, width]) - 0.5) * 2
  assert np.abs(tf2.numpy() - expected).max() > 1e-2


def test_eval_from_jpeg_bytes_equals_decode_then_reference():
  photo = _photo("chelsea")
  data = _encode(photo, "JPEG", quality=90)
  decoded = tf.io.decode_jpeg(data, channels=3).numpy()
  expected = slim_eval_reference(decoded, 299, 299)
  np.testing.assert_allclose(preprocessing.preprocess_for_eval(data, 299, 299).numpy(), expected,
                             atol=1e-6, rtol=0)


def test_eval_no_crop_and_batched():
  photo = _photo("coffee")
  expected = slim_eval_reference(photo, 150, 100, central_fraction=None)
  np.testing.assert_allclose(preprocessing.preprocess_for_eval(photo, 150, 100, None).numpy(),
                             expected, atol=1e-6, rtol=0)
  batch = np.stack([photo, photo[::-1]])
  got = preprocessing.preprocess_for_eval(batch, 120, 80).numpy()
  assert got.shape == (2, 120, 80, 3)
  np.testing.assert_allclose(got[1], slim_eval_reference(photo[::-1].copy(), 120, 80), atol=1e-6)


def _variants():
  """(description, image) pairs: 1/2/3/4 channels, uint8/uint16/float, odd sizes."""
  rgb = _photo("astronaut")[:97, :131]
  gray = _photo("camera")[:61, :45]
  rgba = _photo("logo")[:77, :53]
  return [
      ("rgb_uint8", rgb),
      ("gray_hw1", gray[..., None]),
      ("gray_alpha", np.stack([gray, np.full_like(gray, 255)], axis=-1)),
      ("rgba", rgba),
      ("rgb_float", rgb.astype(np.float32) / 255.0),
      ("rgb_uint16", rgb.astype(np.uint16) * 257),
      ("tiny_1x1", rgb[:1, :1]),
      ("tall_3x200", rgb[:200, :3] if rgb.shape[0] >= 200 else np.repeat(rgb[:, :3], 3, axis=0)),
  ]


@pytest.mark.parametrize("desc,image", _variants(), ids=[d for d, _ in _variants()])
def test_eval_channels_dtypes_sizes_eager_function_and_tfdata(desc, image):
  eager = preprocessing.preprocess_for_eval(image, 35, 41).numpy()
  assert eager.shape == (35, 41, 3) and np.isfinite(eager).all()
  assert eager.min() >= -1.0 - 1e-6 and eager.max() <= 1.0 + 1e-6
  # Reference: the same image converted to uint8 RGB the documented way.
  rgb = image if image.shape[-1] != 4 else image[..., :3]
  if rgb.shape[-1] in (1, 2):
    rgb = np.repeat(rgb[..., :1], 3, axis=-1)
  np.testing.assert_allclose(eager, slim_eval_reference(rgb, 35, 41), atol=1e-6, rtol=0)
  # Unknown shape inside tf.function and tf.data (dynamic channel count) gives the same numbers.
  fn = tf.function(lambda x: preprocessing.preprocess_for_eval(x, 35, 41),
                   input_signature=[tf.TensorSpec([None, None, None], tf.as_dtype(image.dtype))])
  np.testing.assert_allclose(fn(image).numpy(), eager, atol=1e-6, rtol=0)
  ds = tf.data.Dataset.from_generator(lambda: iter([image]), output_signature=tf.TensorSpec(
      [None, None, None], tf.as_dtype(image.dtype))).map(
          lambda x: preprocessing.preprocess_for_eval(x, 35, 41))
  np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-6, rtol=0)


@pytest.mark.parametrize("desc,image", _variants(), ids=[d for d, _ in _variants()])
def test_train_channels_dtypes_sizes_eager_and_tfdata(desc, image):
  del desc
  eager = preprocessing.preprocess_for_train(image, 43, 37, seed=7).numpy()
  assert eager.shape == (43, 37, 3)
  assert eager.min() >= -1.0 and eager.max() <= 1.0
  ds = tf.data.Dataset.from_generator(lambda: iter([image]), output_signature=tf.TensorSpec(
      [None, None, None], tf.as_dtype(image.dtype))).map(
          lambda x: preprocessing.preprocess_for_train(x, 43, 37, seed=7))
  np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_train_range_shape_seed_reproducible_and_varies(fast_mode):
  data = _encode(_photo("rocket"), "JPEG", quality=92)
  outputs = [preprocessing.preprocess_for_train(data, 299, 299, fast_mode=fast_mode, seed=s).numpy()
             for s in range(6)]
  for out in outputs:
    assert out.shape == (299, 299, 3) and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
  again = preprocessing.preprocess_for_train(data, 299, 299, fast_mode=fast_mode, seed=3).numpy()
  np.testing.assert_array_equal(again, outputs[3])
  differences = [np.abs(outputs[i] - outputs[j]).mean() for i in range(6) for j in range(i)]
  assert min(differences) > 0.01
  # Unseeded calls differ too.
  a = preprocessing.preprocess_for_train(data, 64, 64, fast_mode=fast_mode).numpy()
  b = preprocessing.preprocess_for_train(data, 64, 64, fast_mode=fast_mode).numpy()
  assert np.abs(a - b).mean() > 0.01


def test_train_fused_jpeg_crop_equals_decoded_crop_and_png_path():
  """JPEG bytes (decode_and_crop_jpeg) and PNG bytes (decode then slice) give the same crop."""
  photo = _photo("coffee")
  jpeg = _encode(photo, "JPEG", quality=95)
  decoded = tf.io.decode_jpeg(jpeg, channels=3).numpy()
  png = _encode(decoded, "PNG")
  for seed in range(3):
    kwargs = dict(seed=seed, color_distortion=False)
    from_jpeg = preprocessing.preprocess_for_train(jpeg, 80, 96, **kwargs).numpy()
    from_png = preprocessing.preprocess_for_train(png, 80, 96, **kwargs).numpy()
    from_array = preprocessing.preprocess_for_train(decoded, 80, 96, **kwargs).numpy()
    np.testing.assert_allclose(from_png, from_array, atol=1e-6)
    # libjpeg's cropped decode may differ from a full decode by rounding at block edges.
    assert np.abs(from_jpeg - from_array).mean() < 0.02


def test_train_crop_stays_around_bounding_box():
  """A crop always holds >= 10% of the annotated box (min_object_covered); without it, not."""
  image = np.zeros((200, 200, 3), np.uint8)
  image[:50, :50] = 255
  bbox = tf.constant([[[0.0, 0.0, 0.25, 0.25]]])
  for seed in range(10):
    out = preprocessing.preprocess_for_train(image, 32, 32, bbox, seed=seed, random_flip=False,
                                             color_distortion=False).numpy()
    assert (out > 0).mean() > 0.0  # the crop overlaps the box
  whole = [preprocessing.preprocess_for_train(image, 32, 32, None, seed=s, random_flip=False,
                                              color_distortion=False).numpy() for s in range(10)]
  assert min((w > 0).mean() for w in whole) == 0.0  # without the box some crops miss it


def test_decode_image_rgb_formats():
  photo = _photo("chelsea")[:40, :50]
  gray = _photo("camera")[:40, :50]
  rgba = _photo("logo")[:40, :50]
  cases = {
      "png": (_encode(photo, "PNG"), photo),
      "bmp": (_encode(photo, "BMP"), photo),
      "gif_gray": (_encode(gray, "GIF"), np.repeat(gray[..., None], 3, -1)),
      "png_gray": (_encode(gray, "PNG"), np.repeat(gray[..., None], 3, -1)),
      "png_rgba": (_encode(rgba, "PNG"), rgba[..., :3]),
  }
  for name, (data, expected) in cases.items():
    got = preprocessing.decode_image_rgb(data).numpy()
    assert got.shape == (40, 50, 3) and got.dtype == np.uint8, name
    np.testing.assert_array_equal(got, expected, err_msg=name)
  cmyk = io.BytesIO()
  Image.fromarray(photo).convert("CMYK").save(cmyk, "JPEG", quality=95)
  got = preprocessing.decode_image_rgb(cmyk.getvalue()).numpy()
  assert got.shape == (40, 50, 3) and np.abs(got.astype(int) - photo).mean() < 12


def test_invalid_arguments_are_explained():
  with pytest.raises(ValueError, match="central_fraction"):
    preprocessing.preprocess_for_eval(np.zeros((8, 8, 3), np.uint8), 4, 4, central_fraction=1.5)
  with pytest.raises(ValueError, match="channels"):
    preprocessing.preprocess_for_eval(np.zeros((8, 8, 5), np.uint8), 4, 4)
  with pytest.raises(ValueError, match="height and width"):
    preprocessing.preprocess_for_train(np.zeros((8, 8, 3), np.uint8), 0, 4)


def slim_vgg_eval_reference(image_uint8, height, width, resize_side=256):
  """TF-slim's `vgg_preprocessing.preprocess_for_eval` with TF1 ops in a TF1 graph."""
  graph = tf.Graph()
  with graph.as_default():
    placeholder = tf.compat.v1.placeholder(tf.uint8, [None, None, 3])
    shape = tf.shape(placeholder)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    side = tf.cast(tf.convert_to_tensor(resize_side, tf.int32), tf.float32)
    scale = tf.cond(tf.greater(h, w), lambda: side / w, lambda: side / h)
    new_size = tf.stack([tf.cast(tf.math.rint(h * scale), tf.int32),
                         tf.cast(tf.math.rint(w * scale), tf.int32)])
    resized = tf.compat.v1.image.resize_bilinear(tf.expand_dims(placeholder, 0), new_size,
                                                 align_corners=False)
    resized = tf.squeeze(resized, [0])
    offset_h = (tf.shape(resized)[0] - height) / 2  # true division, truncated below (slim)
    offset_w = (tf.shape(resized)[1] - width) / 2
    offsets = tf.cast(tf.stack([offset_h, offset_w, tf.constant(0, tf.float64)]), tf.int32)
    crop = tf.slice(resized, offsets, [height, width, 3])
    crop = tf.cast(crop, tf.float32) - tf.constant([123.68, 116.78, 103.94])
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run(crop, {placeholder: image_uint8})


@pytest.mark.parametrize("name", ["chelsea", "rocket"])
def test_vgg_eval_equals_slim_reference(name):
  photo = _photo(name)
  np.testing.assert_allclose(preprocessing.preprocess_vgg_for_eval(photo, 224, 224).numpy(),
                             slim_vgg_eval_reference(photo, 224, 224), atol=1e-4, rtol=0)


def test_vgg_train_shape_seed_and_range():
  photo = _photo("coffee")
  outs = [preprocessing.preprocess_vgg_for_train(photo, 224, 224, seed=s).numpy() for s in range(3)]
  for out in outs:
    assert out.shape == (224, 224, 3)
    assert out.min() >= -123.68 - 1e-3 and out.max() <= 255 - 103.94 + 1e-3
  np.testing.assert_array_equal(
      preprocessing.preprocess_vgg_for_train(photo, 224, 224, seed=1).numpy(), outs[1])
  assert np.abs(outs[0] - outs[1]).mean() > 1.0


@pytest.mark.parametrize("crop_hw", [(150, 180), (299, 299), (120, 500), (500, 480)])
def test_bilinear_resize_of_a_uint8_crop_equals_tf_image_resize_bit_for_bit(crop_hw):
  # `_resize_bilinear` casts crops at or below 3x the output's pixels to float32 first and gives
  # larger ones to the uint8 kernel. Both branches must equal tf.image.resize of the uint8 crop
  # exactly (the train host half relies on it), so both are run on every crop size here.
  photo = skimage.data.retina()[..., :3]
  crop = tf.constant(photo[411:411 + crop_hw[0], 307:307 + crop_hw[1]])  # inside the retina
  expected = tf.image.resize(crop, [100, 100]).numpy()  # the uint8 kernel
  np.testing.assert_array_equal(tf.image.resize(tf.cast(crop, tf.float32), [100, 100]).numpy(),
                                expected)  # the float-cast branch
  got = preprocessing._resize_bilinear(crop, [100, 100])  # pylint: disable=protected-access
  assert got.dtype == tf.float32
  np.testing.assert_array_equal(got.numpy(), expected)
  # Not a trivial image: the crop holds part of the retina, with fractional interpolated values.
  assert expected.std() > 10.0 and np.any(expected != np.round(expected))
