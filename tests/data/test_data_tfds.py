"""tfds sources: a real tfds dataset prepared on disk (no network); mock data: test_pipeline.py."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from inception_tf import data
from inception_tf.data import builder

NAME = "inception_tf_test_digits"


class InceptionTfTestDigits(tfds.core.GeneratorBasedBuilder):
  """45 scikit-learn digits as a tfds image classification dataset (PNG-encoded RGB images)."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=[f"digit{d}" for d in range(10)]),
            "file_name": tfds.features.Text(),
        }), supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(0, 30), "test": self._generate_examples(30, 45)}

  def _generate_examples(self, start, stop):
    digits = load_digits()
    for i in range(start, stop):
      pixels = np.kron((digits.images[i] * 15).astype(np.uint8), np.ones((4, 4), np.uint8))
      yield i, {"image": np.stack([pixels] * 3, -1), "label": int(digits.target[i]),
                "file_name": f"tfds_digit_{i}.png"}


def _labels_by_filename(ds):
  """file name -> label of the real (mask 1) examples of an eval dataset."""
  seen = {}
  for batch in ds:
    for name, label, mask in zip(batch["filenames"].numpy(), batch["labels"].numpy(),
                                 batch["mask"].numpy()):
      if mask:
        seen[name.decode()] = label
  return seen


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  InceptionTfTestDigits(data_dir=data_dir).download_and_prepare()
  return data_dir


def test_build_tfrecords_from_tfds(tfds_dir, tmp_path):
  out = str(tmp_path / "records")
  manifest = builder.build_from_tfds(out, NAME, data_dir=tfds_dir, num_shards=2, progress=False)
  assert manifest["num_classes"] == 11 and manifest["labels_offset"] == 1
  assert manifest["splits"]["train"]["num_examples"] == 30
  assert manifest["splits"]["test"]["num_examples"] == 15
  assert manifest["splits"]["train"]["num_converted"] == 30  # PNGs re-encoded as RGB JPEGs
  digits = load_digits()
  ds = data.make_dataset(out, split="test", is_training=False, batch_size=4, image_size=32,
                         with_filenames=True)
  seen = _labels_by_filename(ds)
  assert seen == {f"tfds_digit_{i}.png": digits.target[i] + 1 for i in range(30, 45)}
  assert data.dataset_info(out).class_names[1] == "digit0"


def test_make_dataset_reads_tfds_directly(tfds_dir, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
  info = data.dataset_info(f"tfds:{NAME}")
  assert info.num_classes == 10 and info.num_examples == {"train": 30, "test": 15}
  digits = load_digits()
  ds = data.make_dataset(f"tfds:{NAME}", split="test", is_training=False, batch_size=4,
                         image_size=32, with_filenames=True)
  seen = _labels_by_filename(ds)
  assert seen == {f"tfds_digit_{i}.png": digits.target[i] for i in range(30, 45)}
  # Resuming after 5 batches continues the uninterrupted stream exactly (the batches of step 6+).
  def train(skip):
    return data.make_dataset(f"tfds:{NAME}", split="train", is_training=True, batch_size=8,
                             image_size=32, seed=0, deterministic=True, skip_batches=skip)
  full = [batch for _, batch in zip(range(7), train(0))]
  resumed = [batch for _, batch in zip(range(2), train(5))]
  assert resumed[0]["images"].shape == (8, 32, 32, 3)
  for want, got in zip(full[5:], resumed):
    np.testing.assert_array_equal(got["labels"].numpy(), want["labels"].numpy())
    np.testing.assert_array_equal(got["images"].numpy(), want["images"].numpy())
  assert not np.array_equal(full[0]["images"].numpy(), resumed[0]["images"].numpy())
