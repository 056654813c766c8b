"""Input pipeline throughput: train and eval pipelines next to plain JPEG decoding of the same
records, measured in the same process (`tools/benchmark_input.py`)."""

from __future__ import annotations

import io
import os
import time
from typing import Optional

import tensorflow as tf

from inception_tf.data import builder
from inception_tf.data import pipeline
from inception_tf.data import tfrecord

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel",
           "hubble_deep_field", "retina", "cat")


def photos_data_dir(directory: str, *, copies: int = 24) -> str:
  """A small slim-layout TFRecord set of real photos (scikit-image's samples, 300..1411 pixels a
  side, ImageNet-like sizes), each saved in `copies` different crops. Built once."""
  if tf.io.gfile.exists(os.path.join(directory, builder.MANIFEST_NAME)):
    return directory
  import skimage.data  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  items = []
  for label, name in enumerate(_PHOTOS):
    photo = getattr(skimage.data, name)()
    for k in range(copies):
      h, w = photo.shape[:2]
      top, left = (k * 7) % max(1, h // 8), (k * 11) % max(1, w // 8)
      buffer = io.BytesIO()
      Image.fromarray(photo[top:, left:]).save(buffer, format="JPEG", quality=90)
      items.append(builder.ImageItem(label=label, filename=f"{name}_{k}.jpg",
                                     data=buffer.getvalue()))
  builder.build_tfrecords(directory, {"train": items}, class_map=builder.ClassMap(_PHOTOS, _PHOTOS),
                          num_shards=4, name="photos", progress=False)
  return directory


def _interleaved_rates(datasets: dict[str, tf.data.Dataset], batch_size: int, seconds: float,
                       warmup_batches: int, rounds: int) -> dict[str, float]:
  """Images/s of each dataset, measured in `rounds` alternating windows so that a load change on
  a shared machine affects every pipeline alike. Each window first drains `warmup_batches`
  (emptying the prefetch buffers filled while the others ran), then counts batches."""
  iterators = {name: iter(ds) for name, ds in datasets.items()}
  images = {name: 0 for name in datasets}
  elapsed = {name: 0.0 for name in datasets}
  for _ in range(rounds):
    for name, iterator in iterators.items():
      for _ in range(warmup_batches):
        next(iterator)
      start = time.perf_counter()
      while time.perf_counter() - start < seconds / rounds:
        next(iterator)
        images[name] += batch_size
      elapsed[name] += time.perf_counter() - start
  return {name: images[name] / elapsed[name] for name in datasets}


def decode_only_dataset(source: str, split: str, batch_size: int) -> tf.data.Dataset:
  """The same records, parsed and fully JPEG-decoded in parallel, nothing else."""
  files, _ = pipeline.list_files(source, split)

  def decode(raw):
    image = tf.io.decode_jpeg(tfrecord.parse_example(raw)["image_bytes"], channels=3)
    return image[0, 0, 0]  # keeps the decode, returns a scalar

  ds = tf.data.Dataset.from_tensor_slices(files).repeat().interleave(
      tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=False)
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def benchmark_input(source: str, *, split: str = "train", image_size: int = 299,
                    batch_size: int = 32, seconds: float = 20.0, warmup_batches: int = 3,
                    rounds: int = 5,
                    fast_mode: Optional[bool] = None) -> dict[str, float]:
  """Images/s of decode-only, train (slim and fast mode) and eval pipelines on `source`.

  Each pipeline is measured for `seconds` in total, in `rounds` alternating windows.

  Returns:
    `{"decode_only": r0, "train": r1, "train_fast_mode": r2, "eval": r3}` (only the requested
    train mode(s) when `fast_mode` is given), plus the ratios `train/decode_only`, ...
  """
  common = dict(split=split, batch_size=batch_size, image_size=image_size)
  datasets = {"decode_only": decode_only_dataset(source, split, batch_size)}
  for mode in ([False, True] if fast_mode is None else [fast_mode]):
    datasets["train_fast_mode" if mode else "train"] = pipeline.make_dataset(
        source, is_training=True, fast_mode=mode, **common)
  datasets["eval"] = pipeline.make_dataset(source, is_training=False, num_epochs=1_000_000,
                                           **common)
  rates = _interleaved_rates(datasets, batch_size, seconds, warmup_batches, rounds)
  for key in list(rates):
    if key != "decode_only":
      rates[f"{key}/decode_only"] = rates[key] / rates["decode_only"]
  return rates
