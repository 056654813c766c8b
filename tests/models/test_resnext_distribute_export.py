"""ResNeXt's grouped convolutions through the trainer and the exporter (issue 16 §4).

A thinned `resnext50_32x4d` (one unit per stage, stage widths 16/32/64/128, cardinality 32 as
published, 32 x 32 inputs) trains under `MirroredStrategy` on two logical CPU devices without XLA
(XLA under MirroredStrategy is not supported here, see STYLE.md), on one device with and without
`jit_compile`, and exports to SavedModel and TFLite with the outputs of the Keras model.
"""

import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf import export
from inception_tf import models
from inception_tf.export import inference
from inception_tf.export import tflite
from inception_tf.train import loop
from tests.train import tiny

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("resnext_distribute_export")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SIZE = 32  # resnet's minimum input: layer4 is one 1 x 1 cell
THIN = {"units": (1, 1, 1, 1), "widths": (16, 32, 64, 128)}  # groups=32, width_per_group=4 kept


def thin_datasets(**kwargs) -> loop.Datasets:
  """tiny's learnable in-memory data (colour = class), upsampled from 8 x 8 to the net's 32 x 32."""
  base = tiny.in_memory_datasets(**kwargs)

  def upsample(batch):
    images = tf.image.resize(batch["images"], [IMAGE_SIZE, IMAGE_SIZE], method="nearest")
    return {**batch, "images": images}

  return dataclasses.replace(base, train_fn=lambda context, skip: base.train_fn(
      context, skip).map(upsample), eval_fn=lambda context: base.eval_fn(context).map(upsample))


def thin_config(**changes):
  """`resnext50_32x4d` thinned, 3 steps of 8 from seed 1 (the same initial weights every run)."""
  return tiny.tiny_config(model="resnext50_32x4d", model_options=dict(THIN),
                          image_size=IMAGE_SIZE, train_steps=3, log_every_steps=1,
                          steps_per_execution=1, checkpoint_every_steps=3, summary_images=0,
                          ema_decay=0.9, batch_norm_momentum=0.9, seed=1, **changes)


# ------------------------------------------------------------ MirroredStrategy, 2 logical CPUs.

_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")  # two logical CPUs, even on a machine with GPUs
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from inception_tf import distribute
    from inception_tf.train import loop
    from tests.models import test_resnext_distribute_export as case

    strategy = distribute.get_strategy("mirrored")
    config = case.thin_config(jit_compile=False)
    loop.configure_determinism(config)
    datasets = case.thin_datasets(global_batch=config.train_batch_size)
    trainer = loop.Trainer(config, strategy, num_classes=datasets.num_classes,
                           num_train_examples=datasets.num_train_examples,
                           image_size=case.IMAGE_SIZE)
    def components(variable):  # the per-device copies of a Keras variable under the strategy
      return [np.array(v.numpy()) for v in strategy.experimental_local_results(variable.value)]
    initial = {v.path: components(v)[0] for v in trainer.model.weights}
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda context: datasets.train_fn(context, 0)))
    losses = []
    for _ in range(config.train_steps):
      metrics = trainer.train_function()(iterator, tf.constant(1, tf.int32))
      losses.append(float(metrics["loss"].numpy()))
    copies = {v.path: components(v) for v in trainer.model.weights}
    grouped = [l.name for l in trainer.model.layers if getattr(l, "groups", 1) > 1]
    evaluation = trainer.evaluate(strategy.distribute_datasets_from_function(datasets.eval_fn))
    print("RESULT" + json.dumps({
        "replicas": strategy.num_replicas_in_sync, "jit_compile": trainer.jit_compile,
        "step": trainer.step, "losses": losses, "grouped": grouped,
        "copies": sorted({len(c) for c in copies.values()}),
        "replicas_differ": [p for p, c in copies.items()
                            if not all(np.array_equal(c[0], x) for x in c[1:])],
        "trained": [p for p, c in copies.items() if not np.array_equal(c[0], initial[p])],
        "trainable": [v.path for v in trainer.model.trainable_weights],
        "eval": evaluation}))
""")


def test_thin_resnext_trains_under_mirrored_strategy_on_two_cpu_devices():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600, check=False)
  lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
  assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-4000:]
  result = json.loads(lines[-1][len("RESULT"):])
  assert (result["replicas"], result["jit_compile"], result["step"]) == (2, False, 3)
  assert len(result["grouped"]) == 4  # one grouped 3x3 per unit, cardinality 32
  assert np.all(np.isfinite(result["losses"])), result["losses"]
  # Synchronous training: every variable has one copy per device, the copies are equal after the
  # all-reduced steps (batch-norm moving statistics included: Keras 3 lets each replica write its
  # own copy; the trainer averages them), and every trainable weight moved.
  assert result["copies"] == [2]
  assert result["replicas_differ"] == []
  assert set(result["trainable"]) <= set(result["trained"])
  assert result["eval"]["num_examples"] == 20 and np.isfinite(result["eval"]["loss"])


# ------------------------------------------------------------ one device, XLA on and off.

@pytest.fixture(scope="module")
def single_device_runs(tmp_path_factory):
  """train_and_evaluate of the same run (seed, data) with jit_compile False and True."""
  runs = {}
  for jit in (False, True):
    stream = io.StringIO()
    model_dir = str(tmp_path_factory.mktemp(f"jit_{jit}"))
    result = loop.train_and_evaluate(thin_config(jit_compile=jit), model_dir,
                                     datasets=thin_datasets(global_batch=8), stream=stream)
    runs[jit] = {"result": result, "log": stream.getvalue(), "model_dir": model_dir}
  return runs


@pytest.mark.parametrize("jit", [False, True])
def test_thin_resnext_trains_on_one_device(single_device_runs, jit):
  run = single_device_runs[jit]
  assert "over 1 replica(s) (" in run["log"] and f"jit_compile={jit}, float32" in run["log"], \
      run["log"]
  result = run["result"]
  assert result["step"] == 3
  losses = [h["loss"] for h in result["history"]]
  assert len(losses) == 3 and np.all(np.isfinite(losses)), losses
  assert result["eval"]["num_examples"] == 20
  assert tf.train.latest_checkpoint(run["model_dir"]).endswith("ckpt-3")


def test_xla_and_tf_kernels_train_the_same_steps(single_device_runs):
  """Same seed, same batches: the XLA step computes the TF kernels' losses and gradient norms up to
  float32 summation order (3 steps of RMSProp keep the difference at rounding level)."""
  plain, compiled = (single_device_runs[jit]["result"]["history"] for jit in (False, True))
  for key in ("loss", "cross_entropy", "gradient_norm"):
    np.testing.assert_allclose([h[key] for h in compiled], [h[key] for h in plain], rtol=1e-4,
                               err_msg=key)


# ------------------------------------------------------------ export: SavedModel and TFLite.

@pytest.fixture(scope="module")
def trained_model():
  """The thin ResNeXt with non-trivial batch-norm statistics and offsets, as a trained net has."""
  keras.utils.set_random_seed(3)
  model = models.create_model("resnext50_32x4d", 10, image_size=IMAGE_SIZE, **THIN)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      shape = layer.moving_mean.shape
      layer.moving_mean.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
      layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
      layer.beta.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
  return model


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(7).normal(0.0, 1.0, (6, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(
      np.float32)


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
  """`export_model` as `tools/export.py` runs it by default (BN not folded), with TFLite files."""
  path = str(tmp_path_factory.mktemp("export") / "resnext")
  return export.export_model(trained_model, path, tflite=True)


def _max_error(actual, expected):
  return float(np.abs(np.asarray(actual) - np.asarray(expected)).max())


def test_saved_model_matches_keras_within_float32_rounding(exported, trained_model, images):
  expected = trained_model(images, training=False)["logits"].numpy()
  loaded = tf.saved_model.load(exported.saved_model)
  out = loaded.signatures["predict_images"](images=tf.constant(images))
  # The same graph of float32 ops: at most a few ulps of the largest logit.
  bound = 4 * np.finfo(np.float32).eps * np.abs(expected).max()
  assert _max_error(out["logits"], expected) <= bound, (_max_error(out["logits"], expected), bound)
  np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(expected).numpy(),
                             atol=1e-6)
  assert exported.info["preprocessing"] == "torchvision"


def test_tflite_float_matches_keras(exported, trained_model, images):
  """TFLite's float kernels (XNNPACK's grouped convolution) sum in another order: 1e-5 of the
  largest logit. The int8 file quantizes: within 10% of the logits' spread."""
  expected = trained_model(images, training=False)["logits"].numpy()
  assert sorted(exported.tflite_files) == ["dynamic_int8", "float32"]
  float_logits = tflite.TFLiteClassifier(exported.tflite_files["float32"])(images)["logits"]
  assert _max_error(float_logits, expected) <= 1e-5 * np.abs(expected).max(), _max_error(
      float_logits, expected)
  int8_logits = tflite.TFLiteClassifier(exported.tflite_files["dynamic_int8"])(images)["logits"]
  assert _max_error(int8_logits, expected) <= 0.1 * expected.std()


def test_batch_norm_folds_into_grouped_convolutions(trained_model, images):
  """`fold_batch_norm=True` folds each BN into its convolution, the grouped 3x3s included
  (the kernel's last axis is the output channel for any `groups`)."""
  folds = inference.foldable_batch_norms(trained_model)
  grouped = {l.name for l in trained_model.layers if getattr(l, "groups", 1) > 1}
  assert grouped and grouped <= set(folds.values())
  folded = inference.make_inference_model(trained_model, fold_batch_norm=True)
  assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
  expected = trained_model(images, training=False)["logits"].numpy()
  np.testing.assert_allclose(folded(images)["logits"].numpy(), expected,
                             atol=1e-5 * np.abs(expected).max())
