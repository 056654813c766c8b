"""make_dataset / dataset_info on the built-in digits, corrupt records, sharding and tfds."""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from inception_tf import data
from inception_tf.data import default_dataset
from inception_tf.data import tfrecord

SIZE = 40  # small outputs keep the tests fast; preprocessing tests cover full sizes


def _raw_filenames(directory, split):
  files, _ = data.list_files(directory, split)
  ds = tf.data.TFRecordDataset(files).map(lambda r: tfrecord.parse_example(r)["filename"])
  return [n.decode() for batch in ds.batch(1000) for n in batch.numpy()]


def test_digits_dataset_and_info(digits_dir):
  info = data.dataset_info(digits_dir)
  assert info.num_classes == 11 and info.labels_offset == 1
  assert info.num_examples == {"train": 1437, "validation": 360}
  assert info.class_names == ["background"] + [str(d) for d in range(10)]
  assert set(info.splits) == {"train", "validation"}
  manifest = json.loads(open(os.path.join(digits_dir, "manifest.json")).read())
  counts = manifest["splits"]["validation"]["class_counts"]
  assert sorted(counts.values()) in ([35] * 3 + [36] * 7, [35] * 2 + [36] * 6 + [37] * 2) or \
      max(counts.values()) - min(counts.values()) <= 2  # stratified
  before = os.stat(os.path.join(digits_dir, "manifest.json")).st_mtime_ns
  assert default_dataset.digits_data_dir(digits_dir) == digits_dir  # reused, not rebuilt
  assert os.stat(os.path.join(digits_dir, "manifest.json")).st_mtime_ns == before
  raw = next(iter(tf.data.TFRecordDataset(data.list_files(digits_dir, "train")[0][:1])))
  image = tf.io.decode_jpeg(tfrecord.parse_example(raw)["image_bytes"]).numpy()
  assert image.shape == (96, 96, 3)
  assert sorted(_raw_filenames(digits_dir, "train") + _raw_filenames(digits_dir, "validation")) \
      == [f"digit_{i:04d}.jpg" for i in range(1797)]


def test_train_batches(digits_dir):
  ds = data.make_dataset(digits_dir, split="train", is_training=True, batch_size=8,
                         image_size=SIZE, seed=3)
  assert ds.element_spec["images"].shape == (8, SIZE, SIZE, 3)  # static for TPUs
  assert ds.element_spec["labels"].shape == (8,) and ds.element_spec["labels"].dtype == tf.int32
  labels = []
  for batch in ds.take(4):
    images = batch["images"].numpy()
    assert images.dtype == np.float32 and images.min() >= -1 and images.max() <= 1
    labels += batch["labels"].numpy().tolist()
  assert set(labels) <= set(range(1, 11)) and len(set(labels)) > 4
  bf16 = data.make_dataset(digits_dir, split="train", is_training=True, batch_size=4,
                           image_size=(SIZE, SIZE + 8), dtype=tf.bfloat16, fast_mode=True)
  assert next(iter(bf16))["images"].dtype == tf.bfloat16
  assert bf16.element_spec["images"].shape == (4, SIZE, SIZE + 8, 3)


def _stream(digits_dir, take, **kwargs):
  ds = data.make_dataset(digits_dir, split="train", is_training=True, batch_size=16,
                         image_size=24, with_filenames=True, deterministic=True, **kwargs)
  return [(b["filenames"].numpy().tolist(), b["images"].numpy()) for b in ds.take(take)]


@pytest.mark.parametrize("cache", [False, True])
def test_deterministic_order_and_exact_resume(digits_dir, cache):
  # 1437 examples / 16 = 89.8 batches per epoch: batches 88..91 cross the epoch boundary.
  full = _stream(digits_dir, 92, seed=5, cache=cache)
  again = _stream(digits_dir, 3, seed=5, cache=cache)
  for (names_a, images_a), (names_b, images_b) in zip(full, again):
    assert names_a == names_b
    np.testing.assert_array_equal(images_a, images_b)
  other = _stream(digits_dir, 1, seed=6, cache=cache)
  assert other[0][0] != full[0][0]
  for skip in (1, 88):
    resumed = _stream(digits_dir, 4, seed=5, cache=cache, skip_batches=skip)
    for (names_a, images_a), (names_b, images_b) in zip(full[skip:skip + 4], resumed):
      assert names_a == names_b
      np.testing.assert_array_equal(images_a, images_b)
  # An epoch visits every example once; the next epoch uses a new order.
  names = [n for batch, _ in full for n in batch]
  assert len(set(names[:1437])) == 1437
  assert names[1437:1437 + 20] != names[:20]


@pytest.mark.parametrize("global_seed", [0, 7])
def test_a_global_seed_neither_breaks_nor_changes_the_stream(digits_dir, global_seed):
  """A user's `keras.utils.set_random_seed` before `make_dataset`: TF 2.21 failed to trace the
  per-epoch tensor-seeded shuffles under a global seed of 0, and any other global seed changed
  their order. The stream stays the pure function of `seed` it is without one (tests/conftest.py
  clears the global seed again after this test)."""
  assert len(data.list_files(digits_dir, "train")[0]) > 1  # the file shuffle runs too
  expected = _stream(digits_dir, 2, seed=5)
  keras.utils.set_random_seed(global_seed)
  got = _stream(digits_dir, 2, seed=5)
  for (names_a, images_a), (names_b, images_b) in zip(expected, got):
    assert names_a == names_b
    np.testing.assert_array_equal(images_a, images_b)


def test_eval_sees_every_example_exactly_once(digits_dir):
  ds = data.make_dataset(digits_dir, split="validation", is_training=False, batch_size=7,
                         image_size=SIZE, with_filenames=True)
  assert ds.element_spec["images"].shape == (7, SIZE, SIZE, 3)
  seen, mask_sum, batches = [], 0.0, 0
  for batch in ds:
    mask = batch["mask"].numpy()
    assert batch["images"].shape[0] == 7
    mask_sum += mask.sum()
    seen += [n.decode() for n, m in zip(batch["filenames"].numpy(), mask) if m == 1]
    batches += 1
    last = batch
  assert mask_sum == 360 and batches == 52  # 360 = 51 * 7 + 3
  assert last["mask"].numpy().tolist() == [1, 1, 1, 0, 0, 0, 0]
  assert np.all(last["images"].numpy()[3:] == 0)
  assert sorted(seen) == sorted(_raw_filenames(digits_dir, "validation"))
  # The images are the slim eval preprocessing of the stored JPEGs.
  files, _ = data.list_files(digits_dir, "validation")
  first = {}
  for raw in tf.data.TFRecordDataset(files).take(50):
    parsed = tfrecord.parse_example(raw)
    first[parsed["filename"].numpy().decode()] = parsed["image_bytes"]
  for batch in ds.take(3):
    for name, image in zip(batch["filenames"].numpy(), batch["images"].numpy()):
      if name.decode() in first:
        expected = data.preprocess_for_eval(first[name.decode()], SIZE, SIZE).numpy()
        np.testing.assert_allclose(image, expected, atol=1e-6)


@pytest.mark.parametrize("num_pipelines", [2, 3])  # 2: one file each; 3: more pipelines than files
def test_input_context_shards_disjoint_and_complete(digits_dir, num_pipelines):
  per_pipeline, num_batches = [], []
  for pipeline_id in range(num_pipelines):
    context = tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=num_pipelines)
    ds = data.make_dataset(digits_dir, split="validation", is_training=False, batch_size=32,
                           image_size=16, input_context=context, with_filenames=True)
    batches = list(ds)
    num_batches.append(len(batches))
    per_pipeline.append([n for b in batches
                         for n, m in zip(b["filenames"].numpy(), b["mask"].numpy()) if m])
  assert len(set(num_batches)) == 1  # equal step counts, or a distributed loop would stop early
  flat = [n for names in per_pipeline for n in names]
  assert len(flat) == len(set(flat)) == 360
  assert all(len(names) >= 360 // num_pipelines for names in per_pipeline)
  # Training streams are disjoint per pipeline within an epoch too (4 train files).
  train = []
  for pipeline_id in range(num_pipelines):
    context = tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                         input_pipeline_id=pipeline_id)
    ds = data.make_dataset(digits_dir, split="train", is_training=True, batch_size=32,
                           image_size=16, input_context=context, with_filenames=True, seed=1)
    train.append({n for b in ds.take(10) for n in b["filenames"].numpy()})
  for i in range(num_pipelines):
    for j in range(i):
      assert not train[i] & train[j]


def test_eval_batch_count_is_a_multiple_of_replicas_per_pipeline(digits_dir):
  """One pipeline feeding 2 replicas must yield an even number of batches (padding batches have
  mask 0), also when the example counts are unknown (a file pattern, no manifest counts)."""
  context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                       num_replicas_in_sync=2)
  for source in (digits_dir, os.path.join(digits_dir, "validation-*")):
    ds = data.make_dataset(source, split="validation", is_training=False, batch_size=8,
                           image_size=16, input_context=context)
    masks = [b["mask"].numpy() for b in ds]
    assert len(masks) == 46 and sum(m.sum() for m in masks) == 360  # 45 real batches + 1 padding
    assert masks[-1].sum() == 0


def _jpeg(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="JPEG")
  return buffer.getvalue()


def test_corrupt_records_are_skipped_and_counted(tmp_path):
  rng = np.random.default_rng(0)
  good = _jpeg(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
  bad = {"garbage": b"\x00not an image" * 20, "truncated": good[:len(good) // 2],
         "empty": b""}
  path = str(tmp_path / "validation-00000-of-00001")
  names = []
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(5):
      writer.write(tfrecord.encode_example(image_bytes=good, label=1, height=30, width=40,
                                           filename=f"good{i}"))
      names.append(f"good{i}")
      if i < len(bad):
        key = list(bad)[i]
        writer.write(tfrecord.encode_example(image_bytes=bad[key], label=2, height=30, width=40,
                                             filename=key))
  before = data.decode_error_count()
  ds = data.make_dataset(str(tmp_path), split="validation", is_training=False, batch_size=4,
                         image_size=SIZE, with_filenames=True, error_counter="bad_records_eval")
  seen = [n.decode() for b in ds for n, m in zip(b["filenames"].numpy(), b["mask"].numpy()) if m]
  assert sorted(seen) == names
  assert data.decode_error_count() - before == 3
  train = data.make_dataset(str(tmp_path), split="validation", is_training=True, batch_size=4,
                            image_size=SIZE, with_filenames=True, num_epochs=2, seed=0,
                            error_counter="bad_records_train")
  seen = [n.decode() for b in train for n in b["filenames"].numpy()]
  assert len(seen) == 8 and set(seen) <= set(names)  # 10 good records, 2 full batches
  assert data.decode_error_count() - before == 9  # every pipeline of the process
  # Per name: the eval pass and the two training epochs apart.
  assert data.decode_error_count("bad_records_eval") == 3
  assert data.decode_error_count("bad_records_train") == 6
  with pytest.raises(ValueError, match="error_counter"):
    data.make_dataset(str(tmp_path), split="validation", is_training=False, batch_size=4,
                      image_size=SIZE, error_counter="a/b")


def test_tfds_source_with_mock_data():
  with tfds.testing.mock_data(num_examples=22):
    info = data.dataset_info("tfds:mnist")
    assert info.num_classes == 10 and info.labels_offset == 0
    train = data.make_dataset("tfds:mnist", split="train", is_training=True, batch_size=4,
                              image_size=SIZE, seed=0)
    for batch in train.take(8):  # more than one epoch of 22
      assert batch["images"].shape == (4, SIZE, SIZE, 3)  # 28x28x1 PNGs -> RGB crops
      assert batch["images"].numpy().min() >= -1 and batch["images"].numpy().max() <= 1
      assert set(batch["labels"].numpy()) <= set(range(10))
    total = 0
    for pipeline_id in range(2):
      context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
      ds = data.make_dataset("tfds:mnist", split="test", is_training=False, batch_size=5,
                             image_size=SIZE, input_context=context)
      total += sum(float(b["mask"].numpy().sum()) for b in ds)
    assert total == 22


def test_invalid_arguments(digits_dir, tmp_path):
  kwargs = dict(split="train", is_training=True, image_size=SIZE)
  with pytest.raises(ValueError, match="batch_size"):
    data.make_dataset(digits_dir, batch_size=0, **kwargs)
  with pytest.raises(ValueError, match="preprocessing"):
    data.make_dataset(digits_dir, batch_size=2, preprocessing="vgg16", **kwargs)
  with pytest.raises(ValueError, match="image_size"):
    data.make_dataset(digits_dir, batch_size=2, split="train", is_training=True, image_size=(1,))
  with pytest.raises(FileNotFoundError, match="Split 'test'"):
    data.make_dataset(digits_dir, batch_size=2, split="test", is_training=True, image_size=SIZE)
  with pytest.raises(FileNotFoundError, match="build_tfrecords"):
    data.make_dataset(str(tmp_path), batch_size=2, **kwargs)
  with pytest.raises(FileNotFoundError, match="manifest"):
    data.dataset_info(str(tmp_path))


def test_vgg_preprocessing_option(digits_dir):
  for is_training in (True, False):
    ds = data.make_dataset(digits_dir, split="validation", is_training=is_training, batch_size=4,
                           image_size=64, preprocessing="vgg", seed=0)
    images = next(iter(ds))["images"].numpy()
    assert images.shape == (4, 64, 64, 3)
    assert images.min() >= -124 and images.max() > 1.5  # mean-subtracted 0..255, not [-1, 1]
