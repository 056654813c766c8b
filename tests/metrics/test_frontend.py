"""The metrics' front end: TF1 resize_bilinear(align_corners=False) to 299, then (x - 128) / 128."""

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from inception_tf.metrics import frontend

PHOTOS = {"astronaut": skimage.data.astronaut(),  # 512 x 512
          "chelsea": skimage.data.chelsea(),  # 300 x 451
          "coffee": skimage.data.coffee()}  # 400 x 600


def _sizes():
  """Real photos at several sizes: as they are, and crops smaller than 299 (upsampling)."""
  for name, photo in PHOTOS.items():
    yield f"{name}_full", photo
  yield "astronaut_64x80", PHOTOS["astronaut"][100:164, 200:280]
  yield "coffee_299x299", PHOTOS["coffee"][:299, :299]
  yield "chelsea_150x301", PHOTOS["chelsea"][50:200, 100:401]


@pytest.mark.parametrize("name, image", list(_sizes()), ids=[n for n, _ in _sizes()])
def test_resize_equals_tf1_resize_bilinear_and_scaling_is_x_minus_128_over_128(name, image):
  del name
  expected = tf.compat.v1.image.resize_bilinear(
      tf.cast(image[np.newaxis], tf.float32), [299, 299], align_corners=False)[0].numpy()
  got = frontend.preprocess(image).numpy()
  assert got.shape == (299, 299, 3) and got.dtype == np.float32
  np.testing.assert_array_equal(got, (expected - 128.0) / 128.0)
  # Float input in [0, 255] is the same as uint8 input.
  np.testing.assert_array_equal(frontend.preprocess(image.astype(np.float32)).numpy(), got)


def test_half_pixel_resize_would_differ():
  image = PHOTOS["chelsea"]
  half_pixel = (tf.image.resize(tf.cast(image, tf.float32), [299, 299]).numpy() - 128) / 128
  assert np.abs(frontend.preprocess(image).numpy() - half_pixel).max() > 0.05


def test_an_image_of_299_is_only_scaled():
  image = np.arange(299 * 299 * 3, dtype=np.int64).reshape(299, 299, 3) % 256
  got = frontend.preprocess(image.astype(np.uint8)).numpy()
  np.testing.assert_array_equal(got, (image.astype(np.float32) - 128.0) / 128.0)
  assert got.min() == -1.0 and got.max() == 127.0 / 128.0


def test_batches_gray_and_tf_data_give_the_same_as_eager():
  crops = np.stack([PHOTOS["astronaut"][:200, :220], PHOTOS["astronaut"][200:400, 100:320]])
  eager = frontend.preprocess(crops).numpy()
  np.testing.assert_array_equal(eager[1], frontend.preprocess(crops[1]).numpy())
  in_data = np.stack(list(tf.data.Dataset.from_tensor_slices(crops).map(frontend.preprocess)
                          .as_numpy_iterator()))
  np.testing.assert_array_equal(in_data, eager)
  gray = crops[0, :, :, :1]
  np.testing.assert_array_equal(frontend.preprocess(gray).numpy(),
                                frontend.preprocess(np.repeat(gray, 3, axis=2)).numpy())
