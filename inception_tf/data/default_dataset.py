"""The built-in dataset: scikit-learn's handwritten digits as slim-layout TFRecords.

scikit-learn ships the UCI digits (1,797 8x8 grayscale images, 10 classes) inside the wheel, so this
real, labelled dataset needs no download. `digits_data_dir()` writes it once through the same
builder as ImageNet (`inception_tf.data.builder`), into the same layout:

* each 8x8 image (values 0..16) is scaled to 0..255, upscaled bilinearly to 96x96 and stored as an
  RGB JPEG (quality 95), so Inception crops resized to 75..299 pixels have real content;
* a fixed stratified split (scikit-learn `train_test_split`, seed 0): 1,437 `train` images in 4
  shards and 360 `validation` images in 2 shards;
* labels 1..10 for the digits 0..9, 0 = background (slim's 1001-class layout): 11 logits.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import Optional

import numpy as np
from PIL import Image

from inception_tf.data import builder

IMAGE_SIZE = 96
SPLIT_SEED = 0
VALIDATION_FRACTION = 0.2
NUM_SHARDS = {"train": 4, "validation": 2}
CLASS_NAMES = tuple(str(d) for d in range(10))
ENV_VAR = "INCEPTION_TF_DATA"


def default_directory() -> str:
  """`$INCEPTION_TF_DATA` if set, else `~/.cache/inception_tf/digits`."""
  return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "inception_tf",
                                                 "digits")


def _digit_jpeg(pixels: np.ndarray) -> bytes:
  gray = Image.fromarray(np.round(pixels * (255.0 / 16.0)).astype(np.uint8), mode="L")
  rgb = gray.resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.BILINEAR).convert("RGB")
  buffer = io.BytesIO()
  rgb.save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def digits_items() -> dict[str, list[builder.ImageItem]]:
  """The digits as in-memory `ImageItem`s per split (0-based labels; file names `digit_0042.jpg`)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  indices = np.arange(len(digits.target))
  train, validation = train_test_split(indices, test_size=VALIDATION_FRACTION,
                                       stratify=digits.target, random_state=SPLIT_SEED)
  def items(idx):
    return [builder.ImageItem(label=int(digits.target[i]), filename=f"digit_{i:04d}.jpg",
                              data=_digit_jpeg(digits.images[i])) for i in sorted(idx)]
  return {"train": items(train), "validation": items(validation)}


def _build(directory: str, progress: bool) -> None:
  builder.build_tfrecords(
      directory, digits_items(), class_map=builder.ClassMap(CLASS_NAMES, CLASS_NAMES),
      labels_offset=1, num_shards=NUM_SHARDS, num_workers=2, name="digits", progress=progress,
      source_description={"sklearn.datasets.load_digits": True, "image_size": IMAGE_SIZE,
                          "split_seed": SPLIT_SEED, "validation_fraction": VALIDATION_FRACTION})


def digits_data_dir(directory: Optional[str] = None, *, progress: bool = False) -> str:
  """Returns a directory holding the digits TFRecords, building them (a few seconds) if needed.

  The build goes to a temporary sibling directory renamed into place when complete, so concurrent
  callers (e.g. pytest-xdist workers) and interrupted runs never see a partial dataset; later calls
  only check `manifest.json`.

  Args:
    directory: where the dataset lives; default `default_directory()`.
    progress: print the builder's progress lines.

  Returns:
    The directory (pass it as `source` to `make_dataset` / `dataset_info`).
  """
  directory = os.path.abspath(os.path.expanduser(directory or default_directory()))
  if os.path.exists(os.path.join(directory, builder.MANIFEST_NAME)):
    return directory
  if os.path.isdir(directory) and os.listdir(directory):
    _build(directory, progress)  # a non-empty directory without a manifest: resume in place
    return directory
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.building.", dir=parent)
  try:
    _build(staging, progress)
    try:
      os.replace(staging, directory)  # atomic; replaces an empty directory
    except OSError:
      if not os.path.exists(os.path.join(directory, builder.MANIFEST_NAME)):
        raise
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return directory
