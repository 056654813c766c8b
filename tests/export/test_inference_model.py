"""The inference model (aux head dropped, BN folded, bfloat16), its .keras file, labels, headers."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from export_fixtures import animated_gif
from export_fixtures import encode
from export_fixtures import IMAGE_SIZE
from inception_tf import labels
from inception_tf.data import preprocessing
from inception_tf.export import inference
from inception_tf.export import serving


# One xdist worker runs every export test module, so the session fixtures (`model`,
# `export_dir`: an export with TFLite files) are built once, not on each worker.
pytestmark = pytest.mark.xdist_group("export")


@pytest.fixture(scope="module")
def images(jpegs):
  return tf.stack([preprocessing.preprocess_for_eval(tf.constant(b), IMAGE_SIZE, IMAGE_SIZE)
                   for b in jpegs.values()])


@pytest.fixture(scope="module")
def reference_logits(model, images):
  return model(images, training=False)["logits"].numpy()


def test_unfolded_inference_model_is_the_model_without_aux_and_dropout(model, images,
                                                                        reference_logits):
  plain = inference.make_inference_model(model, fold_batch_norm=False)
  assert list(plain.output) == ["logits"]
  names = [layer.name for layer in plain.layers]
  assert not [n for n in names if n.startswith("AuxLogits")]
  assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Dropout)]
  np.testing.assert_array_equal(plain(images)["logits"].numpy(), reference_logits)


def test_folded_model_has_no_batch_norm_and_the_same_logits(model, images, reference_logits):
  folded = inference.make_inference_model(model, fold_batch_norm=True)
  assert not [layer for layer in folded.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
  convs = [layer for layer in folded.layers if isinstance(layer, keras.layers.Conv2D)]
  assert convs and all(layer.use_bias for layer in convs)
  np.testing.assert_allclose(folded(images)["logits"].numpy(), reference_logits,
                             atol=1e-4 * np.abs(reference_logits).max(), rtol=0)


def test_fold_weights_match_batch_norm_math():
  inputs = keras.Input((9, 9, 4))
  conv = keras.layers.Conv2D(6, 3, use_bias=False, name="conv")
  bn = keras.layers.BatchNormalization(epsilon=1e-3, scale=True, name="conv.BatchNorm")
  model = keras.Model(inputs, {"logits": keras.layers.Flatten()(bn(conv(inputs)))})
  rng = np.random.default_rng(3)
  bn.set_weights([rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6),
                  rng.uniform(0.1, 3, 6)])
  x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
  folded = inference.make_inference_model(model, fold_batch_norm=True)
  assert [layer.name for layer in folded.layers if isinstance(layer, keras.layers.Conv2D)] == [
      "conv"]
  np.testing.assert_allclose(folded(x)["logits"], model(x, training=False)["logits"], atol=1e-5)


def test_bfloat16_export_keeps_the_classifier_in_float32(model, images, reference_logits):
  bf16 = inference.make_inference_model(model, dtype="bfloat16", fold_batch_norm=True)
  dtypes = {v.path.split("/")[0]: v.dtype for v in bf16.weights}
  assert dtypes["Conv2d_1a_3x3"] == "bfloat16"
  assert dtypes["Logits.Conv2d_1c_1x1"] == "float32"
  logits = bf16(images)["logits"].numpy()
  assert logits.dtype == np.float32
  # bfloat16 keeps 8 bits of mantissa: logits within a few percent of their spread.
  np.testing.assert_allclose(logits, reference_logits, atol=0.05 * np.ptp(reference_logits))


def test_rejects_bad_dtype_and_outputs(model):
  with pytest.raises(ValueError, match="dtype must be one of"):
    inference.make_inference_model(model, dtype="float16")
  features = keras.Model(model.input, {"features": model.get_layer("Mixed_7c").output})
  with pytest.raises(ValueError, match="needs a 'logits' output"):
    inference.make_inference_model(features)


def test_keras_file_reloads_without_custom_objects(export_dir, images, reference_logits):
  reloaded = keras.models.load_model(os.path.join(export_dir, "model.keras"), compile=False)
  assert not [layer for layer in reloaded.layers if layer.name.startswith("AuxLogits")]
  np.testing.assert_allclose(reloaded(images)["logits"].numpy(), reference_logits,
                             atol=1e-4 * np.abs(reference_logits).max(), rtol=0)


@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("PNG", "RGB"), ("PNG", "L"),
                                      ("GIF", "RGB"), ("BMP", "RGB")])
def test_image_header_reads_size_without_decoding(photos, fmt, mode):
  image = photos["coffee"][:123, :217]
  if mode == "L":
    image = image[..., 0]
  image_format, height, width, _ = serving.image_header(tf.constant(encode(image, fmt)))
  assert serving.FORMATS[int(image_format)] == fmt
  assert (int(height), int(width)) == (123, 217)


def test_oversized_jpeg_is_decoded_at_a_reduced_scale(photos):
  data = tf.constant(encode(photos["astronaut"], "JPEG"))  # 512 x 512
  full = serving.decode_image_bounded(data, max_pixels=512 * 512)
  assert full.shape == (512, 512, 3)
  half = serving.decode_image_bounded(data, max_pixels=300 * 300)
  assert half.shape == (256, 256, 3)
  eighth = serving.decode_image_bounded(data, max_pixels=64 * 64)
  assert eighth.shape == (64, 64, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG of 512x512 = 262144 pixels"):
    serving.decode_image_bounded(data, max_pixels=63 * 63)
  with pytest.raises(tf.errors.InvalidArgumentError, match="PNG of 512x512"):
    serving.decode_image_bounded(tf.constant(encode(photos["astronaut"], "PNG")),
                                 max_pixels=300 * 300)


def test_gif_is_cut_after_its_first_frame_before_decoding(photos):
  animation = animated_gif(photos["chelsea"], frames=12)
  first = serving.gif_first_frame(tf.constant(animation)).numpy()
  assert len(first) < len(animation) / 6  # the other 11 frames are not decoded
  np.testing.assert_array_equal(preprocessing.decode_image_rgb(first),
                                preprocessing.decode_image_rgb(animation))
  single = encode(photos["coffee"], "GIF")
  assert serving.gif_first_frame(tf.constant(single)).numpy() == single  # nothing to cut
  assert serving.gif_first_frame(tf.constant(b"GIF89a\x01")).numpy() == b"GIF89a\x01"


def test_imagenet_label_map_ships_in_the_package():
  slim = labels.imagenet_label_map(1001)
  assert len(slim) == 1001 and slim.names[0] == "background"
  assert (slim.ids[1], slim.names[1]) == ("n01440764", "tench, Tinca tinca")
  assert slim.names[283] == "tiger cat"
  keras_layout = labels.imagenet_label_map(1000)
  assert keras_layout.names[282] == "tiger cat"
  with pytest.raises(ValueError, match="1000 or 1001"):
    labels.imagenet_label_map(10)


def test_dataset_label_map_with_background_offset():
  label_map = labels.label_map_from_names(["daisy", "rose"], num_classes=3, labels_offset=1)
  assert label_map.names == ("background", "daisy", "rose")
  with pytest.raises(ValueError, match="do not match"):
    labels.label_map_from_names(["daisy", "rose"], num_classes=5)
