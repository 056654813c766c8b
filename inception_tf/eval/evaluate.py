"""Evaluation: single-crop, 10/12/144-crop protocols, ensembles, EMA weights; every example once.

    report = evaluate(ModelSpec("inception_v3", checkpoint="/tmp/model"), "/data/imagenet",
                      split="validation", crops=144)

What happens:

1. Each model is built (`create_model`) under the strategy's scope and loaded from its checkpoint:
   one of our training checkpoints (a model dir or a `ckpt-N` prefix; EMA weights by default when
   the run kept them), a TF-slim checkpoint (by name; its `ExponentialMovingAverage` shadows by
   default when present) or a `.keras` file.
2. The records are read in order; each JPEG is decoded once and cut into all the crops of the
   protocol (`inception_tf.eval.crops`), one `[crops, S, S, 3]` block per image (one per distinct
   input size of the ensemble). Blacklisted validation images are filtered out first.
3. The stream is padded with mask-0 examples to a whole number of global batches (static shapes,
   TPU-friendly); the model runs once per batch of `batch_size` images x `crops` crops, under any
   single-host `tf.distribute` strategy. Softmax probabilities are mapped to the data set's label
   space, averaged over the crops of an image and over the models, and only examples with mask 1
   count, so every example is counted exactly once whatever the batch size and replica count.
   This step (`make_replica_step`: probabilities, top-k, cross-entropy, mask) is also the one the
   trainer's in-loop evaluation runs, so both report the same numbers for the same weights.

Class layouts. TF-slim's ImageNet records use 1001 classes (label 0 = background, 1..1000 the
classes); tfds' use 1000. A model with one class more than the data (1001 on 1000) has its
background logit dropped (softmax over the remaining logits, `drop_background_logit`); a model with
one class fewer than data whose labels start at 1 gets a zero-probability background column
(`add_background_column`); otherwise the widths must be equal (`identity`). The mapping is written
into the report for every model.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sys
import time
import uuid
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from inception_tf import atomic
from inception_tf import checkpoints
from inception_tf.eval import crops as crops_lib
from inception_tf.eval import metrics as metrics_lib
from inception_tf.models import fused

FORMAT_TRAINING = checkpoints.loading.FORMAT_RUN
FORMAT_SLIM = checkpoints.loading.FORMAT_SLIM
FORMAT_KERAS = checkpoints.loading.FORMAT_KERAS
FORMAT_IN_MEMORY = "in_memory"
_DEFAULT_MODEL_BATCH = 144  # crops per model call when the batch size is not given


class EvaluationError(ValueError):
  """Bad evaluation input: the message says what was received and what is allowed."""


@dataclasses.dataclass
class ModelSpec:
  """One member of the evaluated ensemble.

  Attributes:
    name: a registry name (`list_models()`); optional for `.keras` files and for a training
      model dir that recorded its config.
    checkpoint: our checkpoint dir / prefix, a TF-slim checkpoint, or a `.keras` file.
    image_size: input size; default: the evaluation's `image_size`, else the run's, else the
      network's default.
    num_classes: logits width; default: from the checkpoint (slim), the run's config, or the data.
    options: family options for `create_model` (depth_multiplier, ...).
    use_ema: None = EMA weights when the checkpoint has them.
    model: an already built (and loaded) Keras model instead of `name`/`checkpoint`.
  """

  name: str | None = None
  checkpoint: str | None = None
  image_size: int | None = None
  num_classes: int | None = None
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  use_ema: bool | None = None
  model: keras.Model | None = None


@dataclasses.dataclass
class _Member:
  """A loaded ensemble member."""

  model: keras.Model
  name: str
  image_size: int
  num_classes: int
  checkpoint: str | None
  format: str
  step: int | None
  ema_used: bool | None
  mapping: str = "identity"
  options: dict = dataclasses.field(default_factory=dict)
  preprocessing: str | None = None
  label_map: Any = None

  def describe(self) -> dict:
    return {"name": self.name, "checkpoint": self.checkpoint, "format": self.format,
            "step": self.step, "ema_used": self.ema_used, "image_size": self.image_size,
            "num_classes": self.num_classes, "class_mapping": self.mapping,
            "options": self.options, "preprocessing": self.preprocessing}


# ----------------------------------------------------------------------------------------------
# Inputs.


def read_blacklist(path: str) -> list[int]:
  """Reads ImageNet's validation blacklist: one 1-based image id per line (ILSVRC2012_val_<id>).

  The devkit file (`ILSVRC2015_clsloc_validation_blacklist.txt`) lists 1,762 ids; blank lines and
  `#` comments are ignored.

  Raises:
    FileNotFoundError: no file at `path`.
    EvaluationError: a line that is not a positive integer.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Blacklist file {path!r} does not exist.")
  ids = []
  with tf.io.gfile.GFile(path) as f:
    for number, line in enumerate(f, 1):
      line = line.split("#", 1)[0].strip()
      if not line:
        continue
      if not line.isdigit() or int(line) < 1:
        raise EvaluationError(f"{path}:{number}: expected a positive image id, got {line!r}.")
      ids.append(int(line))
  return sorted(set(ids))


def _validation_id(filename: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
  """The devkit id of a record: the number in `..._val_00000123.JPEG`, else its 1-based position."""
  pattern = r"^(?:.*\D)?(\d+)\.[A-Za-z]+$"
  has_id = tf.strings.regex_full_match(filename, pattern)
  digits = tf.where(has_id, tf.strings.regex_replace(filename, pattern, r"\1"), "0")
  return tf.where(has_id, tf.strings.to_number(digits, tf.int64), position)


def _data_info(source: str | None):
  """`inception_tf.data.dataset_info` of the source, or None when it has no manifest."""
  from inception_tf import data as data_lib  # pylint: disable=import-outside-toplevel
  try:
    return data_lib.dataset_info(source)
  except FileNotFoundError:
    return None


def _raw_examples(source: str, split: str) -> tf.data.Dataset:
  """Records in data order as {"image_bytes", "label", "filename"} (no shuffling)."""
  from inception_tf.data import builder  # pylint: disable=import-outside-toplevel
  from inception_tf.data import pipeline  # pylint: disable=import-outside-toplevel
  from inception_tf.data import tfrecord  # pylint: disable=import-outside-toplevel
  if source.startswith(pipeline.TFDS_PREFIX):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    tfds_builder = pipeline._tfds_builder(source)  # pylint: disable=protected-access
    image_key, label_key, file_key = builder.tfds_feature_keys(tfds_builder.info)
    ds = tfds_builder.as_dataset(split=split, shuffle_files=False,
                                 decoders={image_key: tfds.decode.SkipDecoding()})
    return pipeline.plain_map(ds, lambda e: {
        "image_bytes": e[image_key], "label": tf.cast(e[label_key], tf.int32),
        "filename": e[file_key] if file_key else tf.constant("", tf.string)})
  files, _ = pipeline.list_files(source, split)
  return pipeline.plain_map(
      tf.data.TFRecordDataset(files),
      lambda s: {k: v for k, v in tfrecord.parse_example(s).items() if k != "bbox"})


def _decode(example: dict, *, accurate_jpeg: bool) -> tf.Tensor:
  from inception_tf.data.preprocessing import decode_image_rgb  # pylint: disable=import-outside-toplevel
  if "image" in example:  # already decoded (in-memory data sets)
    image = example["image"]
    return tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image
  return decode_image_rgb(example["image_bytes"], accurate_jpeg=accurate_jpeg)


def input_key(image_size: int, preprocessing: str) -> str:
  """The batch key of the inputs one ensemble member reads: `images_<size>_<preprocessing>`."""
  return f"images_{image_size}_{preprocessing}"


def build_dataset(raw: tf.data.Dataset, *, inputs: Sequence[tuple[int, str]], crops: int,
                  global_batch_size: int, central_fraction: float = 0.875,
                  blacklist: Sequence[int] = (), max_examples: int | None = None,
                  error_counter: str = "evaluate") -> tf.data.Dataset:
  """Raw records -> padded global batches {input_key(S, kind): [B, crops, S, S, 3], "labels",
  "mask"}.

  Every batch is full (mask 0 pads the last one) and the stream ends after the last real example.

  Args:
    raw: records as {"image_bytes" (or decoded "image"), "label", "filename"}, in data order.
    inputs: the distinct (input size, preprocessing kind) pairs of the ensemble. One crop is the
      kind's own eval transform (`preprocessing.by_kind`); the multi-crop protocols cut the
      protocol's geometry and map it with `crops.normalizer(kind)`.
    crops: 1, 10, 12 or 144.
    global_batch_size: images per global batch.
    central_fraction: of the 1-crop protocol.
    blacklist: devkit image ids to leave out (see `read_blacklist`).
    max_examples: evaluate only the first N (after the blacklist).
    error_counter: records whose image fails to decode are skipped (not fatal) and counted under
      this name: `inception_tf.data.decode_error_count(error_counter)`.
  """
  from inception_tf.data import image_ops  # pylint: disable=import-outside-toplevel
  from inception_tf.data import preprocessing  # pylint: disable=import-outside-toplevel
  crops = crops_lib.validate_crops(crops)
  raw = raw.enumerate(start=1)
  if blacklist:
    excluded = tf.constant(sorted(blacklist), tf.int64)

    def keep(position, example):
      image_id = _validation_id(example["filename"], position)
      return tf.logical_not(tf.reduce_any(tf.equal(excluded, image_id)))

    raw = raw.filter(keep)
  if max_examples is not None:
    raw = raw.take(max_examples)

  def to_crops(position, example):
    del position
    decoded = {}  # each kind's reference JPEG decoder (`image_ops.ACCURATE_JPEG_KINDS`), once
    out = {}
    for size, kind in inputs:
      accurate = kind in image_ops.ACCURATE_JPEG_KINDS
      if accurate not in decoded:
        decoded[accurate] = _decode(example, accurate_jpeg=accurate)
      image = decoded[accurate]
      if crops == 1:
        one = preprocessing.by_kind(kind, size, crop_fraction=central_fraction)(image)
        out[input_key(size, kind)] = one[tf.newaxis]
      else:
        out[input_key(size, kind)] = crops_lib.make_crops(
            image, size, crops, central_fraction, normalize=crops_lib.normalizer(kind))
    out["labels"] = tf.cast(example["label"], tf.int32)
    out["mask"] = tf.constant(1.0, tf.float32)
    return out

  from inception_tf.data import pipeline  # pylint: disable=import-outside-toplevel
  ds = pipeline.decode_skipping_errors(raw, to_crops, deterministic=True,
                                       error_counter=error_counter)
  # The training pipeline's pad + mask: the short last batch gets zero rows with mask 0.
  ds = pipeline.pad_batches(ds.batch(global_batch_size), global_batch_size)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.with_options(options).prefetch(2)


# ----------------------------------------------------------------------------------------------
# Models.


def _load_member(spec: ModelSpec, *, image_size: int | None, use_ema: bool | None,
                 data_classes: int | None) -> _Member:
  """Builds and loads one ensemble member (call under the strategy's scope)."""
  if spec.model is not None:
    model = spec.model
    size = int(model.input_shape[1])
    num_classes = int(_logits_of(model.output).shape[-1])
    return _Member(model=model, name=spec.name or model.name, image_size=size,
                   num_classes=num_classes, checkpoint=spec.checkpoint, format=FORMAT_IN_MEMORY,
                   step=None, ema_used=None, options=dict(spec.options))
  if not spec.checkpoint:
    raise EvaluationError(f"Model {spec.name!r} needs a checkpoint (our model dir or ckpt prefix, "
                          "a TF-slim checkpoint or a .keras file).")
  use_ema = spec.use_ema if spec.use_ema is not None else use_ema
  try:
    loaded = checkpoints.load(spec.checkpoint, model=spec.name, num_classes=spec.num_classes,
                              image_size=spec.image_size or image_size,
                              model_options=spec.options, use_ema=use_ema,
                              data_classes=data_classes)
  except checkpoints.LoadError as error:
    raise EvaluationError(str(error)) from error
  return _Member(model=loaded.model, name=loaded.name, image_size=int(loaded.image_size),
                 num_classes=int(loaded.num_classes), checkpoint=loaded.path,
                 format=loaded.format, step=loaded.step, ema_used=loaded.ema_used,
                 options=loaded.options, preprocessing=loaded.preprocessing,
                 label_map=loaded.label_map)


def check_image_size(name: str, image_size: int) -> None:
  """Raises EvaluationError when `image_size` is below the network's minimum input size."""
  from inception_tf.models import registry  # pylint: disable=import-outside-toplevel
  info = registry.model_info(name)
  if not isinstance(image_size, int) or image_size < info.min_image_size:
    raise EvaluationError(f"image_size={image_size!r} is below the minimum input size "
                          f"{info.min_image_size} of {name}; use --image_size >= "
                          f"{info.min_image_size} (default {info.default_image_size}).")


def _logits_of(outputs):
  if isinstance(outputs, dict):
    if "logits" not in outputs:
      raise EvaluationError(f"Model outputs {sorted(outputs)} have no 'logits'.")
    return outputs["logits"]
  return outputs


def class_mapping(model_classes: int, data_classes: int, labels_offset: int) -> str:
  """How a model's classes map onto the data's labels (see the module docstring).

  Raises:
    EvaluationError: widths that no mapping reconciles.
  """
  if model_classes == data_classes:
    return "identity"
  if model_classes == data_classes + 1:
    return "drop_background_logit"
  if model_classes + 1 == data_classes and labels_offset >= 1:
    return "add_background_column"
  raise EvaluationError(
      f"The model has {model_classes} classes but the data has {data_classes} "
      f"(labels_offset {labels_offset}); only equal widths or the 1000/1001 background-class "
      "difference can be mapped. Pass the right --num_classes or data set.")


def probabilities_in_data_space(logits: tf.Tensor, mapping: str, *, log: bool = False) -> tf.Tensor:
  """Softmax probabilities of `logits` as columns of the data's label space; with `log`, their
  logarithms from log-softmax (finite where a probability underflows; an added background column
  is -inf)."""
  logits = tf.cast(logits, tf.float32)
  normalize = tf.nn.log_softmax if log else tf.nn.softmax
  if mapping == "identity":
    return normalize(logits)
  if mapping == "drop_background_logit":
    return normalize(logits[:, 1:])
  if mapping == "add_background_column":
    probs = normalize(logits)
    background = (tf.fill(tf.shape(probs[:, :1]), -math.inf) if log
                  else tf.zeros_like(probs[:, :1]))
    return tf.concat([background, probs], axis=1)
  raise ValueError(f"Unknown class mapping {mapping!r}.")


# ----------------------------------------------------------------------------------------------
# The evaluation step: the one implementation behind the Evaluator and the trainer's evaluation.

METRIC_KEYS = ("top1", "top5", "loss", "count")


def make_replica_step(members: Sequence[Any], *, crops: int, num_classes: int) -> Callable:
  """The evaluation of one replica's batch, per example; run it with `strategy.run`.

  The `Evaluator` runs it on its batches; the trainer's in-loop evaluation runs it (XLA-compiled
  on one device) through `masked_totals` on `pipeline_batch` of the input pipeline's eval batches.

  Args:
    members: the ensemble: objects with `model` (returns logits or {"logits", ...}),
      `image_size`, `preprocessing` (they read `batch[input_key(image_size, preprocessing)]`) and
      `mapping` (`class_mapping`), e.g. from `in_memory_member`.
    crops: crops per image (the batch's images are `[B, crops, S, S, 3]`).
    num_classes: the data's label space (the width after each member's class mapping).

  Returns:
    `replica_step(batch) -> {"probs": [B, C] softmax probabilities averaged over the crops and the
    members, "top1", "top5": [B] bool (`metrics.top_k_correct` of the probabilities, top-5 as
    top-min(5, C)), "loss": [B] float32 cross-entropy of the averaged probabilities (from log-
    probabilities, finite where a probability underflows), "labels", "mask"}` for `batch` =
    {input_key(S, kind): [B, crops, S, S, 3], "labels": [B] int, "mask": [B] float (0 = padding)}.
    Static shapes in, static shapes out: it compiles with XLA.
  """
  top_k = min(5, num_classes)

  @tf.autograph.experimental.do_not_convert  # Python loops over members only
  def replica_step(batch):
    labels = tf.cast(batch["labels"], tf.int32)
    total, label_log_probs = None, []
    for member in members:
      images = batch[input_key(member.image_size, member.preprocessing)]
      size = member.image_size
      flat = tf.reshape(images, [-1, size, size, 3])
      logits = _logits_of(fused.fused_call(member.model, flat, training=False))
      probs = probabilities_in_data_space(logits, member.mapping)
      probs = tf.reduce_mean(tf.reshape(probs, [-1, crops, num_classes]), axis=1)
      total = probs if total is None else total + probs
      log_probs = tf.reshape(probabilities_in_data_space(logits, member.mapping, log=True),
                             [-1, crops, num_classes])
      label_log_probs.append(tf.gather(log_probs, labels, axis=2, batch_dims=1))  # [B, crops]
    probs = total / len(members)
    # log of the mean over crops and members of the label's probability.
    count = float(len(members) * crops)
    loss = math.log(count) - tf.reduce_logsumexp(tf.concat(label_log_probs, axis=1), axis=1)
    return {"probs": probs, "top1": metrics_lib.top_k_correct(probs, labels, 1),
            "top5": metrics_lib.top_k_correct(probs, labels, top_k), "loss": loss,
            "labels": labels, "mask": tf.cast(batch["mask"], tf.float32)}

  return replica_step


def masked_totals(outputs: dict) -> dict:
  """Sums of a replica step's per-example top1 / top5 / loss over the real examples (mask 1), and
  their count: what a distributed evaluation reduces across replicas (`METRIC_KEYS`)."""
  mask = outputs["mask"]
  return {"top1": tf.reduce_sum(tf.cast(outputs["top1"], tf.float32) * mask),
          "top5": tf.reduce_sum(tf.cast(outputs["top5"], tf.float32) * mask),
          # where, not a product: a padding row's loss may be inf (label 0 on an added
          # background column) and inf * 0 is NaN.
          "loss": tf.reduce_sum(tf.where(mask > 0, outputs["loss"] * mask, 0.0)),
          "count": tf.reduce_sum(mask)}


def pipeline_batch(batch: dict, *, image_size: int, preprocessing: str) -> dict:
  """An eval batch of `inception_tf.data.make_dataset` ({"images": [B, S, S, 3], "labels",
  "mask"}, already preprocessed with `preprocessing`) in the layout of `make_replica_step` (one
  crop). A batch without "mask" counts every row."""
  mask = batch["mask"] if "mask" in batch else tf.ones_like(batch["labels"], tf.float32)
  return {input_key(image_size, preprocessing): batch["images"][:, tf.newaxis],
          "labels": batch["labels"], "mask": mask}


def in_memory_member(model: keras.Model, *, image_size: int, preprocessing: str,
                     mapping: str = "identity") -> _Member:
  """An ensemble member for `make_replica_step` from a built model (e.g. the trainer's)."""
  return _Member(model=model, name=model.name, image_size=int(image_size),
                 num_classes=int(_logits_of(model.output).shape[-1]), checkpoint=None,
                 format=FORMAT_IN_MEMORY, step=None, ema_used=None, mapping=mapping,
                 preprocessing=preprocessing)


# ----------------------------------------------------------------------------------------------
# The evaluator.


class Evaluator:
  """Builds the models, the input and the step once; `run()` evaluates, `reload()` swaps weights.

  Args:
    models: ModelSpec(s) or built Keras model(s); several = an ensemble.
    source: TFRecord dir / glob pattern, or "tfds:<name>" (prepared; no download); None = the
      built-in digits.
    split: data split.
    crops: 1, 10, 12 or 144.
    image_size: input size for members that do not fix their own.
    batch_size: images per global batch (the model sees batch_size x crops inputs per step);
      default: 144 // crops rounded up to a multiple of the replica count.
    strategy: a tf.distribute strategy (single host); default: the current one.
    use_ema: None = EMA weights when the checkpoint has them.
    blacklist: devkit ids to exclude, or a path to the blacklist file.
    tfds_name: same as source="tfds:<tfds_name>".
    central_fraction: 1-crop central fraction; default: the first member's (0.875).
    max_examples: evaluate only the first N examples.
    num_classes: the data set's number of classes (default: `dataset_info`, else the widest model).
    labels_offset: the data's labels offset (default: `dataset_info`, else 0).
    raw_dataset: records {"image_bytes"|"image", "label", "filename"} instead of `source`.
    verbose: 1 shows a progress bar, 0 is silent.
    preprocessing: a kind of `preprocessing.PREPROCESSING_KINDS` for every member; default: each
      member's own (its run's, else its registry entry's `preprocessing`).
  """

  def __init__(self, models, source: str | None = None, *, split: str = "validation",
               crops: int = 1, image_size: int | None = None, batch_size: int | None = None,
               strategy: tf.distribute.Strategy | None = None, use_ema: bool | None = None,
               blacklist: Sequence[int] | str | None = None, tfds_name: str | None = None,
               central_fraction: float | None = None, max_examples: int | None = None,
               num_classes: int | None = None, labels_offset: int | None = None,
               raw_dataset: tf.data.Dataset | None = None, verbose: int = 1,
               preprocessing: str | None = None):
    self.crops = crops_lib.validate_crops(crops)
    self.strategy = strategy or tf.distribute.get_strategy()
    if self.strategy.extended._in_multi_worker_mode():  # pylint: disable=protected-access
      raise EvaluationError("Evaluation runs on one host; use the default, mirrored or tpu "
                            "strategy (multi_worker is for training).")
    specs = models if isinstance(models, (list, tuple)) else [models]
    if not specs:
      raise EvaluationError("No model to evaluate: give at least one --checkpoint or --ensemble.")
    specs = [ModelSpec(model=s) if isinstance(s, keras.Model) else s for s in specs]
    if image_size is not None:
      for spec in specs:
        if spec.name and spec.model is None:
          check_image_size(spec.name, spec.image_size or image_size)
    info = None
    if raw_dataset is None:
      if tfds_name:
        source = f"tfds:{tfds_name}"
      elif source is None:
        from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
        source = default_dataset.digits_data_dir()
      source = os.fspath(source)
      info = _data_info(source)
      self.raw = _raw_examples(source, split)
    else:
      self.raw = raw_dataset
    self.source, self.split = source, split
    self.num_classes = num_classes or (info.num_classes if info else None)
    self.labels_offset = (labels_offset if labels_offset is not None
                          else (info.labels_offset if info else 0))
    self.expected_examples = info.num_examples.get(split) if info else None
    self.class_names = list(info.class_names) if info and info.class_names else None

    with self.strategy.scope():
      self.members = [_load_member(s, image_size=image_size, use_ema=use_ema,
                                   data_classes=self.num_classes) for s in specs]
    if self.num_classes is None:
      self.num_classes = max(m.num_classes for m in self.members)
    for member in self.members:
      member.mapping = class_mapping(member.num_classes, self.num_classes, self.labels_offset)
      member.preprocessing = preprocessing or member.preprocessing or _registry_preprocessing(
          member.model)
    if central_fraction is None:
      central_fraction = _crop_fraction(self.members[0].name)
    self.central_fraction = central_fraction
    self.image_sizes = sorted({m.image_size for m in self.members})
    self.inputs = sorted({(m.image_size, m.preprocessing) for m in self.members})

    replicas = self.strategy.num_replicas_in_sync
    if batch_size is None:
      per_replica = max(1, math.ceil(_DEFAULT_MODEL_BATCH / self.crops / replicas))
      batch_size = per_replica * replicas
    if batch_size < 1 or batch_size % replicas:
      raise EvaluationError(f"batch_size={batch_size} must be a positive multiple of the "
                            f"{replicas} replicas in sync.")
    self.batch_size = batch_size
    if isinstance(blacklist, str):
      blacklist = read_blacklist(blacklist)
    self.blacklist = list(blacklist or [])
    self.max_examples = max_examples
    self.verbose = verbose
    self.error_counter = f"evaluate_{uuid.uuid4().hex[:12]}"
    self.dataset = build_dataset(self.raw, inputs=self.inputs, crops=self.crops,
                                 global_batch_size=batch_size,
                                 central_fraction=central_fraction, blacklist=self.blacklist,
                                 max_examples=max_examples, error_counter=self.error_counter)
    self._step = self._make_step()

  def _undecodable_skipped(self) -> int:
    """Records left out of this evaluator's passes so far because their image did not decode."""
    from inception_tf.data import pipeline  # pylint: disable=import-outside-toplevel
    return pipeline.decode_error_count(self.error_counter)

  def _make_step(self) -> Callable:
    replica_step = make_replica_step(self.members, crops=self.crops, num_classes=self.num_classes)

    @tf.function(autograph=False)  # Python control flow only (see pipeline.plain_map)
    def step(batch):
      return self.strategy.run(replica_step, args=(batch,))

    return step

  def reload(self, checkpoint: str, index: int = 0, use_ema: bool | None = None) -> None:
    """Loads another checkpoint of the same network into ensemble member `index` (for --watch)."""
    member = self.members[index]
    spec = ModelSpec(name=member.name, checkpoint=checkpoint, image_size=member.image_size,
                     num_classes=member.num_classes, options=member.options, use_ema=use_ema)
    with self.strategy.scope():
      fresh = _load_member(spec, image_size=member.image_size, use_ema=use_ema,
                           data_classes=self.num_classes)
    for target, value in zip(member.model.weights, fresh.model.weights):
      target.assign(value)
    member.checkpoint, member.step, member.ema_used = fresh.checkpoint, fresh.step, fresh.ema_used

  def run(self, output: str | None = None, return_probabilities: bool = False) -> dict:
    """Evaluates every example once; returns (and writes to `output`) the report dict.

    With `return_probabilities`, the report also holds "probabilities" ([N, C] numpy, the averaged
    softmax in data order) and "labels" ([N]); they are not written to `output`.
    """
    kept_probs, kept_labels = [], []
    skipped_before = self._undecodable_skipped()
    accumulator = metrics_lib.AccuracyAccumulator(self.num_classes, ks=(1, 5))
    loss_sum = 0.0
    expected = self.expected_examples
    if expected and self.max_examples:
      expected = min(expected, self.max_examples)
    total_steps = (math.ceil(expected / self.batch_size) if expected and not self.blacklist
                   else None)
    progress = keras.utils.Progbar(total_steps, unit_name="batch",
                                   stateful_metrics=["top1", "top5", "images"]
                                   ) if self.verbose else None
    dist = self.strategy.experimental_distribute_dataset(self.dataset)
    start = time.perf_counter()
    warm = None
    warm_examples = 0
    for step_index, batch in enumerate(dist):
      out = self._step(batch)
      host = {k: np.concatenate([np.asarray(v) for v in
                                 self.strategy.experimental_local_results(t)])
              for k, t in out.items()}
      if return_probabilities:
        real = host["mask"] > 0
        kept_probs.append(host["probs"][real])
        kept_labels.append(host["labels"][real])
      accumulator.update({1: host["top1"], 5: host["top5"]}, host["labels"], host["mask"])
      loss_sum += float(np.sum(host["loss"][host["mask"] > 0], dtype=np.float64))
      if warm is None:
        warm, warm_examples = time.perf_counter(), accumulator.count
      if progress is not None:
        result = accumulator.hits
        progress.update(step_index + 1, values=[
            ("top1", result[1] / max(accumulator.count, 1)),
            ("top5", result[5] / max(accumulator.count, 1)), ("images", accumulator.count)])
    end = time.perf_counter()
    if progress is not None and total_steps is None:  # an unknown target is not closed by itself
      progress.update(progress._seen_so_far, finalize=True)  # pylint: disable=protected-access
    if accumulator.count == 0:
      raise EvaluationError(f"The {self.split!r} split of {self.source!r} has no "
                            "examples to evaluate (after the blacklist / max_examples).")
    seconds = end - start
    steady = end - warm if warm is not None else 0.0
    steady_images = accumulator.count - warm_examples
    images_per_second = (steady_images / steady if steady > 0 and steady_images > 0
                         else accumulator.count / seconds)
    result = accumulator.result()
    per_class = result.pop("per_class")
    if self.class_names:
      for label, entry in per_class.items():
        if 0 <= label < len(self.class_names):  # class_names[label], background at 0
          entry["name"] = self.class_names[label]
    report = {
        "top1_accuracy": result["top1_accuracy"], "top5_accuracy": result["top5_accuracy"],
        "top1_error": result["top1_error"], "top5_error": result["top5_error"],
        "num_examples": result["num_examples"],
        "undecodable_skipped": self._undecodable_skipped() - skipped_before,
        "top1_correct": result["top1_correct"], "top5_correct": result["top5_correct"],
        "top5_k": min(5, self.num_classes),
        "loss": loss_sum / accumulator.count,
        "mean_per_class_accuracy": result["mean_per_class_accuracy"],
        "crops": self.crops, "image_sizes": self.image_sizes,
        "geometry": {str(s): crops_lib.describe(s, self.crops, self.central_fraction)
                     for s in self.image_sizes},
        "scales": {str(s): list(crops_lib.scale_sizes(s, self.crops)) for s in self.image_sizes},
        "models": [m.describe() for m in self.members],
        "checkpoint_step": self.members[0].step,
        "ema_used": [m.ema_used for m in self.members],
        "ensemble": "mean of softmax probabilities over crops and models",
        "data": {"source": self.source, "split": self.split,
                 "num_classes": self.num_classes, "labels_offset": self.labels_offset,
                 "blacklisted_ids": len(self.blacklist), "max_examples": self.max_examples},
        "strategy": type(self.strategy).__name__,
        "num_replicas": self.strategy.num_replicas_in_sync,
        "batch_size": self.batch_size,
        "throughput": {"images_per_second": images_per_second,
                       "crops_per_second": images_per_second * self.crops,
                       "seconds": seconds, "steady_state_seconds": steady},
        "per_class_accuracy": {str(k): v for k, v in sorted(per_class.items())},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if output:
      write_report(report, output)
    if return_probabilities:
      report["probabilities"] = np.concatenate(kept_probs)
      report["labels"] = np.concatenate(kept_labels)
    return report


def _registry_preprocessing(model: keras.Model) -> str:
  """The registry's preprocessing of an in-memory zoo model; Inception's for other models."""
  name = checkpoints.loading.registered_name(model)
  if name is None:
    return "inception"
  from inception_tf.models import registry  # pylint: disable=import-outside-toplevel
  return registry.model_info(name).preprocessing


def _crop_fraction(name: str) -> float:
  try:
    from inception_tf.models import registry  # pylint: disable=import-outside-toplevel
    return registry.model_info(name).crop_fraction
  except ValueError:
    return 0.875


def write_report(report: dict, path: str) -> None:
  """Writes a report as indented JSON (creating the directory), atomically: a reader or a kill
  sees the previous file or the whole new one (`inception_tf.atomic`)."""
  atomic.write_json(path, report, default=_json_default)


def _json_default(value):
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating,)):
    return float(value)
  raise TypeError(f"Not JSON serialisable: {type(value)}")


def evaluate(models, source: str | None = None, *, split: str = "validation", crops: int = 1,
             output: str | None = None, return_probabilities: bool = False, **kwargs) -> dict:
  """Evaluates a model or an ensemble with a crop protocol; every example is counted once.

  Args:
    models: a `ModelSpec`, a built Keras model, or a list of them (an ensemble: the softmax
      probabilities are averaged over the models and the crops).
    source: TFRecord directory (slim's `<split>-*` shards) or glob pattern, or "tfds:<name>";
      None = the built-in digits data.
    split: data split ("validation").
    crops: 1, 10, 12 or 144 (see `inception_tf.eval.crops`).
    output: write the JSON report here.
    return_probabilities: also return the averaged probabilities and labels (see `Evaluator.run`).
    **kwargs: `Evaluator` arguments (image_size, batch_size, strategy, use_ema, blacklist,
      tfds_name, central_fraction, max_examples, num_classes, labels_offset, raw_dataset, verbose).

  Returns:
    The report: top-1/top-5 accuracy and error, loss (mean cross-entropy of the averaged
    probabilities), num_examples, crops and geometry, models (format, step, EMA, class mapping),
    throughput and per-class accuracy.

  Raises:
    EvaluationError: bad input (unknown crops, mismatching checkpoint, image size too small, ...).
    FileNotFoundError: no checkpoint or no data files.
  """
  evaluator = Evaluator(models, source, split=split, crops=crops, **kwargs)
  return evaluator.run(output=output, return_probabilities=return_probabilities)


def format_report(report: dict) -> str:
  """A short human-readable summary of a report."""
  models = ", ".join(f"{m['name']}@{m['step']}" + (" (EMA)" if m["ema_used"] else "")
                     for m in report["models"])
  tp = report["throughput"]
  return (f"{models} | {report['data']['split']} | {report['crops']} crop(s) at "
          f"{report['image_sizes']} | {report['num_examples']} examples"
          + (f" ({report['undecodable_skipped']} undecodable skipped)"
             if report.get("undecodable_skipped") else "") + " | "
          f"top-1 {100 * report['top1_accuracy']:.2f}% (error {100 * report['top1_error']:.2f}%) | "
          f"top-{report['top5_k']} {100 * report['top5_accuracy']:.2f}% | "
          f"{tp['images_per_second']:.1f} images/s ({tp['crops_per_second']:.1f} crops/s)")


# ----------------------------------------------------------------------------------------------
# Continuous evaluation.


def _write_summaries(writer, report: dict, step: int) -> None:
  """TensorBoard scalars eval/top1_accuracy, eval/top5_accuracy, eval/top1_error, eval/top5_error."""
  with writer.as_default(step=step):
    for key in ("top1_accuracy", "top5_accuracy", "top1_error", "top5_error"):
      tf.summary.scalar(f"eval/{key}", report[key])
  writer.flush()


def watch(model_dir: str, spec: ModelSpec, source: str | None = None, *,
          split: str = "validation", crops: int = 1, output_dir: str | None = None,
          poll_seconds: float = 30.0, timeout_seconds: float | None = 3600.0,
          until_step: int | None = None, **kwargs) -> list[dict]:
  """Evaluates every new checkpoint of a training run as it appears.

  The models and the input are built once; each new checkpoint's weights are loaded into them.
  Each report is appended to `<output_dir>/reports.jsonl` (default `<model_dir>/eval_<split>`),
  written as `report-<step>.json`, and logged as TensorBoard scalars (`eval/top1_accuracy`, ...).

  Args:
    model_dir: the training run's directory.
    spec: the network (name, options; `checkpoint` is ignored).
    source, split, crops: as `evaluate`.
    output_dir: where reports go.
    poll_seconds: how often to look for a new checkpoint.
    timeout_seconds: stop after this long without a new checkpoint (None: never).
    until_step: stop after evaluating a checkpoint at or beyond this step.
    **kwargs: further `Evaluator` arguments.

  Returns:
    The reports, in order.
  """
  output_dir = output_dir or os.path.join(model_dir, f"eval_{split}")
  tf.io.gfile.makedirs(output_dir)
  writer = tf.summary.create_file_writer(output_dir)
  evaluator = None
  reports = []
  for prefix in tf.train.checkpoints_iterator(model_dir, min_interval_secs=poll_seconds,
                                              timeout=timeout_seconds):
    if evaluator is None:
      evaluator = Evaluator(dataclasses.replace(spec, checkpoint=prefix), source, split=split,
                            crops=crops, **kwargs)
    else:
      evaluator.reload(prefix, use_ema=spec.use_ema)
    step = evaluator.members[0].step
    report = evaluator.run(output=os.path.join(output_dir, f"report-{step}.json"))
    reports.append(report)
    summary = {k: v for k, v in report.items() if k != "per_class_accuracy"}
    atomic.append_line(os.path.join(output_dir, "reports.jsonl"),
                       json.dumps(summary, default=_json_default))
    _write_summaries(writer, report, step or 0)
    print(format_report(report), file=sys.stderr)
    if until_step is not None and step is not None and step >= until_step:
      break
  return reports
