"""train_and_evaluate in-process: EMA at eval, restore_for_inference, fine-tuning from a slim
checkpoint on the real digits data, a jit-compiled bfloat16 step, and bad input refused early."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import io  # noqa: E402
import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from inception_tf import checkpoints  # noqa: E402
from inception_tf import distribute  # noqa: E402
from inception_tf import models  # noqa: E402
from inception_tf.models import fused  # noqa: E402
from inception_tf.models import naming  # noqa: E402
from inception_tf.train import checkpointing  # noqa: E402
from inception_tf.train import config as config_lib  # noqa: E402
from inception_tf.train import loop  # noqa: E402
from tests.train import tiny  # noqa: E402


def _tiny_config(**changes):
  base = dict(model="tiny", image_size=8, train_batch_size=8, eval_batch_size=10, train_steps=16,
              learning_rate=0.05, learning_rate_batch_size=8, checkpoint_every_steps=8,
              log_every_steps=4, steps_per_execution=4, summary_images=2, ema_decay=0.8)
  base.update(changes)
  return config_lib.TrainConfig(**base)


def _accuracy(model, datasets):
  correct = count = 0
  for batch in datasets.eval_fn(None):
    logits = model(batch["images"], training=False)["logits"].numpy()
    mask = batch["mask"].numpy()
    correct += float(((logits.argmax(-1) == batch["labels"].numpy()) * mask).sum())
    count += float(mask.sum())
  return correct / count, count


def _assert_tensorboard_events(model_dir, result, first_batch):
  """TensorBoard's own reader sees the logged scalars at their steps, the input images (the first
  two of `first_batch`, the first one trained on, scaled to 0..1 together) and the final
  evaluation, with the values the run returned."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  from tensorboard.util import tensor_util  # pylint: disable=import-outside-toplevel

  def series(directory, tag, plugin):
    reader = event_accumulator.EventAccumulator(str(model_dir / directory),
                                                size_guidance={"tensors": 0})
    reader.Reload()
    assert reader.SummaryMetadata(tag).plugin_data.plugin_name == plugin
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in reader.Tensors(tag)]

  losses = series("train", "loss", "scalars")
  assert [step for step, _ in losses] == [4, 8, 12, 16]
  history = {h["step"]: h["loss"] for h in result["history"]}
  assert {step: float(v) for step, v in losses} == pytest.approx(history, rel=1e-6)
  (step, images), = series("train", "input_images", "images")
  assert step == 0 and images[:2].tolist() == [b"8", b"8"] and len(images) == 2 + 2  # 2 PNGs
  assert all(png.startswith(b"\x89PNG") for png in images[2:])
  shown = np.stack([tf.io.decode_png(png).numpy() for png in images[2:]]).astype(np.float32)
  first = first_batch[:2]
  expected = 255 * (first - first.min()) / (first.max() - first.min())
  np.testing.assert_allclose(shown, expected, rtol=0, atol=1.0)  # uint8 rounding
  top1 = series("eval", "top1", "scalars")
  assert [(s, float(v)) for s, v in top1] == [(16, pytest.approx(result["eval"]["top1"]))]


def test_eval_uses_ema_weights_and_restore_for_inference_loads_them(tmp_path):
  datasets = tiny.in_memory_datasets(global_batch=8, num_eval=37)
  stream = io.StringIO()
  result = loop.train_and_evaluate(_tiny_config(), str(tmp_path), datasets=datasets,
                                   model_fn=tiny.tiny_model_fn, stream=stream)
  log = stream.getvalue()
  assert "step 16/16  loss" in log and "images/s  ETA" in log
  assert "Final evaluation at step 16 (EMA weights)" in log
  assert result["eval"]["num_examples"] == 37  # padded batches, each example counted once
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-16")
  _assert_tensorboard_events(tmp_path, result,
                             next(iter(datasets.train_fn(None, 0)))["images"].numpy())
  with open(tmp_path / "config.json") as f:
    run_config = json.load(f)
  assert (run_config["model"], run_config["num_classes"], run_config["image_size"],
          run_config["aux_logits"]) == ("tiny", tiny.NUM_CLASSES, 8, True)
  assert run_config["label_map"] is None  # the in-memory data has no class names

  config = _tiny_config()
  ema_model = tiny.tiny_model_fn(config, tiny.NUM_CLASSES, 8)
  raw_model = tiny.tiny_model_fn(config, tiny.NUM_CLASSES, 8)
  checkpointing.restore_for_inference(ema_model, str(tmp_path))  # EMA by default
  checkpointing.restore_for_inference(raw_model, str(tmp_path / "ckpt-16"), use_ema=False)
  differs = [not np.allclose(a.numpy(), b.numpy())
             for a, b in zip(ema_model.weights, raw_model.weights)]
  assert any(differs)
  ema_top1, count = _accuracy(ema_model, datasets)
  raw_top1, _ = _accuracy(raw_model, datasets)
  assert count == 37
  assert result["eval"]["top1"] == pytest.approx(ema_top1)
  assert result["eval_raw"]["top1"] == pytest.approx(raw_top1)

  # The BN statistics are averaged too: the EMA model's moving mean is the shadow, not the raw one.
  reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-16"))
  shadow = [k for k in reader.get_variable_to_shape_map()
            if k.startswith("ema/") and "moving_mean" in k]
  assert shadow
  np.testing.assert_allclose(
      ema_model.get_layer("Conv2d_1a_3x3.BatchNorm").moving_mean.numpy(),
      reader.get_tensor(shadow[0]), rtol=1e-6)

  # A second call resumes at the end and only evaluates.
  again = loop.train_and_evaluate(_tiny_config(), str(tmp_path), datasets=datasets,
                                  model_fn=tiny.tiny_model_fn, stream=io.StringIO())
  assert again["step"] == 16 and again["eval"]["top1"] == pytest.approx(result["eval"]["top1"])

  # Another network's model does not load our checkpoint silently.
  other = tiny.tiny_model_fn(config, tiny.NUM_CLASSES + 1, 8)
  with pytest.raises(ValueError, match="does not match"):
    checkpointing.restore_for_inference(other, str(tmp_path))


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path):
  datasets = tiny.in_memory_datasets(global_batch=8)
  loop.train_and_evaluate(_tiny_config(train_steps=16), str(tmp_path), datasets=datasets,
                          model_fn=tiny.tiny_model_fn, stream=io.StringIO())
  data_file = [f for f in os.listdir(tmp_path) if f.startswith("ckpt-16.data")][0]
  with open(tmp_path / data_file, "r+b") as f:
    f.truncate(10)
  assert checkpointing.latest_valid_checkpoint(str(tmp_path)).endswith("ckpt-8")


def _inception_v3_to_mixed_6b(config, num_classes, image_size):
  """Inception-v3 (depth 0.1) cut after Mixed_6b, built from `inception_v3`'s own blocks: the stem
  (stride-2 and 'VALID' convolutions, both max pools), Mixed_5b (Figure 5: 5x5, average pool,
  concatenation), Mixed_6a (a grid reduction: stride-2 branches and a max pool), Mixed_6b (Figure
  6: 1x7 / 7x1 convolutions) carrying the aux head, and the float32 logits head. The modules it
  leaves out repeat these ops (Mixed_5c-6e, Mixed_7a) or factorise the same way (Figure 7's 1x3 /
  3x1). The bfloat16 step test's claim is about the step (XLA, both convolution modes, float32
  heads and loss, learning), not the depth of the network: the full network's XLA compilation
  was ~100-150 s per mode (almost all of the test), this one's ~30 s (measured side by side)."""
  # pylint: disable=protected-access
  from inception_tf.models import inception_v3  # pylint: disable=import-outside-toplevel
  from inception_tf.models import layers  # pylint: disable=import-outside-toplevel
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(config.precision)
  try:
    blocks = dict(depth=layers.scaled_depth(0.1, 16),
                  batch_norm=layers.BatchNorm(momentum=config.batch_norm_momentum))
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inception_v3._stem(inputs, factorized_7x7=True, receptive_field=299, **blocks)
    x = inception_v3._figure5_module(x, "Mixed_5b", pool_filters=32, irregular_names=False,
                                     **blocks)
    x = inception_v3._grid_reduction_35_to_17(x, **blocks)
    mixed_6b = inception_v3._figure6_module(x, "Mixed_6b", width=128, **blocks)
    x = layers.global_avg_pool(mixed_6b, name="Logits.AvgPool", dtype="float32")
    x = keras.layers.Dropout(1.0 - config.dropout_keep_prob, name="Logits.Dropout_1b",
                             dtype="float32")(x)
    x = layers.conv_bias(x, num_classes, 1, name="Logits.Conv2d_1c_1x1", dtype="float32")
    outputs = {"logits": layers.squeeze_logits(x, num_classes, name="logits"),
               "aux_logits": inception_v3._aux_head(mixed_6b, num_classes=num_classes,
                                                    aux_batch_norm=True, **blocks)}
    return keras.Model(inputs, outputs, name="InceptionV3ToMixed6b")
  finally:
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("bfloat16_arithmetic", [True, False], ids=["native", "float32"])
def test_jit_compiled_mixed_bfloat16_step_fits_a_separable_batch(monkeypatch, bfloat16_arithmetic):
  """The XLA-compiled mixed_bfloat16 step learns, with either convolution mode of `fused_call`
  (the trainer's "auto" picks one by hardware: both are run here on every machine).

  Eight images whose classes differ by a constant offset are fitted from chance (the first
  step's loss: cross-entropy ln(5) on the logits and on the aux head) to below half of it within
  28 steps; the label-smoothing floor is far below that (smoothing 0.1 over 5 classes: 0.39 per
  head). The network is Inception-v3 cut after Mixed_6b (`_inception_v3_to_mixed_6b`)."""
  monkeypatch.setattr(fused, "has_bfloat16_arithmetic", lambda: bfloat16_arithmetic)
  keras.utils.set_random_seed(0)
  config = config_lib.TrainConfig(
      model="inception_v3", model_options={"depth_multiplier": 0.1}, image_size=75,
      precision="mixed_bfloat16", jit_compile=True, train_batch_size=8, optimizer="adam",
      learning_rate=1e-3, epsilon=1e-7, learning_rate_batch_size=8, train_steps=28, ema_decay=0.99)
  strategy = distribute.get_strategy("default")
  trainer = loop.Trainer(config, strategy, num_classes=5, num_train_examples=800, image_size=75,
                         model_fn=_inception_v3_to_mixed_6b)
  assert trainer.jit_compile
  assert trainer.model.get_layer("Conv2d_1a_3x3").compute_dtype == "bfloat16"
  rng = np.random.default_rng(0)
  labels = np.arange(8) % 5
  images = (rng.uniform(-0.2, 0.2, (8, 75, 75, 3)) + (labels[:, None, None, None] - 2) * 0.3)
  dataset = tf.data.Dataset.from_tensors({"images": images.astype(np.float32),
                                          "labels": labels.astype(np.int32)}).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  step = trainer.train_function()
  first = step(iterator, tf.constant(1))
  assert first["loss"].dtype == tf.float32
  assert abs(float(first["loss"]) - 1.4 * np.log(5)) < 0.5, float(first["loss"])  # chance level
  step(iterator, tf.constant(24))
  last = [float(step(iterator, tf.constant(1))["loss"]) for _ in range(3)]
  assert np.isfinite(last).all()
  assert np.mean(last) < 0.5 * float(first["loss"]), (float(first["loss"]), last)
  assert trainer.step == 28


@pytest.fixture(scope="module")
def slim_v1_checkpoint(tmp_path_factory):
  """A TF-slim-format Inception-v1 checkpoint with ImageNet's 1001 classes."""
  keras.utils.set_random_seed(3)
  model = models.create_model("inception_v1", 1001, image_size=32, depth_multiplier=0.25)
  path = str(tmp_path_factory.mktemp("slim") / "inception_v1.ckpt")
  checkpoints.save_slim_checkpoint(model, path, global_step=1000)
  return path, {name: v.numpy() for name, v in naming.slim_variables(model).items()}


def _digits_config(**changes):
  # 32x32 (the digits carry 8x8 pixels) and no XLA: the compiled step is covered by the bfloat16
  # step test; here its compilation was most of the fine-tuning test's time.
  base = dict(model="inception_v1", model_options={"depth_multiplier": 0.25}, image_size=32,
              jit_compile=False,
              train_batch_size=32, eval_batch_size=50, train_steps=30, learning_rate=0.02,
              learning_rate_batch_size=32, warmup_epochs=0.0, checkpoint_every_steps=1000,
              log_every_steps=10, steps_per_execution=10, summary_images=2, ema_decay=0.9,
              fast_preprocessing=True, cache_data=True)
  base.update(changes)
  return config_lib.TrainConfig(**base)


@pytest.mark.slow
def test_fine_tune_from_slim_checkpoint_on_digits_with_new_num_classes(tmp_path, slim_v1_checkpoint):
  path, slim_values = slim_v1_checkpoint
  # Without excluding the 1001-way logits the checkpoint does not fit the 11-class model.
  with pytest.raises(checkpoints.SlimCheckpointMismatch, match="shape mismatch"):
    loop.train_and_evaluate(_digits_config(init_checkpoint=path), str(tmp_path / "refused"),
                            stream=io.StringIO())
  assert tf.train.latest_checkpoint(str(tmp_path / "refused")) is None

  stream = io.StringIO()
  config = _digits_config(init_checkpoint=path, train_steps=80, learning_rate=0.045,
                          checkpoint_exclude_scopes=("InceptionV1/Logits",))
  result = loop.train_and_evaluate(config, str(tmp_path / "run"), stream=stream)
  log = stream.getvalue()
  assert "Initialised from" in log and "loaded" in log
  losses = [h["cross_entropy"] for h in result["history"]]
  assert losses[-1] < losses[0] - 0.1, losses  # the loss falls on the real digits data
  assert result["eval"]["num_examples"] == 360  # the digits validation split, every image once

  # The new head is 11-way (the 1001-way one was excluded from the restore).
  model = models.create_model("inception_v1", 11, image_size=32, depth_multiplier=0.25)
  checkpointing.restore_for_inference(model, str(tmp_path / "run"), use_ema=False)
  trained = {n: v.numpy() for n, v in naming.slim_variables(model).items()}
  assert trained["InceptionV1/Logits/Conv2d_0c_1x1/weights"].shape[-1] == 11


def test_bad_input_is_refused_before_training(tmp_path, slim_v1_checkpoint):
  (tmp_path / "empty").mkdir()
  cases = [
      (dict(data_dir=str(tmp_path / "missing")), FileNotFoundError, "does not exist"),
      (dict(data_dir=str(tmp_path / "empty")), FileNotFoundError, "is empty"),
      (dict(image_size=24), ValueError, "below the minimum input size 32"),
      (dict(model="inception_v3", model_options={}, image_size=60), ValueError,
       "minimum input size 75"),
      (dict(train_batch_size=0), ValueError, "train_batch_size=0"),
      (dict(init_checkpoint=str(tmp_path / "nothing.ckpt")), FileNotFoundError, "No checkpoint"),
  ]
  for changes, error, message in cases:
    model_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
      loop.train_and_evaluate(_digits_config(**changes), str(model_dir), stream=io.StringIO())
    assert not model_dir.exists() or tf.train.latest_checkpoint(str(model_dir)) is None

  # A checkpoint of another network (Inception-v1 into Inception-v3) names the scopes it found.
  path, _ = slim_v1_checkpoint
  config = _digits_config(model="inception_v3", model_options={"depth_multiplier": 0.1},
                          image_size=75, init_checkpoint=path)
  with pytest.raises(checkpoints.SlimCheckpointMismatch, match="InceptionV1"):
    loop.train_and_evaluate(config, str(tmp_path / "other"), stream=io.StringIO())
  assert tf.train.latest_checkpoint(str(tmp_path / "other")) is None


def test_trainable_scopes_freeze_everything_else():
  config = _tiny_config(trainable_scopes=("Logits",), ema_decay=None, weight_decay=0.0)
  trainer = loop.Trainer(config, distribute.get_strategy("default"), num_classes=4,
                         num_train_examples=64, image_size=8, model_fn=tiny.tiny_model_fn)
  assert sorted(v.path for v in trainer.trainable_variables) == [
      "Logits.Logits/bias", "Logits.Logits/kernel"]
  frozen = trainer.model.get_layer("Conv2d_1a_3x3").kernel
  before = frozen.numpy().copy()
  head = trainer.model.get_layer("Logits.Logits").kernel.numpy().copy()
  datasets = tiny.in_memory_datasets(global_batch=8)
  iterator = iter(trainer.strategy.experimental_distribute_dataset(datasets.train_fn(None, 0)))
  trainer.train_function()(iterator, tf.constant(3))
  np.testing.assert_array_equal(frozen.numpy(), before)
  assert not np.allclose(trainer.model.get_layer("Logits.Logits").kernel.numpy(), head)
  with pytest.raises(ValueError, match="match no trainable variable"):
    loop.Trainer(config.replace(trainable_scopes=("Mixed_9z",)), distribute.get_strategy("default"),
                 num_classes=4, num_train_examples=64, image_size=8, model_fn=tiny.tiny_model_fn)


def _corrupt_records(path: str, indices) -> None:
  """Rewrites a TFRecord shard with the images of `indices` replaced by undecodable bytes."""
  records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
  with tf.io.TFRecordWriter(path) as writer:
    for i, raw in enumerate(records):
      if i in indices:
        example = tf.train.Example.FromString(raw)
        example.features.feature["image/encoded"].bytes_list.value[:] = [b"\xff\xd8 not a JPEG"]
        raw = example.SerializeToString()
      writer.write(raw)


def test_undecodable_records_are_skipped_in_training_and_reported_by_evaluation(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from inception_tf.data import builder  # pylint: disable=import-outside-toplevel
  images, labels = tiny.make_arrays(60, image_size=16)
  items = []
  for i, (image, label) in enumerate(zip(images, labels)):
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip((image + 1) * 127.5, 0, 255))).save(buffer, format="JPEG")
    items.append(builder.ImageItem(label=int(label), filename=f"{i}.jpg", data=buffer.getvalue()))
  classes = tuple(f"c{k}" for k in range(tiny.NUM_CLASSES))
  data_dir = str(tmp_path / "data")
  builder.build_tfrecords(data_dir, {"train": items[:40], "validation": items[40:]},
                          class_map=builder.ClassMap(classes, classes), num_shards=1,
                          progress=False)
  _corrupt_records(os.path.join(data_dir, "train-00000-of-00001"), {3, 17})
  _corrupt_records(os.path.join(data_dir, "validation-00000-of-00001"), {0, 5, 9})

  stream = io.StringIO()
  config = tiny.tiny_config(data_dir=data_dir, image_size=16, train_steps=12, eval_every_steps=8,
                            deterministic=True)
  result = loop.train_and_evaluate(config, str(tmp_path / "run"), model_fn=tiny.tiny_model_fn,
                                   stream=stream)
  # 12 steps of 8 = 2.4 passes over 38 decodable training images: no crash on the bad two.
  assert result["step"] == 12
  assert result["eval"]["num_examples"] == 17 and result["eval"]["undecodable_skipped"] == 3
  log = stream.getvalue()
  assert log.count("over 17 examples (3 undecodable records skipped)") == 2, log
