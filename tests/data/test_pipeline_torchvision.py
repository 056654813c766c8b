"""The input pipeline's torchvision kind (the torchvision-layout nets train and evaluate with it):
the eval stream is `preprocessing.by_kind("torchvision")` of each record; training is seeded."""

import numpy as np
import pytest
import tensorflow as tf

from inception_tf import data
from inception_tf.data import preprocessing
from inception_tf.data import tfrecord

SIZE = 32


def test_eval_stream_is_the_torchvision_eval_transform(digits_dir):
  batch = next(iter(data.make_dataset(digits_dir, split="validation", is_training=False,
                                      batch_size=3, image_size=SIZE, with_filenames=True,
                                      preprocessing="torchvision")))
  files, _ = data.list_files(digits_dir, "validation")
  by_name = {}
  for record in tf.data.TFRecordDataset(files):
    example = tfrecord.parse_example(record)
    by_name[example["filename"].numpy()] = example["image_bytes"]
  transform = preprocessing.by_kind("torchvision", SIZE)
  expected = np.stack([transform(by_name[name]) for name in batch["filenames"].numpy()])
  np.testing.assert_array_equal(batch["images"].numpy(), expected)


def test_training_stream_is_seeded_and_square_only(digits_dir):
  def first(seed):
    return next(iter(data.make_dataset(digits_dir, split="train", is_training=True,
                                       batch_size=4, image_size=SIZE, seed=seed,
                                       deterministic=True, preprocessing="torchvision")))["images"]
  a, b, c = first(1), first(1), first(2)
  assert a.shape == (4, SIZE, SIZE, 3) and np.isfinite(a.numpy()).all()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  with pytest.raises(ValueError, match="square"):
    data.make_dataset(digits_dir, split="train", is_training=True, batch_size=4,
                      image_size=(32, 48), preprocessing="torchvision")
