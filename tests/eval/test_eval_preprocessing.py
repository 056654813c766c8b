"""Each model is fed its own preprocessing: the evaluator (1 and 12 crops) and the serving signature
give slim's resnet_v1_50 slim's VGG eval input, and the Inception nets Inception's."""

import io

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf import export
from inception_tf.data import preprocessing
from inception_tf.data import vgg_preprocessing
from inception_tf.eval import crops as crops_lib
from inception_tf.eval import evaluate as ev
from inception_tf.models import create_model

SIZE = 32


def _jpeg(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, "JPEG", quality=95)
  return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
  return [_jpeg(skimage.data.chelsea()[::3, ::3]), _jpeg(skimage.data.coffee()[::4, ::4])]


def _raw(photos):
  return tf.data.Dataset.from_tensor_slices({
      "image_bytes": photos, "label": np.array([1, 2], np.int32),
      "filename": [f"p{i}.jpg" for i in range(len(photos))]})


def _first_batch(photos, crops):
  dataset = ev.build_dataset(
      _raw(photos), inputs=[(SIZE, "inception"), (SIZE, "vgg"), (SIZE, "torchvision")],
      crops=crops, global_batch_size=4)
  return next(iter(dataset))


def test_one_crop_is_each_kinds_own_eval_transform(photos):
  batch = _first_batch(photos, 1)
  assert batch["mask"].numpy().tolist() == [1, 1, 0, 0]  # padded to the static batch
  for i, data in enumerate(photos):
    np.testing.assert_allclose(batch[ev.input_key(SIZE, "vgg")][i, 0],
                               vgg_preprocessing.preprocess_for_eval(data, SIZE), atol=1e-4)
    np.testing.assert_allclose(batch[ev.input_key(SIZE, "inception")][i, 0],
                               preprocessing.preprocess_for_eval(data, SIZE, SIZE), atol=1e-6)
    # torchvision's kind decodes the JPEG with the accurate IDCT (as PIL), the others with TF's
    # default: TF's fast IDCT would move these inputs by up to ~0.1.
    np.testing.assert_allclose(batch[ev.input_key(SIZE, "torchvision")][i, 0],
                               preprocessing.by_kind("torchvision", SIZE)(data), atol=1e-5)


def test_multi_crop_geometry_is_shared_and_normalised_per_kind(photos):
  batch = _first_batch(photos, 12)
  real = len(photos)  # the padding rows are zeros in every input
  inception = batch[ev.input_key(SIZE, "inception")].numpy()[:real]
  vgg = batch[ev.input_key(SIZE, "vgg")].numpy()[:real]
  assert vgg.shape == (real, 12, SIZE, SIZE, 3)
  # The same crops in [0, 1]: Inception maps them to 2x - 1, VGG to 255x - the RGB means.
  expected = (inception / 2.0 + 0.5) * 255.0 - np.array(vgg_preprocessing.VGG_MEANS)
  np.testing.assert_allclose(vgg, expected, atol=2e-3)
  with pytest.raises(ValueError, match="Unknown preprocessing 'caffe'"):
    crops_lib.normalizer("caffe")


@pytest.fixture(scope="module")
def resnet():
  tf.keras.utils.set_random_seed(0)
  return create_model("resnet_v1_50", 5, image_size=SIZE)


def test_evaluator_feeds_resnet_v1_50_vgg_inputs(resnet, photos):
  evaluator = ev.Evaluator(resnet, crops=1, batch_size=2, raw_dataset=_raw(photos),
                           num_classes=5, verbose=0)
  assert evaluator.members[0].preprocessing == "vgg"
  report = evaluator.run(return_probabilities=True)
  assert report["models"][0]["preprocessing"] == "vgg"
  inputs = np.stack([vgg_preprocessing.preprocess_for_eval(d, SIZE) for d in photos])
  expected = tf.nn.softmax(resnet(inputs, training=False)["logits"]).numpy()
  np.testing.assert_allclose(report["probabilities"], expected, rtol=1e-4, atol=1e-5)
  forced = ev.Evaluator(resnet, crops=1, batch_size=2, raw_dataset=_raw(photos), num_classes=5,
                        verbose=0, preprocessing="inception")
  assert forced.members[0].preprocessing == "inception"


def test_serving_signature_uses_the_models_preprocessing(resnet, photos):
  module = export.build_serving_module(resnet)  # resnet_v1_50 is no longer refused
  assert module.preprocessing == "vgg"
  served = module.preprocess(tf.constant(photos)).numpy()
  expected = np.stack([vgg_preprocessing.preprocess_for_eval(d, SIZE) for d in photos])
  np.testing.assert_allclose(served, expected, atol=1e-4)
  overridden = export.build_serving_module(resnet, preprocessing="inception")
  np.testing.assert_allclose(overridden.preprocess(tf.constant(photos[:1])).numpy()[0],
                             preprocessing.preprocess_for_eval(photos[0], SIZE, SIZE), atol=1e-6)
