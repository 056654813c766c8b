"""The tools as a user types them: train a tiny run on the built-in digits, then evaluate, export
and predict given only the run directory; clean output; TensorBoard's own reader sees the run.

One small run (Inception-v1 at depth 0.25, 32x32, 6 steps) is shared by the module's tests.
"""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("cli_run_directory")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)
DIGITS = [str(d) for d in range(10)]


def _tool(name, *args, check=True):
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the tools must quiet TensorFlow themselves
  process = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args],
                           capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
  if check:
    assert process.returncode == 0, (process.stdout[-2000:], process.stderr[-3000:])
  return process


def _assert_clean(process):
  """No TF C++ / absl log lines, no Python warnings, no traceback, in stdout or stderr."""
  for stream in (process.stdout, process.stderr):
    assert not TF_LOG_LINE.search(stream), stream[-3000:]
    assert "Warning" not in stream and "WARNING" not in stream, stream[-3000:]
    assert "Traceback" not in stream, stream[-3000:]


@pytest.fixture(scope="module")
def digits():
  from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
  return default_dataset.digits_data_dir()


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
  run_dir = str(tmp_path_factory.mktemp("cli") / "run")
  process = _tool("train.py", f"--model_dir={run_dir}", "--preset=quickstart",
                  f"--data_dir={digits}", "--model=inception_v1",
                  "--model_options=depth_multiplier=0.25", "--image_size=32", "--train_steps=6",
                  "--checkpoint_every_steps=6", "--log_every_steps=3", "--steps_per_execution=3",
                  "--train_batch_size=16", "--jit_compile=false")
  return run_dir, process


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
  path = tmp_path_factory.mktemp("images") / "digit.jpg"
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, "JPEG")
  return str(path)


def test_train_output_is_clean_and_config_json_describes_the_run(run, digits):
  run_dir, process = run
  _assert_clean(process)
  assert "step 6/6  loss" in process.stdout and "Final evaluation at step 6" in process.stdout
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  assert (config["model"], config["model_options"], config["image_size"], config["num_classes"],
          config["preprocessing"]) == ("inception_v1", {"depth_multiplier": 0.25}, 32, 11,
                                       "inception")
  assert config["label_map"]["names"] == ["background"] + DIGITS  # the manifest's classes
  assert config["data"]["labels_offset"] == 1 and config["train_config"]["train_steps"] == 6
  assert config["data"]["data_dir"] == digits


def _reader(directory):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  accumulator = event_accumulator.EventAccumulator(directory, size_guidance={"tensors": 0})
  accumulator.Reload()
  return accumulator


def _series(accumulator, tag, plugin):
  """(step, numpy value) of a TF 2 summary (stored as a tensor) written for TensorBoard's plugin."""
  from tensorboard.util import tensor_util  # pylint: disable=import-outside-toplevel
  assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == plugin
  return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]


def test_tensorboard_reads_the_run(run):
  run_dir, process = run
  train = _reader(os.path.join(run_dir, "train"))
  assert {"loss", "learning_rate", "accuracy", "gradient_norm", "cross_entropy",
          "weight_decay"} <= set(train.Tags()["tensors"]), train.Tags()
  losses = {step: float(value) for step, value in _series(train, "loss", "scalars")}
  logged = re.findall(r"step (\d)/6  loss (\d+\.\d+)", process.stdout)
  assert sorted(losses) == [3, 6]
  assert {int(s): float(v) for s, v in logged} == pytest.approx(losses, abs=1e-4)
  (step, images), = _series(train, "input_images", "images")
  assert step == 0 and images[:2].tolist() == [b"32", b"32"] and len(images) == 2 + 3
  for png in images[2:]:
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and decoded.size == (32, 32)
  final = re.search(r"Final evaluation at step 6 \(EMA weights\): top-1 (\d\.\d+)",
                    process.stdout)
  top1 = _series(_reader(os.path.join(run_dir, "eval")), "top1", "scalars")
  assert [(s, float(v)) for s, v in top1] == [(6, pytest.approx(float(final.group(1)), abs=1e-4))]


def test_evaluate_export_predict_from_the_run_directory_alone(run, jpeg, tmp_path, digits):
  run_dir, _ = run
  evaluation = _tool("evaluate.py", f"--checkpoint={run_dir}", "--noprogress")
  _assert_clean(evaluation)
  assert f"Data: {digits}, split validation (the run's" in evaluation.stdout
  assert re.search(r"inception_v1@6 \(EMA\) \| validation \| 1 crop\(s\) at \[32\] \| 360 "
                   r"examples \| top-1 \d+\.\d\d%", evaluation.stdout), evaluation.stdout

  export_dir = str(tmp_path / "export")
  exported = _tool("export.py", f"--checkpoint={run_dir}", f"--output_dir={export_dir}")
  _assert_clean(exported)
  with open(os.path.join(export_dir, "export_info.json")) as f:
    info = json.load(f)
  assert info["label_map"]["names"] == ["background"] + DIGITS
  assert (info["preprocessing"], info["image_size"], info["num_classes"]) == ("inception", 32, 11)

  bad = tmp_path / "notes.txt"
  bad.write_text("not an image")
  predicted = _tool("predict.py", f"--saved_model={export_dir}", str(bad), jpeg, check=False)
  assert predicted.returncode != 0
  assert "Traceback" not in predicted.stderr and not TF_LOG_LINE.search(predicted.stderr)
  errors = predicted.stderr.strip().splitlines()
  assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: ") and "JPEG" in errors[0]
  lines = predicted.stdout.strip().splitlines()
  assert lines[0] == f"{jpeg}:" and len(lines) == 6  # the JPEG's top 5
  names = [re.match(r"  \d\. +\d+\.\d\d%  \[ *\d+\] (.+)$", line).group(1) for line in lines[1:]]
  assert set(names) <= set(DIGITS) | {"background"} and len(set(names)) == 5

  in_process = _tool("predict.py", f"--checkpoint={run_dir}", jpeg)
  assert in_process.stdout.strip().splitlines()[1:] == lines[1:]  # same model, same numbers


def test_contradicting_flags_name_the_flag_and_the_file(run, tmp_path):
  run_dir, _ = run
  process = _tool("export.py", f"--checkpoint={run_dir}", "--model=inception_v3",
                  f"--output_dir={tmp_path / 'e'}", check=False)
  assert process.returncode != 0 and "Traceback" not in process.stderr
  assert re.search(r"error: Checkpoint .* was trained as 'inception_v1' \(.*config\.json\), not "
                   r"--model=inception_v3", process.stderr), process.stderr[-2000:]
