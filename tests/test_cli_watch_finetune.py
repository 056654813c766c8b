"""`evaluate.py --watch` and `train.py --init_checkpoint` as a user runs them (README, Training and
Evaluation), on the built-in digits with the smallest Inception-v1 the tools accept.

One training run is made while an evaluator watches its directory (the module fixture); the watch
test checks what the evaluator did with the checkpoint that appeared; the fine-tuning tests start
new runs from that run and from a TF-slim checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from inception_tf import checkpoints
from inception_tf.checkpoints import run as run_lib
from inception_tf.data import default_dataset
from inception_tf.eval import evaluate as ev
from inception_tf.models import create_model
from inception_tf.models import naming

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 900
TRAIN_STEPS = 6
MODEL_FLAGS = ["--model=inception_v1", "--model_options=depth_multiplier=0.1", "--image_size=32"]
# No in-loop evaluation and no EMA (so the weights a run holds are the ones it trained); one
# checkpoint, at the last step. Batch-norm momentum 0: the moving statistics are the last training
# batch's, so even a six-step model's predictions vary with the input (with the default momentum
# they are still the initial ones and every image gets the same class): reports of two different
# checkpoints then differ.
TRAIN_FLAGS = ["--preset=quickstart", *MODEL_FLAGS, "--nojit_compile", "--warmup_epochs=0",
               "--eval_split=", "--ema_decay=0", "--batch_norm_momentum=0", "--log_every_steps=2",
               "--steps_per_execution=2", "--checkpoint_every_steps=1000"]

# The tests share the module fixtures' data and run: one xdist worker makes them.
pytestmark = pytest.mark.xdist_group("cli_watch_finetune")


def _env():
  # The tools import inception_tf from this checkout, whatever the installed copy points at.
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def _start(tool, *args, log):
  with open(log, "w") as out:
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", tool), *map(str, args)],
                            env=_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _run(tool, *args, returncode=0):
  process = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *map(str, args)],
                           env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
                           check=False)
  assert process.returncode == returncode, process.stdout[-2000:] + process.stderr[-3000:]
  return process


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  return default_dataset.digits_data_dir(str(tmp_path_factory.mktemp("data") / "digits"))


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory, digits):
  """`evaluate.py --watch` started on a run directory that has no checkpoint yet, then
  `train.py` into that directory; the evaluator stops after the checkpoint of the last step."""
  root = tmp_path_factory.mktemp("watched")
  run, reports = root / "run", root / "eval"
  evaluator = _start("evaluate.py", f"--checkpoint={run}", "--watch", f"--data_dir={digits}",
                     f"--output_dir={reports}", "--watch_poll_seconds=0.2",
                     f"--watch_until_step={TRAIN_STEPS}", "--watch_timeout_seconds=600",
                     "--noprogress", log=root / "evaluate.log")
  try:
    # `watch` creates its reports directory just before its first look for a checkpoint: from
    # then on it is watching, and only then is the trainer started.
    deadline = time.time() + TIMEOUT
    while not reports.is_dir():
      assert evaluator.poll() is None, (root / "evaluate.log").read_text()[-3000:]
      assert time.time() < deadline, "the evaluator never started watching"
      time.sleep(0.1)
    assert not run.exists()
    trained = _run("train.py", *TRAIN_FLAGS, f"--train_steps={TRAIN_STEPS}", "--seed=1",
                   f"--data_dir={digits}", f"--model_dir={run}")
    code = evaluator.wait(timeout=TIMEOUT)
  finally:
    if evaluator.poll() is None:
      evaluator.kill()
  return {"run": run, "data": digits, "reports": reports, "train_log": trained.stdout,
          "evaluator_code": code, "evaluator_log": (root / "evaluate.log").read_text()}


def test_watch_evaluates_the_checkpoint_that_appears_and_exits(watched_run):
  run, reports = watched_run["run"], watched_run["reports"]
  assert watched_run["evaluator_code"] == 0, watched_run["evaluator_log"][-3000:]
  assert sorted(os.listdir(run)).count(f"ckpt-{TRAIN_STEPS}.index") == 1
  with open(reports / "reports.jsonl") as f:
    lines = [json.loads(line) for line in f]
  assert [line["checkpoint_step"] for line in lines] == [TRAIN_STEPS]
  assert sorted(p.name for p in reports.glob("report-*.json")) == [f"report-{TRAIN_STEPS}.json"]
  report = json.loads((reports / f"report-{TRAIN_STEPS}.json").read_text())
  assert report["models"][0]["step"] == TRAIN_STEPS and report["num_examples"] == 360
  # What the watcher reported is what a direct evaluation of that checkpoint gives.
  direct = ev.evaluate([ev.ModelSpec(checkpoint=str(run / f"ckpt-{TRAIN_STEPS}"))],
                       watched_run["data"], crops=1, verbose=0)
  for key in ("top1_correct", "top5_correct", "per_class_accuracy", "checkpoint_step"):
    assert report[key] == direct[key], key
  # Not a constant prediction: the per-class accuracies identify the weights that made them.
  assert len({c["top1_accuracy"] for c in report["per_class_accuracy"].values()}) >= 3, report


def _trainable_by_slim_name(path):
  """{slim name: value} of every trainable variable of the run checkpoint `path`, read into a
  fresh model of MODEL_FLAGS' network (11 digit classes)."""
  model = create_model("inception_v1", 11, image_size=32, depth_multiplier=0.1)
  run_lib.restore_for_inference(model, str(path), use_ema=False)
  return _trainable(model)


def _trainable(model):
  trainable = {id(v) for v in model.trainable_weights}
  return {name: v.numpy() for name, v in naming.slim_variables(model).items()
          if id(v) in trainable}


def _fine_tune(data, model_dir, *flags):
  """Two steps that train only Mixed_5c: every other variable keeps its initial value."""
  log = _run("train.py", *TRAIN_FLAGS, "--train_steps=2", "--seed=2", f"--data_dir={data}",
             f"--model_dir={model_dir}", "--trainable_scopes=InceptionV1/Mixed_5c", *flags).stdout
  assert "Initialised from" in log and "Resumed" not in log and "step 2/2" in log, log
  return _trainable_by_slim_name(model_dir / "ckpt-2")


def _assert_initialised_from(after, before, *, restored):
  """Frozen variables in `restored` equal the source's bit for bit, the other frozen ones differ
  (not restored: being frozen, training cannot explain a difference); Mixed_5c trained."""
  assert sorted(after) == sorted(before)
  trained = [n for n in before if n.startswith("InceptionV1/Mixed_5c/")]
  assert trained and any(not np.array_equal(after[n], before[n]) for n in trained)
  frozen = sorted(set(before) - set(trained))
  for name in frozen:
    if restored(name):
      np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    else:
      assert not np.array_equal(after[name], before[name]), name


def test_fine_tuning_from_a_slim_checkpoint_restores_all_but_the_excluded_scope(digits, tmp_path):
  """README, Training: `--init_checkpoint=<slim ckpt> --checkpoint_exclude_scopes=<logits>`. The
  checkpoint's logits have the run's width, so only the exclusion keeps them out."""
  keras.utils.set_random_seed(7)
  source = create_model("inception_v1", 11, image_size=32, depth_multiplier=0.1)
  rng = np.random.default_rng(7)
  for variable in source.trainable_weights:  # no value a fresh initialisation has (zero biases)
    variable.assign(variable + rng.uniform(0.01, 0.02, variable.shape).astype(np.float32))
  path = checkpoints.save_slim_checkpoint(source, str(tmp_path / "slim" / "model.ckpt"))
  after = _fine_tune(digits, tmp_path / "finetuned", f"--init_checkpoint={path}",
                     "--checkpoint_exclude_scopes=InceptionV1/Logits")
  assert [n for n in after if n.startswith("InceptionV1/Logits/")]
  _assert_initialised_from(after, _trainable(source),
                           restored=lambda name: not name.startswith("InceptionV1/Logits/"))


def test_fine_tuning_from_a_run_restores_the_whole_model(watched_run, tmp_path):
  """README, Training: `--init_checkpoint` also takes one of our runs (the watched one); the new
  run starts at step 0 from all of its weights."""
  after = _fine_tune(watched_run["data"], tmp_path / "finetuned",
                     f"--init_checkpoint={watched_run['run']}")
  _assert_initialised_from(after, _trainable_by_slim_name(watched_run["run"]),
                           restored=lambda name: True)


def test_bad_init_checkpoint_is_one_error_naming_the_flag(tmp_path):
  missing = tmp_path / "no_such_run"
  process = _run("train.py", *TRAIN_FLAGS, "--train_steps=2", f"--data_dir={tmp_path / 'data'}",
                 f"--model_dir={tmp_path / 'run'}", f"--init_checkpoint={missing}", returncode=1)
  output = process.stdout + process.stderr
  errors = [line for line in output.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "--init_checkpoint" in errors[0] and str(missing) in errors[0], output
  assert "Traceback" not in output
  assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("ckpt-*"))
