"""Tests of inception_tf.checkpoints against checkpoints written by TF1's own Saver.

A small network (`TinyNet`) is built twice: in a TF1 graph from real tf-slim layers (conv2d with
batch norm as slim's inception arg scope, RMSProp slots, EMA shadows and global_step, as slim's
training script leaves them) and as a Keras model named by our rule. The Keras model must load that
checkpoint by name and give the TF1 graph's logits. The reverse direction is checked with the real
tf-slim inception_v1 graph restoring what `save_slim_checkpoint` wrote.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf import checkpoints
from inception_tf.models import layers
from inception_tf.models import naming
import slim_reference  # tests/slim_reference.py

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("checkpoints")


SCOPE = "TinyNet"
SIZE = 16
CLASSES = 11


def build_keras_tiny(num_classes: int = CLASSES, *, mixed_depth: int = 6,
                     extra_branch: bool = False) -> keras.Model:
  """TinyNet as a Keras model with slim-scope layer names (see `slim_tiny`)."""
  bn = layers.BatchNorm()
  inputs = keras.Input((SIZE, SIZE, 3))
  x = layers.conv_bn(inputs, 8, 3, strides=2, padding="valid", name="Conv2d_1a_3x3",
                     batch_norm=bn)  # 7 x 7 x 8
  b0 = layers.conv_bn(x, 4, 1, name="Mixed_3b.Branch_0.Conv2d_0a_1x1", batch_norm=bn)
  b1 = layers.conv_bn(x, 4, 1, name="Mixed_3b.Branch_1.Conv2d_0a_1x1", batch_norm=bn)
  b1 = layers.conv_bn(b1, mixed_depth, 3, name="Mixed_3b.Branch_1.Conv2d_0b_3x3", batch_norm=bn)
  branches = [b0, b1]
  if extra_branch:
    branches.append(layers.conv_bn(x, 2, 1, name="Mixed_3b.Branch_2.Conv2d_0a_1x1", batch_norm=bn))
  x = layers.concat(branches, name="Mixed_3b")
  pooled = layers.global_avg_pool(x, name="AvgPool")
  aux = layers.conv_bias(pooled, num_classes, 1, name="AuxLogits.Conv2d_2b_1x1")
  logits = layers.conv_bias(pooled, num_classes, 1, name="Logits.Conv2d_0c_1x1")
  return keras.Model(inputs, {"logits": layers.squeeze_logits(logits, num_classes),
                              "aux_logits": layers.squeeze_logits(aux, num_classes,
                                                                  name="aux_logits")},
                     name=SCOPE)


def slim_tiny(images, num_classes: int = CLASSES):
  """TinyNet from real tf-slim layers in the current TF1 graph; returns (logits, aux_logits)."""
  slim = slim_reference.import_tf_slim()
  batch_norm_params = {"decay": 0.9997, "epsilon": 0.001, "scale": False, "is_training": False}
  with tf.compat.v1.variable_scope(SCOPE):
    with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                        normalizer_params=batch_norm_params):
      x = slim.conv2d(images, 8, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
      with tf.compat.v1.variable_scope("Mixed_3b"):
        with tf.compat.v1.variable_scope("Branch_0"):
          b0 = slim.conv2d(x, 4, [1, 1], scope="Conv2d_0a_1x1")
        with tf.compat.v1.variable_scope("Branch_1"):
          b1 = slim.conv2d(x, 4, [1, 1], scope="Conv2d_0a_1x1")
          b1 = slim.conv2d(b1, 6, [3, 3], scope="Conv2d_0b_3x3")
        x = tf.concat([b0, b1], axis=3)
      pooled = tf.reduce_mean(x, [1, 2], keepdims=True)
      with tf.compat.v1.variable_scope("AuxLogits"):
        aux = slim.conv2d(pooled, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                          scope="Conv2d_2b_1x1")
      with tf.compat.v1.variable_scope("Logits"):
        logits = slim.conv2d(pooled, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                             scope="Conv2d_0c_1x1")
  return tf.squeeze(logits, [1, 2]), tf.squeeze(aux, [1, 2])


def _random_value(name: str, shape, rng) -> np.ndarray:
  if name.endswith("moving_variance"):
    return rng.uniform(0.5, 1.5, shape)
  if name.endswith(("moving_mean", "beta", "biases")):
    return rng.normal(0.0, 0.2, shape)
  return rng.normal(0.0, 0.5, shape)


def write_tf1_checkpoint(prefix: str, images: np.ndarray, *, version=None, seed: int = 0):
  """Trains-like TF1 checkpoint of TinyNet: weights, RMSProp slots, EMA shadows, global_step.

  Returns (logits, aux_logits) of the graph with the raw (non-EMA) weights.
  """
  rng = np.random.default_rng(seed)
  graph = tf.Graph()
  with graph.as_default():
    placeholder = tf.compat.v1.placeholder(tf.float32, images.shape)
    logits, aux = slim_tiny(placeholder)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    loss = tf.reduce_sum(logits) + tf.reduce_sum(aux)
    train_op = tf.compat.v1.train.RMSPropOptimizer(0.1).minimize(loss, global_step=global_step)
    model_variables = [v for v in tf.compat.v1.global_variables()
                       if v.op.name.startswith(SCOPE + "/") and "RMSProp" not in v.op.name]
    ema = tf.compat.v1.train.ExponentialMovingAverage(0.99)
    ema_op = ema.apply(model_variables)
    del train_op, ema_op
    saver_kwargs = {} if version is None else {"write_version": version}
    saver = tf.compat.v1.train.Saver(**saver_kwargs)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for v in tf.compat.v1.global_variables():
        if v.op.name != "global_step":
          v.load(_random_value(v.op.name, v.shape.as_list(), rng).astype(np.float32), sess)
      global_step.load(1234, sess)
      saver.save(sess, prefix, write_meta_graph=False)
      return sess.run([logits, aux], {placeholder: images})


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tf1_checkpoint(tmp_path_factory, images):
  directory = tmp_path_factory.mktemp("tf1")
  prefix = str(directory / "model.ckpt")
  logits, aux = write_tf1_checkpoint(prefix, images)
  return {"dir": str(directory), "prefix": prefix, "logits": logits, "aux": aux,
          "reader": tf.train.load_checkpoint(prefix)}


def _outputs(model, images):
  out = model(images, training=False)
  return {k: np.asarray(v) for k, v in out.items()}


def test_tf1_checkpoint_loads_by_name_and_reproduces_slim_logits(tf1_checkpoint, images):
  model = build_keras_tiny()
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"])
  assert sorted(report.loaded) == sorted(naming.slim_variables(model))
  assert report.ema_used == 0 and not report.skipped
  # Optimizer slots, EMA shadows and global_step are not "unexpected".
  assert report.unused == []
  out = _outputs(model, images)
  np.testing.assert_allclose(out["logits"], tf1_checkpoint["logits"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out["aux_logits"], tf1_checkpoint["aux"], rtol=1e-5, atol=1e-5)
  assert "loaded 20 variables" in str(report)


def test_use_ema_takes_the_shadow_values(tf1_checkpoint):
  reader = tf1_checkpoint["reader"]
  model = build_keras_tiny()
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"], use_ema=True)
  targets = naming.slim_variables(model)
  assert report.ema_used == len(targets)
  for name, variable in targets.items():
    shadow = reader.get_tensor(name + checkpoints.EMA_SUFFIX)
    assert not np.array_equal(shadow, reader.get_tensor(name))
    np.testing.assert_array_equal(variable.numpy(), shadow, err_msg=name)


def test_skip_logits_for_another_num_classes(tf1_checkpoint):
  reader = tf1_checkpoint["reader"]
  model = build_keras_tiny(num_classes=5)
  initial = {n: v.numpy().copy() for n, v in naming.slim_variables(model).items()}
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"])
  message = str(error.value)
  assert "4 shape mismatches" in message
  assert f"{SCOPE}/Logits/Conv2d_0c_1x1/weights: checkpoint [1, 1, 10, 11] vs model [1, 1, 10, 5]" \
      in message
  assert "skip_logits=True" in message
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"], skip_logits=True)
  assert sorted(report.skipped) == sorted(n for n in initial if "Logits/" in n)
  for name, variable in naming.slim_variables(model).items():
    if "Logits/" in name:
      np.testing.assert_array_equal(variable.numpy(), initial[name])
    else:
      np.testing.assert_array_equal(variable.numpy(), reader.get_tensor(name))


def test_drop_background_class(tf1_checkpoint, images):
  model = build_keras_tiny(num_classes=CLASSES - 1)
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"],
                                            drop_background_class=True)
  assert len(report.loaded) == len(naming.slim_variables(model))
  out = _outputs(model, images)
  np.testing.assert_allclose(out["logits"], tf1_checkpoint["logits"][:, 1:], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out["aux_logits"], tf1_checkpoint["aux"][:, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scope", ["Mixed_3b/Branch_1", f"{SCOPE}/Mixed_3b/Branch_1/"])
def test_exclude_scopes(tf1_checkpoint, scope):
  reader = tf1_checkpoint["reader"]
  model = build_keras_tiny()
  initial = {n: v.numpy().copy() for n, v in naming.slim_variables(model).items()}
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"],
                                            exclude_scopes=[scope])
  excluded = sorted(n for n in initial if n.startswith(f"{SCOPE}/Mixed_3b/Branch_1/"))
  assert len(excluded) == 8 and sorted(report.skipped) == excluded
  for name, variable in naming.slim_variables(model).items():
    expected = initial[name] if name in excluded else reader.get_tensor(name)
    np.testing.assert_array_equal(variable.numpy(), expected, err_msg=name)


def test_checkpoint_of_another_network_is_one_clear_error(tf1_checkpoint):
  other = keras.Sequential([keras.Input((8, 8, 3)),
                            keras.layers.Conv2D(4, 3, use_bias=False, name="Conv2d_1a_3x3")],
                           name="OtherNet")
  before = other.weights[0].numpy().copy()
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    checkpoints.load_slim_checkpoint(other, tf1_checkpoint["prefix"])
  message = str(error.value)
  assert "does not match model 'OtherNet' (scope 'OtherNet')" in message
  assert "top-level scopes are ['TinyNet']" in message
  assert "1 missing from the checkpoint:\n    OtherNet/Conv2d_1a_3x3/weights" in message
  np.testing.assert_array_equal(other.weights[0].numpy(), before)  # nothing assigned


def test_missing_unexpected_and_mismatched_are_listed_together(tf1_checkpoint):
  model = build_keras_tiny(mixed_depth=7, extra_branch=True)
  before = {n: v.numpy().copy() for n, v in naming.slim_variables(model).items()}
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"])
  message = str(error.value)
  assert "4 missing from the checkpoint:" in message
  assert f"{SCOPE}/Mixed_3b/Branch_2/Conv2d_0a_1x1/weights" in message
  assert "shape mismatches:" in message
  assert (f"{SCOPE}/Mixed_3b/Branch_1/Conv2d_0b_3x3/weights: checkpoint [3, 3, 4, 6] vs model "
          "[3, 3, 4, 7]") in message
  # Nothing is assigned when anything fails.
  for name, variable in naming.slim_variables(model).items():
    np.testing.assert_array_equal(variable.numpy(), before[name])


def test_unexpected_checkpoint_tensors(tmp_path, tf1_checkpoint):
  # The model lacks the aux head the checkpoint has.
  inputs = keras.Input((SIZE, SIZE, 3))
  full = build_keras_tiny()
  model = keras.Model(full.input, full.output["logits"], name=SCOPE)
  del inputs
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"])
  message = str(error.value)
  assert "2 in the checkpoint but not in the model:" in message
  assert f"{SCOPE}/AuxLogits/Conv2d_2b_1x1/biases" in message
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"], allow_unused=True)
  assert sorted(report.unused) == [f"{SCOPE}/AuxLogits/Conv2d_2b_1x1/biases",
                                   f"{SCOPE}/AuxLogits/Conv2d_2b_1x1/weights"]
  report = checkpoints.load_slim_checkpoint(model, tf1_checkpoint["prefix"],
                                            exclude_scopes=["AuxLogits"])
  assert len(report.loaded) == 18


def test_path_forms(tf1_checkpoint, images, tmp_path):
  prefix = tf1_checkpoint["prefix"]
  data = tf.io.gfile.glob(prefix + ".data-*")
  assert len(data) == 1
  for form in (prefix, prefix + ".index", data[0], tf1_checkpoint["dir"]):
    assert checkpoints.resolve_checkpoint_path(form) == prefix, form
    model = build_keras_tiny()
    report = checkpoints.load_slim_checkpoint(model, form)
    assert report.path == prefix and len(report.loaded) == 20, form
    # Every form loads the same values: the TF1 graph's logits come out.
    np.testing.assert_allclose(_outputs(model, images)["logits"], tf1_checkpoint["logits"],
                               rtol=1e-5, atol=1e-5, err_msg=form)
  assert checkpoints.read_slim_checkpoint(tf1_checkpoint["dir"])[
      f"{SCOPE}/Logits/Conv2d_0c_1x1/weights"] == (1, 1, 10, CLASSES)
  with pytest.raises(FileNotFoundError, match="No checkpoint at"):
    checkpoints.resolve_checkpoint_path(str(tmp_path / "nothing.ckpt"))
  with pytest.raises(FileNotFoundError, match="No checkpoint found in directory"):
    checkpoints.resolve_checkpoint_path(str(tmp_path))


def test_directory_without_state_file(tmp_path):
  model = build_keras_tiny()
  checkpoints.save_slim_checkpoint(model, str(tmp_path / "a.ckpt"))
  assert checkpoints.resolve_checkpoint_path(str(tmp_path)) == str(tmp_path / "a.ckpt")
  checkpoints.save_slim_checkpoint(model, str(tmp_path / "b.ckpt"))
  with pytest.raises(ValueError, match="holds 2 checkpoints"):
    checkpoints.resolve_checkpoint_path(str(tmp_path))


def test_tf1_v1_format_single_file(tmp_path, images):
  # The 2016 slim releases (inception_v1/v2/v3, resnet_v1_50) ship V1 single-file checkpoints.
  prefix = str(tmp_path / "tiny.ckpt")
  logits, _ = write_tf1_checkpoint(prefix, images, version=tf.compat.v1.train.SaverDef.V1)
  assert os.path.isfile(prefix) and not os.path.exists(prefix + ".index")
  model = build_keras_tiny()
  checkpoints.load_slim_checkpoint(model, prefix)
  np.testing.assert_allclose(_outputs(model, images)["logits"], logits, rtol=1e-5, atol=1e-5)


def _randomize(model, seed=0):
  rng = np.random.default_rng(seed)
  for name, variable in naming.slim_variables(model).items():
    variable.assign(_random_value(name, variable.shape, rng).astype(np.float32))


def test_save_round_trip(tmp_path, images):
  model = build_keras_tiny()
  _randomize(model)
  prefix = checkpoints.save_slim_checkpoint(
      model, str(tmp_path / "sub" / "model.ckpt-7"), global_step=7,
      extra={f"{SCOPE}/Logits/Conv2d_0c_1x1/biases/ExponentialMovingAverage":
             np.full((CLASSES,), 3.0, np.float32)})
  assert sorted(os.listdir(tmp_path / "sub")) == ["model.ckpt-7.data-00000-of-00001",
                                                  "model.ckpt-7.index"]
  shapes = checkpoints.read_slim_checkpoint(prefix)
  expected = {n: tuple(v.shape) for n, v in naming.slim_variables(model).items()}
  expected.update({"global_step": (),
                   f"{SCOPE}/Logits/Conv2d_0c_1x1/biases/ExponentialMovingAverage": (CLASSES,)})
  assert shapes == expected
  assert tf.train.load_checkpoint(prefix).get_tensor("global_step") == 7
  restored = build_keras_tiny()
  checkpoints.load_slim_checkpoint(restored, prefix)
  for (name, a), b in zip(naming.slim_variables(model).items(),
                          naming.slim_variables(restored).values()):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
  np.testing.assert_array_equal(_outputs(model, images)["logits"],
                                _outputs(restored, images)["logits"])
  ema = build_keras_tiny()
  checkpoints.load_slim_checkpoint(ema, prefix, use_ema=True)
  np.testing.assert_array_equal(ema.get_layer("Logits.Conv2d_0c_1x1").bias.numpy(),
                                np.full((CLASSES,), 3.0))


def test_assign_by_name(tmp_path):
  model = build_keras_tiny()
  values = {n: np.full(v.shape, 0.5, np.float32) for n, v in naming.slim_variables(model).items()}
  checkpoints.assign_by_name(model, values)
  assert all(np.all(v.numpy() == 0.5) for v in model.weights)
  del values[f"{SCOPE}/Logits/Conv2d_0c_1x1/biases"]
  with pytest.raises(checkpoints.SlimCheckpointMismatch, match="1 model variables have no value"):
    checkpoints.assign_by_name(model, values)


def test_interrupted_save_leaves_no_complete_looking_checkpoint(tmp_path, monkeypatch):
  model = build_keras_tiny()
  _randomize(model, seed=1)
  prefix = str(tmp_path / "model.ckpt")
  checkpoints.save_slim_checkpoint(model, prefix)  # an older checkpoint at the same prefix
  _randomize(model, seed=2)
  real_rename = tf.io.gfile.rename
  calls = []

  def failing_rename(source, target, overwrite=False):
    calls.append(target)
    if target.endswith(".index"):
      raise OSError("simulated crash before the index is in place")
    return real_rename(source, target, overwrite=overwrite)

  monkeypatch.setattr(tf.io.gfile, "rename", failing_rename)
  with pytest.raises(OSError, match="simulated crash"):
    checkpoints.save_slim_checkpoint(model, prefix)
  monkeypatch.undo()
  assert calls[-1] == prefix + ".index" and len(calls) == 2  # the data file moved first
  # Neither the old index (now beside new data) nor a new one: the prefix does not look complete.
  assert not os.path.exists(prefix + ".index")
  with pytest.raises(FileNotFoundError):
    checkpoints.load_slim_checkpoint(build_keras_tiny(), prefix)
  # The temporary files are cleaned up.
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
  model = build_keras_tiny()
  _randomize(model, seed=1)
  prefix = str(tmp_path / "model.ckpt")
  checkpoints.save_slim_checkpoint(model, prefix)
  old = {n: v.numpy().copy() for n, v in naming.slim_variables(model).items()}
  _randomize(model, seed=2)

  def failing_save(**kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(tf.raw_ops, "SaveV2", failing_save)
  with pytest.raises(OSError, match="disk full"):
    checkpoints.save_slim_checkpoint(model, prefix)
  monkeypatch.undo()
  restored = build_keras_tiny()
  checkpoints.load_slim_checkpoint(restored, prefix)
  for name, variable in naming.slim_variables(restored).items():
    np.testing.assert_array_equal(variable.numpy(), old[name])


def test_logits_scopes():
  assert checkpoints.logits_scopes("InceptionV3") == [
      "InceptionV3/Logits", "InceptionV3/AuxLogits", "InceptionV3/logits"]


@pytest.fixture(scope="module")
def our_inception_v1():
  from inception_tf.models import create_model
  model = create_model("inception_v1", num_classes=1001)
  _randomize(model, seed=3)
  return model


def test_tf1_saver_restores_our_checkpoint_into_slim_inception_v1(tmp_path, our_inception_v1):
  slim = slim_reference.import_tf_slim()
  from tf_slim.nets import inception  # pylint: disable=g-import-not-at-top (needs the alias above)
  prefix = checkpoints.save_slim_checkpoint(our_inception_v1, str(tmp_path / "v1.ckpt"))
  ours = {n: v.numpy() for n, v in naming.slim_variables(our_inception_v1).items()}
  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(tf.float32, (1, 224, 224, 3))
    with slim.arg_scope(inception.inception_v1_arg_scope()):
      inception.inception_v1(images, num_classes=1001, is_training=False)
    variables = tf.compat.v1.global_variables()
    # A Saver over every variable of the slim graph: restore fails on any missing name or shape.
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session(graph=graph) as sess:
      saver.restore(sess, prefix)
      restored = dict(zip([v.op.name for v in variables], sess.run(variables)))
  assert sorted(restored) == sorted(ours)
  for name, value in restored.items():
    np.testing.assert_array_equal(value, ours[name], err_msg=name)
