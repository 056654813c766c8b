"""The tf.data input pipeline: `make_dataset` and `dataset_info`.

One function feeds one replica or hundreds: call it as the `dataset_fn` of
`strategy.distribute_datasets_from_function` with the `InputContext` it receives (or without one on
a single device). Sources are a builder directory (`<split>-*-of-*` shards + `manifest.json`), a
TFRecord file pattern, or `"tfds:<name>"` (a tfds dataset already prepared on disk).

Training streams, per input pipeline:

    files (sharded per pipeline) -> per-epoch seeded file shuffle -> parallel interleave
    -> [record sharding when there are fewer files than pipelines] -> [cache]
    -> per-epoch seeded shuffle -> epochs -> enumerate -> skip(resumed batches)
    -> parallel parse + decode + Inception train preprocessing (stateless, seeded per example)
    -> skip undecodable -> batch(drop_remainder) -> prefetch

With `color_distortion_on_device=True` the train preprocessing stops after the crop, resize and
flip and yields uint8 batches; the step applies `preprocessing.distort_color_batch` (TPU style:
the per-pixel colour work runs batched on the accelerator, the host sends 4x fewer bytes).

Each epoch is shuffled with a seed derived from `(seed, epoch)` and every example is augmented with
the seed `(seed, pipeline, position in the stream)`. With `deterministic=True` the stream is
therefore a pure function of `seed`, and `skip_batches=k` resumes it exactly at batch `k`: whole
epochs are skipped without reading them (when per-shard counts are known from the manifest) and
only the remainder of the current epoch is read — not decoded — to be skipped.

Eval streams read each example of the pipeline's shard once, never drop one: the last batch is
padded to the static batch size and `"mask"` (1 real, 0 padding) says which rows count. Whole
padding batches (mask 0) are appended so that every pipeline yields the same number of batches
(from the manifest's per-shard counts) and a multiple of the replicas it feeds: a distributed
iterator otherwise stops at the shortest pipeline / the last incomplete step and drops the rest.

Records whose image fails to decode are dropped and counted (`decode_error_count()`), not fatal.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import threading
import uuid
from typing import Optional, Sequence, Union

import tensorflow as tf

from inception_tf.data import builder
from inception_tf.data import preprocessing as preprocessing_lib
from inception_tf.data import tfrecord

TFDS_PREFIX = "tfds:"
PREPROCESSING = preprocessing_lib.PREPROCESSING_KINDS
DEFAULT_SHUFFLE_BUFFER = 10_000
_MAX_EPOCHS = 2**62
_READ_BUFFER_BYTES = 8 * 1024 * 1024
_MAX_CYCLE_LENGTH = 16


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a training/eval run needs to know about a data source.

  Attributes:
    name: dataset name.
    num_classes: logits width the model needs (number of classes + labels_offset).
    labels_offset: 1 when label 0 is background (slim's layout), else 0.
    num_examples: split -> number of examples (empty for tfds datasets without split info).
    class_names: index = label (index 0 is "background" when labels_offset is 1).
    splits: available split names.
    files: split -> shard file names with their example counts (builder directories only).
  """

  name: str
  num_classes: int
  labels_offset: int
  num_examples: dict
  class_names: list
  splits: tuple
  files: dict = dataclasses.field(default_factory=dict, repr=False)


def _is_tfds(source: str) -> bool:
  return isinstance(source, str) and source.startswith(TFDS_PREFIX)


def _tfds_builder(source: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name = source[len(TFDS_PREFIX):]
  if not name:
    raise ValueError(f"Expected 'tfds:<name>' (e.g. 'tfds:imagenet2012'); got {source!r}.")
  return tfds.builder(name, data_dir=os.environ.get("TFDS_DATA_DIR") or None)


def _manifest_dir(source: str) -> Optional[str]:
  directory = source if tf.io.gfile.isdir(source) else os.path.dirname(source)
  if directory and tf.io.gfile.exists(os.path.join(directory, builder.MANIFEST_NAME)):
    return directory
  return None


def dataset_info(source: Union[str, os.PathLike]) -> DatasetInfo:
  """Reads class and split information from the builder's manifest or tfds' info.

  Args:
    source: a builder directory, a file pattern inside one, or `"tfds:<name>"` (read from
      `$TFDS_DATA_DIR` when set, else tfds' default data directory).

  Returns:
    A `DatasetInfo`.

  Raises:
    FileNotFoundError: no manifest next to the TFRecords.
  """
  source = os.fspath(source)
  if _is_tfds(source):
    tfds_builder = _tfds_builder(source)
    _, label_key, _ = builder.tfds_feature_keys(tfds_builder.info)
    names = list(tfds_builder.info.features[label_key].names)
    splits = dict(tfds_builder.info.splits)
    return DatasetInfo(name=tfds_builder.info.name, num_classes=len(names), labels_offset=0,
                       num_examples={k: int(v.num_examples) for k, v in splits.items()},
                       class_names=names, splits=tuple(splits))
  directory = _manifest_dir(source)
  if directory is None:
    raise FileNotFoundError(f"No {builder.MANIFEST_NAME} for {source!r}; TFRecords written by "
                            "tools/build_tfrecords.py carry one (a completed build writes it last).")
  manifest = builder.read_manifest(directory)
  classes = sorted(manifest["classes"], key=lambda c: c["label"])
  return DatasetInfo(
      name=manifest.get("name", ""), num_classes=int(manifest["num_classes"]),
      labels_offset=int(manifest["labels_offset"]),
      num_examples={k: int(v["num_examples"]) for k, v in manifest["splits"].items()},
      class_names=[c["text"] or c["synset"] for c in classes], splits=tuple(manifest["splits"]),
      files={k: [(f["name"], int(f["num_examples"])) for f in v["files"]]
             for k, v in manifest["splits"].items()})


def list_files(source: Union[str, os.PathLike], split: str) -> tuple[list[str], Optional[list[int]]]:
  """Shard files of `split` in `source` and their example counts (None when unknown).

  Raises:
    FileNotFoundError: no file matches.
  """
  source = os.fspath(source)
  if tf.io.gfile.isdir(source):
    directory = _manifest_dir(source)
    if directory is not None:
      manifest = builder.read_manifest(directory)
      if split not in manifest["splits"]:
        raise FileNotFoundError(f"Split {split!r} is not in {source!r}; it has "
                                f"{sorted(manifest['splits'])}.")
      entries = manifest["splits"][split]["files"]
      return ([os.path.join(source, e["name"]) for e in entries],
              [int(e["num_examples"]) for e in entries])
    pattern = re.compile(rf"^{re.escape(split)}-\d+-of-\d+$")
    files = sorted(os.path.join(source, f) for f in tf.io.gfile.listdir(source) if pattern.match(f))
    where = f"{source}/{split}-*-of-*"
  else:
    files = sorted(tf.io.gfile.glob(source))
    where = source
  if not files:
    raise FileNotFoundError(f"No TFRecord files match {where!r}. Build them with "
                            "tools/build_tfrecords.py, or pass a directory, a file pattern or "
                            "'tfds:<name>'.")
  return files, None


class _Counter:
  """A process-wide int64 counter usable inside tf.data functions under any strategy.

  A raw resource variable: not a `tf.Variable`, so distribution strategies do not mirror it.
  """

  def __init__(self):
    with tf.init_scope():
      self.handle = tf.raw_ops.VarHandleOp(dtype=tf.int64, shape=[],
                                           shared_name=f"inception_tf_{uuid.uuid4().hex}")
      tf.raw_ops.AssignVariableOp(resource=self.handle, value=tf.constant(0, tf.int64))

  def add(self, value) -> tf.Operation:
    return tf.raw_ops.AssignAddVariableOp(resource=self.handle, value=tf.cast(value, tf.int64))

  def value(self) -> int:
    with tf.init_scope():
      return int(tf.raw_ops.ReadVariableOp(resource=self.handle, dtype=tf.int64))


_counters: dict[str, _Counter] = {}
_counters_lock = threading.Lock()


def _counter(name: str) -> _Counter:
  with _counters_lock:
    if name not in _counters:
      _counters[name] = _Counter()
    return _counters[name]


def decode_error_count(error_counter: Optional[str] = None) -> int:
  """Records dropped because their image failed to decode: those of the pipelines made with
  `make_dataset(..., error_counter=error_counter)`, or of every pipeline of this process (None).

  Counted as records that entered the decoder minus images it produced: exact once a pipeline is
  drained (e.g. after an eval pass); while a training stream runs it may include the few records
  being decoded at that moment.
  """
  with _counters_lock:
    names = sorted({n.rpartition("/")[0] for n in _counters}) if error_counter is None else [
        error_counter]
  return sum(_counter(f"{n}/decode_attempts").value() - _counter(f"{n}/decode_successes").value()
             for n in names)


def _counting(counter_name: str):
  """A map function passing its element through and adding 1 to a process-wide counter."""
  counter = _counter(counter_name)

  def fn(*element):
    with tf.control_dependencies([counter.add(1)]):
      element = tf.nest.map_structure(tf.identity, element)
    return element if len(element) > 1 else element[0]

  return fn


def plain_map(ds: tf.data.Dataset, fn, **kwargs) -> tf.data.Dataset:
  """`ds.map(fn, **kwargs)` without AutoGraph.

  The library's map functions branch and loop only on Python values (dtypes, ranks, sizes,
  options), never on tensors, so AutoGraph's source transformation of them and of everything they
  call buys nothing and is a large part of a tool's start (WORKSPACE_NOTES.md, "Tool start-up").
  A function that did branch on a tensor fails when traced ("using a `tf.Tensor` as a Python
  `bool` is not allowed"), so this cannot silently change a result.
  """
  return ds.map(tf.autograph.experimental.do_not_convert(fn), **kwargs)


def decode_skipping_errors(ds: tf.data.Dataset, decode_fn, deterministic: bool,
                           error_counter: str) -> tf.data.Dataset:
  """Parallel `decode_fn`; elements whose decode raises are dropped and counted under
  `error_counter` (see `decode_error_count`).

  Attempts are counted before the decode and successes after it, in separate functions, so a
  failing decode cannot abort the count.
  """
  if not error_counter or "/" in error_counter:
    raise ValueError(f"error_counter must be a non-empty name without '/'; got {error_counter!r}.")
  ds = plain_map(ds, _counting(f"{error_counter}/decode_attempts"))
  ds = plain_map(ds, decode_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
  ds = ds.ignore_errors()
  return plain_map(ds, _counting(f"{error_counter}/decode_successes"))


def _image_hw(image_size) -> tuple[int, int]:
  if isinstance(image_size, int):
    return image_size, image_size
  if (isinstance(image_size, Sequence) and len(image_size) == 2
      and all(isinstance(v, int) for v in image_size)):
    return int(image_size[0]), int(image_size[1])
  raise ValueError(f"image_size must be an int or (height, width); got {image_size!r}.")


def make_dataset(source: Union[str, os.PathLike], *, split: str, is_training: bool, batch_size: int,
                 image_size, input_context: Optional[tf.distribute.InputContext] = None,
                 seed: Optional[int] = None, deterministic: bool = False, cache: bool = False,
                 dtype: tf.dtypes.DType = tf.float32, num_epochs: Optional[int] = None,
                 skip_batches: int = 0, preprocessing: str = "inception", fast_mode: bool = True,
                 shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
                 central_fraction: float = preprocessing_lib.CENTRAL_FRACTION,
                 with_filenames: bool = False,
                 color_distortion_on_device: bool = False,
                 error_counter: str = "default") -> tf.data.Dataset:
  """The train or eval `tf.data.Dataset` of one input pipeline.

  Args:
    source: builder directory, TFRecord file pattern, or `"tfds:<name>"` (tfds dataset on disk).
    split: `train`, `validation`, ... (for a file pattern only used in messages).
    is_training: train stream (shuffled, repeated, augmented, full batches) or one eval pass.
    batch_size: examples per batch of THIS pipeline (the per-replica batch size with
      `distribute_datasets_from_function`).
    image_size: output size, int or (height, width).
    input_context: from `distribute_datasets_from_function`; shards files per input pipeline (or
      records when there are fewer files than pipelines).
    seed: seed of the shuffles and augmentations; None draws one at random.
    deterministic: make the element order a pure function of `seed` (0 when None).
    cache: cache the serialized records in memory (small datasets).
    dtype: image dtype, e.g. `tf.bfloat16` on TPUs (not used for the uint8 training images of
      `color_distortion_on_device`).
    num_epochs: training epochs (None: forever); eval: passes (None: one).
    skip_batches: training batches to skip (resuming at step `skip_batches`): with
      `deterministic=True` and the same seed, the resumed stream equals the uninterrupted one
      from that batch on (records are skipped before decoding, so a record that failed to decode
      earlier in the stream shifts the resumed stream by one example).
    preprocessing: "inception" (slim's inception_preprocessing, [-1, 1] inputs), "vgg" (slim's
      vgg_preprocessing: RGB mean-subtracted 0..255 inputs, for resnet_v1_50), "torchvision"
      (`preprocessing.by_kind("torchvision")`: random resized crop + flip / resize 256 + central
      224, ImageNet mean/std, for the torchvision-layout nets) or "cifar"
      (`preprocessing.by_kind("cifar")`: the ResNet paper's pad 4 + random crop + flip / the whole
      image, [-1, 1], for its CIFAR nets). Every kind but "inception" makes square inputs.
    fast_mode: slim's fast mode of the train preprocessing (default True, as slim): bilinear
      resize, brightness then saturation; False: 4 resize methods, 4 colour-op orders.
    shuffle_buffer_size: record shuffle buffer of a training stream.
    central_fraction: eval central crop fraction (not used by "cifar": the whole image).
    with_filenames: add `"filenames"` (string [B]) to every element.
    color_distortion_on_device: training only, Inception preprocessing only: the TPU-style split.
      The host does only the crop (fused decode-and-crop), resize and flip and yields uint8
      images in 0..255 (`preprocessing.preprocess_for_train_uint8`); the training step MUST then
      call `preprocessing.distort_color_batch(images, seed, fast_mode=fast_mode)` on each batch,
      which applies slim's colour distortion and the [-1, 1] scaling on the accelerator (the
      trainer does with `TrainConfig.color_distortion_on_device`).
    error_counter: name under which records that fail to decode are counted
      (`decode_error_count(error_counter)`), e.g. one per run and split.

  Returns:
    Training: `{"images": dtype [B, H, W, 3] in [-1, 1] ("vgg": mean-subtracted; uint8 0..255
    with `color_distortion_on_device`), "labels": int32 [B]}` batches with a static batch size.
    Eval: the same plus `"mask"`:
    float32 [B], 1 for real examples, 0 for padding (the end of the last batch, and whole padding
    batches that equalise the number of batches across pipelines and replicas).

  Raises:
    ValueError: invalid arguments (the message names the value and the allowed ones).
    FileNotFoundError: no data at `source`.
  """
  source = os.fspath(source)
  height, width = _image_hw(image_size)
  if preprocessing not in PREPROCESSING:
    raise ValueError(f"preprocessing must be one of {PREPROCESSING}; got {preprocessing!r}.")
  if preprocessing != "inception" and height != width:
    raise ValueError(f"{preprocessing} preprocessing makes square inputs; got "
                     f"image_size={image_size}.")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int (per replica); got {batch_size!r}.")
  if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
    raise ValueError(f"num_epochs must be None or a positive int; got {num_epochs!r}.")
  if not isinstance(skip_batches, int) or skip_batches < 0:
    raise ValueError(f"skip_batches must be an int >= 0; got {skip_batches!r}.")
  if skip_batches and not is_training:
    raise ValueError("skip_batches only applies to training streams (is_training=True).")
  if color_distortion_on_device and (not is_training or preprocessing != "inception"):
    raise ValueError("color_distortion_on_device only applies to training streams with Inception "
                     f"preprocessing; got is_training={is_training}, "
                     f"preprocessing={preprocessing!r}.")
  dtype = tf.dtypes.as_dtype(dtype)
  if not dtype.is_floating:
    raise ValueError(f"dtype must be a float dtype (float32, bfloat16, float16); got {dtype!r}.")
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  if seed is None:
    seed = 0 if deterministic else random.SystemRandom().randrange(2**31)
  seed = int(seed)

  if _is_tfds(source):
    records, sizes, parse = _tfds_records(source, split, num_pipelines, pipeline_id, seed,
                                          is_training, deterministic)
  else:
    records, sizes, parse = _tfrecord_records(source, split, num_pipelines, pipeline_id)
  # `records(epoch_seed, shuffle)` returns one epoch of this pipeline's raw records; `sizes` are
  # the examples per epoch of every pipeline (None when unknown).

  if is_training:
    ds, start_index, skip = _training_stream(
        records, sizes[pipeline_id] if sizes else None, seed=seed, cache=cache,
        num_epochs=num_epochs, skip=skip_batches * batch_size,
        shuffle_buffer_size=shuffle_buffer_size)

    def decode(index, raw):
      example = parse(raw)
      example_seed = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + pipeline_id, index])
      if preprocessing != "inception":  # `for_model`'s: sides scaled with the size
        image = preprocessing_lib.by_kind(preprocessing, height, is_training=True)(
            example["image_bytes"], seed=example_seed)
      elif color_distortion_on_device:  # uint8, colour distortion left to the training step
        image = preprocessing_lib.preprocess_for_train_uint8(
            example["image_bytes"], height, width, example["bbox"], fast_mode=fast_mode,
            seed=example_seed)
      else:
        image = preprocessing_lib.preprocess_for_train(example["image_bytes"], height, width,
                                                       example["bbox"], fast_mode=fast_mode,
                                                       seed=example_seed)
      if not color_distortion_on_device:
        image = tf.cast(image, dtype)
      out = {"images": image, "labels": example["label"]}
      if with_filenames:
        out["filenames"] = example["filename"]
      return out

    ds = ds.enumerate(start=start_index).skip(skip)
    ds = decode_skipping_errors(ds, decode, deterministic, error_counter)
    ds = ds.batch(batch_size, drop_remainder=True)
  else:
    ds = records(seed, False)
    if cache:
      ds = ds.cache()
    if num_epochs and num_epochs > 1:
      ds = ds.repeat(num_epochs)

    def decode(raw):
      example = parse(raw)
      if preprocessing != "inception":
        image = preprocessing_lib.by_kind(preprocessing, height,
                                          crop_fraction=central_fraction)(example["image_bytes"])
      else:
        image = preprocessing_lib.preprocess_for_eval(example["image_bytes"], height, width,
                                                      central_fraction=central_fraction)
      out = {"images": tf.cast(image, dtype), "labels": example["label"],
             "mask": tf.constant(1.0, tf.float32)}
      if with_filenames:
        out["filenames"] = example["filename"]
      return out

    ds = decode_skipping_errors(ds, decode, deterministic, error_counter)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = pad_batches(ds, batch_size)
    replicas = input_context.num_replicas_in_sync if input_context else 1
    ds = _pad_batch_count(ds, batch_size=batch_size, pipeline_sizes=sizes,
                          passes=num_epochs or 1,
                          replicas_per_pipeline=max(1, replicas // num_pipelines))
  ds = ds.prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = deterministic
  options.experimental_optimization.map_parallelization = True
  # One thread per op: the parallel map already keeps every core busy with whole images, and ops
  # that split one image across the intra-op pool (resize) then only add contention (timings in
  # WORKSPACE_NOTES.md).
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options)


def pad_batches(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
  """Batches of up to `batch_size` -> full batches: a short last batch gets zero rows, mask 0."""
  return plain_map(ds, lambda batch: _pad_batch(batch, batch_size),
                   num_parallel_calls=tf.data.AUTOTUNE)


def _pad_batch(batch: dict, batch_size: int) -> dict:
  """Pads every tensor of a (possibly short) batch with zeros to `batch_size` rows."""
  num = tf.shape(batch["labels"])[0]

  def pad(t):
    paddings = [[0, batch_size - num]] + [[0, 0]] * (t.shape.rank - 1)
    # Only the last batch is short: full batches pass through without a copy.
    padded = tf.cond(num < batch_size, lambda: tf.pad(t, paddings), lambda: t)
    return tf.ensure_shape(padded, [batch_size] + t.shape.as_list()[1:])

  return {k: pad(v) for k, v in batch.items()}


def _pad_batch_count(ds: tf.data.Dataset, *, batch_size: int, pipeline_sizes: Optional[list[int]],
                     passes: int, replicas_per_pipeline: int) -> tf.data.Dataset:
  """Appends all-padding batches (mask 0) so that every pipeline yields the same number of batches,
  a multiple of the replicas it feeds.

  A distributed iterator stops (dropping the rest) when a pipeline runs out before the others or
  when the last step cannot give every replica a batch; padding keeps every example counted. With
  known per-pipeline sizes every pipeline yields exactly `ceil(max size / batch)` batches per pass
  (rounded up to a multiple of `replicas_per_pipeline`); otherwise only the multiple is ensured.
  """
  zeros = {k: tf.zeros(spec.shape, spec.dtype) for k, spec in ds.element_spec.items()}
  padding = tf.data.Dataset.from_tensors(zeros).repeat()
  multiple = replicas_per_pipeline
  if pipeline_sizes is not None:
    per_pass = max(-(-size // batch_size) for size in pipeline_sizes)
    target = -(-(per_pass * passes) // multiple) * multiple
    return ds.concatenate(padding).take(target)
  if multiple == 1:
    return ds
  # Group the batches by `multiple`, complete the last group with padding batches, ungroup.
  grouped = ds.batch(multiple)

  def complete(group):
    missing = multiple - tf.shape(group["mask"])[0]
    return {k: tf.concat([v, tf.repeat(zeros[k][tf.newaxis], missing, axis=0)], axis=0)
            for k, v in group.items()}

  return plain_map(grouped, complete).unbatch()


# The graph-level seed TF gives a seeded op when no global seed is set (`DEFAULT_GRAPH_SEED`).
_GRAPH_SEED = 87654321


def _pin_graph_seed() -> None:
  """Makes the seeded ops of the dataset function being traced (the epoch's file and record
  shuffles, tfds' file shuffle) depend on their own seeds alone, whatever the global seed.

  An op's seeds are (graph-level seed, op seed), and the graph-level seed is the global one once a
  user calls `keras.utils.set_random_seed` / `tf.random.set_seed`: the order would follow it, and
  a global seed of 0 makes TF 2.21's `random_seed.get_seed` compare a tensor op seed with 0 in
  Python, which fails to trace ("Using a symbolic tf.Tensor as a Python bool"). While tf.data
  traces a function (graph mode), `tf.random.set_seed` sets that function graph's seed only, never
  the global one: to the value TF uses when no global seed is set, so the order is the one the
  pipeline has always produced without a global seed.
  """
  if tf.executing_eagerly():  # `set_seed` would set the process's global seed
    raise AssertionError("_pin_graph_seed must be called while tf.data traces a function.")
  tf.random.set_seed(_GRAPH_SEED)


def _training_stream(records, epoch_size: Optional[int], *, seed: int, cache: bool,
                     num_epochs: Optional[int], skip: int, shuffle_buffer_size: int):
  """Epoch-structured shuffled stream.

  Returns:
    `(dataset, index of its first element in the full stream, records still to skip)`.
  """
  total_epochs = num_epochs or _MAX_EPOCHS
  if cache:
    cached = records(seed, False).cache()
    one_epoch_source = lambda epoch_seed: cached  # noqa: E731
  else:
    one_epoch_source = lambda epoch_seed: records(epoch_seed, True)  # noqa: E731

  def one_epoch(epoch):  # traced by flat_map: everything it creates is in one function graph
    _pin_graph_seed()
    epoch_seed = tf.constant(seed, tf.int64) * 7919 + epoch
    return one_epoch_source(epoch_seed).shuffle(shuffle_buffer_size, seed=epoch_seed,
                                                reshuffle_each_iteration=False)

  if epoch_size:  # whole epochs are skipped without reading them
    first_epoch = min(skip // epoch_size, total_epochs)
    epochs = tf.data.Dataset.range(first_epoch, total_epochs)
    start = first_epoch * epoch_size
  else:  # unknown epoch size (tfds sharded by file, patterns without manifest): read to skip
    epochs = tf.data.Dataset.range(total_epochs)
    start = 0
  return epochs.flat_map(one_epoch), start, skip - start


def _record_shard_sizes(total: int, num_pipelines: int) -> list[int]:
  """Examples per pipeline when records are dealt round-robin (`Dataset.shard`)."""
  return [len(range(i, total, num_pipelines)) for i in range(num_pipelines)]


def _tfrecord_records(source, split, num_pipelines, pipeline_id):
  files, counts = list_files(source, split)
  shard_files = len(files) >= num_pipelines
  if shard_files:
    files = files[pipeline_id::num_pipelines]
    sizes = [sum(counts[i::num_pipelines]) for i in range(num_pipelines)] if counts else None
  else:
    sizes = _record_shard_sizes(sum(counts), num_pipelines) if counts else None
  cycle_length = min(len(files), _MAX_CYCLE_LENGTH)

  def records(epoch_seed, shuffle_files):
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files and shard_files and len(files) > 1:  # in `one_epoch`: graph seed pinned
      ds = ds.shuffle(len(files), seed=epoch_seed, reshuffle_each_iteration=False)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=_READ_BUFFER_BYTES),
        cycle_length=cycle_length, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True if not shard_files else None)
    if not shard_files:
      ds = ds.shard(num_pipelines, pipeline_id)
    return ds

  return records, sizes, tfrecord.parse_example


def _tfds_records(source, split, num_pipelines, pipeline_id, seed, is_training, deterministic):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds_builder = _tfds_builder(source)
  image_key, label_key, file_key = builder.tfds_feature_keys(tfds_builder.info)
  try:
    split_info = tfds_builder.info.splits[split]
    num_files, total = split_info.num_shards, int(split_info.num_examples)
  except KeyError:
    num_files, total = 0, None
  shard_files = num_pipelines > 1 and num_files >= num_pipelines
  input_context = (tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                              input_pipeline_id=pipeline_id)
                   if shard_files else None)
  sizes = None
  if total is not None and not shard_files:
    sizes = _record_shard_sizes(total, num_pipelines)

  def records(epoch_seed, shuffle_files):
    del epoch_seed  # tfds' file shuffle takes a Python int
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed,
                                  interleave_cycle_length=_MAX_CYCLE_LENGTH)
    ds = tfds_builder.as_dataset(split=split, shuffle_files=shuffle_files and is_training,
                                 read_config=read_config,
                                 decoders={image_key: tfds.decode.SkipDecoding()})
    if num_pipelines > 1 and not shard_files:
      ds = ds.shard(num_pipelines, pipeline_id)
    keys = [image_key, label_key] + ([file_key] if file_key else [])
    return plain_map(ds, lambda ex: {k: ex[k] for k in keys})

  def parse(raw):
    return {"image_bytes": raw[image_key], "label": tf.cast(raw[label_key], tf.int32),
            "filename": raw[file_key] if file_key else tf.constant(""),
            "bbox": tf.zeros([1, 0, 4], tf.float32)}

  del deterministic
  return records, sizes, parse
