"""Running the FID network over images: sources, batching, any tf.distribute strategy.

A source is a folder of images (PNG / JPEG, searched recursively, sorted by path), an array
`[N, H, W, C]` (uint8 or float, values in [0, 255]) or a `tf.data.Dataset` of images (`[H, W, C]`
elements, or batches `[B, H, W, C]`, which are unbatched). Every image goes through the graph's
front end (`frontend.preprocess`) in the input pipeline, then into fixed-size batches padded at the
end with a mask, so every image counts exactly once with static shapes (TPUs); under a strategy
the number of batches is also padded to a multiple of the replicas (when the source's length is
known: folders, arrays), so no worker runs out of batches before the others.

A file of a folder that cannot be decoded is skipped (masked out; the folder still gives one
element per file) and named through `warn`; the extraction goes on.

Each batch runs the model with `fused_call` in a `tf.function` under `strategy.run`; the replicas'
outputs are gathered (`strategy.gather`) to the host, where the masked rows are dropped and the
pool_3 features feed float64 `ActivationStatistics` (and are kept for KID, the bias-free logits for
the Inception Score, when asked).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from inception_tf.data import pipeline
from inception_tf.data import preprocessing
from inception_tf.metrics import frontend
from inception_tf.metrics.statistics import ActivationStatistics
from inception_tf.models import fused

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEFAULT_BATCH_SIZE = 50  # TTUR's / pytorch-fid's


@dataclasses.dataclass
class Activations:
  """What one pass over a source produced."""

  statistics: ActivationStatistics
  features: np.ndarray | None  # [n, 2048] float32 pool_3, with keep_features
  logits_unbiased: np.ndarray | None  # [n, 1008] float32, with keep_logits
  skipped: list[str]  # files of a folder that could not be decoded

  @property
  def num_images(self) -> int:
    return self.statistics.count


def list_images(directory: str) -> list[str]:
  """PNG / JPEG files under `directory` (recursively, extensions in any case), sorted.

  Raises:
    FileNotFoundError: not a directory, or no image in it.
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory!r} is not a directory of images (or a .npz statistics "
                            "file).")
  paths = []
  for root, _, files in os.walk(directory):
    paths.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
  if not paths:
    raise FileNotFoundError(f"No PNG or JPEG images ({', '.join(IMAGE_EXTENSIONS)}) under "
                            f"{directory!r}.")
  return sorted(paths)


def _check_array(images) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4) or images.shape[0] == 0:
    raise ValueError(f"An image array must be [N, H, W, C] with N >= 1 and C in 1..4; got shape "
                     f"{images.shape}.")
  if images.dtype.kind == "f":
    top = float(images.max())
    if 0.0 < top <= 1.0:
      raise ValueError(f"Float images must hold values in [0, 255] (the graph's range); these "
                       f"reach only {top:.3g}: multiply [0, 1] images by 255.")
  elif images.dtype != np.uint8:
    raise ValueError(f"Image arrays must be uint8 or float in [0, 255]; got dtype {images.dtype}.")
  return images


def _preprocessed(index, image):
  return index, frontend.preprocess(image), tf.constant(True)


def _folder_images(paths: list[str]) -> tf.data.Dataset:
  """(index, image, readable) for every file, in order: exactly one element per file.

  Each file is read in its own one-element dataset whose decoding errors are dropped
  (`ignore_errors`) and replaced by a zero image marked unreadable, so the length stays known
  (the batch count can be padded for multi-worker strategies) and the host can name the file.
  """
  size = frontend.IMAGE_SIZE

  def load(index, path):
    return _preprocessed(index, preprocessing.decode_image_rgb(tf.io.read_file(path)))

  def one_file(index, path):
    unreadable = (index, tf.zeros([size, size, 3]), tf.constant(False))
    return (pipeline.plain_map(tf.data.Dataset.from_tensors((index, path)), load).ignore_errors()
            .concatenate(tf.data.Dataset.from_tensors(unreadable)).take(1))

  files = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), paths))
  dataset = files.interleave(one_file, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.apply(tf.data.experimental.assert_cardinality(len(paths)))


def _indexed_images(source) -> tuple[tf.data.Dataset, list[str] | None]:
  """(index, network input [299, 299, 3], readable) elements of a source, and a folder's files."""
  if isinstance(source, tf.data.Dataset):
    spec = source.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (3, 4, None):
      raise ValueError(f"A dataset source must yield images [H, W, C] or batches [B, H, W, C]; got "
                       f"elements {spec}.")
    dataset = source.unbatch() if spec.shape.rank == 4 else source
  elif isinstance(source, (str, os.PathLike)):
    paths = list_images(source)
    return _folder_images(paths), paths
  else:
    dataset = tf.data.Dataset.from_tensor_slices(_check_array(source))
  return pipeline.plain_map(dataset.enumerate(), _preprocessed,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), None


def image_batches(source, *, batch_size: int = DEFAULT_BATCH_SIZE, num_replicas: int = 1
                  ) -> tuple[tf.data.Dataset, list[str] | None]:
  """Front-ended, padded batches `{"images": [B, 299, 299, 3], "mask": [B], "index": [B]}`.

  Args:
    source: a folder, an array or a `tf.data.Dataset` (see the module docstring).
    batch_size: the global batch size B.
    num_replicas: the number of batches is padded (all-masked batches) to a multiple of it when
      the source's length is known (folders and arrays; datasets of known cardinality).

  Returns:
    (dataset, the folder's file paths or None); `index` is each image's position in the source,
    `mask` is False for padding and unreadable files.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  dataset, paths = _indexed_images(source)
  size = frontend.IMAGE_SIZE

  def pad(index, images, readable):
    n = tf.shape(images)[0]
    images = tf.pad(images, [[0, batch_size - n], [0, 0], [0, 0], [0, 0]])
    return {"images": tf.ensure_shape(images, [batch_size, size, size, 3]),
            "mask": tf.ensure_shape(tf.pad(readable, [[0, batch_size - n]]), [batch_size]),
            "index": tf.ensure_shape(tf.pad(index, [[0, batch_size - n]], constant_values=-1),
                                     [batch_size])}

  dataset = pipeline.plain_map(dataset.batch(batch_size), pad)
  cardinality = int(dataset.cardinality())
  if num_replicas > 1 and cardinality > 0:
    extra = -cardinality % num_replicas
    empty = {"images": tf.zeros([batch_size, size, size, 3]),
             "mask": tf.zeros([batch_size], tf.bool),
             "index": tf.fill([batch_size], tf.constant(-1, tf.int64))}
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(empty).repeat(extra))
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE), paths


def extraction_step(model: keras.Model, strategy: tf.distribute.Strategy, outputs: tuple[str, ...]
                    ) -> Callable:
  """A `tf.function` running `model` on a distributed batch; returns the gathered `outputs`,
  `mask` and `index`."""
  try:
    model_outputs = model.output
  except AttributeError:  # a model that was never called has no output
    model_outputs = None
  missing = [k for k in outputs if not isinstance(model_outputs, dict) or k not in model_outputs]
  if missing:
    raise ValueError(f"Model {model.name} has no output(s) {missing}; use "
                     "create_model('fid_inception_v3') (its outputs: logits, pool_3, "
                     "logits_unbiased).")

  def replica_step(batch):
    results = fused.fused_call(model, batch["images"], training=False)
    kept = {k: results[k] for k in outputs}
    # int32: collectives (strategy.gather) take no bool tensors.
    kept.update(mask=tf.cast(batch["mask"], tf.int32), index=batch["index"])
    return kept

  @tf.function(autograph=False)  # Python control flow only (see data.pipeline.plain_map)
  def step(batch):
    per_replica = strategy.run(replica_step, args=(batch,))
    return {k: strategy.gather(v, axis=0) for k, v in per_replica.items()}

  return step


def compute_activations(source, model: keras.Model, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        strategy: tf.distribute.Strategy | None = None,
                        keep_features: bool = False, keep_logits: bool = False,
                        progress: Callable[[int, float], None] | None = None,
                        warn: Callable[[str], None] | None = None) -> Activations:
  """Runs the FID network over a source; pool_3 statistics in float64 (and features / logits).

  Args:
    source: a folder, an image array or a `tf.data.Dataset` (module docstring).
    model: `create_model("fid_inception_v3")` with its weights (created under `strategy.scope()`
      when a strategy is given).
    batch_size: global batch size.
    strategy: a `tf.distribute.Strategy`; default: the current one.
    keep_features: keep the [n, 2048] pool_3 features (KID).
    keep_logits: keep the [n, 1008] bias-free logits (Inception Score).
    progress: called after every batch with (images so far, seconds since the start).
    warn: called with one line for every file that could not be decoded (skipped).

  Returns:
    `Activations`.

  Raises:
    ValueError: no image could be read, or a model without the FID outputs.
  """
  strategy = strategy or tf.distribute.get_strategy()
  outputs = ("pool_3",) + (("logits_unbiased",) if keep_logits else ())
  step = extraction_step(model, strategy, outputs)
  dataset, paths = image_batches(source, batch_size=batch_size,
                                 num_replicas=strategy.num_replicas_in_sync)
  statistics = ActivationStatistics()
  kept: dict[str, list[np.ndarray]] = {k: [] for k in outputs}
  seen: list[np.ndarray] = []
  start = time.perf_counter()
  for batch in strategy.experimental_distribute_dataset(dataset):
    result = step(batch)
    mask = result["mask"].numpy().astype(bool)
    features = result["pool_3"].numpy()[mask]
    statistics.update(features)
    if keep_features:
      kept["pool_3"].append(features)
    if keep_logits:
      kept["logits_unbiased"].append(result["logits_unbiased"].numpy()[mask])
    seen.append(result["index"].numpy()[mask])
    if progress is not None:
      progress(statistics.count, time.perf_counter() - start)
  skipped = []
  if paths is not None:
    read = set(np.concatenate(seen).tolist()) if seen else set()
    skipped = [p for i, p in enumerate(paths) if i not in read]
    for path in skipped:
      if warn is not None:
        warn(f"skipped {path}: not a decodable PNG/JPEG image")
  if statistics.count == 0:
    raise ValueError(f"No image of {source!r} could be read." if paths is not None else
                     "The source holds no image.")

  def stacked(name):
    return np.concatenate(kept[name]) if name in kept and kept[name] else None

  return Activations(statistics=statistics,
                     features=stacked("pool_3") if keep_features else None,
                     logits_unbiased=stacked("logits_unbiased"), skipped=skipped)
