"""The trainer evaluates through the evaluator's own step: on the same checkpoint, its in-loop
numbers equal the CLI evaluator's (counts exactly, losses to float32 summation)."""

import io

import pytest

from inception_tf import train
from inception_tf.eval import evaluate as ev

STEPS = 4
BATCH = 50  # the digits' 360 validation examples: 7 full batches and a padded one


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("run"))
  # XLA: the trainer's evaluation step as it runs on one GPU or a TPU (the CPU default is TF's).
  # The quick-start recipe on resnet20, the registry's smallest graph: XLA compiles it in half the
  # time of the quick-start Inception-v1 (39 s vs 82 s of fixture on a loaded 2-core CPU).
  config = train.quickstart(model="resnet20", model_options={}, train_steps=STEPS,
                            train_epochs=None, checkpoint_every_steps=STEPS, jit_compile=True,
                            eval_every_steps=STEPS // 2, eval_batch_size=BATCH, cache_data=False)
  stream = io.StringIO()
  results = train.train_and_evaluate(config, model_dir, stream=stream)
  return model_dir, results, stream.getvalue()


@pytest.mark.slow  # XLA-compiles and trains resnet20 a few steps (~1 min on a loaded 2-core CPU)
def test_trainer_evaluation_equals_the_evaluator_on_its_checkpoint(run):
  model_dir, results, log = run
  assert "Evaluation at step 2" in log  # the in-loop evaluation ran before the final one
  in_loop = results["eval"]  # the final evaluation, EMA weights, of the checkpoint at STEPS
  report = ev.evaluate(ev.ModelSpec(checkpoint=model_dir), batch_size=BATCH, verbose=0)
  assert report["checkpoint_step"] == STEPS and report["ema_used"] == [True]
  assert in_loop["num_examples"] == report["num_examples"] == 360
  assert in_loop["top1_correct"] == report["top1_correct"]
  assert in_loop["top5_correct"] == report["top5_correct"]
  assert in_loop["loss"] == pytest.approx(report["loss"], rel=1e-5)
  # A model a few steps old: neither count is trivially 0 or all (so equality says something).
  assert 0 < report["top5_correct"] < 360 and report["top1_correct"] < report["top5_correct"]
  raw = ev.evaluate(ev.ModelSpec(checkpoint=model_dir, use_ema=False), batch_size=BATCH,
                    verbose=0)
  assert results["eval_raw"]["top5_correct"] == raw["top5_correct"]
  assert results["eval_raw"]["top1_correct"] == raw["top1_correct"]
  assert results["eval_raw"]["loss"] == pytest.approx(raw["loss"], rel=1e-5)
