"""TFLite files agree with the SavedModel on real photos; the predict CLI prints readable names."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export_fixtures import IMAGE_SIZE
from inception_tf.data import preprocessing
from inception_tf.export import predict
from inception_tf.export import tflite


# One xdist worker runs every export test module, so the session fixtures (`model`,
# `export_dir`: an export with TFLite files) are built once, not on each worker.
pytestmark = pytest.mark.xdist_group("export")


def _run_tool(repo_root, *args):
  process = subprocess.run([sys.executable, os.path.join(repo_root, "tools", args[0]), *args[1:]],
                           capture_output=True, text=True, timeout=600, check=False,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert process.returncode == 0, process.stderr[-3000:]
  return process.stdout


def test_tflite_logits_and_top1_agree_with_saved_model(export_dir, jpegs):
  """Each TFLite file's logits stay within a bound of the SavedModel's; top-1 is compared only where
  the float top-1 margin exceeds twice that bound, so it cannot depend on the CPU's kernels.

  The int8 file (weights int8 per channel, activations quantized per batch) sums int8 products
  exactly in int32 on every instruction set; what differs between XNNPACK's kernels is the float
  rescaling, far below the quantization error itself. That error here is ~3% of the logits' spread
  (measured, see WORKSPACE_NOTES), so 10% of the spread bounds it on any CPU. float32 differs only
  in summation order: 1e-5 of the largest logit.
  """
  with open(os.path.join(export_dir, "export_info.json")) as f:
    files = {k: os.path.join(export_dir, v) for k, v in json.load(f)["files"]["tflite"].items()}
  assert sorted(files) == ["dynamic_int8", "float32"]
  float_size = os.path.getsize(files["float32"])
  int8_size = os.path.getsize(files["dynamic_int8"])
  assert int8_size < 0.5 * float_size  # weights stored as int8
  loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
  images = np.stack([preprocessing.preprocess_for_eval(tf.constant(b), IMAGE_SIZE, IMAGE_SIZE)
                     for b in jpegs.values()])
  reference = loaded.signatures["predict_images"](images=tf.constant(images))["logits"].numpy()
  served = loaded.signatures["serving_default"](images=tf.constant(list(jpegs.values())))
  ranked = np.sort(reference, axis=-1)
  margin = ranked[:, -1] - ranked[:, -2]
  bounds = {"float32": 1e-5 * np.abs(reference).max(), "dynamic_int8": 0.1 * reference.std()}
  for quantization, path in files.items():
    out = tflite.TFLiteClassifier(path)(images)
    error = np.abs(out["logits"] - reference).max()
    assert error <= bounds[quantization], (quantization, error, bounds[quantization])
    decided = margin > 2 * bounds[quantization]
    assert decided.sum() >= len(images) // 2, (quantization, margin)  # the check is not vacuous
    np.testing.assert_array_equal(np.argmax(out["logits"], -1)[decided],
                                  np.argmax(reference, -1)[decided], err_msg=quantization)
    # The serving signature (JPEG bytes in) ranks those images' classes the same way.
    np.testing.assert_array_equal(served["classes"].numpy()[decided, 0],
                                  np.argmax(reference, -1)[decided], err_msg=quantization)


def test_predict_cli_prints_top5_with_readable_names(export_dir, jpegs, repo_root, tmp_path):
  paths = []
  for name in ("chelsea", "coffee"):
    path = tmp_path / f"{name}.jpg"
    path.write_bytes(jpegs[name])
    paths.append(str(path))
  loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
  expected = loaded.signatures["serving_default"](images=tf.constant(
      [jpegs["chelsea"], jpegs["coffee"]]))
  text = _run_tool(repo_root, "predict.py", f"--saved_model={export_dir}", *paths)
  lines = text.strip().splitlines()
  assert lines[0] == f"{paths[0]}:" and len(lines) == 12
  first = expected["class_names"].numpy()[0, 0].decode()
  synset = expected["class_ids"].numpy()[0, 0].decode()
  assert lines[1].startswith("  1. ") and f"{first} ({synset})" in lines[1] and "%" in lines[1]



def test_classifier_from_keras_file_and_saved_model_agree(export_dir, jpegs):
  images = [jpegs["chelsea"], jpegs["rocket"]]
  from_saved_model = predict.classifier_from_source(saved_model=export_dir).classify(images)
  from_keras = predict.classifier_from_source(
      keras_file=os.path.join(export_dir, "model.keras"), top_k=3).classify(images)
  for served, keras_top in zip(from_saved_model, from_keras):
    assert len(keras_top) == 3
    assert [p.name for p in keras_top] == [p.name for p in served[:3]]
    np.testing.assert_allclose([p.probability for p in keras_top],
                               [p.probability for p in served[:3]], atol=1e-5)
  records = json.loads(predict.format_predictions(["a.jpg", "b.jpg"], from_keras, as_json=True))
  assert [r["image"] for r in records] == ["a.jpg", "b.jpg"]
  assert records[1]["predictions"][0] == from_keras[1][0].to_json()
