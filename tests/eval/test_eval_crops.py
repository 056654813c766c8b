"""Crop geometry of the 1/10/12/144-crop protocols and the op that cuts it."""

import numpy as np
import pytest
import tensorflow as tf

from inception_tf.data import preprocessing
from inception_tf.eval import crops as crops_lib


def _boxes(geometry):
  return [(c.scale, int(c.top), int(c.left), int(c.height), int(c.width), c.mirror)
          for c in geometry.crops]


@pytest.mark.parametrize("crops", [1, 10, 12, 144])
@pytest.mark.parametrize("height,width", [(300, 400), (400, 300), (256, 256), (96, 96)])
def test_counts_and_boxes_inside_the_scaled_image(crops, height, width):
  geometry = crops_lib.crop_geometry(height, width, 224, crops)
  assert len(geometry.crops) == geometry.crops_per_image == crops
  for crop in geometry.crops:
    h, w = (height, width) if crop.scale is None else geometry.scales[crop.scale]
    assert 0 <= crop.top and crop.top + crop.height <= h
    assert 0 <= crop.left and crop.left + crop.width <= w
    assert crop.height == crop.width or crop.scale is None
  if crops > 1:
    half = crops // 2
    assert [c.mirror for c in geometry.crops] == [False] * half + [True] * half
    unmirrored = _boxes(geometry)[:half]
    assert [b[:5] for b in _boxes(geometry)[half:]] == [b[:5] for b in unmirrored]


def test_scales_are_googlenets_scaled_to_the_input_size():
  assert crops_lib.scale_sizes(224, 144) == (256, 288, 320, 352)
  # 256 * 299 / 224 = 341.7, 384.4, 427.1, 469.9.
  assert crops_lib.scale_sizes(299, 144) == (342, 384, 427, 470)
  assert crops_lib.scale_sizes(299, 12) == (342,)
  assert crops_lib.scale_sizes(299, 10) == (342,)
  assert crops_lib.scale_sizes(299, 1) == ()


def test_144_crop_boxes_of_a_landscape_image():
  # 240 x 320 at S = 224: scales (shorter side) 256, 288, 320, 352.
  geometry = crops_lib.crop_geometry(240, 320, 224, 144)
  assert geometry.scales == ((256, 341), (288, 384), (320, 427), (352, 469))
  boxes = _boxes(geometry)
  # Scale 0 (256 x 341): squares at x = 0, 42, 85; margin L - S = 32.
  expected_scale0 = []
  for x in (0, 42, 85):
    expected_scale0 += [(0, 0, x, 224, 224, False), (0, 0, x + 32, 224, 224, False),
                        (0, 32, x, 224, 224, False), (0, 32, x + 32, 224, 224, False),
                        (0, 16, x + 16, 224, 224, False), (0, 0, x, 256, 256, False)]
  assert boxes[:18] == expected_scale0
  # Last unmirrored crop: scale 3 (352 x 469), last square x = 117, whole square.
  assert boxes[71] == (3, 0, 117, 352, 352, False)
  assert boxes[72] == (0, 0, 0, 224, 224, True)


def test_portrait_squares_run_top_to_bottom():
  geometry = crops_lib.crop_geometry(320, 240, 224, 144)
  assert geometry.scales[0] == (341, 256)
  squares = [(c.top, c.left) for c in geometry.crops[:18] if c.position == "top_left"]
  assert squares == [(0, 0), (42, 0), (85, 0)]


def test_12_crops_use_the_centre_square_of_the_first_scale():
  boxes = _boxes(crops_lib.crop_geometry(240, 320, 224, 12))
  assert boxes[:6] == [(0, 0, 42, 224, 224, False), (0, 0, 74, 224, 224, False),
                       (0, 32, 42, 224, 224, False), (0, 32, 74, 224, 224, False),
                       (0, 16, 58, 224, 224, False), (0, 0, 42, 256, 256, False)]
  assert [b[:5] for b in boxes[6:]] == [b[:5] for b in boxes[:6]]


def test_10_crops_are_corners_and_centre_of_the_whole_scaled_image():
  geometry = crops_lib.crop_geometry(240, 320, 224, 10)
  assert geometry.scales == ((256, 341),)
  assert _boxes(geometry)[:5] == [(0, 0, 0, 224, 224, False), (0, 0, 117, 224, 224, False),
                                  (0, 32, 0, 224, 224, False), (0, 32, 117, 224, 224, False),
                                  (0, 16, 58, 224, 224, False)]


def test_1_crop_is_tf_central_crop_box():
  (crop,) = crops_lib.crop_geometry(375, 500, 299, 1).crops
  # int((375 - 375 * 0.875) / 2) = 23, int((500 - 437.5) / 2) = 31.
  assert (crop.scale, crop.top, crop.left, crop.height, crop.width) == (None, 23, 31, 329, 438)


def test_geometry_with_tensors_equals_python_ints():
  @tf.function(input_signature=[tf.TensorSpec([], tf.int32)] * 2)
  def boxes(h, w):
    geometry = crops_lib.crop_geometry(h, w, 299, 144)
    scales = tf.stack([tf.stack(s) for s in geometry.scales])
    crops = tf.stack([tf.stack([c.top, c.left, c.height, c.width]) for c in geometry.crops])
    return scales, crops

  for h, w in ((375, 500), (500, 333), (97, 101)):
    geometry = crops_lib.crop_geometry(h, w, 299, 144)
    scales, crops = boxes(tf.constant(h), tf.constant(w))
    np.testing.assert_array_equal(scales.numpy(), np.array(geometry.scales))
    np.testing.assert_array_equal(crops.numpy(), np.array(
        [(c.top, c.left, c.height, c.width) for c in geometry.crops]))


@pytest.mark.parametrize("bad", [0, 2, 5, 100, "abc", None, True])
def test_unknown_crops_value_is_rejected(bad):
  with pytest.raises(ValueError, match="valid values: 1, 10, 12, 144"):
    crops_lib.validate_crops(bad)


def _image(h, w, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("h,w,size", [(375, 500, 299), (96, 96, 75), (61, 47, 80)])
def test_one_crop_equals_slim_eval_preprocessing(h, w, size):
  image = _image(h, w)
  expected = preprocessing.preprocess_for_eval(image, size, size, central_fraction=0.875)
  got = crops_lib.make_crops(image, size, 1)
  assert got.shape == (1, size, size, 3)
  np.testing.assert_array_equal(got[0].numpy(), expected.numpy())
  # Inside tf.data, from JPEG bytes with dynamic shapes.
  data = tf.data.Dataset.from_tensors(tf.io.encode_jpeg(image)).map(
      lambda b: crops_lib.make_crops(preprocessing.decode_image_rgb(b), size, 1))
  decoded = preprocessing.decode_image_rgb(tf.io.encode_jpeg(image))
  np.testing.assert_array_equal(next(iter(data))[0].numpy(),
                                preprocessing.preprocess_for_eval(decoded, size, size).numpy())


@pytest.mark.parametrize("crops", [10, 12, 144])
def test_multi_crops_cut_the_geometry_and_mirror(crops):
  h, w, size = 90, 120, 64
  image = _image(h, w, seed=1)
  got = crops_lib.make_crops(image, size, crops).numpy()
  assert got.shape == (crops, size, size, 3)
  assert got.min() >= -1.0 and got.max() <= 1.0
  geometry = crops_lib.crop_geometry(h, w, size, crops)
  as_float = tf.image.convert_image_dtype(image, tf.float32)
  for index, crop in enumerate(geometry.crops[:crops // 2]):
    scaled = tf.compat.v1.image.resize_bilinear(as_float[tf.newaxis], geometry.scales[crop.scale],
                                                align_corners=False)[0]
    box = scaled[crop.top:crop.top + crop.height, crop.left:crop.left + crop.width]
    if crop.height != size:
      box = tf.compat.v1.image.resize_bilinear(box[tf.newaxis], (size, size))[0]
    np.testing.assert_allclose(got[index], (box.numpy() - 0.5) * 2, atol=1e-6)
    np.testing.assert_array_equal(got[index + crops // 2], got[index][:, ::-1])
  # Eager equals tf.data with dynamic shapes.
  data = tf.data.Dataset.from_tensors(tf.io.encode_jpeg(image)).map(
      lambda b: crops_lib.make_crops(preprocessing.decode_image_rgb(b), size, crops))
  eager = crops_lib.make_crops(preprocessing.decode_image_rgb(tf.io.encode_jpeg(image)), size, crops)
  np.testing.assert_array_equal(next(iter(data)).numpy(), eager.numpy())


def test_describe_is_written_for_every_protocol():
  described = crops_lib.describe(299, 144)
  assert described["shorter_side_scales"] == [342, 384, 427, 470]
  assert described["positions"] == list(crops_lib.POSITIONS)
  assert crops_lib.describe(299, 1)["central_fraction"] == 0.875
