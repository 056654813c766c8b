"""The ResNet layouts through the tools as a user types them (issue 16): on the built-in digits,
`train.py` -> `evaluate.py` (1 and 12 crops) -> `export.py` -> `predict.py`, each given the run
directory, for torchvision's `resnet18`, a thinned `resnext50_32x4d` (groups 4, so its 3x3
convolutions stay grouped) and slim's `resnet_v1_50`. Every tool must feed the network its own
preprocessing (`ModelInfo.preprocessing`: torchvision's for the torchvision layout, slim's VGG for
`resnet_v1_50`), which `inception_tf.data.preprocessing.for_model` returns.

One chain per network (module-scoped fixture; 32 x 32 inputs, 4 steps of 16, no XLA, no EMA, SGD
with momentum: one optimizer slot, a smaller checkpoint; no evaluation inside the trainer, whose
input pipeline is compared with `for_model` directly); its tests share an xdist worker. Cost:
WORKSPACE_NOTES "Session 8" (15 tool processes, each importing TensorFlow).
"""

import functools
import json
import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

from test_cli_run_directory import DIGITS, _assert_clean, _tool

SIZE = 32
# network -> (--model_options, its preprocessing kind as the registry records it).
CASES = {
    "resnet18": ((), "torchvision"),
    # One unit per stage, stage widths 16..128 (outputs 64..512), 4 groups of 2..16 channels
    # (int(width * 8 / 64) per group): TF's grouped Conv2D is slow on CPU, so the ResNeXt is kept
    # tiny. The tuples are typed without quotes, as a user would (absl splits list flags at every
    # comma; tools/cli.py rejoins the pieces).
    "resnext50_32x4d": (("units=(1,1,1,1)", "widths=(16,32,64,128)", "groups=4",
                         "width_per_group=8"), "torchvision"),
    "resnet_v1_50": ((), "vgg"),
}
KINDS = ("inception", "vgg", "torchvision")
TWELVE_CROP_EXAMPLES = 40  # 3 batches of 12 and a padded one of 4
# Serving (`fused_call`: TF's fused batch norm) against the Keras model's own call, both float32:
# the same maths in another order; measured <= 1e-6 apart on the probabilities (resnet18 and the
# thin ResNeXt 1.5e-8, resnet_v1_50 9.8e-7), where another preprocessing kind moves them by
# >= 8e-3 and the JPEG decoders' gap (below) by 9.7e-5 .. 3.4e-4 (WORKSPACE_NOTES "Session 8").
PROBABILITY_ATOL = 1e-5


def _param(name):
  return pytest.param(name, marks=[pytest.mark.xdist_group(f"resnet-cli-{name}"),
                                   pytest.mark.slow])


@functools.lru_cache(maxsize=1)
def _validation_records():
  """The built-in digits' validation records, parsed ({"image_bytes", "filename", ...} each)."""
  from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
  from inception_tf.data import pipeline  # pylint: disable=import-outside-toplevel
  from inception_tf.data import tfrecord  # pylint: disable=import-outside-toplevel
  files, _ = pipeline.list_files(default_dataset.digits_data_dir(), "validation")
  return [tfrecord.parse_example(r) for r in tf.data.TFRecordDataset(files)]


def _digit_files(directory):
  """Two real validation digits: one JPEG as stored, one as a PNG of its decoded pixels
  (lossless, so every decoder reads the same pixels)."""
  records = _validation_records()[:2]
  jpeg = os.path.join(directory, "digit_a.jpg")
  with open(jpeg, "wb") as f:
    f.write(records[0]["image_bytes"].numpy())
  png = os.path.join(directory, "digit_b.png")
  Image.fromarray(tf.io.decode_image(records[1]["image_bytes"], channels=3).numpy()).save(png)
  return jpeg, png


@pytest.fixture(scope="module", params=[_param(name) for name in CASES])
def chain(request, tmp_path_factory):
  """Runs the four tools on one network; returns what they wrote and printed."""
  from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
  name = request.param
  options, kind = CASES[name]
  root = tmp_path_factory.mktemp(name)
  run_dir, export_dir = str(root / "run"), str(root / "export")
  digits = default_dataset.digits_data_dir()
  train = _tool("train.py", f"--model_dir={run_dir}", "--preset=quickstart", f"--data_dir={digits}",
                f"--model={name}", *([f"--model_options={','.join(options)}"] if options else []),
                f"--image_size={SIZE}", "--train_steps=4", "--checkpoint_every_steps=4",
                "--log_every_steps=2", "--steps_per_execution=2", "--train_batch_size=16",
                "--jit_compile=false", "--ema_decay=0", "--optimizer=momentum", "--eval_split=")
  reports = {}
  for crops, extra in ((1, ()), (12, (f"--max_examples={TWELVE_CROP_EXAMPLES}",))):
    output = str(root / f"eval{crops}.json")
    process = _tool("evaluate.py", f"--checkpoint={run_dir}", f"--crops={crops}", *extra,
                    f"--output={output}", "--noprogress")
    _assert_clean(process)
    with open(output) as f:
      reports[crops] = json.load(f)
  exported = _tool("export.py", f"--checkpoint={run_dir}", f"--output_dir={export_dir}",
                   *(["--tflite"] if name.startswith("resnext") else []))
  images = _digit_files(str(root))
  predicted = _tool("predict.py", f"--checkpoint={run_dir}", *images)
  for process in (train, exported, predicted):
    _assert_clean(process)
  return {"name": name, "options": options, "kind": kind, "run_dir": run_dir,
          "export_dir": export_dir, "reports": reports, "images": images,
          "exported": exported.stdout, "predicted": predicted.stdout}


@pytest.fixture(scope="module")
def served(chain):
  """The export's serving_default on the two image files, and the trained Keras model."""
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  loaded = tf.saved_model.load(os.path.join(chain["export_dir"], "saved_model"))
  files = [pathlib.Path(path).read_bytes() for path in chain["images"]]
  outputs = loaded.signatures["serving_default"](images=tf.constant(files))
  keras_model = checkpoints.load(chain["run_dir"]).model
  return {"files": files, "outputs": {k: v.numpy() for k, v in outputs.items()},
          "model": keras_model}


def _keras_probabilities(model, name, kind, data):
  """softmax of the Keras model's logits on `for_model(name, kind=kind)` of encoded `data`."""
  from inception_tf.data import preprocessing  # pylint: disable=import-outside-toplevel
  image = preprocessing.for_model(name, SIZE, kind=kind)(tf.constant(data))
  return tf.nn.softmax(model(image[tf.newaxis], training=False)["logits"]).numpy()[0]


def test_train_records_the_models_preprocessing(chain):
  with open(os.path.join(chain["run_dir"], "config.json")) as f:
    config = json.load(f)
  from inception_tf.models import parse_model_options  # pylint: disable=import-outside-toplevel
  options = json.loads(json.dumps(parse_model_options(chain["options"])))  # tuples as JSON lists
  assert (config["model"], config["model_options"], config["image_size"], config["num_classes"],
          config["preprocessing"]) == (chain["name"], options, SIZE, 11, chain["kind"])
  assert config["label_map"]["names"] == ["background"] + DIGITS


def test_evaluator_reports_1_and_12_crops_with_the_models_preprocessing(chain):
  for crops, examples in ((1, 360), (12, TWELVE_CROP_EXAMPLES)):
    report = chain["reports"][crops]
    (member,) = report["models"]
    assert (report["crops"], report["num_examples"], report["image_sizes"]) == (
        crops, examples, [SIZE])
    assert (member["name"], member["preprocessing"], member["step"]) == (
        chain["name"], chain["kind"], 4)
    assert sum(c["count"] for c in report["per_class_accuracy"].values()) == examples


def test_trainer_input_pipeline_applies_for_model(chain):
  """The input pipeline behind the trainer's evaluations (`data.make_dataset`, eval mode, the
  run's preprocessing kind) gives each digit `for_model(name)` of its stored bytes."""
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  from inception_tf.data import preprocessing  # pylint: disable=import-outside-toplevel
  with open(os.path.join(chain["run_dir"], "config.json")) as f:
    run = json.load(f)
  batch = next(iter(data.make_dataset(run["data"]["data_dir"], split="validation",
                                      is_training=False, batch_size=4, image_size=SIZE,
                                      preprocessing=run["preprocessing"], with_filenames=True)))
  stored = {r["filename"].numpy(): r["image_bytes"] for r in _validation_records()}
  for image, filename in zip(batch["images"].numpy(), batch["filenames"].numpy()):
    expected = preprocessing.for_model(chain["name"], SIZE)(stored[filename]).numpy()
    np.testing.assert_allclose(image, expected, rtol=0, atol=1e-5, err_msg=filename)


def test_export_serves_the_models_preprocessing(chain, served):
  """serving_default on a PNG of a real digit gives the Keras model's probabilities on
  `for_model(name)` of the same bytes, and not those of any other preprocessing kind."""
  name, kind = chain["name"], chain["kind"]
  png = served["files"][1]
  serving = served["outputs"]["all_probabilities"]
  ours = {k: _keras_probabilities(served["model"], name, k, png) for k in KINDS}
  np.testing.assert_allclose(serving[1], ours[kind], rtol=0, atol=PROBABILITY_ATOL)
  for other in set(KINDS) - {kind}:
    assert np.max(np.abs(serving[1] - ours[other])) > 100 * PROBABILITY_ATOL, other
  # Two different digits get different probabilities: the comparison is not of constants (the
  # thin ResNeXt after 4 steps: 1.7e-3 apart, measured).
  assert np.max(np.abs(serving[0] - serving[1])) > 10 * PROBABILITY_ATOL
  info = json.loads(pathlib.Path(chain["export_dir"], "export_info.json").read_text())
  assert (info["preprocessing"], info["image_size"], info["label_map"]["names"]) == (
      kind, SIZE, ["background"] + DIGITS)
  if name.startswith("resnext"):  # grouped convolutions convert to TFLite
    assert re.search(r"TFLite \(float32\): \S+\.tflite", chain["exported"]), chain["exported"]


def test_export_on_jpeg_bytes_equals_for_model_of_the_bytes(chain, served):
  """The stored JPEG itself: serving decodes and preprocesses it as `for_model(name)` does (the
  torchvision kind with libjpeg's accurate IDCT, as PIL; the slim kinds with TF's default)."""
  expected = _keras_probabilities(served["model"], chain["name"], chain["kind"],
                                  served["files"][0])
  np.testing.assert_allclose(served["outputs"]["all_probabilities"][0], expected, rtol=0,
                             atol=PROBABILITY_ATOL)


def test_predict_prints_digit_names_with_the_exports_probabilities(chain, served):
  """predict.py --checkpoint=RUN prints each image's top 5 with the digits' names, with the
  probabilities the export serves (printed to 0.01 %)."""
  lines = chain["predicted"].strip().splitlines()
  assert len(lines) == 2 * 6, chain["predicted"]
  for index, path in enumerate(chain["images"]):
    block = lines[6 * index:6 * index + 6]
    assert block[0] == f"{path}:"
    rows = [re.match(r"  \d\. +(\d+\.\d\d)%  \[ *(\d+)\] (.+)$", line).groups()
            for line in block[1:]]
    names = [row[2] for row in rows]
    assert set(names) <= set(DIGITS) | {"background"} and len(set(names)) == 5, names
    assert set(names) & set(DIGITS)
    served_probabilities = served["outputs"]["all_probabilities"][index]
    for percent, label, row_name in rows:
      assert row_name == (["background"] + DIGITS)[int(label)]
      assert float(percent) == pytest.approx(100 * served_probabilities[int(label)], abs=0.0051)
