"""End to end: a shortened quick-start run evaluated with 1/12/144 crops, through tools/evaluate.py.

The full quick start's numbers (accuracy per protocol) are in WORKSPACE_NOTES.md "## Evaluation";
this test checks the plumbing on a few training steps: the run's recorded model, its EMA weights
and step, and exactly N examples per protocol on the digits validation split.
"""

import io
import json
import os
import subprocess
import sys

import pytest

from inception_tf import train
from inception_tf.eval import evaluate as ev

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 6
EXAMPLES = 11


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("quickstart"))
  config = train.quickstart(train_steps=STEPS, train_epochs=None, eval_split="",
                            checkpoint_every_steps=STEPS, jit_compile=False, cache_data=False)
  train.train_and_evaluate(config, model_dir, stream=io.StringIO())
  return model_dir


@pytest.mark.slow
def test_quickstart_run_with_three_protocols(run_dir, tmp_path):
  output = str(tmp_path / "report.json")
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "evaluate.py"), f"--checkpoint={run_dir}",
       "--crops=12", f"--max_examples={EXAMPLES}", "--eval_batch_size=4", f"--output={output}",
       "--noprogress"],
      capture_output=True, text=True, timeout=900, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 0, done.stderr[-3000:]
  assert "12 crop(s)" in done.stdout
  with open(output) as f:
    report = json.load(f)
  member = report["models"][0]
  quickstart = train.quickstart()
  assert (member["name"], member["step"], member["ema_used"], member["image_size"]) == (
      quickstart.model, STEPS, True, quickstart.image_size)
  assert member["options"] == dict(quickstart.model_options)
  assert report["num_examples"] == EXAMPLES
  assert report["data"]["num_classes"] == 11 and report["data"]["labels_offset"] == 1
  # 12 crops: one scale, the shorter side resized to 256/224 of the input size.
  size = quickstart.image_size
  assert report["scales"] == {str(size): [round(256 * size / 224)]}
  for crops in (1, 144):
    report = ev.evaluate(ev.ModelSpec(checkpoint=run_dir), crops=crops, max_examples=EXAMPLES,
                         batch_size=3, verbose=0)
    assert report["num_examples"] == EXAMPLES
    assert set(report["per_class_accuracy"]) <= {str(label) for label in range(1, 11)}
