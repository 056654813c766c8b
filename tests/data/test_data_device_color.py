"""The TPU-style split of the train preprocessing: the uint8 host half and `distort_color_batch`,
checked against the tf.image adjustments in slim's orders on real photos."""

import io

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf.data import pipeline
from inception_tf.data import preprocessing

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel")
SIZE = 64
# slim's inception_preprocessing.distort_color: the op order of each color_ordering.
SLIM_ORDERS = {False: ("BSHC", "SBCH", "CHBS", "HSCB"), True: ("BS",)}  # slim: fast mode = order 0


@pytest.fixture(scope="module")
def photos():
  """float32 [6, 64, 64, 3] in [0, 1]: real photos resized (bilinear), one per row."""
  images = [tf.image.resize(getattr(skimage.data, name)()[..., :3], [SIZE, SIZE]) / 255.0
            for name in PHOTOS]
  return tf.clip_by_value(tf.stack(images), 0.0, 1.0).numpy()


def _slim_distort(image, params, ops):
  """slim's distort_color for one image with fixed parameters: tf.image adjustments in order."""
  adjust = {
      "B": lambda x: tf.image.adjust_brightness(x, params["brightness"]),
      "S": lambda x: tf.image.adjust_saturation(x, params["saturation"]),
      "H": lambda x: tf.image.adjust_hue(x, params["hue"]),
      "C": lambda x: tf.image.adjust_contrast(x, params["contrast"]),
  }
  for op in ops:
    image = adjust[op](image)
  return (tf.clip_by_value(image, 0.0, 1.0) - 0.5) * 2.0


def _params(num, order, seed):
  """Different parameters per image spanning slim's ranges, their ends included (the ends push
  pixels outside [0, 1] between the steps)."""
  rng = np.random.default_rng(seed)

  def spread(low, high):
    values = rng.uniform(low, high, num)
    values[:2] = low, high
    return rng.permutation(values).astype(np.float32)

  return {"brightness": spread(-32 / 255, 32 / 255), "saturation": spread(0.5, 1.5),
          "hue": spread(-0.2, 0.2), "contrast": spread(0.5, 1.5),
          "order": np.full([num], order, np.int32)}


@pytest.mark.parametrize("fast_mode,order", [(False, 0), (False, 1), (False, 2), (False, 3),
                                             (True, 0)])
def test_batched_distortion_equals_tf_image_ops_in_slims_order(photos, fast_mode, order):
  params = _params(len(photos), order, seed=order + 10 * fast_mode)
  got = preprocessing.distort_color_batch_with_params(photos, params, fast_mode=fast_mode).numpy()
  assert got.shape == photos.shape and got.dtype == np.float32
  for i in range(len(photos)):
    expected = _slim_distort(photos[i], {k: v[i] for k, v in params.items()},
                             SLIM_ORDERS[fast_mode][order])
    np.testing.assert_allclose(got[i], expected.numpy(), rtol=0, atol=1e-5, err_msg=PHOTOS[i])


def test_mixed_orders_in_one_batch_equal_each_image_alone(photos):
  params = _params(len(photos), 0, seed=7)
  params["order"] = np.array([0, 1, 2, 3, 2, 1], np.int32)
  got = preprocessing.distort_color_batch_with_params(photos, params, fast_mode=False).numpy()
  for i in range(len(photos)):
    expected = _slim_distort(photos[i], {k: v[i] for k, v in params.items()},
                             SLIM_ORDERS[False][params["order"][i]])
    np.testing.assert_allclose(got[i], expected.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_random_parameters_are_in_slims_ranges_and_depend_on_image_and_seed(fast_mode):
  params = {k: v.numpy() for k, v in
            preprocessing.color_distortion_params([3, 4], 512, fast_mode=fast_mode).items()}
  ranges = {"brightness": (-32 / 255, 32 / 255), "saturation": (0.5, 1.5), "hue": (-0.2, 0.2),
            "contrast": (0.5, 1.5)}
  for name, (low, high) in ranges.items():
    values = params[name]
    assert values.shape == (512,) and low <= values.min() and values.max() <= high, name
    # Spread over the range (a uniform sample of 512 covers it) and different per image.
    assert values.min() < low + 0.05 * (high - low) and values.max() > high - 0.05 * (high - low)
    assert len(np.unique(values)) > 500, name
  counts = np.bincount(params["order"], minlength=4)
  if fast_mode:  # slim applies its fast-mode colour distortion with ordering 0 only
    assert counts[0] == 512
  else:
    assert len(counts) == 4 and (counts > 80).all()
  # The parameters are not correlated across ops.
  assert abs(np.corrcoef(params["brightness"], params["contrast"])[0, 1]) < 0.2
  again = preprocessing.color_distortion_params(tf.constant([3, 4], tf.int64), 512,
                                                fast_mode=fast_mode)
  other = preprocessing.color_distortion_params([3, 5], 512, fast_mode=fast_mode)
  for name in ranges:
    np.testing.assert_array_equal(again[name].numpy(), params[name])
    assert not np.allclose(other[name].numpy(), params[name])


def test_same_seed_same_output_jit_equals_eager_and_bfloat16_input(photos):
  uint8 = np.round(photos * 255).astype(np.uint8)
  seed = tf.constant([11, 12], tf.int64)
  eager = preprocessing.distort_color_batch(uint8, seed).numpy()
  np.testing.assert_array_equal(preprocessing.distort_color_batch(uint8, seed).numpy(), eager)
  assert not np.allclose(preprocessing.distort_color_batch(uint8, [11, 13]).numpy(), eager)
  assert eager.dtype == np.float32 and -1.0 <= eager.min() and eager.max() <= 1.0
  # uint8 input is x / 255.
  np.testing.assert_allclose(
      preprocessing.distort_color_batch(uint8.astype(np.float32) / 255.0, seed).numpy(), eager,
      rtol=0, atol=1e-5)

  compiled = tf.function(preprocessing.distort_color_batch, jit_compile=True)
  np.testing.assert_allclose(compiled(uint8, seed).numpy(), eager, rtol=0, atol=1e-5)
  # bfloat16 input (a TPU batch): computed in float32, equal to float32 input of the same values.
  bf16 = tf.cast(photos, tf.bfloat16)
  got = compiled(bf16, seed)
  assert got.dtype == tf.float32
  np.testing.assert_allclose(
      got.numpy(), preprocessing.distort_color_batch(tf.cast(bf16, tf.float32), seed).numpy(),
      rtol=0, atol=1e-5)


def test_distort_color_batch_refuses_bad_input():
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    preprocessing.distort_color_batch(tf.zeros([8, 8, 3], tf.uint8), [1, 2])
  with pytest.raises(ValueError, match="int32"):
    preprocessing.distort_color_batch(tf.zeros([1, 8, 8, 3], tf.int32), [1, 2])
  with pytest.raises(ValueError, match="shape"):
    preprocessing.distort_color_batch(tf.zeros([1, 8, 8, 3], tf.uint8), [1, 2, 3])


def _jpeg(name):
  buffer = io.BytesIO()
  Image.fromarray(getattr(skimage.data, name)()).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


@pytest.mark.parametrize("fast_mode", [False, True])
def test_host_half_is_uint8_and_equals_the_float_path_before_distortion(fast_mode):
  """Same seed: same crop, flip and resize method as `preprocess_for_train`; within 1/255."""
  sources = {"jpeg": _jpeg("chelsea"), "array": skimage.data.astronaut(),
             "gray": skimage.data.camera()[..., None]}
  for name, source in sources.items():
    for seed in range(4):  # covers the 4 resize methods (incl. bicubic's overshoot) and flips
      host = preprocessing.preprocess_for_train_uint8(source, 96, 80, fast_mode=fast_mode,
                                                      seed=seed)
      assert host.dtype == tf.uint8 and host.shape == (96, 80, 3)
      reference = preprocessing.preprocess_for_train(source, 96, 80, fast_mode=fast_mode,
                                                     seed=seed, color_distortion=False)
      np.testing.assert_allclose(host.numpy() / 255.0, reference.numpy() / 2.0 + 0.5, rtol=0,
                                 atol=1 / 255 / 2 + 1e-6, err_msg=f"{name} seed {seed}")


def test_host_half_inside_tf_data_equals_eager():
  data = _jpeg("coffee")
  ds = tf.data.Dataset.range(3).map(
      lambda i: preprocessing.preprocess_for_train_uint8(data, 64, 64, seed=tf.stack([i, i])))
  for i, image in enumerate(ds):
    eager = preprocessing.preprocess_for_train_uint8(data, 64, 64, seed=tf.constant([i, i],
                                                                                  tf.int64))
    np.testing.assert_array_equal(image.numpy(), eager.numpy())


def test_pipeline_with_device_colour_distortion_yields_uint8_batches(digits_dir):
  common = dict(split="train", is_training=True, batch_size=8, image_size=48, seed=3,
                deterministic=True)
  device = next(iter(pipeline.make_dataset(digits_dir, color_distortion_on_device=True,
                                           **common)))
  host = next(iter(pipeline.make_dataset(digits_dir, **common)))
  assert device["images"].dtype == tf.uint8 and device["images"].shape == (8, 48, 48, 3)
  np.testing.assert_array_equal(device["labels"].numpy(), host["labels"].numpy())
  # The device half brings the batch to the host path's range and dtype.
  distorted = preprocessing.distort_color_batch(device["images"], [3, 0])
  assert distorted.dtype == host["images"].dtype and distorted.shape == host["images"].shape
  assert -1.0 <= float(tf.reduce_min(distorted)) and float(tf.reduce_max(distorted)) <= 1.0
  with pytest.raises(ValueError, match="color_distortion_on_device"):
    pipeline.make_dataset(digits_dir, color_distortion_on_device=True,
                          **dict(common, is_training=False))
