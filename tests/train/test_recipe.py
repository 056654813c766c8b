"""The recipe's pieces against hand computations: schedule, TF1 RMSProp, loss, weight decay, EMA."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from inception_tf.train import config as config_lib  # noqa: E402
from inception_tf.train import ema as ema_lib  # noqa: E402
from inception_tf.train import losses  # noqa: E402
from inception_tf.train import optim  # noqa: E402
from inception_tf.train import schedules  # noqa: E402
from tests.train import tiny  # noqa: E402

# ----------------------------------------------------------------------------- schedules


def test_paper_schedule_counts_global_examples():
  # 1000 examples, global batch 100 (e.g. 4 replicas x 25): 2 epochs = 20 steps.
  config = config_lib.paper_v3(train_batch_size=100)
  schedule = schedules.from_config(config, num_train_examples=1000)
  peak = 0.045 * 100 / 32  # [v3] 0.045 at batch 32, scaled linearly
  values = {step: float(schedule(step)) for step in (0, 19, 20, 39, 40, 45, 100)}
  assert values[0] == pytest.approx(peak, rel=1e-6)
  assert values[19] == pytest.approx(peak, rel=1e-6)
  assert values[20] == pytest.approx(peak * 0.94, rel=1e-6)
  assert values[39] == pytest.approx(peak * 0.94, rel=1e-6)
  assert values[40] == pytest.approx(peak * 0.94**2, rel=1e-6)
  assert values[45] == pytest.approx(peak * 0.94**2, rel=1e-6)
  assert values[100] == pytest.approx(peak * 0.94**5, rel=1e-6)
  # (In eager mode TF1's exponential_decay returns a callable.)
  # TF-slim counted steps per clone: decay_steps = 1000 / 25 * 2 = 80, i.e. every 8 epochs with 4
  # clones. Ours decays after 2 epochs whatever the replica count.
  slim_per_clone = tf.compat.v1.train.exponential_decay(peak, 20, decay_steps=80,
                                                        decay_rate=0.94, staircase=True)
  assert float(slim_per_clone()) == pytest.approx(peak)
  assert values[20] < float(slim_per_clone())
  # And our schedule equals TF1's exponential_decay with GLOBAL decay steps.
  for step in (0, 19, 20, 45, 100):
    tf1 = tf.compat.v1.train.exponential_decay(peak, step, decay_steps=20, decay_rate=0.94,
                                               staircase=True)
    assert values[step] == pytest.approx(float(tf1()), rel=1e-6)


def test_warmup_and_tpu_preset_with_floor():
  config = config_lib.paper_v3(train_batch_size=100, warmup_epochs=1.0)
  schedule = schedules.from_config(config, num_train_examples=1000)
  peak = 0.045 * 100 / 32
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(peak * 0.5, rel=1e-6)  # half an epoch
  assert float(schedule(10)) == pytest.approx(peak, rel=1e-6)  # warm-up done, no decay yet

  tpu = config_lib.tpu()
  assert (tpu.train_batch_size, tpu.epochs_per_decay, tpu.batch_norm_momentum,
          tpu.ema_decay) == (1024, 3.0, 0.996, 0.995)
  schedule = schedules.from_config(tpu, num_train_examples=1_281_167)
  peak = 0.165 * 1024 / 256
  # 3 epochs = 3,843,501 examples: step 3753 has seen 3,843,072, step 3754 3,844,096.
  assert float(schedule(3753)) == pytest.approx(peak, rel=1e-6)
  assert float(schedule(3754)) == pytest.approx(peak * 0.94, rel=1e-6)
  assert float(schedule(10_000_000)) == pytest.approx(peak * 1e-4, rel=1e-5)  # the floor


def test_schedule_rejects_bad_values():
  with pytest.raises(ValueError, match="num_train_examples"):
    schedules.ExponentialDecayInExamples(peak_learning_rate=0.1, global_batch_size=8,
                                         num_train_examples=0)
  with pytest.raises(ValueError, match="scaling"):
    schedules.peak_learning_rate(0.1, global_batch_size=8, base_batch_size=8, scaling="sqrt")


# ----------------------------------------------------------------------------- optimizers


def _two_steps(optimizer, w0, grads):
  variable = keras.Variable(np.array(w0, np.float32))
  for g in grads:
    optimizer.apply([tf.constant(g, tf.float32)], [variable])
  return variable.numpy()


def test_tf1_rmsprop_matches_hand_computed_update_and_tf1():
  w0, lr, rho, momentum, eps = [1.0, -2.0], 0.1, 0.9, 0.9, 1.0
  grads = [[0.5, 1.0], [-0.3, 0.2]]
  # By hand: ms starts at ONES, epsilon inside the square root, then momentum.
  w, ms, mom = np.array(w0, np.float64), np.ones(2), np.zeros(2)
  for g in map(np.array, grads):
    ms = rho * ms + (1 - rho) * g * g
    mom = momentum * mom + lr * g / np.sqrt(ms + eps)
    w = w - mom
  ours = _two_steps(optim.TF1RMSProp(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps),
                    w0, grads)
  np.testing.assert_allclose(ours, w, rtol=1e-6)

  # TF1's own optimizer, in a TF1 graph.
  with tf.Graph().as_default():
    variable = tf.compat.v1.Variable(np.array(w0, np.float32))
    grad = tf.compat.v1.placeholder(tf.float32, [2])
    train = tf.compat.v1.train.RMSPropOptimizer(lr, decay=rho, momentum=momentum,
                                                epsilon=eps).apply_gradients([(grad, variable)])
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      for g in grads:
        session.run(train, {grad: g})
      tf1 = session.run(variable)
  np.testing.assert_allclose(ours, tf1, rtol=1e-6)

  # Keras' RMSprop starts the mean square at zero: a different (larger) first step.
  keras_rms = _two_steps(keras.optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=momentum,
                                                  epsilon=eps), w0, grads)
  assert np.abs(keras_rms - ours).max() > 1e-3


def test_momentum_and_adam_make_the_textbook_update():
  sgd = _two_steps(optim.MomentumSGD(learning_rate=0.1, momentum=0.9), [1.0], [[1.0], [1.0]])
  # v1 = -0.1, w1 = 0.9; v2 = -0.09 - 0.1 = -0.19, w2 = 0.71
  np.testing.assert_allclose(sgd, [0.71], rtol=1e-6)
  adam = _two_steps(optim.Adam(learning_rate=0.1, epsilon=1e-8), [1.0], [[1.0]])
  np.testing.assert_allclose(adam, [0.9], rtol=1e-5)  # first Adam step = lr * sign(g)


def test_gradient_clipping_is_by_global_norm():
  grads = [tf.constant([3.0, 4.0]), tf.constant([0.0])]  # global norm 5
  clipped, norm = optim.clip_gradients(grads, 2.0)
  assert float(norm) == pytest.approx(5.0)
  np.testing.assert_allclose(clipped[0].numpy(), [1.2, 1.6], rtol=1e-6)
  same, _ = optim.clip_gradients(grads, None)
  np.testing.assert_allclose(same[0].numpy(), [3.0, 4.0])


# ----------------------------------------------------------------------------- loss


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_label_smoothing_and_aux_weight_match_hand_computation():
  logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
  aux = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
  labels = np.array([0, 2])
  targets = np.full((2, 3), 0.1 / 3)
  targets[[0, 1], labels] += 0.9
  main = -(targets * _log_softmax(logits)).sum(-1)
  aux_ce = -(targets * _log_softmax(aux)).sum(-1)
  got = losses.per_example_loss({"logits": tf.constant(logits), "aux_logits": tf.constant(aux)},
                                tf.constant(labels), label_smoothing=0.1, aux_loss_weight=0.4)
  np.testing.assert_allclose(got.numpy(), main + 0.4 * aux_ce, rtol=1e-6)
  # Same as TF1's softmax_cross_entropy(label_smoothing=0.1) that slim's trainer called.
  tf1 = tf.compat.v1.losses.softmax_cross_entropy(
      tf.one_hot(labels, 3), logits, label_smoothing=0.1, reduction=tf.compat.v1.losses.Reduction.NONE)
  np.testing.assert_allclose(
      losses.per_example_loss({"logits": tf.constant(logits)}, labels).numpy(), tf1.numpy(),
      rtol=1e-6)
  # Float32 even from bfloat16 logits.
  half = losses.per_example_loss({"logits": tf.constant(logits, tf.bfloat16)}, labels)
  assert half.dtype == tf.float32


def test_weight_decay_covers_conv_and_dense_kernels_only():
  model = tiny.tiny_model_fn(config_lib.TrainConfig(), 4, 8)
  selected = losses.weight_decay_variables(model)
  assert sorted(v.path for v in selected) == [
      "AuxLogits.Logits/kernel", "Conv2d_1a_3x3/kernel", "Logits.Logits/kernel"]
  expected = 4e-5 * sum(float(np.sum(v.numpy() ** 2)) for v in selected) / 2
  assert float(losses.weight_decay_loss(selected, 4e-5)) == pytest.approx(expected, rel=1e-5)
  # slim's l2_regularizer(4e-5) is Keras' L2(2e-5).
  keras_l2 = sum(float(keras.regularizers.L2(2e-5)(v)) for v in selected)
  assert float(losses.weight_decay_loss(selected, 4e-5)) == pytest.approx(keras_l2, rel=1e-5)


def test_weight_decay_selection_on_inception_v3():
  from inception_tf import models
  model = models.create_model("inception_v3", 5, image_size=75, depth_multiplier=0.1)
  selected = {v.path for v in losses.weight_decay_variables(model)}
  kernels = {v.path for v in model.trainable_variables if v.path.endswith("/kernel")}
  assert selected == kernels
  assert not any(p.endswith(("/bias", "/beta", "/gamma", "/moving_mean", "/moving_variance"))
                 for p in selected)


# ----------------------------------------------------------------------------- EMA


def test_ema_ramp_and_batch_norm_statistics():
  assert float(ema_lib.ramped_decay(0.9999, 0)) == pytest.approx(0.1)
  assert float(ema_lib.ramped_decay(0.9999, 1)) == pytest.approx(2 / 11)
  assert float(ema_lib.ramped_decay(0.9999, 100)) == pytest.approx(101 / 110)
  assert float(ema_lib.ramped_decay(0.9999, 10**7)) == pytest.approx(0.9999)

  model = tiny.tiny_model_fn(config_lib.TrainConfig(), 4, 8)
  averaged = {v.path for v in ema_lib.averaged_variables(model)}
  assert "Conv2d_1a_3x3.BatchNorm/moving_mean" in averaged
  assert "Conv2d_1a_3x3.BatchNorm/moving_variance" in averaged
  assert not any("seed_generator" in p for p in averaged)

  variable = keras.Variable(np.array([0.0], np.float32), name="w")
  ema = ema_lib.ExponentialMovingAverage([variable], decay=0.9)
  shadow, expected = ema.shadow(variable), 0.0
  for step, value in enumerate([1.0, 2.0, 3.0, 4.0]):
    variable.assign([value])
    ema.update(step)
    decay = min(0.9, (1 + step) / (10 + step))
    expected -= (1 - decay) * (expected - value)
    assert float(shadow.numpy()[0]) == pytest.approx(expected, rel=1e-6)
  with ema.swapped():
    assert float(variable.numpy()[0]) == pytest.approx(expected, rel=1e-6)
  assert float(variable.numpy()[0]) == 4.0


# ----------------------------------------------------------------------------- config


def test_config_defaults_are_the_papers_and_validation_names_fields():
  config = config_lib.paper_v3()
  assert (config.optimizer, config.rmsprop_decay, config.momentum, config.epsilon) == (
      "rmsprop", 0.9, 0.9, 1.0)
  assert (config.learning_rate, config.learning_rate_decay, config.epochs_per_decay) == (
      0.045, 0.94, 2.0)
  assert (config.gradient_clip_norm, config.label_smoothing, config.aux_loss_weight,
          config.weight_decay, config.dropout_keep_prob, config.batch_norm_momentum,
          config.ema_decay) == (2.0, 0.1, 0.4, 4e-5, 0.8, 0.9997, 0.9999)
  config.validate()
  with pytest.raises(ValueError, match="optimizer='lamb'"):
    config.replace(optimizer="lamb").validate()
  with pytest.raises(ValueError, match="train_batch_size=0"):
    config.replace(train_batch_size=0).validate()
  with pytest.raises(TypeError):
    config.replace(learning_rat=0.1)


# ----------------------------------------------------------------------------- CLI


def _cli_config(*argv):
  """tools/train.py's flags -> (preset, TrainConfig), in a subprocess (absl flags are global)."""
  import json
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  code = (
      "import dataclasses, importlib.util, json, sys\n"
      "spec = importlib.util.spec_from_file_location('train_cli', 'tools/train.py')\n"
      "cli = importlib.util.module_from_spec(spec); spec.loader.exec_module(cli)\n"
      "cli.FLAGS(['train.py'] + sys.argv[1:])\n"
      "preset, config = cli.config_from_flags()\n"
      "print(json.dumps([preset, dataclasses.asdict(config)]))\n")
  out = subprocess.run([sys.executable, "-c", code, *argv], cwd=root, capture_output=True,
                       text=True, timeout=120, check=True, env=dict(os.environ, PYTHONPATH=root))
  preset, config = json.loads(out.stdout.strip().splitlines()[-1])
  return preset, config


def test_cli_without_flags_is_the_quickstart_and_flags_override_presets(tmp_path):
  preset, config = _cli_config()
  assert preset == "quickstart"
  assert config == {**config_lib.dataclasses.asdict(config_lib.quickstart()),
                    "checkpoint_exclude_scopes": [], "trainable_scopes": []}

  flagfile = tmp_path / "run.cfg"
  flagfile.write_text("--model=inception_v4\n--train_batch_size=64\n--ema_decay=0\n"
                      "--checkpoint_exclude_scopes=InceptionV4/Logits,InceptionV4/AuxLogits\n")
  preset, config = _cli_config(f"--flagfile={flagfile}", "--data_dir=/data/imagenet",
                               "--train_steps=100", "--model_options=depth_multiplier=0.5")
  assert preset == "paper_v3"
  assert (config["model"], config["train_batch_size"], config["ema_decay"]) == (
      "inception_v4", 64, None)
  assert config["checkpoint_exclude_scopes"] == ["InceptionV4/Logits", "InceptionV4/AuxLogits"]
  assert (config["train_steps"], config["train_epochs"]) == (100, None)
  assert config["model_options"] == {"depth_multiplier": 0.5}
  assert config["learning_rate"] == 0.045 and config["label_smoothing"] == 0.1  # paper defaults

  preset, config = _cli_config("--preset=tpu", "--data_dir=gs://bucket/imagenet")
  assert preset == "tpu" and config["train_batch_size"] == 1024 and config["strategy"] == "tpu"
  assert config["color_distortion_on_device"]
  _, config = _cli_config("--preset=tpu", "--data_dir=gs://bucket/imagenet",
                          "--nocolor_distortion_on_device")
  assert not config["color_distortion_on_device"]
