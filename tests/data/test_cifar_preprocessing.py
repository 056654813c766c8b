"""The "cifar" preprocessing kind (ResNet paper §4.2), the input of resnet20 ... and resnext_cifar.

Eval is checked against a numpy TF1 bilinear resize of real photos; a training view must be exactly
one S x S window of the black-padded eval image, possibly mirrored, found by trying every placement
in numpy. The registry, the trainer's input pipeline, the evaluator's dataset and serving must all
apply it to the CIFAR nets.
"""

import ast
import io
import pathlib

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf import export
from inception_tf import models
from inception_tf.data import builder
from inception_tf.data import cifar_preprocessing as cifar
from inception_tf.data import preprocessing
from inception_tf.eval import evaluate
from inception_tf.train import config as config_lib
from inception_tf.train import loop

SIZE = 32
PAD = cifar.PAD
CIFAR_NETS = [f"{prefix}{depth}" for prefix in ("resnet", "plain")
              for depth in (20, 32, 44, 56, 110)] + ["resnext_cifar"]


def _png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def _chelsea():
  return skimage.data.chelsea()  # 300 x 451 x 3 uint8


def _small_gray(row: int = 0, col: int = 0):
  """A 28 x 28 grayscale patch of the camera photo (Fashion-MNIST's size), uint8 [28, 28, 1]."""
  camera = skimage.data.camera()[::4, ::4]  # 128 x 128
  return camera[row:row + 28, col:col + 28, np.newaxis]


def _numpy_resize_tf1(image: np.ndarray, size: int) -> np.ndarray:
  """TF1 `resize_bilinear(align_corners=False)`: source coordinate `i * in / out`, no half-pixel
  centers, edge clamped; float64."""
  image = image.astype(np.float64)
  height, width = image.shape[:2]

  def axis(in_size):
    position = np.arange(size) * (in_size / size)
    low = np.floor(position).astype(int)
    return low, np.minimum(low + 1, in_size - 1), position - low

  y0, y1, fy = axis(height)
  x0, x1, fx = axis(width)
  fy, fx = fy[:, None, None], fx[None, :, None]
  top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
  bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
  return top + (bottom - top) * fy


def _numpy_eval(pixels: np.ndarray, size: int = SIZE) -> np.ndarray:
  """The whole uint8 image to [-1, 1] at size x size (gray replicated to RGB)."""
  rgb = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
  return (_numpy_resize_tf1(rgb / 255.0, size) - 0.5) * 2.0


def _placements(view: np.ndarray, padded: np.ndarray, size: int = SIZE) -> list:
  """Every (dy, dx, flipped) whose window of `padded` (flipped left-right or not) equals `view`."""
  found = []
  for dy in range(padded.shape[0] - size + 1):
    for dx in range(padded.shape[1] - size + 1):
      window = padded[dy:dy + size, dx:dx + size]
      for flipped in (False, True):
        if np.array_equal(window[:, ::-1] if flipped else window, view):
          found.append((dy, dx, flipped))
  return found


def _padded(eval_image: np.ndarray, pad: int = PAD) -> np.ndarray:
  return np.pad(eval_image, ((pad, pad), (pad, pad), (0, 0)), constant_values=-1.0)


# --- eval -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["rgb_uint8", "rgb_png", "gray_28x28", "gray_28x28_png"])
def test_eval_is_the_whole_image_resized_and_scaled(case):
  pixels = _chelsea() if case.startswith("rgb") else _small_gray()
  image = _png(pixels if pixels.shape[-1] == 3 else pixels[..., 0]) if case.endswith("png") \
      else pixels
  got = preprocessing.by_kind("cifar", SIZE)(image).numpy()
  assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, _numpy_eval(pixels), rtol=0, atol=1e-5)
  # The Inception kind's eval without its central crop, op for op.
  np.testing.assert_array_equal(
      got, preprocessing.preprocess_for_eval(image, SIZE, SIZE, central_fraction=None).numpy())


def test_eval_keeps_an_image_of_the_output_size_and_ignores_the_crop_fraction():
  pixels = _chelsea()[100:132, 200:232]  # already 32 x 32
  got = preprocessing.by_kind("cifar", SIZE, crop_fraction=0.875)(pixels).numpy()
  np.testing.assert_allclose(got, pixels / 127.5 - 1.0, rtol=0, atol=1e-6)


# --- training -------------------------------------------------------------------------------------

def test_training_view_is_one_window_of_the_padded_eval_image():
  pixels = _chelsea()
  padded = _padded(preprocessing.by_kind("cifar", SIZE)(pixels).numpy())
  train = preprocessing.by_kind("cifar", SIZE, is_training=True)
  offsets, flips, extremes = set(), set(), 0
  for seed in range(40):
    view = train(pixels, seed=seed).numpy()
    assert view.shape == (SIZE, SIZE, 3) and view.dtype == np.float32
    (dy, dx, flipped), = _placements(view, padded)  # exactly one placement
    offsets.add((dy, dx))
    flips.add(flipped)
    # At an extreme offset the window's border is the padding, black (-1).
    unflipped = view[:, ::-1] if flipped else view
    strips = {(0, "y"): unflipped[:PAD], (2 * PAD, "y"): unflipped[-PAD:],
              (0, "x"): unflipped[:, :PAD], (2 * PAD, "x"): unflipped[:, -PAD:]}
    for (offset, axis), strip in strips.items():
      if (dy if axis == "y" else dx) == offset:
        extremes += 1
        assert (strip == -1.0).all(), (seed, dy, dx, flipped)
  assert flips == {False, True}
  assert len(offsets) >= 20, offsets  # 40 draws of 81 offsets
  assert extremes >= 3, extremes


def test_training_is_a_function_of_the_seed():
  train = preprocessing.by_kind("cifar", SIZE, is_training=True)
  pixels = _chelsea()
  a = train(pixels, seed=7).numpy()
  np.testing.assert_array_equal(a, train(pixels, seed=7).numpy())
  np.testing.assert_array_equal(a, train(pixels, seed=tf.constant([7, 0], tf.int64)).numpy())
  assert any(not np.array_equal(a, train(pixels, seed=s).numpy()) for s in range(8, 12))


def test_pad_option_and_no_flip():
  pixels = _chelsea()
  padded = _padded(cifar.preprocess_for_eval(pixels, SIZE).numpy(), pad=2)
  for seed in range(10):
    view = cifar.preprocess_for_train(pixels, SIZE, seed=seed, pad=2, random_flip=False).numpy()
    (_, _, flipped), = _placements(view, padded)
    assert not flipped
  np.testing.assert_array_equal(
      cifar.preprocess_for_train(pixels, SIZE, seed=3, pad=0, random_flip=False),
      cifar.preprocess_for_eval(pixels, SIZE))


def test_eager_tf_function_and_tf_data_agree():
  train = preprocessing.by_kind("cifar", SIZE, is_training=True)
  images = [_png(_chelsea()), _png(_small_gray(50, 60)[..., 0]), _png(_small_gray(90, 10)[..., 0])]

  def call(data, index):
    return train(data, seed=tf.stack([index, tf.constant(5, tf.int64)]))

  eager = [call(tf.constant(d), tf.constant(i, tf.int64)).numpy() for i, d in enumerate(images)]
  compiled = tf.function(call)
  ds = tf.data.Dataset.from_tensor_slices(images).enumerate().map(
      lambda i, d: call(d, i), num_parallel_calls=2)
  assert ds.element_spec.shape == (SIZE, SIZE, 3)
  for i, (e, d) in enumerate(zip(eager, ds.as_numpy_iterator())):
    np.testing.assert_array_equal(e, d)
    np.testing.assert_array_equal(e, compiled(tf.constant(images[i]),
                                              tf.constant(i, tf.int64)).numpy())


def test_the_module_builds_on_the_shared_leaf_only():
  """`preprocessing.by_kind` imports this module: of the package it may import only `image_ops`."""
  tree = ast.parse(pathlib.Path(cifar.__file__).read_text())
  imported = {node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module.startswith("inception_tf")}
  assert imported == {"inception_tf.data.image_ops"}


def test_bad_inputs_raise_clear_errors():
  pixels = _chelsea()
  with pytest.raises(ValueError, match="pad must be an int >= 0.*got -1"):
    cifar.preprocess_for_train(pixels, SIZE, pad=-1)
  with pytest.raises(ValueError, match="pad must be an int >= 0.*got 1.5"):
    preprocessing.by_kind("cifar", SIZE, is_training=True, pad=1.5)(pixels)
  with pytest.raises(ValueError, match="positive ints.*height=0"):
    preprocessing.by_kind("cifar", 0)
  with pytest.raises(ValueError, match="1, 2, 3 or 4 channels"):
    cifar.preprocess_for_eval(np.zeros([8, 8, 5], np.uint8))
  with pytest.raises(ValueError, match=r"one image \[H, W, C\].*\(2, 8, 8, 3\)"):
    cifar.preprocess_for_eval(np.zeros([2, 8, 8, 3], np.uint8))
  with pytest.raises(ValueError, match="seed must be an int or a shape"):
    cifar.preprocess_for_train(pixels, SIZE, seed=[1, 2, 3])
  with pytest.raises(ValueError, match="interpolation 'bicubic'"):
    preprocessing.by_kind("cifar", SIZE, interpolation="bicubic")
  with pytest.raises(tf.errors.InvalidArgumentError):
    cifar.preprocess_for_eval(b"not an image")


# --- the CIFAR nets use it everywhere ------------------------------------------------------------

def test_the_cifar_nets_record_the_cifar_kind_and_the_imagenet_nets_do_not():
  for name in CIFAR_NETS:
    info = models.model_info(name)
    assert (info.preprocessing, info.crop_fraction) == ("cifar", 1.0), name
  for name in ("resnet18", "plain18", "plain34", "resnet50"):
    assert models.model_info(name).preprocessing == "torchvision", name
  pixels = _chelsea()
  np.testing.assert_array_equal(preprocessing.for_model("resnet20")(pixels),
                                cifar.preprocess_for_eval(pixels, SIZE))
  train = preprocessing.for_model("resnet20", is_training=True)
  np.testing.assert_array_equal(train(pixels, seed=4),
                                cifar.preprocess_for_train(pixels, SIZE, seed=4))


@pytest.fixture(scope="module")
def tiny_gray_dir(tmp_path_factory):
  """6 training and 3 validation 28 x 28 grayscale PNGs (camera patches), Fashion-MNIST's layout."""
  corners = [(0, 0), (10, 90), (50, 60), (90, 10), (30, 30), (95, 95)]
  items = [builder.ImageItem(label=i % 2, filename=f"patch_{i}.png",
                             data=_png(_small_gray(*corner)[..., 0]))
           for i, corner in enumerate(corners)]
  directory = str(tmp_path_factory.mktemp("tiny_gray"))
  builder.build_tfrecords(directory, {"train": items, "validation": items[:3]},
                          class_map=builder.ClassMap(("a", "b"), ("a", "b")), labels_offset=0,
                          num_shards=1, num_workers=1, keep_png=True, progress=False)
  evals = [cifar.preprocess_for_eval(item.data, SIZE).numpy() for item in items]
  return directory, items, evals


def test_trainer_pipeline_of_resnet20_applies_the_cifar_augmentation(tiny_gray_dir):
  directory, items, evals = tiny_gray_dir
  config = config_lib.TrainConfig(model="resnet20", data_dir=directory, train_batch_size=6,
                                  eval_batch_size=4, seed=1, deterministic=True)
  assert loop.preprocessing_kind(config) == "cifar"
  datasets = loop.pipeline_datasets(config, image_size=SIZE)
  flips = set()
  for batch in datasets.train_fn(None, 0).take(2):
    for view, label in zip(batch["images"].numpy(), batch["labels"].numpy()):
      found = [(index, placement) for index, image in enumerate(evals)
               for placement in _placements(view, _padded(image))]
      assert len(found) == 1, found  # one record, one window
      index, (_, _, flipped) = found[0]
      assert label == items[index].label
      flips.add(flipped)
  assert flips == {False, True}
  batch = next(iter(datasets.eval_fn(None)))  # the whole image, no central crop
  for view, mask in zip(batch["images"].numpy(), batch["mask"].numpy()):
    if mask:
      assert sum(np.array_equal(view, image) for image in evals[:3]) == 1


def test_evaluator_and_serving_feed_resnet20_the_cifar_eval_view(tiny_gray_dir):
  _, items, evals = tiny_gray_dir
  raw = tf.data.Dataset.from_tensor_slices({
      "image_bytes": [item.data for item in items], "label": [item.label for item in items],
      "filename": [item.filename for item in items]})
  key = evaluate.input_key(SIZE, "cifar")
  for crops in (1, 10):
    batch = next(iter(evaluate.build_dataset(raw, inputs=[(SIZE, "cifar")], crops=crops,
                                             global_batch_size=6, central_fraction=1.0)))
    assert batch[key].shape == (6, crops, SIZE, SIZE, 3)
    if crops == 1:
      np.testing.assert_array_equal(batch[key][:, 0], np.stack(evals))
  model = models.create_model("resnet20", num_classes=2)
  module = export.build_serving_module(model)
  assert (module.preprocessing, module.crop_fraction, module.image_size) == ("cifar", 1.0, SIZE)
  served = module.preprocess(tf.constant([item.data for item in items[:2]])).numpy()
  np.testing.assert_array_equal(served, np.stack(evals[:2]))
  outputs = module.serving_default(tf.constant([items[0].data]))
  np.testing.assert_allclose(outputs["all_probabilities"][0].numpy(),
                             tf.nn.softmax(model(evals[0][None])["logits"])[0].numpy(),
                             rtol=0, atol=1e-5)
