"""The exported SavedModel in a fresh process: same probabilities as Keras, formats, bad input."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from inception_tf.data import preprocessing
from export_fixtures import animated_gif
from export_fixtures import encode
from export_fixtures import IMAGE_SIZE

# One xdist worker runs every export test module, so the session fixtures (`model`,
# `export_dir`: an export with TFLite files) are built once, not on each worker.
pytestmark = pytest.mark.xdist_group("export")


# Runs in a fresh interpreter: only TensorFlow and the SavedModel, none of our code.
_SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    saved_model, requests_file = sys.argv[1], sys.argv[2]
    with open(requests_file) as f:
      requests = json.load(f)
    loaded = tf.saved_model.load(saved_model)
    serve = loaded.signatures["serving_default"]
    results = []
    for request in requests:
      images = tf.constant([bytes.fromhex(h) for h in request])
      try:
        out = serve(images=images)
        results.append({k: (v.numpy().astype(str) if v.dtype == tf.string else v.numpy()).tolist()
                        for k, v in out.items()})
      except tf.errors.InvalidArgumentError as e:
        results.append({"error": e.message})
    print(json.dumps(results))
""")


def _keras_probabilities(model, images: list[bytes]) -> np.ndarray:
  """Softmax of the Keras model (aux head and all) on `preprocess_for_eval` of each image."""
  batch = tf.stack([preprocessing.preprocess_for_eval(tf.constant(b), IMAGE_SIZE, IMAGE_SIZE)
                    for b in images])
  return tf.nn.softmax(model(batch, training=False)["logits"]).numpy()


def _png_header(width: int, height: int) -> bytes:
  """The signature and IHDR of a PNG claiming `width` x `height` (no pixel data follows)."""
  import struct  # pylint: disable=import-outside-toplevel
  import zlib  # pylint: disable=import-outside-toplevel
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  chunk = b"IHDR" + ihdr
  return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
          + struct.pack(">I", zlib.crc32(chunk)))


@pytest.fixture(scope="module")
def served(export_dir, jpegs, photos, tmp_path_factory):
  """Runs a sequence of requests through serving_default in a fresh process."""
  chelsea = photos["chelsea"]
  big = np.tile(photos["astronaut"], (10, 8, 1))  # 5120 x 4096 = 21 megapixels
  requests = {
      "jpeg_batch": list(jpegs.values()),
      "formats": [encode(chelsea, "PNG"), encode(chelsea, "GIF"), encode(chelsea, "BMP"),
                  encode(chelsea[..., 0], "PNG"), animated_gif(photos["coffee"])],
      "not_an_image": [jpegs["chelsea"], b"this is plain text, not an image"],
      "truncated_jpeg": [jpegs["coffee"][:200]],
      "after_errors": [jpegs["rocket"]],
      "huge_png": [_png_header(30000, 30000)],
      "huge_jpeg": [encode(big, "JPEG", quality=80)],
  }
  path = tmp_path_factory.mktemp("requests") / "requests.json"
  path.write_text(json.dumps([[b.hex() for b in r] for r in requests.values()]))
  process = subprocess.run(
      [sys.executable, "-c", _SERVE_SCRIPT, os.path.join(export_dir, "saved_model"), str(path)],
      capture_output=True, text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
      check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  results = json.loads(process.stdout.strip().splitlines()[-1])
  return dict(zip(requests, results)), requests


def test_jpeg_probabilities_match_keras_on_preprocess_for_eval(served, model):
  results, requests = served
  out = results["jpeg_batch"]
  for i, expected in enumerate(_keras_probabilities(model, requests["jpeg_batch"])):
    np.testing.assert_allclose(out["all_probabilities"][i], expected, atol=1e-5, rtol=0)
    top = np.argsort(-expected)[:5]
    # Top-5 indices agree up to ties in the last decimal places.
    assert out["classes"][i][0] == top[0] or np.isclose(expected[out["classes"][i][0]],
                                                        expected[top[0]], atol=1e-6)
    np.testing.assert_allclose(out["probabilities"][i], np.sort(expected)[::-1][:5], atol=1e-5)


def test_class_names_are_imagenet_names(served):
  from inception_tf.labels import imagenet_label_map  # pylint: disable=import-outside-toplevel
  labels = imagenet_label_map(1001)
  out = served[0]["jpeg_batch"]
  for classes, names, ids in zip(out["classes"], out["class_names"], out["class_ids"]):
    assert names == [labels.names[c] for c in classes]
    assert ids == [labels.ids[c] for c in classes]


def test_png_gif_animated_gif_bmp_and_grayscale_are_accepted(served, model):
  results, requests = served
  out = results["formats"]
  assert "error" not in out
  for i, expected in enumerate(_keras_probabilities(model, requests["formats"])):
    np.testing.assert_allclose(out["all_probabilities"][i], expected, atol=1e-5, rtol=0)


def test_bad_bytes_fail_only_their_request(served):
  results, _ = served
  message = results["not_an_image"]["error"]
  assert "Image 1 of the request is not a JPEG, PNG, GIF or BMP image" in message
  assert "error" in results["truncated_jpeg"]
  # The same loaded model answers the next request.
  assert "error" not in results["after_errors"]
  assert len(results["after_errors"]["classes"][0]) == 5


def test_huge_png_is_rejected_from_its_header(served):
  message = served[0]["huge_png"]["error"]
  assert "PNG of 30000x30000 = 900000000 pixels" in message
  assert "downscale it before sending" in message


def test_huge_jpeg_is_decoded_at_reduced_scale(served):
  out = served[0]["huge_jpeg"]
  assert "error" not in out
  assert np.isclose(sum(out["all_probabilities"][0]), 1.0, atol=1e-4)


def test_saved_model_cli_lists_both_signatures(export_dir):
  process = subprocess.run(
      # TensorFlow's `saved_model_cli` console script, run through this interpreter (no PATH).
      [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir",
       os.path.join(export_dir, "saved_model")],
      capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert process.returncode == 0, process.stderr[-2000:]
  text = process.stdout
  serving = text[text.index("signature_def['serving_default']"):]
  predict = text[text.index("signature_def['predict_images']"):]
  serving = serving[:serving.index("Method name")]
  predict = predict[:predict.index("Method name")]
  assert "inputs['images'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in serving
  for name, dtype, shape in [("classes", "DT_INT64", "(-1, 5)"), ("probabilities", "DT_FLOAT",
                                                                  "(-1, 5)"),
                             ("class_names", "DT_STRING", "(-1, 5)"),
                             ("class_ids", "DT_STRING", "(-1, 5)"),
                             ("all_probabilities", "DT_FLOAT", "(-1, 1001)")]:
    assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" in serving
  size = IMAGE_SIZE
  assert (f"inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: "
          f"(-1, {size}, {size}, 3)") in predict
  for name in ("logits", "probabilities"):
    assert f"outputs['{name}'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 1001)" \
        in predict


def test_predict_images_signature_matches_keras(export_dir, model, jpegs):
  loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
  images = tf.stack([preprocessing.preprocess_for_eval(tf.constant(b), IMAGE_SIZE, IMAGE_SIZE)
                     for b in jpegs.values()])
  out = loaded.signatures["predict_images"](images=images)
  expected = model(images, training=False)["logits"].numpy()
  np.testing.assert_allclose(out["logits"].numpy(), expected, atol=2e-4, rtol=1e-4)
  np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(expected).numpy(),
                             atol=1e-5)


def test_aux_head_is_absent_from_the_export(export_dir, model):
  assert any(layer.name.startswith("AuxLogits") for layer in model.layers)
  loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
  names = [v.name for v in loaded.model_variables]
  assert "Logits.Conv2d_1c_1x1/kernel:0" in names
  assert not [n for n in names if "AuxLogits" in n]
  assert not [n for n in names if "BatchNorm" in n]  # folded into the convolutions
  # Every convolution of the main tower, each with its folded bias, and nothing else.
  main_convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"
                and not layer.name.startswith("AuxLogits")]
  assert len(names) == 2 * len(main_convs)
  with open(os.path.join(export_dir, "export_info.json")) as f:
    info = json.load(f)
  assert info["image_size"] == IMAGE_SIZE and info["num_classes"] == 1001
  assert info["registered_name"] == "inception_v3"
