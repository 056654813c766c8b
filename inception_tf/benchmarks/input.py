"""Input pipeline throughput: train and eval pipelines next to plain JPEG decoding of the same
records, measured in the same process (`tools/benchmark_input.py`), and the cost of slim's colour
distortion per image on the host next to the batched `distort_color_batch` of the device path."""

from __future__ import annotations

import io
import os
import time
from typing import Callable, Optional

import numpy as np

import tensorflow as tf

from inception_tf.data import builder
from inception_tf.data import pipeline
from inception_tf.data import preprocessing
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


def _interleaved_rates(producers: dict[str, Callable[[], Callable[[], int]]], seconds: float,
                       warmup_calls: int, rounds: int) -> dict[str, float]:
  """Images/s of each producer, measured in `rounds` alternating windows so that a load change
  on a shared machine affects every producer alike.

  A producer is opened afresh for each window (`open()` returns `produce`, a call of which
  returns the number of images it produced) and dropped when its window ends: a tf.data iterator
  left alive keeps its parallel maps and prefetch buffers working in the background and would
  take CPU from the producer being timed (on the same photos, the device-colour pipeline
  measured 0.39x of decode-only with five pipelines kept alive in session 2, and 0.61x with three
  in session 3, both on a loaded machine). Each window
  first makes `warmup_calls` untimed calls (pipeline start-up, autotuning), then counts images.
  """
  images = {name: 0 for name in producers}
  elapsed = {name: 0.0 for name in producers}
  for _ in range(rounds):
    for name, open_producer in producers.items():
      produce = open_producer()
      for _ in range(warmup_calls):
        produce()
      start = time.perf_counter()
      while time.perf_counter() - start < seconds / rounds:
        images[name] += produce()
      elapsed[name] += time.perf_counter() - start
      del produce  # stops the iterator's background work before the next window
  return {name: images[name] / elapsed[name] for name in producers}


def _batches(dataset: tf.data.Dataset, batch_size: int) -> Callable[[], Callable[[], int]]:
  """A producer of `dataset`'s batches: each opening starts a new iterator."""

  def open_producer():
    iterator = iter(dataset)

    def produce():
      next(iterator)
      return batch_size

    return produce

  return open_producer


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
  options = tf.data.Options()  # the threading of `pipeline.make_dataset`, for a like comparison
  options.threading.max_intra_op_parallelism = 1
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def benchmark_input(source: str, *, split: str = "train", image_size: int = 299,
                    batch_size: int = 32, seconds: float = 20.0, warmup_batches: int = 3,
                    rounds: int = 5,
                    fast_mode: Optional[bool] = None) -> dict[str, float]:
  """Images/s of decode-only, train and eval pipelines on `source`, measured in one process.

  Each pipeline is measured for `seconds` in total, in `rounds` alternating windows.
  - `train`: `make_dataset(is_training=True)` as the trainer builds it by default: slim's fast
    mode (its default: bilinear resize; brightness and saturation), colour distortion per image
    on the host, float32 [-1, 1] batches.
  - `train_device_color`: the host half of the TPU-style split (`color_distortion_on_device`,
    the `tpu` preset): crop-decode, resize, flip, uint8 batches; the colour distortion runs in
    the training step (see `benchmark_color_distortion`).
  - `*_4_methods`: the same with `fast_mode=False` (one of 4 resize methods, 4 colour orders).
  - `eval`: central crop, TF1 bilinear resize, full decodes (slim-exact).

  Args:
    fast_mode: None: both modes; True / False: only the train pipelines of that mode.

  Returns:
    `{"decode_only": r0, "train": r1, "train_device_color": r2, "train_4_methods": r3,
    "train_device_color_4_methods": r4, "eval": r5}` (a subset when `fast_mode` is given), plus
    the ratios `train/decode_only`, ...
  """
  common = dict(split=split, batch_size=batch_size, image_size=image_size)
  datasets = {"decode_only": decode_only_dataset(source, split, batch_size)}
  for mode in ([True, False] if fast_mode is None else [fast_mode]):
    suffix = "" if mode else "_4_methods"
    datasets["train" + suffix] = pipeline.make_dataset(
        source, is_training=True, fast_mode=mode, **common)
    datasets["train_device_color" + suffix] = pipeline.make_dataset(
        source, is_training=True, fast_mode=mode, color_distortion_on_device=True, **common)
  datasets["eval"] = pipeline.make_dataset(source, is_training=False, num_epochs=1_000_000,
                                           **common)
  rates = _interleaved_rates({name: _batches(ds, batch_size) for name, ds in datasets.items()},
                             seconds, warmup_batches, rounds)
  for key in list(rates):
    if key != "decode_only":
      rates[f"{key}/decode_only"] = rates[key] / rates["decode_only"]
  return rates


def benchmark_color_distortion(*, image_size: int = 299, batch_size: int = 32,
                               seconds: float = 10.0, rounds: int = 5,
                               fast_mode: bool = True) -> dict[str, float]:
  """Images/s of slim's colour distortion on this machine: the host path (`distort_color` per
  image in a parallel tf.data map, float32 [0, 1] in, as `preprocess_for_train` runs it) next to
  `distort_color_batch` on a uint8 batch, as a `tf.function` and XLA-compiled.

  The images are real photos (scikit-image's samples) resized to `image_size`; the cost of these
  ops does not depend on the content.

  Returns:
    `{"host_distort_color": r0, "batch_distort_color": r1, "batch_distort_color_xla": r2}` and
    the ratios of the batched rates to the host rate.
  """
  import skimage.data  # pylint: disable=g-import-not-at-top
  photos = [tf.image.resize(getattr(skimage.data, name)()[..., :3], [image_size, image_size])
            for name in ("astronaut", "chelsea", "coffee", "rocket")]
  batch = tf.cast(tf.clip_by_value(tf.round(tf.stack(
      [photos[i % len(photos)] for i in range(batch_size)])), 0, 255), tf.uint8)
  floats = tf.data.Dataset.from_tensor_slices(tf.cast(batch, tf.float32) / 255.0).repeat()

  def host_fn(index, image):
    seeds = tf.random.experimental.stateless_split(tf.stack([index, index]), num=8)
    return preprocessing.distort_color(image, seeds=seeds, fast_mode=fast_mode)

  # No prefetch and a fixed parallelism: a prefetching pipeline keeps computing while the batched
  # variants are timed (measured: it made them look 10x slower) and then serves stored batches.
  host = floats.enumerate().map(host_fn, num_parallel_calls=os.cpu_count() or 1,
                                deterministic=True).batch(batch_size)
  counter = {"step": np.int64(0)}

  def batched(fn):
    def produce():
      counter["step"] += 1
      fn(batch, tf.constant([0, counter["step"]], tf.int64)).numpy()
      return batch_size
    return lambda: produce

  distort = lambda images, seed: preprocessing.distort_color_batch(  # noqa: E731
      images, seed, fast_mode=fast_mode)
  rates = _interleaved_rates(
      {"host_distort_color": _batches(host, batch_size),
       "batch_distort_color": batched(tf.function(distort)),
       "batch_distort_color_xla": batched(tf.function(distort, jit_compile=True))},
      seconds, 2, rounds)
  for key in ("batch_distort_color", "batch_distort_color_xla"):
    rates[f"{key}/host_distort_color"] = rates[key] / rates["host_distort_color"]
  return rates
