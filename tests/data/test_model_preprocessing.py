"""Each model's own preprocessing: `for_model` / `by_kind`, slim's vgg_preprocessing, torchvision's.

References come from outside our code: slim's vgg_preprocessing math run as TF1 ops in a TF1 graph
(written here from slim's source: the tf-slim pip package ships `nets/` but not `preprocessing/`),
torchvision's own eval transform on three JPEGs (`../shared/torch_references`), and PIL's resampler
(the algorithm torch's uint8 antialiased kernel was ported from).
"""

import io
import json
import os

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf.data import preprocessing
from inception_tf.data import torchvision_preprocessing as tv
from inception_tf.data import vgg_preprocessing as vgg
from inception_tf.models import list_models
from inception_tf.models import model_info

TORCH_REFERENCES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                "torch_references")
PHOTOS = ("astronaut", "chelsea", "coffee")  # 512x512, 300x451, 400x600


def _photo(name, half=False):
  photo = getattr(skimage.data, name)()
  if half:  # a second size: about 3/4, odd sides, other aspect rounding
    image = Image.fromarray(photo)
    photo = np.asarray(image.resize((image.width * 3 // 4 + 1, image.height * 3 // 4 - 1),
                                    Image.BILINEAR))
  return photo


# --- slim's vgg_preprocessing as TF1 ops (the reference; slim's code, not ours) -------------------

def _slim_aspect_preserving_resize(image, smallest_side):
  """slim's `_smallest_size_at_least` + `_aspect_preserving_resize` (TF1 graph ops)."""
  shape = tf.shape(image)
  height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  side = tf.cast(tf.convert_to_tensor(smallest_side, tf.int32), tf.float32)
  scale = tf.cond(tf.greater(height, width), lambda: side / width, lambda: side / height)
  new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
  new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
  resized = tf.compat.v1.image.resize_bilinear(tf.expand_dims(image, 0), [new_height, new_width],
                                               align_corners=False)
  return tf.squeeze(resized, [0])


def _slim_crop(image, offset_height, offset_width, crop_height, crop_width):
  """slim's `_crop`: offsets stacked and cast with tf.to_int32 (truncation)."""
  offsets = tf.cast(tf.stack([offset_height, offset_width, tf.constant(0, offset_height.dtype)]),
                    tf.int32)
  return tf.slice(image, offsets, [crop_height, crop_width, 3])


def _slim_mean_image_subtraction(image):
  channels = tf.split(image, 3, axis=2)
  means = (123.68, 116.78, 103.94)
  return tf.concat([c - m for c, m in zip(channels, means)], axis=2)


def slim_vgg_eval(image_uint8, size, resize_side=256):
  """slim's `vgg_preprocessing.preprocess_for_eval(image, size, size, resize_side)`."""
  graph = tf.Graph()
  with graph.as_default():
    image = tf.compat.v1.placeholder(tf.uint8, [None, None, 3])
    resized = _slim_aspect_preserving_resize(image, resize_side)
    # slim's `_central_crop`: `(height - crop) / 2` is a true division under
    # `from __future__ import division`, truncated by `_crop`'s cast.
    shape = tf.shape(resized)
    crop = _slim_crop(resized, (shape[0] - size) / 2, (shape[1] - size) / 2, size, size)
    out = _slim_mean_image_subtraction(tf.cast(crop, tf.float32))
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run(out, {image: image_uint8})


def slim_vgg_train(image_uint8, size, side, top_draw, left_draw, flip):
  """slim's `vgg_preprocessing.preprocess_for_train` with its random numbers given.

  slim draws the side with `tf.random_uniform([], 256, 513, tf.int32)`, each offset uniform over
  `[0, resized - size]`, and flips with probability 1/2; here the draws are the ones our function
  took for a seed (`vgg.train_draws`), reduced to offsets as ours does.
  """
  graph = tf.Graph()
  with graph.as_default():
    image = tf.compat.v1.placeholder(tf.uint8, [None, None, 3])
    resized = _slim_aspect_preserving_resize(image, side)
    shape = tf.shape(resized)
    top = tf.math.floormod(top_draw, shape[0] - size + 1)
    left = tf.math.floormod(left_draw, shape[1] - size + 1)
    crop = tf.cast(_slim_crop(resized, top, left, size, size), tf.float32)
    if flip:
      crop = tf.compat.v1.image.flip_left_right(crop)
    out = _slim_mean_image_subtraction(crop)
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run(out, {image: image_uint8})


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("name", PHOTOS)
def test_vgg_eval_equals_slim_bit_for_bit(name, half):
  photo = _photo(name, half)
  expected = slim_vgg_eval(photo, 224)
  got = preprocessing.for_model("resnet_v1_50")(photo).numpy()
  np.testing.assert_array_equal(got, expected)
  # Negative control: TF2's half-pixel resize (tf.image.resize) is not slim's.
  height, width = photo.shape[:2]
  scale = 256 / min(height, width)
  tf2 = tf.image.resize(photo, [round(height * scale), round(width * scale)])
  top, left = (tf2.shape[0] - 224) // 2, (tf2.shape[1] - 224) // 2
  tf2 = tf2[top:top + 224, left:left + 224] - np.array(vgg.VGG_MEANS, np.float32)
  assert np.abs(tf2.numpy() - expected).max() > 5.0


def test_vgg_eval_at_another_size_scales_the_resize_side():
  photo = _photo("chelsea")
  # 299 / 0.875 = 341.7 -> 341: slim's 256/224 framing at a 299 input.
  expected = slim_vgg_eval(photo, 299, resize_side=341)
  got = preprocessing.for_model("resnet_v1_50", image_size=299)(photo).numpy()
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_vgg_train_equals_slim_with_the_same_draws(seed):
  photo = _photo("coffee", half=seed == 7)
  draws = {k: v.numpy() for k, v in vgg.train_draws(seed, 256, 512).items()}
  expected = slim_vgg_train(photo, 224, draws["side"], draws["top"], draws["left"], draws["flip"])
  got = preprocessing.for_model("resnet_v1_50", is_training=True)(photo, seed=seed).numpy()
  np.testing.assert_array_equal(got, expected)


def test_vgg_train_draws_cover_slims_ranges():
  assert (vgg.RESIZE_SIDE_MIN, vgg.RESIZE_SIDE_MAX) == (256, 512)  # slim's _RESIZE_SIDE_MIN/MAX
  draws = list(tf.data.Dataset.range(200)
               .map(lambda s: vgg.train_draws(s, vgg.RESIZE_SIDE_MIN, vgg.RESIZE_SIDE_MAX))
               .as_numpy_iterator())
  sides = np.array([d["side"] for d in draws])
  assert sides.min() >= 256 and sides.max() <= 512
  assert sides.min() < 270 and sides.max() > 500  # the whole range is reached
  flips = np.mean([d["flip"] for d in draws])
  assert 0.35 < flips < 0.65


# --- torchvision ----------------------------------------------------------------------------------

def _torchvision_reference():
  data = np.load(os.path.join(TORCH_REFERENCES, "preprocess_eval_torchvision.npz"))
  meta = json.loads(str(data["meta"]))
  assert "antialias=True" in meta["transform"] and "CenterCrop(224)" in meta["transform"]
  return list(data["names"]), data["outputs"]


def _jpeg(name):
  with open(os.path.join(TORCH_REFERENCES, "images", f"{name}.jpg"), "rb") as f:
    return f.read()


@pytest.mark.parametrize("mode", ["eager", "tf.function", "tf.data"])
def test_torchvision_eval_equals_torchvision_bit_for_bit(mode):
  """torchvision 0.29's `transforms.v2` eval transform on the three JPEGs: max |diff| = 0.

  Measured alternatives (max / mean abs difference after normalisation, over the three photos):
  TF's default JPEG decoder (fast IDCT) 0.21 / 0.020; `tf.image.resize(antialias=True)` instead of
  torch's uint8 kernel 0.0175 (one uint8 level) / 0.005; no antialiasing 1.23 / 0.013-0.034.
  """
  names, outputs = _torchvision_reference()
  fn = preprocessing.by_kind("torchvision", 224)
  images = [_jpeg(name) for name in names]
  if mode == "eager":
    got = [fn(image).numpy() for image in images]
  elif mode == "tf.function":
    compiled = tf.function(fn)
    got = [compiled(tf.constant(image)).numpy() for image in images]
  else:
    got = list(tf.data.Dataset.from_tensor_slices(images).map(fn).as_numpy_iterator())
  for name, image, expected in zip(names, got, outputs):
    assert image.dtype == np.float32 and image.shape == (224, 224, 3), name
    np.testing.assert_array_equal(image, expected, err_msg=name)


def test_torchvision_eval_negative_controls():
  names, outputs = _torchvision_reference()
  data = _jpeg(names[0])
  # TF's default decode (fast IDCT) is not what torchvision decoded.
  fast = preprocessing.by_kind("torchvision", 224)(tf.io.decode_jpeg(data, channels=3)).numpy()
  assert np.abs(fast - outputs[0]).max() > 0.05
  # TF's float antialiased resize is close (within one uint8 level) but not the same kernel.
  image = tv.decode_rgb(data)
  height, width = tv.resized_size(tf.shape(image)[0], tf.shape(image)[1], 256)
  tf_resized = tf.image.resize(image, [height, width], antialias=True)
  tf_out = tv.normalize(tv.center_crop(tf_resized, 224, 224)).numpy()
  diff = np.abs(tf_out - outputs[0])
  assert 0 < diff.max() < 1.01 / 255 / 0.224


def test_torchvision_sizes_and_center_crop_follow_torchvision():
  # int(256 * long / short), shorter side first by width <= height, as torchvision.
  sizes = [tuple(int(v) for v in tv.resized_size(h, w, 256)) for h, w in
           [(300, 451), (451, 300), (400, 600), (256, 999), (333, 333)]]
  assert sizes == [(256, 384), (384, 256), (256, 384), (256, 999), (256, 256)]
  # CenterCrop's round((side - crop) / 2) rounds half to even: 33 / 2 -> 16, 35 / 2 -> 18.
  image = tf.reshape(tf.range(257 * 259 * 1), [257, 259, 1])
  crop = tv.center_crop(image, 224, 224)
  assert int(crop[0, 0, 0]) == 16 * 259 + 18


@pytest.mark.parametrize("out_hw", [(100, 70), (40, 60), (224, 224), (301, 401)])
def test_uint8_antialiased_resize_matches_pil_within_one_level(out_hw):
  """torch's kernel is PIL's algorithm with int16 weights (about 15 bits) where PIL uses 22 bits:
  both round per pass, so they may differ by one level where a sum lands near .5. 40 x 60 (a 6x
  downscale) takes the int32 tap loop, the other sizes the float32 all-taps path."""
  photo = _photo("astronaut")[40:290, 10:360]  # 250 x 350: down- and upscaled below
  got = tv.resize_antialiased_uint8(photo, *out_hw).numpy()
  pil = np.asarray(Image.fromarray(photo).resize(out_hw[::-1], Image.BILINEAR, reducing_gap=None))
  diff = np.abs(got.astype(int) - pil.astype(int))
  assert diff.max() <= 1
  assert (diff == 0).mean() > 0.97
  # Negative control: TF's non-antialiased bilinear resize is far from it when downscaling.
  if out_hw[0] < 250:
    plain = tf.cast(tf.round(tf.image.resize(photo, out_hw)), tf.int32).numpy()
    assert np.abs(plain - pil.astype(int)).max() > 10


def test_torchvision_train_boxes_follow_random_resized_crop():
  seeds = tf.data.Dataset.range(300).map(lambda s: tf.stack([s, 5]))
  boxes = np.array(list(seeds.map(lambda s: tv.random_resized_crop_box(300, 451, s))
                        .as_numpy_iterator()))
  top, left, height, width = boxes.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + height <= 300).all() and (left + width <= 451).all()
  area = height * width / (300 * 451)
  ratio = width / height
  assert area.min() >= 0.07 and area.max() <= 1.0 and area.min() < 0.15 and area.max() > 0.8
  assert ratio.min() >= 0.74 and ratio.max() <= 1.35
  # An extreme panorama fails all 10 attempts: the fallback is the centred 4/3 box.
  np.testing.assert_array_equal(tv.random_resized_crop_box(10, 1000, tf.constant([1, 2])).numpy(),
                                [0, (1000 - 13) // 2, 10, 13])


def test_torchvision_train_is_the_box_resized_and_flipped():
  photo = _photo("chelsea")
  fn = preprocessing.by_kind("torchvision", 128, is_training=True)
  for seed in range(4):
    seeds = preprocessing._seeds(seed)  # pylint: disable=protected-access
    top, left, height, width = tv.random_resized_crop_box(300, 451, seeds[0]).numpy()
    crop = tv.resize_antialiased_uint8(photo[top:top + height, left:left + width], 128, 128)
    expected = tv.normalize(crop).numpy()
    got = fn(photo, seed=seed).numpy()
    if not np.array_equal(got, expected):
      np.testing.assert_array_equal(got, expected[:, ::-1])


@pytest.mark.parametrize("module", [vgg, tv], ids=["vgg", "torchvision"])
def test_multicrop_hooks_compose_to_the_eval_transform(module):
  """The pieces a multi-crop evaluator uses (decode, resize a scale, slice, resize a box,
  normalize) give the 1-crop eval transform back, and `resize` of an S x S box is the identity."""
  jpeg = _jpeg("coffee")
  pixels = module.to_pixels(jpeg)
  # slim's and torchvision's 256 for 224 with the registry's crop fraction 0.875.
  assert preprocessing.resize_side_for_crop(224) == tv.RESIZE_SIZE == vgg.RESIZE_SIDE_MIN == 256
  side = preprocessing.resize_side_for_crop(160)
  scaled = module.resize_shorter_side(pixels, side)
  assert min(scaled.shape[:2]) == side == 182
  if module is vgg:
    top, left = (scaled.shape[0] - 160) // 2, (scaled.shape[1] - 160) // 2
    box = scaled[top:top + 160, left:left + 160]
  else:
    box = tv.center_crop(scaled, 160, 160)
  expected = module.preprocess_for_eval(jpeg, 160).numpy()
  np.testing.assert_array_equal(module.normalize(box).numpy(), expected)
  np.testing.assert_array_equal(module.normalize(module.resize(box, 160, 160)).numpy(), expected)


# --- for_model / by_kind --------------------------------------------------------------------------

def test_for_model_takes_the_registry_kind_and_size():
  photo = _photo("chelsea")
  np.testing.assert_array_equal(preprocessing.for_model("inception_v3")(photo).numpy(),
                                preprocessing.preprocess_for_eval(photo, 299, 299).numpy())
  np.testing.assert_array_equal(preprocessing.for_model("resnet_v1_50")(photo).numpy(),
                                vgg.preprocess_for_eval(photo, 224, 256).numpy())
  assert preprocessing.for_model("inception_v3", image_size=96)(photo).shape == (96, 96, 3)
  # The explicit override.
  np.testing.assert_array_equal(
      preprocessing.for_model("inception_v3", 224, kind="torchvision")(photo).numpy(),
      tv.preprocess_for_eval(photo, 224).numpy())


def test_for_model_torchvision_layout_nets_take_torchvision_preprocessing():
  names, outputs = _torchvision_reference()
  for model in ("resnet18", "resnext50_32x4d"):
    np.testing.assert_array_equal(preprocessing.for_model(model)(_jpeg(names[1])).numpy(),
                                  outputs[1])


def test_unknown_names_and_kinds_are_explained():
  with pytest.raises(ValueError, match="Unknown model 'resnet_v9'.*inception_v3"):
    preprocessing.for_model("resnet_v9")
  with pytest.raises(ValueError, match="Unknown preprocessing kind 'caffe'.*torchvision"):
    preprocessing.for_model("inception_v3", kind="caffe")
  with pytest.raises(ValueError, match="interpolation 'bicubic'"):
    preprocessing.by_kind("torchvision", 224, interpolation="bicubic")
  with pytest.raises(ValueError, match="resize_size=200 must be >= image_size=224"):
    preprocessing.by_kind("torchvision", 224, resize_size=200)(_photo("chelsea"))


def test_a_model_whose_kind_has_no_function_asks_for_an_override():
  others = [name for name in list_models()
            if model_info(name).preprocessing not in preprocessing.PREPROCESSING_KINDS]
  if not others:
    pytest.skip("every registered model's kind has a function (fid_inception_v3 had 'fid')")
  with pytest.raises(ValueError, match=f"{others[0]}.*pass kind="):
    preprocessing.for_model(others[0])
  assert preprocessing.for_model(others[0], kind="inception")(_photo("chelsea")).shape[-1] == 3


@pytest.mark.parametrize("kind", preprocessing.PREPROCESSING_KINDS)
@pytest.mark.parametrize("is_training", [False, True])
def test_eager_tf_function_and_tf_data_agree_with_static_shapes(kind, is_training):
  size = 64
  fn = preprocessing.by_kind(kind, size, is_training=is_training)
  photos = [_photo("chelsea", half=True), _photo("astronaut", half=True)]
  jpegs = []
  for photo in photos:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
    jpegs.append(buffer.getvalue())

  def call(image, index):
    return fn(image, seed=tf.stack([index, 3])) if is_training else fn(image)

  eager = [call(j, tf.constant(i, tf.int64)).numpy() for i, j in enumerate(jpegs)]
  compiled = tf.function(call)
  graph = [compiled(tf.constant(j), tf.constant(i, tf.int64)).numpy() for i, j in enumerate(jpegs)]
  ds = tf.data.Dataset.from_tensor_slices(jpegs).enumerate().map(lambda i, j: call(j, i))
  assert ds.element_spec.shape == (size, size, 3)
  assert ds.element_spec.dtype == tf.float32
  for e, g, d in zip(eager, graph, ds.as_numpy_iterator()):
    assert e.shape == (size, size, 3)
    np.testing.assert_array_equal(e, g)
    np.testing.assert_array_equal(e, d)
  if is_training:  # the seed matters
    other = call(jpegs[0], tf.constant(5, tf.int64)).numpy()
    assert np.abs(other - eager[0]).mean() > 1e-3


def test_torchvision_eval_survives_a_savedmodel_round_trip(tmp_path):
  """Serving signatures embed the function (its resize is a nested tf.function): still exact."""
  names, outputs = _torchvision_reference()
  fn = preprocessing.by_kind("torchvision", 224)
  module = tf.Module()
  module.preprocess = tf.function(
      lambda jpegs: tf.map_fn(fn, jpegs, fn_output_signature=tf.TensorSpec([224, 224, 3])),
      input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path))
  restored = tf.saved_model.load(str(tmp_path))
  got = restored.preprocess(tf.constant([_jpeg(name) for name in names])).numpy()
  np.testing.assert_array_equal(got, outputs)
