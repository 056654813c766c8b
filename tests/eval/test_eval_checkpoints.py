"""Evaluating checkpoints: our training checkpoints (EMA by default), TF-slim ones, --watch, errors."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import eval_fixtures
from inception_tf import checkpoints
from inception_tf.eval import evaluate as ev
from inception_tf.models import create_model
from inception_tf.train import checkpointing
from inception_tf.train import ema as ema_lib

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("eval_checkpoints")


IDS = [7, 3, 12, 1, 9, 5, 13, 2, 11, 4, 8, 10, 6]
OPTIONS = {"depth_multiplier": 0.25}


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return eval_fixtures.write_records(str(tmp_path_factory.mktemp("records")), IDS)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A training-run directory: ckpt-7 with EMA shadows that differ from the raw weights."""
  model_dir = str(tmp_path_factory.mktemp("run"))
  model = create_model("inception_v3", 14, image_size=75, **OPTIONS)
  ema = ema_lib.ExponentialMovingAverage(ema_lib.averaged_variables(model), decay=0.9)
  rng = np.random.default_rng(0)
  for variable in ema.variables_averaged:
    shadow = ema.shadow(variable)
    shadow.assign(shadow + rng.normal(0, 0.05, shadow.shape).astype(np.float32)
                  * tf.cast(tf.abs(shadow) > 0, tf.float32))
  manager = tf.train.CheckpointManager(checkpointing.make_checkpoint(model, ema=ema), model_dir,
                                       max_to_keep=2)
  manager.save(checkpoint_number=7)
  checkpoints.write_run_config(model_dir, {"model": "inception_v3", "model_options": OPTIONS,
                                           "image_size": 75, "num_classes": 14,
                                           "aux_logits": True})
  raw = {v.path: v.numpy() for v in model.weights}
  ema.copy_to_model()
  averaged = {v.path: v.numpy() for v in model.weights}
  return model_dir, model, raw, averaged


def _probabilities(spec, records, **kwargs):
  evaluator = ev.Evaluator(spec, records, crops=1, batch_size=5, verbose=0, **kwargs)
  return evaluator.run(return_probabilities=True)


def _with_weights(model, values):
  for variable in model.weights:
    variable.assign(values[variable.path])
  return model


@pytest.mark.slow
def test_training_checkpoint_uses_ema_by_default(run, records):
  model_dir, model, raw, averaged = run
  report = _probabilities(ev.ModelSpec(checkpoint=model_dir), records)
  member = report["models"][0]
  assert (member["name"], member["step"], member["ema_used"], member["format"]) == (
      "inception_v3", 7, True, "training_checkpoint")
  assert member["image_size"] == 75 and member["options"] == OPTIONS
  expected = _probabilities(_with_weights(model, averaged), records)
  np.testing.assert_allclose(report["probabilities"], expected["probabilities"], rtol=1e-5,
                             atol=1e-6)
  expected_raw = _probabilities(_with_weights(model, raw), records)
  assert not np.allclose(expected_raw["probabilities"], report["probabilities"])


def test_training_checkpoint_raw_weights_on_request(run, records):
  model_dir, model, raw, _ = run
  without = _probabilities(ev.ModelSpec(checkpoint=model_dir, use_ema=False), records)
  assert without["models"][0]["ema_used"] is False
  expected_raw = _probabilities(_with_weights(model, raw), records)
  np.testing.assert_allclose(without["probabilities"], expected_raw["probabilities"], rtol=1e-5,
                             atol=1e-6)


def test_slim_checkpoint_by_name(run, records, tmp_path):
  _, model, raw, _ = run
  prefix = checkpoints.save_slim_checkpoint(_with_weights(model, raw), str(tmp_path / "m.ckpt"),
                                            global_step=123)
  report = _probabilities(ev.ModelSpec("inception_v3", checkpoint=prefix, options=OPTIONS),
                          records, image_size=75)
  member = report["models"][0]
  assert (member["format"], member["step"], member["num_classes"]) == ("slim_checkpoint", 123, 14)
  expected = _probabilities(model, records)
  np.testing.assert_allclose(report["probabilities"], expected["probabilities"], rtol=1e-5,
                             atol=1e-6)


def test_checkpoint_not_matching_the_model(run, records):
  model_dir = run[0]
  with pytest.raises(ev.EvaluationError, match="was trained as 'inception_v3'"):
    _probabilities(ev.ModelSpec("inception_v1", checkpoint=model_dir), records)
  with pytest.raises(ev.EvaluationError, match=r"--num_classes=9 contradicts the run .* trained "
                     r"with 14 classes \(.*config\.json\)"):
    _probabilities(ev.ModelSpec("inception_v3", checkpoint=model_dir, num_classes=9), records)
  with pytest.raises(ev.EvaluationError, match="depth_multiplier=0.5 contradicts the run"):
    _probabilities(ev.ModelSpec("inception_v3", checkpoint=model_dir,
                                options={"depth_multiplier": 0.5}), records)


def test_legacy_run_with_results_json_only(run, records, tmp_path):
  """Runs from before config.json recorded the recipe in results.json: still enough to load."""
  model_dir = run[0]
  legacy = tmp_path / "legacy"
  shutil.copytree(model_dir, legacy, ignore=shutil.ignore_patterns("config.json"))
  with open(legacy / "results.json", "w") as f:
    json.dump({"config": {"model": "inception_v3", "model_options": OPTIONS, "image_size": 75,
                          "num_classes": 14, "aux_logits": None}}, f)
  report = _probabilities(ev.ModelSpec(checkpoint=str(legacy)), records)
  assert report["models"][0]["name"] == "inception_v3"
  with pytest.raises(ev.EvaluationError, match=r"contradicts .*results\.json"):
    _probabilities(ev.ModelSpec(checkpoint=str(legacy), num_classes=9), records)


def test_watch_evaluates_new_checkpoints(run, records, tmp_path):
  model_dir = run[0]
  reports = ev.watch(model_dir, ev.ModelSpec(), records, crops=1, batch_size=5, verbose=0,
                     output_dir=str(tmp_path / "eval"), poll_seconds=0.1, timeout_seconds=0.5)
  assert [r["checkpoint_step"] for r in reports] == [7]
  assert reports[0]["num_examples"] == len(IDS)
  with open(tmp_path / "eval" / "reports.jsonl") as f:
    assert [json.loads(line)["checkpoint_step"] for line in f] == [7]
  assert os.path.exists(tmp_path / "eval" / "report-7.json")
