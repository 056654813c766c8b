"""Fault injection: SIGKILL every long-running tool at chosen moments, and failing storage.

After every kill the invariant is checked: each output is absent or complete and loadable, a rerun
cleans the leftovers and finishes, a resumed training run ends bit-identical to an uninterrupted
one. The tools run as users run them (`python tools/<tool>.py --flags`) through a small driver
(`_DRIVER`) that SIGKILLs the process at a chosen moment: before or after the N-th call of a named
function (e.g. just before the rename that publishes an export), so every moment is hit exactly,
not by timing luck. Storage failures are real where the kernel can produce them (RLIMIT_FSIZE makes
`write(2)` fail as a full disk does) and injected as TensorFlow's PermissionDeniedError otherwise
(the tests run as root, for whom file modes do not fail).

Models are the smallest the tools accept (Inception-v1 with depth_multiplier 0.1 at 32x32, a
48-image two-class dataset); the killed runs of one tool run concurrently, each into its own
directory, and one of those directories is then finished by a rerun.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inception_tf import atomic
from inception_tf.train import checkpointing
from inception_tf.train import loop
from inception_tf.train import run_lock
from tests.train import tiny

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("fault_injection")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 900
MODEL_FLAGS = ["--model=inception_v1", "--model_options=depth_multiplier=0.1", "--image_size=32"]
TRAIN_FLAGS = MODEL_FLAGS + [
    "--train_steps=12", "--checkpoint_every_steps=4", "--log_every_steps=4",
    "--steps_per_execution=2", "--train_batch_size=8", "--eval_batch_size=12", "--seed=1",
    "--deterministic"]

# ---------------------------------------------------------------------------------------------
# Storage failures during a checkpoint write (in process, the tiny model of tests/train/tiny.py).


def _tiny_run(model_dir, **changes):
  config = tiny.tiny_config(train_steps=16, checkpoint_every_steps=8, summary_images=0,
                            deterministic=True, jit_compile=False, **changes)
  return loop.train_and_evaluate(config, model_dir, datasets=tiny.in_memory_datasets(),
                                 model_fn=tiny.tiny_model_fn, stream=open(os.devnull, "w"))


def _fail_second_save(monkeypatch, failure):
  """Makes the save of ckpt-16 (the second) fail inside TensorFlow's write with `failure`."""
  real_save = checkpointing.CheckpointWriter.save

  def save(self, step):
    if step != 16:
      return real_save(self, step)
    data = tf.io.gfile.glob(os.path.join(self.directory, "ckpt-8.data-*"))
    _DiskFull.limit = max(1, os.path.getsize(data[0]) // 2)
    with failure():
      return real_save(self, step)

  monkeypatch.setattr(checkpointing.CheckpointWriter, "save", save)


class _DiskFull:
  """`write(2)` fails with EFBIG (as with ENOSPC on a full disk) past half the size of the data
  file of the previous checkpoint (`limit`), so the new data file cannot be written whole."""

  limit = 0

  def __enter__(self):
    self.limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limits[1]))

  def __exit__(self, *exc):
    resource.setrlimit(resource.RLIMIT_FSIZE, self.limits)
    signal.signal(signal.SIGXFSZ, self.handler)


class _PermissionDenied:
  """The checkpoint's data shard is written, then creating the final files is refused."""

  def __enter__(self):
    # pylint: disable-next=import-outside-toplevel
    from tensorflow.python.checkpoint import functional_saver
    self.module = functional_saver.gen_io_ops
    self.real = self.module.merge_v2_checkpoints

    def refuse(checkpoint_prefixes, destination_prefix, **kwargs):
      del checkpoint_prefixes, kwargs
      raise tf.errors.PermissionDeniedError(None, None,
                                            f"{destination_prefix}.index; Permission denied")

    self.module.merge_v2_checkpoints = refuse

  def __exit__(self, *exc):
    self.module.merge_v2_checkpoints = self.real


@pytest.fixture(scope="module")
def tiny_straight(tmp_path_factory):
  """ckpt-16 of an uninterrupted tiny run (the reference of the storage-failure tests)."""
  directory = str(tmp_path_factory.mktemp("tiny_straight"))
  assert _tiny_run(directory)["step"] == 16
  return os.path.join(directory, "ckpt-16")


@pytest.mark.parametrize("failure, words", [(_DiskFull, "File too large"),
                                            (_PermissionDenied, "Permission denied")],
                         ids=["disk_full", "permission_denied"])
def test_failed_checkpoint_write_keeps_the_previous_one_and_a_rerun_resumes(
    tmp_path, monkeypatch, tiny_straight, failure, words):
  model_dir = str(tmp_path / "run")
  with monkeypatch.context() as patch:
    _fail_second_save(patch, failure)
    with pytest.raises(checkpointing.CheckpointWriteError) as error:
      _tiny_run(model_dir)
  message = str(error.value)
  assert f"Could not write checkpoint ckpt-16 to {model_dir}" in message and words in message
  assert f"previous checkpoint {os.path.join(model_dir, 'ckpt-8')} is intact" in message
  # The failed checkpoint left nothing; the previous one reads completely; the lock is released.
  names = sorted(os.listdir(model_dir))
  assert not [n for n in names if n.startswith("ckpt-16")], names
  assert run_lock.LOCK_NAME not in names
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-8")
  assert checkpointing.verify_checkpoint(os.path.join(model_dir, "ckpt-8"))
  # A later run resumes from it and ends where an uninterrupted run ends, bit for bit.
  assert _tiny_run(model_dir)["step"] == 16
  _assert_same_checkpoint(os.path.join(model_dir, "ckpt-16"), tiny_straight)


def _checkpoint_tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name not in skip}


def _assert_same_checkpoint(prefix, reference):
  a, b = _checkpoint_tensors(reference), _checkpoint_tensors(prefix)
  assert sorted(a) == sorted(b)
  assert any(k.startswith("ema/") for k in a) and any(k.startswith("optimizer/") for k in a)
  for name in a:
    np.testing.assert_array_equal(b[name], a[name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# SIGKILL of the tools, through a driver that kills at an exact moment.

_DRIVER = r"""
import importlib, os, runpy, signal, sys, time

specs, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]


def install(spec):
  # "<before|after|wait>@<module>:<attribute path>@<n>[@<arg>]": act at the n-th call; with
  # <arg>, count only calls whose second argument's basename is <arg> (the rename target), except
  # for "wait", where <arg> is a file whose appearance lets the n-th call proceed.
  action, target, nth, *arg = spec.split("@")
  nth, arg = int(nth), (arg[0] if arg else None)
  module_name, _, attributes = target.partition(":")
  owner = importlib.import_module(module_name)
  *path, name = attributes.split(".")
  for part in path:
    owner = getattr(owner, part)
  real = getattr(owner, name)
  calls = [0]

  def hooked(*a, **k):
    if not (action == "wait" or arg is None or (
        len(a) > 1 and os.path.basename(str(a[1]).rstrip("/")) == arg)):
      return real(*a, **k)
    if action == "after":  # counts calls that return (format sniffing may try and fail first)
      result = real(*a, **k)
      calls[0] += 1
      if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
      return result
    calls[0] += 1
    if calls[0] == nth and action == "before":
      os.kill(os.getpid(), signal.SIGKILL)
    while calls[0] == nth and action == "wait" and not os.path.exists(arg):
      time.sleep(0.05)
    return real(*a, **k)

  setattr(owner, name, hooked)


for spec in filter(None, specs.split(";")):
  install(spec)
sys.argv = [tool] + args
runpy.run_path(tool, run_name="__main__")
"""


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
  env.pop("TF_CONFIG", None)
  return env


class _Tool:
  """`python tools/<name>.py <args>` run through `_DRIVER` with the kill specs `spec`."""

  def __init__(self, name, args, *, spec="", log):
    self.log = str(log)
    with open(self.log, "w") as out:
      self.process = subprocess.Popen(
          [sys.executable, "-c", _DRIVER, spec, os.path.join(ROOT, "tools", f"{name}.py"),
           *map(str, args)], env=_env(), stdout=out, stderr=subprocess.STDOUT)

  @property
  def pid(self):
    return self.process.pid

  def finish(self):
    """Waits; returns (returncode, output)."""
    try:
      code = self.process.wait(timeout=TIMEOUT)
    finally:
      if self.process.poll() is None:
        self.process.kill()
    with open(self.log) as f:
      return code, f.read()


def _killed(tool):
  code, output = tool.finish()
  assert code == -signal.SIGKILL, output[-3000:]
  return output


def _succeeded(tool):
  code, output = tool.finish()
  assert code == 0, output[-3000:]
  return output


def _leftovers(directory):
  return [n for n in os.listdir(directory) if n.startswith(atomic.PREFIX)]


def _jpeg_tree(root, seed):
  """Class folders of small random JPEGs: train (24 per class) and validation (6 per class)."""
  rng = np.random.default_rng(seed)
  for split, count in (("train", 24), ("validation", 6)):
    for index, name in enumerate(("circle", "square")):
      folder = os.path.join(root, split, name)
      os.makedirs(folder)
      for k in range(count):
        pixels = rng.uniform(0, 255 if index else 128, (40, 40, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{name}_{k}.jpg"), quality=90)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """Images, their TFRecords (built in process) and a TF-slim checkpoint of the tiny v1."""
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  from inception_tf.data import builder  # pylint: disable=import-outside-toplevel
  from inception_tf.models import create_model  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("fault")
  _jpeg_tree(str(root / "images"), seed=0)
  builder.build_from_directories(
      str(root / "data"), train_dir=str(root / "images" / "train"),
      validation_dir=str(root / "images" / "validation"),
      num_shards={"train": 2, "validation": 1}, num_workers=1, progress=False)
  model = create_model("inception_v1", num_classes=1001, image_size=32, depth_multiplier=0.1)
  slim = checkpoints.save_slim_checkpoint(model, str(root / "slim" / "model.ckpt"), global_step=1)
  return {"root": root, "data": str(root / "data"), "slim": slim}


@pytest.fixture(scope="module")
def straight_run(workspace):
  """An uninterrupted training run, started at once and awaited by the tests that need it."""
  directory = workspace["root"] / "straight"
  tool = _Tool("train", TRAIN_FLAGS + [f"--data_dir={workspace['data']}",
                                      f"--model_dir={directory}"],
               log=workspace["root"] / "straight.log")
  done = []

  def finish():
    if not done:
      done.append(_succeeded(tool))
    return str(directory)

  yield finish
  finish()


def _wait_for(predicate, what, tool=None, timeout=TIMEOUT):
  deadline = time.time() + timeout
  while not predicate():
    assert tool is None or tool.process.poll() is None, f"ended before {what}"
    assert time.time() < deadline, f"timed out waiting for {what}"
    time.sleep(0.05)


def test_train_killed_while_checkpointing_resumes_bit_identical_one_writer_at_a_time(
    workspace, straight_run, tmp_path):
  model_dir = tmp_path / "run"
  flags = TRAIN_FLAGS + [f"--data_dir={workspace['data']}", f"--model_dir={model_dir}"]
  # 1. Killed in the middle of writing ckpt-8: its data is in ckpt-8_temp/, no index, no state.
  first = _Tool("train", flags, log=tmp_path / "first.log", spec=(
      "before@tensorflow.python.checkpoint.functional_saver:gen_io_ops.merge_v2_checkpoints@2"))
  _killed(first)
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
  assert not (model_dir / "ckpt-8.index").exists()

  # 2. A resumed run (no cleanup by hand: the dead trainer's lock is taken over) holds the
  # directory; it waits before its first save until a second trainer has been refused.
  go = tmp_path / "go"
  second = _Tool("train", flags, log=tmp_path / "second.log", spec=(
      f"wait@inception_tf.train.checkpointing:CheckpointWriter.save@1@{go};"
      "before@tensorflow.python.checkpoint.checkpoint_management:"
      "update_checkpoint_state_internal@1"))

  def holds_lock():
    try:
      return json.loads((model_dir / run_lock.LOCK_NAME).read_text())["pid"] == second.pid
    except (OSError, ValueError):
      return False

  _wait_for(holds_lock, "the resumed run to take the lock", second)
  intruder = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), *flags],
                            env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
  assert intruder.returncode != 0
  message = intruder.stderr + intruder.stdout
  assert f"Run directory {model_dir} is in use by another trainer: PID {second.pid}" in message
  assert "--model_dir" in message and "Traceback" not in message
  assert second.process.poll() is None  # the holder keeps training
  go.touch()
  # 3. Killed after writing ckpt-8's files but before the state file names it.
  output = _killed(second)
  assert f"Resumed from {model_dir / 'ckpt-4'} at step 4" in output
  assert (model_dir / "ckpt-8.index").exists()  # written after the intruder was refused
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")

  # 4. The next run resumes from the last complete checkpoint and ends bit-identical.
  output = _succeeded(_Tool("train", flags, log=tmp_path / "third.log"))
  assert f"Resumed from {model_dir / 'ckpt-4'} at step 4" in output
  assert not (model_dir / run_lock.LOCK_NAME).exists()
  assert not [n for n in os.listdir(model_dir) if n.endswith("_temp")]
  straight = straight_run()
  _assert_same_checkpoint(str(model_dir / "ckpt-12"), os.path.join(straight, "ckpt-12"))
  results = json.loads((model_dir / "results.json").read_text())
  assert results["step"] == 12


def _export_flags(run, output):
  return MODEL_FLAGS + ["--num_classes=3", f"--checkpoint={run}", f"--output_dir={output}"]


def test_export_killed_at_any_moment_leaves_no_export_and_a_rerun_completes(
    workspace, straight_run, tmp_path):
  run = straight_run()
  moments = {"saved_model_written": "after@inception_tf.export.serving:export_saved_model@1",
             "keras_file_opened": "after@zipfile:ZipFile.__init__@1",  # a 0-byte model.keras
             "before_publishing": "before@os:rename@1@export"}  # staged, verified, not renamed
  tools = {}
  for moment, spec in moments.items():
    os.makedirs(tmp_path / moment)
    tools[moment] = _Tool("export", _export_flags(run, tmp_path / moment / "export"), spec=spec,
                          log=tmp_path / f"{moment}.log")
  for moment, tool in tools.items():
    _killed(tool)
    assert os.listdir(tmp_path / moment) == _leftovers(tmp_path / moment) != [], moment

  # A rerun (no --overwrite needed: a leftover is not an export) cleans up and publishes.
  parent = tmp_path / "before_publishing"
  output = parent / "export"
  _succeeded(_Tool("export", _export_flags(run, output), log=tmp_path / "rerun.log"))
  assert os.listdir(parent) == ["export"]
  from inception_tf import export  # pylint: disable=import-outside-toplevel
  info = export.verify_export(str(output))
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  served = tf.saved_model.load(str(output / "saved_model")).signatures["predict_images"]
  logits = served(images=tf.constant(images))["logits"].numpy()  # the signature also has probabilities
  reloaded = keras.models.load_model(str(output / info["files"]["keras"]), compile=False)
  np.testing.assert_allclose(logits, reloaded(images)["logits"], rtol=1e-5, atol=1e-5)

  # A complete export is replaced only with --overwrite.
  before = (output / "export_info.json").stat().st_mtime_ns
  refused = _Tool("export", _export_flags(run, output), log=tmp_path / "refused.log")
  code, text = refused.finish()
  assert code != 0 and "exists; pass overwrite=True (--overwrite)" in text, text[-2000:]
  assert (output / "export_info.json").stat().st_mtime_ns == before


def test_convert_killed_leaves_no_keras_file_and_a_rerun_completes(workspace, tmp_path):
  moments = {"keras_file_opened": "after@zipfile:ZipFile.__init__@1",
             "before_publishing": "before@os:link@1@v1.keras"}  # verified, not yet linked
  tools = {}
  for moment, spec in moments.items():
    os.makedirs(tmp_path / moment)
    tools[moment] = _Tool("convert_slim_checkpoint", MODEL_FLAGS + [
        f"--checkpoint={workspace['slim']}", f"--output={tmp_path / moment / 'v1.keras'}"],
                          spec=spec, log=tmp_path / f"{moment}.log")
  for moment, tool in tools.items():
    _killed(tool)
    assert os.listdir(tmp_path / moment) == _leftovers(tmp_path / moment) != [], moment
  output = tmp_path / "before_publishing" / "v1.keras"
  _succeeded(_Tool("convert_slim_checkpoint", MODEL_FLAGS + [
      f"--checkpoint={workspace['slim']}", f"--output={output}"], log=tmp_path / "rerun.log"))
  assert os.listdir(output.parent) == ["v1.keras"]
  model = keras.models.load_model(str(output), compile=False)
  assert model.name == "InceptionV1" and model.output["logits"].shape[-1] == 1001


def _check_shards(directory):
  """Every shard present is complete (its sidecar's count of parseable records); returns counts."""
  from inception_tf.data import tfrecord  # pylint: disable=import-outside-toplevel
  counts = {}
  for name in sorted(os.listdir(directory)):
    if name.startswith(("train-", "validation-")):
      with open(os.path.join(directory, f".{name}.json")) as f:
        expected = json.load(f)["num_examples"]
      records = list(tf.data.TFRecordDataset(os.path.join(directory, name)))
      for record in records:
        tfrecord.parse_example(record)
      assert len(records) == expected, name
      counts[name] = expected
  return counts


def test_build_tfrecords_killed_leaves_only_complete_shards_and_a_rerun_completes(
    workspace, tmp_path):
  images = workspace["root"] / "images"
  moments = {"mid_shard": "after@tensorflow:io.TFRecordWriter.write@3",
             "first_shard_published": "after@tensorflow:io.gfile.rename@2",
             "before_manifest": "before@tensorflow:io.gfile.rename@1@manifest.json"}

  def flags(output):
    return [f"--train_dir={images / 'train'}", f"--validation_dir={images / 'validation'}",
            f"--output_dir={output}", "--train_shards=2", "--validation_shards=1",
            "--num_workers=1"]

  tools = {moment: _Tool("build_tfrecords", flags(tmp_path / moment), spec=spec,
                         log=tmp_path / f"{moment}.log") for moment, spec in moments.items()}
  for moment, tool in tools.items():
    _killed(tool)
    assert not (tmp_path / moment / "manifest.json").exists(), moment
    counts = _check_shards(tmp_path / moment)
    assert (moment == "mid_shard") == (not counts), (moment, counts)
  output = tmp_path / "mid_shard"
  _succeeded(_Tool("build_tfrecords", flags(output), log=tmp_path / "rerun.log"))
  counts = _check_shards(output)
  manifest = json.loads((output / "manifest.json").read_text())
  assert {s: i["num_examples"] for s, i in manifest["splits"].items()} == {"train": 48,
                                                                            "validation": 12}
  assert sum(counts.values()) == 60
  assert not [n for n in os.listdir(output) if n.startswith(".tmp.")]


def test_evaluate_killed_before_its_report_is_published_then_completes(
    workspace, straight_run, tmp_path):
  run = straight_run()
  moments = {"evaluated": "before@inception_tf.eval.evaluate:write_report@1",
             "before_publishing": "before@os:replace@1@report.json"}  # written, not renamed

  def flags(output):
    return MODEL_FLAGS + ["--num_classes=3", f"--checkpoint={run}",
                          f"--data_dir={workspace['data']}", f"--output={output}",
                          "--noprogress"]

  tools = {}
  for moment, spec in moments.items():
    os.makedirs(tmp_path / moment)
    tools[moment] = _Tool("evaluate", flags(tmp_path / moment / "report.json"), spec=spec,
                          log=tmp_path / f"{moment}.log")
  for moment, tool in tools.items():
    _killed(tool)
    assert os.listdir(tmp_path / moment) == _leftovers(tmp_path / moment), moment
  assert _leftovers(tmp_path / "before_publishing")
  output = tmp_path / "before_publishing" / "report.json"
  _succeeded(_Tool("evaluate", flags(output), log=tmp_path / "rerun.log"))
  report = json.loads(output.read_text())
  assert report["num_examples"] == 12 and 0.0 <= report["top1_accuracy"] <= 1.0
  assert os.listdir(output.parent) == ["report.json"]
