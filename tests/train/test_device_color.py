"""`TrainConfig.color_distortion_on_device`: the step distorts the uint8 batch (seeded by run seed,
replica and step), so a resumed run equals an uninterrupted one exactly."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from inception_tf import distribute  # noqa: E402
from inception_tf.data import preprocessing  # noqa: E402
from inception_tf.train import config as config_lib  # noqa: E402
from inception_tf.train import loop  # noqa: E402
from tests.train import tiny  # noqa: E402


def _config(**changes):
  base = dict(model="tiny", image_size=8, train_batch_size=8, eval_batch_size=10, train_steps=4,
              learning_rate=0.05, learning_rate_batch_size=8, checkpoint_every_steps=2,
              log_every_steps=1, steps_per_execution=1, summary_images=0, ema_decay=0.8, seed=5,
              deterministic=True, jit_compile=False, color_distortion_on_device=True)
  base.update(changes)
  return config_lib.TrainConfig(**base)


def _uint8_datasets():
  """tiny's in-memory data as uint8 images, what the pipeline yields in this mode."""
  datasets = tiny.in_memory_datasets(global_batch=8, shuffle=False)
  inner = datasets.train_fn

  def convert(batch):
    uint8 = tf.cast(tf.clip_by_value(tf.round((batch["images"] + 1.0) * 127.5), 0, 255), tf.uint8)
    return {"images": uint8, "labels": batch["labels"]}

  datasets.train_fn = lambda context, skip: inner(context, skip).map(convert)
  datasets.eval_fn = None  # training only: keeps the test fast
  return datasets


def _run(model_dir, config, datasets):
  return loop.train_and_evaluate(config, str(model_dir), datasets=datasets,
                                 model_fn=tiny.tiny_model_fn,
                                 strategy=distribute.get_strategy("default"))


def _tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def test_device_colour_distortion_resumes_exactly(tmp_path, monkeypatch):
  calls = []
  original = preprocessing.distort_color_batch

  def recording(images, seed, **kwargs):  # called when the step is traced
    calls.append((images.dtype, tuple(images.shape), kwargs))
    return original(images, seed, **kwargs)

  monkeypatch.setattr(preprocessing, "distort_color_batch", recording)
  straight = _run(tmp_path / "straight", _config(), _uint8_datasets())
  assert calls == [(tf.uint8, (8, 8, 8, 3), {"fast_mode": True})]  # slim's default
  _run(tmp_path / "resumed", _config(train_steps=2), _uint8_datasets())
  resumed = _run(tmp_path / "resumed", _config(), _uint8_datasets())
  assert straight["step"] == resumed["step"] == 4
  assert all(np.isfinite([h["loss"] for h in straight["history"]]))
  a, b = _tensors(str(tmp_path / "straight" / "ckpt-4")), _tensors(str(tmp_path / "resumed" /
                                                                        "ckpt-4"))
  assert sorted(a) == sorted(b)
  for name in a:  # bit for bit: the README promises the same weights
    np.testing.assert_array_equal(b[name], a[name], err_msg=name)


def test_distortion_streams_differ_by_seed_replica_and_step_and_repeat_exactly(monkeypatch):
  """Every (run seed, replica, step) draws its own distortion, and the same triple the same one.

  The replica comes from the replica context, replaced here so two replicas can be compared in one
  process (logical devices cannot be added once TF has started)."""
  images = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)), tf.uint8)

  class _Replica:
    def __init__(self, replica_id):
      self.replica_id_in_sync_group = tf.constant(replica_id, tf.int32)

  def distort(seed, replica, step):
    class _Fake:  # just the attributes `_distort_colors` reads
      config = _config(seed=seed)
    monkeypatch.setattr(tf.distribute, "get_replica_context", lambda: _Replica(replica))
    return loop.Trainer._distort_colors(_Fake(), images, tf.constant(step, tf.int64)).numpy()

  keys = [(seed, replica, step) for seed in (5, 6) for replica in (0, 1) for step in (0, 1, 7)]
  outputs = {key: distort(*key) for key in keys}
  for key in keys:
    np.testing.assert_array_equal(distort(*key), outputs[key])  # reproducible
    assert not np.allclose(outputs[key], images.numpy() / 127.5 - 1.0, atol=0.01)  # distorted
  for i, a in enumerate(keys):
    for b in keys[i + 1:]:
      assert np.abs(outputs[a] - outputs[b]).max() > 1e-3, (a, b)


def test_tpu_preset_moves_the_colour_distortion_to_the_step():
  assert config_lib.tpu().color_distortion_on_device
  assert not config_lib.paper_v3().color_distortion_on_device
  with pytest.raises(ValueError, match="color_distortion_on_device"):
    config_lib.paper_v3(color_distortion_on_device=True, preprocessing="vgg").validate()
