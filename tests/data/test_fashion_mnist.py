"""Fashion-MNIST: the IDX reader on files written here, and the real dataset built from Debian's files.

The real build (`dataset-fashion-mnist`, installed by .ci/run) converts all 70,000 images through
the CLI once per module (~30 s of CPU) and checks every validation image pixel for pixel against the
IDX arrays. Without the package the real-data tests are skipped, unless
INCEPTION_TF_REQUIRE_FASHION_MNIST=1 (set by .ci/run), where they fail.
"""

import gzip
import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inception_tf import data
from inception_tf.data import builder
from inception_tf.data import idx
from inception_tf.data import tfrecord

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"]  # the dataset's README


def _idx_bytes(array, type_code, big_endian_dtype):
  """An IDX file written by hand: 0x0000, type code, ndim, big-endian uint32 dims, data."""
  header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                        *array.shape)
  return header + np.asarray(array, dtype=big_endian_dtype).tobytes()


def _write(path, payload, compress=True):
  path.write_bytes(gzip.compress(payload) if compress else payload)
  return str(path)


def _cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, os.path.join(REPO, "tools", "build_tfrecords.py"), *args],
                        capture_output=True, text=True, env=env, timeout=900)


# ------------------------------------------------------------------------------------------------
# The IDX reader on small files.


def test_reads_valid_idx_files(tmp_path):
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
  gz = idx.read_idx(_write(tmp_path / "images-idx3-ubyte.gz", _idx_bytes(images, 0x08, ">u1")))
  raw = idx.read_idx(_write(tmp_path / "images-idx3-ubyte", _idx_bytes(images, 0x08, ">u1"),
                            compress=False))
  for array in (gz, raw):
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
    np.testing.assert_array_equal(array, images)
  # Multi-byte types are big-endian on disk.
  values = np.array([[-2, 300], [32767, -32768]])
  int16 = idx.read_idx(_write(tmp_path / "a.gz", _idx_bytes(values, 0x0B, ">i2")))
  assert int16.dtype == np.int16
  np.testing.assert_array_equal(int16, values)
  floats = np.array([1.5, -0.25, 1e10])
  float32 = idx.read_idx(_write(tmp_path / "b.gz", _idx_bytes(floats, 0x0D, ">f4")))
  assert float32.dtype == np.float32
  np.testing.assert_allclose(float32, floats, rtol=1e-7)
  labels = idx.parse_idx(_idx_bytes(np.array([9, 0, 3]), 0x08, ">u1"))
  np.testing.assert_array_equal(labels, [9, 0, 3])


@pytest.mark.parametrize("case, message", [
    ("truncated_data", "truncated IDX data: shape (2, 3, 4) of uint8 needs 24 bytes after the "
                       "header, the file has 20"),
    ("truncated_header", "truncated IDX header: 3 dimensions need 16 bytes, the file has 10"),
    ("tiny", "truncated IDX file (3 bytes"),
    ("bad_magic", "not an IDX file (magic 08030803"),
    ("bad_type", "unknown IDX type code 0x0a"),
    ("no_dims", "IDX header declares 0 dimensions"),
    ("trailing", "5 unexpected bytes after the data of shape (2, 3, 4)"),
    ("cut_gzip", "corrupt or truncated gzip stream"),
])
def test_malformed_idx_files_name_the_file_and_the_problem(tmp_path, case, message):
  good = _idx_bytes(np.zeros((2, 3, 4)), 0x08, ">u1")
  payloads = {
      "truncated_data": good[:-4],
      "truncated_header": good[:10],
      "tiny": good[:3],
      "bad_magic": b"\x08\x03" + good[2:],
      "bad_type": good[:2] + b"\x0a" + good[3:],
      "no_dims": b"\x00\x00\x08\x00",
      "trailing": good + b"extra",
  }
  path = tmp_path / f"{case}-idx3-ubyte.gz"
  if case == "cut_gzip":
    path.write_bytes(gzip.compress(good)[:-12])  # the stream's end and checksum are missing
  else:
    _write(path, payloads[case])
  with pytest.raises(idx.IdxError) as error:
    idx.read_idx(str(path))
  assert str(path) in str(error.value) and message in str(error.value)


def test_missing_idx_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing-idx1-ubyte.gz"):
    idx.read_idx(str(tmp_path / "nothing-idx1-ubyte.gz"))


# ------------------------------------------------------------------------------------------------
# The Fashion-MNIST source on a small directory of hand-written IDX files.


@pytest.fixture()
def small_fashion(tmp_path):
  """Four IDX files like Fashion-MNIST's, with 12 training and 5 test images of random pixels."""
  rng = np.random.default_rng(0)
  arrays = {}
  for prefix, count in (("train", 12), ("t10k", 5)):
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 10
    _write(tmp_path / f"{prefix}-images-idx3-ubyte.gz", _idx_bytes(images, 0x08, ">u1"))
    _write(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", _idx_bytes(labels, 0x08, ">u1"))
    arrays[prefix] = (images, labels)
  return tmp_path, arrays


def _records(directory, split):
  files = sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*")))
  for raw in tf.data.TFRecordDataset(files):
    feature = tf.train.Example.FromString(raw.numpy()).features.feature
    yield {key: (feature[key].bytes_list.value or feature[key].int64_list.value)[0]
           for key in (tfrecord.IMAGE_ENCODED, tfrecord.IMAGE_FORMAT, tfrecord.IMAGE_FILENAME,
                       tfrecord.CLASS_LABEL, tfrecord.CLASS_TEXT, tfrecord.IMAGE_HEIGHT)}


def test_builds_lossless_grayscale_pngs(small_fashion, tmp_path_factory):
  source, arrays = small_fashion
  output = tmp_path_factory.mktemp("built")
  manifest = builder.build_fashion_mnist(str(output), str(source), num_shards=2, labels_offset=0,
                                         progress=False)
  assert [c["text"] for c in manifest["classes"]] == NAMES and manifest["num_classes"] == 10
  assert {s: v["num_examples"] for s, v in manifest["splits"].items()} == {"train": 12,
                                                                           "validation": 5}
  for split, prefix in (("train", "train"), ("validation", "t10k")):
    images, labels = arrays[prefix]
    seen = set()
    for record in _records(output, split):
      name = record[tfrecord.IMAGE_FILENAME].decode()
      index = int(name[len(prefix) + 1:-len(".png")])
      assert name == f"{prefix}_{index:05d}.png" and record[tfrecord.IMAGE_FORMAT] == b"PNG"
      with Image.open(io.BytesIO(record[tfrecord.IMAGE_ENCODED])) as png:
        assert png.mode == "L"  # one channel on disk
        np.testing.assert_array_equal(np.asarray(png), images[index])  # lossless
      assert record[tfrecord.CLASS_LABEL] == labels[index]
      assert record[tfrecord.CLASS_TEXT].decode() == NAMES[labels[index]]
      seen.add(index)
    assert seen == set(range(len(images)))


def test_wrong_dims_and_labels_name_the_file(small_fashion):
  source, arrays = small_fashion
  images, labels = arrays["t10k"]
  path = source / "t10k-images-idx3-ubyte.gz"
  _write(path, _idx_bytes(images[:, :, :27], 0x08, ">u1"))
  with pytest.raises(idx.IdxError, match=r"t10k-images-idx3-ubyte.gz: expected uint8 images of "
                                         r"shape \[N, 28, 28\]; got uint8 \(5, 28, 27\)"):
    builder.read_fashion_mnist(str(source))
  _write(path, _idx_bytes(images, 0x08, ">u1"))
  labels_path = source / "t10k-labels-idx1-ubyte.gz"
  _write(labels_path, _idx_bytes(labels[:4], 0x08, ">u1"))
  with pytest.raises(idx.IdxError, match=r"t10k-labels-idx1-ubyte.gz: expected 5 uint8 labels"):
    builder.read_fashion_mnist(str(source))
  _write(labels_path, _idx_bytes(np.array([0, 1, 2, 3, 10]), 0x08, ">u1"))
  with pytest.raises(idx.IdxError, match=r"label 10 is outside 0..9"):
    builder.read_fashion_mnist(str(source))


def test_missing_dataset_names_the_package_and_the_flag(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    builder.read_fashion_mnist(str(tmp_path))
  result = _cli(f"--fashion_mnist={tmp_path}", f"--output_dir={tmp_path / 'out'}")
  assert result.returncode != 0
  assert f"--fashion_mnist={tmp_path}: Fashion-MNIST is not in" in result.stderr
  assert "apt-get install dataset-fashion-mnist" in result.stderr
  assert not os.path.exists(tmp_path / "out")


# ------------------------------------------------------------------------------------------------
# The real dataset, from Debian's files.


def _real_files_or_skip():
  paths = [os.path.join(builder.FASHION_MNIST_DIR, f"{name}.gz")
           for names in builder.FASHION_MNIST_FILES.values() for name in names]
  if not all(os.path.exists(p) for p in paths):
    if os.environ.get("INCEPTION_TF_REQUIRE_FASHION_MNIST") == "1":
      pytest.fail(f"Fashion-MNIST is not in {builder.FASHION_MNIST_DIR}: "
                  "apt-get install dataset-fashion-mnist")
    pytest.skip("apt-get install dataset-fashion-mnist to run the real-data tests")


# The real build (~30 s) is shared by the tests below: one xdist worker runs them all, so it is
# built once (setup.cfg runs xdist with --dist loadgroup).
_REAL_BUILD_GROUP = pytest.mark.xdist_group("fashion-mnist-real-build")


@pytest.fixture(scope="module")
def real_build(tmp_path_factory):
  """The real dataset built by the CLI with a bare --fashion_mnist (Debian's directory)."""
  _real_files_or_skip()
  output = tmp_path_factory.mktemp("fashion_mnist")
  result = _cli("--fashion_mnist", f"--output_dir={output}", "--num_workers=2")
  assert result.returncode == 0, result.stderr[-2000:]
  return output, result.stdout


@_REAL_BUILD_GROUP
def test_real_dataset_counts_names_and_layout(real_build):
  output, stdout = real_build
  assert "train: 60000 examples in 60 shards, 0 skipped, 0 re-encoded" in stdout
  assert "validation: 10000 examples in 10 shards, 0 skipped, 0 re-encoded" in stdout
  manifest = json.loads((output / "manifest.json").read_text())
  assert manifest["name"] == "fashion_mnist" and manifest["labels_offset"] == 1
  assert manifest["num_classes"] == 11
  assert [c["text"] for c in manifest["classes"]] == ["background"] + NAMES
  assert manifest["source"]["fashion_mnist"] == builder.FASHION_MNIST_DIR
  for split, count in (("train", 60000), ("validation", 10000)):
    info = manifest["splits"][split]
    assert info["num_examples"] == count and info["num_skipped"] == info["num_converted"] == 0
    assert info["class_counts"] == {name: count // 10 for name in NAMES}  # balanced classes
    files = sorted(tf.io.gfile.glob(str(output / f"{split}-*-of-*")))
    assert len(files) == count // 1000
    assert int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1)) == count
  assert data.dataset_info(str(output)).num_classes == 11


@_REAL_BUILD_GROUP
def test_real_validation_images_are_the_idx_pixels(real_build):
  """Every validation record decodes to its IDX image and carries its IDX label + 1."""
  output, _ = real_build
  images = idx.read_idx(os.path.join(builder.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
  labels = idx.read_idx(os.path.join(builder.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
  files = sorted(tf.io.gfile.glob(str(output / "validation-*-of-*")))
  spec = {tfrecord.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
          tfrecord.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string),
          tfrecord.CLASS_LABEL: tf.io.FixedLenFeature([], tf.int64)}

  def decode(raw):
    example = tf.io.parse_single_example(raw, spec)
    index = tf.strings.to_number(tf.strings.substr(example[tfrecord.IMAGE_FILENAME], 5, 5),
                                 tf.int32)  # t10k_01234.png
    return index, data.decode_image_rgb(example[tfrecord.IMAGE_ENCODED]), example[
        tfrecord.CLASS_LABEL]

  seen = np.zeros(len(images), bool)
  dataset = tf.data.TFRecordDataset(files).map(decode, num_parallel_calls=2).batch(2000)
  for index, rgb, label in dataset.as_numpy_iterator():
    seen[index] = True
    assert rgb.shape[1:] == (28, 28, 3)
    np.testing.assert_array_equal(rgb, np.repeat(images[index][..., None], 3, -1))
    np.testing.assert_array_equal(label, labels[index].astype(np.int64) + 1)
  assert seen.all()


@_REAL_BUILD_GROUP
def test_real_dataset_feeds_the_pipeline(real_build):
  output, _ = real_build
  batch = next(iter(data.make_dataset(str(output), split="validation", is_training=False,
                                      batch_size=8, image_size=32)))
  assert batch["images"].shape == (8, 32, 32, 3) and batch["labels"].shape == (8,)
  assert float(tf.reduce_min(batch["images"])) >= -1.0 and float(tf.reduce_max(
      batch["images"])) <= 1.0
  assert set(batch["labels"].numpy()) <= set(range(1, 11))


# ------------------------------------------------------------------------------------------------
# The reproduction driver's Fashion-MNIST input (experiments/reproductions/run.py).


def test_reproduction_input_resumes_exactly_and_evaluates_whole_images(small_fashion,
                                                                        tmp_path_factory):
  """Training batches are a function of (seed, step): a stream resumed at batch k equals the
  uninterrupted one from k on; crops and flips differ between examples; evaluation sees each test
  image once, whole (28x28 resized to 32x32, no crop)."""
  sys.path.insert(0, os.path.join(REPO, "experiments", "reproductions"))
  try:
    import run  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  source, arrays = small_fashion
  output = str(tmp_path_factory.mktemp("records"))
  builder.build_fashion_mnist(output, str(source), num_shards=2, progress=False)
  config = run.study_runs("residual_fashion", seeds=[3], quick=False, fashion_dir=output)[0][1]
  config = config.replace(train_batch_size=4, eval_batch_size=4)
  datasets = run.fashion_datasets(config, image_size=32)
  assert datasets.num_train_examples == 12 and datasets.num_eval_examples == 5
  stream = [b["images"].numpy() for b in datasets.train_fn(None, 0).take(7)]
  resumed = [b["images"].numpy() for b in datasets.train_fn(None, 4).take(3)]
  for a, b in zip(stream[4:], resumed):
    np.testing.assert_array_equal(a, b)
  images = np.concatenate(stream)
  assert images.shape == (28, 32, 32, 3) and images.min() >= -1.0 and images.max() <= 1.0
  # 28 draws from 12 random-pixel images: repeats of an image mostly differ by their crop or flip
  # (9 x 9 offsets x 2 flips: two draws of one image coincide with probability 1/162).
  assert len({im.tobytes() for im in images}) >= len(images) - 2
  test_images = arrays["t10k"][0]
  whole = data.preprocess_for_eval(np.repeat(test_images[0][..., None], 3, -1), 32, 32,
                                   central_fraction=None).numpy()
  evaluated = [(b["images"].numpy(), b["mask"].numpy()) for b in datasets.eval_fn(None)]
  kept = np.concatenate([im[mask > 0] for im, mask in evaluated])
  assert len(kept) == 5
  assert min(np.abs(im - whole).max() for im in kept) < 1e-6  # the first test image, whole
