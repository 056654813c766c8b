"""`train_and_evaluate(config, model_dir)`: the trainer behind `tools/train.py` and the notebooks.

One custom step under any tf.distribute strategy (Keras' `fit` fails under MultiWorkerMirrored in
Keras 3.15):

    strategy = get_strategy(...)                       # inception_tf.distribute
    with strategy.scope(): model, optimizer, EMA
    dataset = strategy.distribute_datasets_from_function(per-replica batches, skipping consumed ones)
    step (per replica, optionally XLA-compiled):
        loss = sum(CE_smoothed + 0.4 CE_aux) / global_batch + weight_decay / replicas    (float32)
        grads = all_reduce(SUM, d loss / d w); clip_by_global_norm(grads, 2.0)
        optimizer.apply(grads)  (TF1 RMSProp);  EMA(weights + BN statistics).update(step)
    `steps_per_execution` steps per host round trip (one `tf.function` with a `tf.range` loop).

Checkpoints every `checkpoint_every_steps` and at the end (see `checkpointing`), a console line per
`log_every_steps`, TensorBoard scalars under `<model_dir>/train` and `<model_dir>/eval`, evaluation
with the EMA weights every `eval_every_steps` and at the end (pad + mask: every example once), by
the evaluator's own step (`inception_tf.eval.evaluate.make_replica_step`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import uuid
from typing import Any, Callable

import keras
import tensorflow as tf

from inception_tf import atomic
from inception_tf import distribute
from inception_tf.models import fused
from inception_tf.train import checkpointing
from inception_tf.train import ema as ema_lib
from inception_tf.train import losses
from inception_tf.train import optim
from inception_tf.train import run_lock
from inception_tf.train import schedules
from inception_tf.train.config import TrainConfig

TrainFn = Callable[[tf.distribute.InputContext | None, int], tf.data.Dataset]
EvalFn = Callable[[tf.distribute.InputContext | None], tf.data.Dataset]


@dataclasses.dataclass
class Datasets:
  """The input of a run, as functions of the input context (per-replica batches).

  Attributes:
    train_fn: (input_context, skip_batches) -> endless dataset of {"images", "labels"} batches of
      the per-replica size, with `drop_remainder`, deterministic given the seed, that skips the
      first `skip_batches` batches this replica would have seen (exact resume). With
      `config.color_distortion_on_device` the images are uint8 (or float in [0, 1]) before colour
      distortion, which the step applies.
    eval_fn: input_context -> finite dataset of {"images", "labels", "mask"} per-replica batches,
      padded (mask 0) so every example is counted once; None: no evaluation.
    num_train_examples: size of the training split (the schedule counts epochs in it).
    num_eval_examples: size of the evaluation split.
    num_classes: logits width (including slim's background class where the data has it).
    description: for the log.
    class_names: the data's class names by label (index 0 is "background" when labels_offset is 1);
      empty when unknown. They become the run's label map (`config.json`, exports, predictions).
    labels_offset: 1 when label 0 is slim's background class, else 0.
    error_counters: {"train": name, "eval": name} of the pipelines' undecodable-record counters
      (`data.decode_error_count(name)`); empty when the input does not count them. Each
      evaluation reports its skipped records (exact: an eval pass is drained); the training
      stream's count includes the records in flight in its parallel decode, so it is not logged.
  """

  train_fn: TrainFn
  eval_fn: EvalFn | None
  num_train_examples: int
  num_eval_examples: int
  num_classes: int
  description: str = ""
  error_counters: dict[str, str] = dataclasses.field(default_factory=dict)
  class_names: tuple[str, ...] = ()
  labels_offset: int = 0


def _data_source(config: TrainConfig) -> str:
  """The `source` argument of `inception_tf.data.make_dataset` for this config."""
  if config.tfds_name:
    return f"tfds:{config.tfds_name}"
  if config.data_dir:
    path = config.data_dir
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f"--data_dir {path!r} does not exist. Pass a directory of TFRecord "
                              "files (train-*, validation-*), or omit it for the built-in digits.")
    if not tf.io.gfile.isdir(path) or not tf.io.gfile.listdir(path):
      raise FileNotFoundError(f"--data_dir {path!r} is empty or not a directory; it must hold the "
                              "TFRecord files of the train and evaluation splits.")
    return path
  from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
  return default_dataset.digits_data_dir()


def preprocessing_kind(config: TrainConfig) -> str:
  """The run's preprocessing: `config.preprocessing`, else the network's registry entry's (the
  kind `inception_tf.data.preprocessing.for_model` applies), else Inception's."""
  if config.preprocessing:
    return config.preprocessing
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  if config.model in models.list_models():
    return models.model_info(config.model).preprocessing
  return "inception"


def pipeline_datasets(config: TrainConfig, *, image_size: int) -> Datasets:
  """`Datasets` from `inception_tf.data` for `config` (data_dir, tfds_name or built-in digits).

  Raises:
    FileNotFoundError: a missing or empty data_dir.
    ValueError: the split is missing from the data.
  """
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  source = _data_source(config)
  info = data.dataset_info(source)
  for split in (config.train_split, config.eval_split):
    if split and split not in info.num_examples:
      raise ValueError(f"Split {split!r} is not in {source!r}; it has {sorted(info.num_examples)}.")
  num_train = int(info.num_examples[config.train_split])
  if num_train < 1:
    raise ValueError(f"Split {config.train_split!r} of {source!r} is empty.")

  def per_replica(context, global_batch):
    return context.get_per_replica_batch_size(global_batch) if context else global_batch

  kind = preprocessing_kind(config)
  run_id = uuid.uuid4().hex[:12]  # this run's own undecodable-record counters
  counters = {"train": f"train_{run_id}", "eval": f"eval_{run_id}"}

  def train_fn(context, skip_batches):
    return data.make_dataset(
        source, split=config.train_split, is_training=True,
        batch_size=per_replica(context, config.train_batch_size), image_size=image_size,
        input_context=context, seed=config.seed, deterministic=config.deterministic,
        cache=config.cache_data, num_epochs=None, skip_batches=skip_batches,
        preprocessing=kind, fast_mode=config.fast_preprocessing,
        color_distortion_on_device=config.color_distortion_on_device,
        error_counter=counters["train"])

  def eval_fn(context):
    return data.make_dataset(
        source, split=config.eval_split, is_training=False,
        batch_size=per_replica(context, config.eval_batch_size), image_size=image_size,
        input_context=context, seed=config.seed, deterministic=True, cache=config.cache_data,
        num_epochs=1, preprocessing=kind, error_counter=counters["eval"])

  return Datasets(
      train_fn=train_fn, eval_fn=eval_fn if config.eval_split else None,
      num_train_examples=num_train,
      num_eval_examples=int(info.num_examples.get(config.eval_split, 0)) if config.eval_split
      else 0,
      num_classes=int(info.num_classes), description=f"{source} ({num_train} training examples)",
      error_counters=counters, class_names=tuple(str(n) for n in info.class_names),
      labels_offset=int(info.labels_offset))


def _decode_errors(datasets: Datasets, split: str) -> int:
  """Undecodable records the run's `split` pipelines have skipped so far (0 when not counted)."""
  name = datasets.error_counters.get(split)
  if not name:
    return 0
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  return data.decode_error_count(name)


def total_train_steps(config: TrainConfig, num_train_examples: int) -> int:
  """`train_steps`, or `ceil(train_epochs * examples / global batch)`."""
  if config.train_steps is not None:
    return int(config.train_steps)
  return max(1, math.ceil(config.train_epochs * num_train_examples / config.train_batch_size))


def _check_image_size(config: TrainConfig) -> int:
  """The input size of the run; a clear error below the network's minimum."""
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  info = models.model_info(config.model)
  size = config.image_size or info.default_image_size
  if size < info.min_image_size:
    raise ValueError(f"--image_size={size} is below the minimum input size {info.min_image_size} "
                     f"of {config.model}; use --image_size >= {info.min_image_size}.")
  return size


def _default_model_fn(config: TrainConfig, num_classes: int, image_size: int) -> keras.Model:
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  return models.create_model(
      config.model, num_classes, image_size=image_size, aux_logits=config.aux_logits,
      dropout_keep_prob=config.dropout_keep_prob, batch_norm_momentum=config.batch_norm_momentum,
      dtype=config.precision, **config.model_options)


class Trainer:
  """Model, optimizer, EMA and the compiled train / eval steps of one run under one strategy.

  Args:
    config: the recipe.
    strategy: where to run; everything is created under its scope.
    num_classes: logits width.
    num_train_examples: size of the training split (for the schedule).
    image_size: input size.
    model_fn: (config, num_classes, image_size) -> model returning {"logits", ["aux_logits"]};
      defaults to `inception_tf.models.create_model`.

  Raises:
    ValueError: a global batch that does not divide over the replicas, unknown trainable scopes.
  """

  def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy, *, num_classes: int,
               num_train_examples: int, image_size: int,
               model_fn: Callable[..., keras.Model] | None = None):
    self.config = config
    self.strategy = strategy
    self.num_replicas = strategy.num_replicas_in_sync
    for name, batch in (("train_batch_size", config.train_batch_size),
                        ("eval_batch_size", config.eval_batch_size)):
      if batch % self.num_replicas:
        raise ValueError(
            f"--{name}={batch} does not divide over the {self.num_replicas} replicas of the "
            f"{type(strategy).__name__}; use a multiple of {self.num_replicas} (e.g. "
            f"{max(1, batch // self.num_replicas) * self.num_replicas}).")
    self.global_batch = config.train_batch_size
    self.num_classes = num_classes
    self.image_size = image_size
    jit = config.jit_compile
    if jit is None:  # XLA where it is fast: one GPU (TPUs compile everything anyway). On CPUs,
      # XLA's convolutions measured 2-3.4x slower than TF's oneDNN kernels (WORKSPACE_NOTES).
      jit = self.num_replicas == 1 and distribute.uses_gpu(strategy)
    self.jit_compile = bool(jit) and not distribute.is_tpu(strategy)  # TPUs compile everything.

    with strategy.scope():
      self.model = (model_fn or _default_model_fn)(config, num_classes, image_size)
      self.schedule = schedules.from_config(config, num_train_examples=num_train_examples)
      optimizer = optim.make_optimizer(config, self.schedule)
      if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self._resolve_deterministic_jit(config)
      self.trainable_variables = self._select_trainable(config.trainable_scopes)
      self.optimizer.build(self.trainable_variables)
      self.ema = None
      if config.ema_decay:
        self.ema = ema_lib.ExponentialMovingAverage(
            ema_lib.averaged_variables(self.model), decay=config.ema_decay)
    self.decay_variables = losses.weight_decay_variables(self.model)
    # Batch-norm moving statistics: Keras 3 mirrors them with aggregation "none", so each replica's
    # update writes only its own copy and the copies drift apart (a checkpoint keeps replica 0's,
    # a mirrored evaluation mixes them). Each step averages them over the replicas.
    self.replica_statistics = [v for v in self.model.non_trainable_variables
                               if v.dtype in ("float16", "bfloat16", "float32", "float64")]
    self.checkpoint = checkpointing.make_checkpoint(self.model, self.optimizer, self.ema)
    self._train_function = None
    self._eval_function = None

  @property
  def step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def _select_trainable(self, scopes) -> list:
    variables = self.model.trainable_variables
    scopes = [s.strip().strip("/") for s in scopes if s.strip()]
    if not scopes:
      return list(variables)
    from inception_tf.models import naming  # pylint: disable=import-outside-toplevel
    by_name = naming.slim_variables(self.model)
    root = self.model.name
    wanted = [s if s.startswith(root + "/") or s == root else f"{root}/{s}" for s in scopes]
    selected_ids = set()
    for name, variable in by_name.items():
      if any(name == s or name.startswith(s + "/") for s in wanted):
        selected_ids.add(id(variable))
    selected = [v for v in variables if id(v) in selected_ids]
    if not selected:
      raise ValueError(f"--trainable_scopes={list(scopes)} match no trainable variable of "
                       f"{self.model.name}; scopes look like '{root}/Logits'.")
    return selected

  def load_init_checkpoint(self, path: str) -> str:
    """Initialises the model from any source `inception_tf.checkpoints.load_weights` reads (a
    TF-slim checkpoint, one of our runs, a torch state_dict, a `.keras` file); resets EMA.

    Raises:
      inception_tf.checkpoints.SlimCheckpointMismatch / LoadError (ValueErrors): another network,
        or logits of another width without `checkpoint_exclude_scopes`.
    """
    from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
    message = checkpoints.load_weights(self.model, path, use_ema=True,
                                       exclude_scopes=self.config.checkpoint_exclude_scopes)
    if self.ema is not None:
      self.ema.reset()
    return message

  # ---------------------------------------------------------------- the steps.

  def _distort_colors(self, images, step):
    """slim's colour distortion of the replica's uint8 batch (`color_distortion_on_device`), seeded
    by (run seed, replica, step): a resumed run repeats an uninterrupted one exactly."""
    from inception_tf.data import preprocessing  # pylint: disable=import-outside-toplevel
    replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
    seed = tf.stack([tf.constant(self.config.seed, tf.int64) * 1_000_003 + replica,
                     tf.cast(step, tf.int64)])
    images = preprocessing.distort_color_batch(images, seed,
                                               fast_mode=self.config.fast_preprocessing)
    return tf.cast(images, keras.DTypePolicy(self.config.precision).compute_dtype)

  def _replica_train_step(self, batch):
    config = self.config
    images, labels = batch["images"], batch["labels"]
    step = self.optimizer.iterations
    if config.color_distortion_on_device:
      images = self._distort_colors(images, step)
    with tf.GradientTape() as tape:
      outputs = fused.fused_call(self.model, images, training=True, jit_compile=self.jit_compile)
      per_example = losses.per_example_loss(outputs, labels, label_smoothing=config.label_smoothing,
                                            aux_loss_weight=config.aux_loss_weight)
      data_loss = tf.reduce_sum(per_example) / self.global_batch
      decay_loss = losses.weight_decay_loss(self.decay_variables, config.weight_decay)
      loss = data_loss + decay_loss / self.num_replicas
      scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
    gradients = tape.gradient(scaled, self.trainable_variables)
    if self.num_replicas > 1:
      # One all-reduce for gradients and statistics: two collectives in the step's loop may be
      # issued in another order on each device (a shape mismatch that aborts the step).
      statistics = [v.value / self.num_replicas for v in self.replica_statistics]
      reduced = tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, list(gradients) + statistics)
      gradients = reduced[:len(gradients)]
      for variable, mean in zip(self.replica_statistics, reduced[len(gradients):]):
        variable.assign(mean)
    if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
      unscaled, norm = optim.clip_gradients([g / scale for g in gradients],
                                            config.gradient_clip_norm)
      gradients = [g * scale for g in unscaled]
    else:
      gradients, norm = optim.clip_gradients(gradients, config.gradient_clip_norm)
    self.optimizer.apply(gradients, self.trainable_variables)
    if self.ema is not None:
      self.ema.update(step)
    logits = tf.cast(outputs["logits"], tf.float32)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               tf.cast(labels, tf.int32)), tf.float32)
    return {"loss": loss, "cross_entropy": data_loss, "weight_decay": decay_loss / self.num_replicas,
            "gradient_norm": norm / self.num_replicas, "correct": tf.reduce_sum(correct)}

  def _resolve_deterministic_jit(self, config: TrainConfig) -> None:
    """Under op determinism, TF refuses to XLA-compile the max-pool gradient (it has no
    deterministic XLA implementation of it, on any device): such a model's deterministic step runs
    without XLA, with TF's deterministic kernels. Asking for both explicitly is an error."""
    self.determinism_note = ""
    if not (config.deterministic and self.jit_compile):
      return
    pools = [layer.name for layer in losses.sublayers(self.model)
             if isinstance(layer, keras.layers.MaxPooling2D)]
    if not pools:
      return
    if config.jit_compile:
      raise ValueError(
          f"--deterministic cannot be combined with --jit_compile for {config.model}: TF has no "
          f"deterministic XLA implementation of the max-pool gradient (layer {pools[0]!r}). Drop "
          "--jit_compile (the deterministic step then runs without XLA) or drop --deterministic.")
    self.jit_compile = False
    self.determinism_note = ", deterministic: TF kernels without XLA (max-pool gradient)"

  def train_function(self):
    """tf.function(iterator, num_steps) -> metrics summed over replicas, averaged over steps."""
    if self._train_function is not None:
      return self._train_function
    # The step itself has no tensor-dependent Python control flow: no AutoGraph conversion (see
    # data.pipeline.plain_map); the steps loop below needs it (`for _ in tf.range`).
    step_fn = tf.autograph.experimental.do_not_convert(self._replica_train_step)
    if self.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True, autograph=False)
    strategy = self.strategy
    keys = ("loss", "cross_entropy", "weight_decay", "gradient_norm", "correct")

    @tf.function
    def train_steps(iterator, num_steps):
      totals = tf.zeros([len(keys)], tf.float32)
      for _ in tf.range(num_steps):
        outputs = strategy.run(step_fn, args=(next(iterator),))
        totals += tf.stack([strategy.reduce(tf.distribute.ReduceOp.SUM, outputs[k], axis=None)
                            for k in keys])
      count = tf.cast(num_steps, tf.float32)
      totals = dict(zip(keys, tf.unstack(totals)))
      result = {k: totals[k] / count for k in keys}
      result["accuracy"] = totals["correct"] / (count * self.global_batch)
      return result

    self._train_function = train_steps
    return train_steps

  def eval_function(self):
    """tf.function(distributed eval dataset) -> summed top1/top5/loss/count.

    Each replica runs the evaluator's own step (`inception_tf.eval.evaluate.make_replica_step`:
    probabilities, top-k, cross-entropy, masking) on its pipeline batches, XLA-compiled with the
    train step; the sums are reduced across replicas.
    """
    if self._eval_function is not None:
      return self._eval_function
    from inception_tf.eval import evaluate as evaluation  # pylint: disable=import-outside-toplevel
    kind = preprocessing_kind(self.config)
    member = evaluation.in_memory_member(self.model, image_size=self.image_size,
                                         preprocessing=kind)
    evaluator_step = evaluation.make_replica_step([member], crops=1,
                                                  num_classes=self.num_classes)

    def step_fn(batch):
      batch = evaluation.pipeline_batch(batch, image_size=self.image_size, preprocessing=kind)
      return evaluation.masked_totals(evaluator_step(batch))

    step_fn = tf.autograph.experimental.do_not_convert(step_fn)
    if self.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True, autograph=False)
    strategy = self.strategy
    keys = evaluation.METRIC_KEYS

    @tf.function
    def evaluate(dataset):
      totals = tf.zeros([len(keys)], tf.float32)
      for batch in dataset:
        outputs = strategy.run(step_fn, args=(batch,))
        totals += tf.stack([strategy.reduce(tf.distribute.ReduceOp.SUM, outputs[k], axis=None)
                            for k in keys])
      return dict(zip(keys, tf.unstack(totals)))

    self._eval_function = evaluate
    return evaluate

  def evaluate(self, dataset, *, use_ema: bool = True) -> dict[str, float]:
    """Top-1 / top-5 / cross-entropy over a distributed eval dataset (EMA weights by default),
    with the correct counts ("top1_correct", "top5_correct") the evaluator reports too."""
    if use_ema and self.ema is not None:
      with self.ema.swapped():
        totals = self.eval_function()(dataset)
    else:
      totals = self.eval_function()(dataset)
    totals = {k: float(v.numpy()) for k, v in totals.items()}
    count = max(totals["count"], 1.0)
    return {"top1": totals["top1"] / count, "top5": totals["top5"] / count,
            "loss": totals["loss"] / count, "num_examples": int(round(totals["count"])),
            "top1_correct": int(round(totals["top1"])), "top5_correct": int(round(totals["top5"]))}


def configure_determinism(config: TrainConfig) -> None:
  """Seeds Python/NumPy/TF (model init, dropout) and, with `deterministic`, TF's op determinism."""
  # The input pipeline's order depends on its own seed only, not on this global one.
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()


def _format_eta(seconds: float) -> str:
  seconds = int(max(0, seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _write_input_images(writer, datasets: Datasets, skip: int, count: int, step: int) -> None:
  batch = next(iter(datasets.train_fn(None, skip).take(1)))
  images = tf.cast(batch["images"][:count], tf.float32)
  low, high = tf.reduce_min(images), tf.reduce_max(images)
  images = (images - low) / tf.maximum(high - low, 1e-6)
  with writer.as_default():
    tf.summary.image("input_images", images, step=step, max_outputs=count)


def run_config(config: TrainConfig, *, datasets: Datasets, num_classes: int, image_size: int,
               model: keras.Model) -> dict[str, Any]:
  """What the run's `config.json` records: everything the tools need to rebuild and use the model.

  The network (name, options, width, input size, aux head, precision), its preprocessing, the
  label map of the data's classes (ids and names per logit), the data's facts and the whole recipe.
  """
  from inception_tf import labels  # pylint: disable=import-outside-toplevel
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  label_map = None
  if datasets.class_names:
    try:
      label_map = labels.label_map_for_data(datasets.class_names, num_classes=num_classes,
                                            labels_offset=datasets.labels_offset).to_json()
    except ValueError:  # --num_classes differs from the data's classes: no names per logit
      label_map = None
  crop_fraction = (models.model_info(config.model).crop_fraction
                   if config.model in models.list_models() else None)
  outputs = model.output
  return {
      "model": config.model, "model_options": dict(config.model_options),
      "num_classes": int(num_classes), "image_size": int(image_size),
      "aux_logits": isinstance(outputs, dict) and "aux_logits" in outputs,
      "precision": config.precision, "preprocessing": preprocessing_kind(config),
      "crop_fraction": crop_fraction, "label_map": label_map,
      "data": {"description": datasets.description, "data_dir": config.data_dir,
               "tfds_name": config.tfds_name, "train_split": config.train_split,
               "eval_split": config.eval_split, "num_classes": datasets.num_classes,
               "labels_offset": datasets.labels_offset,
               "class_names": list(datasets.class_names),
               "num_train_examples": datasets.num_train_examples,
               "num_eval_examples": datasets.num_eval_examples},
      "train_config": dataclasses.asdict(config),
  }


def _bfloat16_convolutions_note(precision: str) -> str:
  if precision != "mixed_bfloat16" or fused.resolve_bfloat16_convolutions("auto") == "native":
    return ""
  return ", no bfloat16 hardware: convolutions sum in float32"


def train_and_evaluate(config: TrainConfig, model_dir: str, *, datasets: Datasets | None = None,
                       model_fn: Callable[..., keras.Model] | None = None,
                       strategy: tf.distribute.Strategy | None = None,
                       stream=None) -> dict[str, Any]:
  """Trains `config` into `model_dir` (resuming from its newest valid checkpoint) and evaluates.

  Args:
    config: the recipe (`TrainConfig`, e.g. `paper_v3()`, `tpu()`, `quickstart()`).
    model_dir: checkpoints, TensorBoard logs and `results.json` (local or gs://).
    datasets: the input; defaults to `inception_tf.data` on config.data_dir / tfds_name / digits.
    model_fn: (config, num_classes, image_size) -> model; defaults to the registry's model.
    strategy: defaults to `distribute.get_strategy(config.strategy, ...)`.
    stream: where the progress lines go (default stdout); only the chief prints.

  Returns:
    {"step", "train_loss", "history" (the metrics of every logged step), "eval": {"top1", "top5", "loss", "num_examples"} (EMA weights when
    kept), "eval_raw" (the raw weights, when EMA is on), "images_per_second", "seconds"}.

  Raises:
    ValueError / FileNotFoundError: bad input, before any training step (see the messages).
  """
  config.validate()
  stream = stream or sys.stdout
  image_size = config.image_size if model_fn is not None else _check_image_size(config)
  if image_size is None:
    raise ValueError("image_size is required with a custom model_fn.")
  if config.init_checkpoint:
    from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
    checkpoints.resolve_checkpoint_path(config.init_checkpoint)  # FileNotFoundError early.
  if strategy is None:  # first: multi-worker collectives need an uninitialised TF runtime
    strategy = distribute.get_strategy(config.strategy, tpu=config.tpu, num_gpus=config.num_gpus)
  configure_determinism(config)
  chief = distribute.is_chief(strategy)
  if datasets is None:
    datasets = pipeline_datasets(config, image_size=image_size)
  num_classes = config.num_classes or datasets.num_classes
  total_steps = total_train_steps(config, datasets.num_train_examples)
  # One writer per run directory: the chief holds `run.lock` (other workers and evaluators never).
  lock = run_lock.RunLock(model_dir).acquire() if chief else None
  try:
    return _train_holding_lock(
        config, model_dir, datasets=datasets, model_fn=model_fn, strategy=strategy, stream=stream,
        image_size=image_size, num_classes=num_classes, total_steps=total_steps, chief=chief,
        lock=lock)
  finally:
    if lock is not None:
      lock.release()


def _train_holding_lock(config: TrainConfig, model_dir: str, *, datasets: Datasets, model_fn,
                        strategy: tf.distribute.Strategy, stream, image_size: int,
                        num_classes: int, total_steps: int, chief: bool,
                        lock: run_lock.RunLock | None) -> dict[str, Any]:
  """The body of `train_and_evaluate` once the chief holds the run lock (`lock`, else None)."""
  trainer = Trainer(config, strategy, num_classes=num_classes,
                    num_train_examples=datasets.num_train_examples, image_size=image_size,
                    model_fn=model_fn)
  writer = checkpointing.CheckpointWriter(
      trainer.checkpoint, model_dir, keep=config.keep_checkpoints, chief=chief,
      worker_index=distribute.worker_index(strategy), lock=lock)

  def say(message):
    if chief:
      print(message, file=stream, flush=True)

  if chief:
    from inception_tf.checkpoints import run as run_lib  # pylint: disable=import-outside-toplevel
    run_lib.write_run_config(model_dir, run_config(config, datasets=datasets,
                                                   num_classes=num_classes,
                                                   image_size=image_size, model=trainer.model))

  restored = writer.restore_latest()
  if restored:
    say(f"Resumed from {restored} at step {trainer.step}.")
  elif config.init_checkpoint:
    say(trainer.load_init_checkpoint(config.init_checkpoint))
  start_step = trainer.step
  say(f"Training {config.model} ({trainer.model.count_params():,} parameters, {num_classes} classes, "
      f"{image_size}x{image_size}) on {datasets.description}: {total_steps} steps of "
      f"{config.train_batch_size} over {trainer.num_replicas} replica(s) "
      f"({type(strategy).__name__}, jit_compile={trainer.jit_compile}, {config.precision}"
      f"{_bfloat16_convolutions_note(config.precision)}{trainer.determinism_note}).")

  summary_dir = model_dir if chief else os.path.join(model_dir, ".summaries_ignored")
  train_writer = (tf.summary.create_file_writer(os.path.join(summary_dir, "train")) if chief
                  else tf.summary.create_noop_writer())
  eval_writer = (tf.summary.create_file_writer(os.path.join(summary_dir, "eval")) if chief
                 else tf.summary.create_noop_writer())

  def eval_dataset():
    return strategy.distribute_datasets_from_function(datasets.eval_fn)

  def run_eval(step, final=False):
    if datasets.eval_fn is None:
      return None
    skipped_before = _decode_errors(datasets, "eval")
    result = trainer.evaluate(eval_dataset(), use_ema=True)
    result["undecodable_skipped"] = _decode_errors(datasets, "eval") - skipped_before
    with eval_writer.as_default():
      for key in ("top1", "top5", "loss"):
        tf.summary.scalar(key, result[key], step=step)
    label = "EMA" if trainer.ema is not None else "raw"
    say(f"{'Final evaluation' if final else 'Evaluation'} at step {step} ({label} weights): "
        f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  loss {result['loss']:.4f}  "
        f"over {result['num_examples']} examples" + (
            f" ({result['undecodable_skipped']} undecodable records skipped)"
            if result["undecodable_skipped"] else ""))
    return result

  results: dict[str, Any] = {"step": start_step, "history": []}
  train_started = time.time()
  images_per_second = float("nan")
  train_loss = float("nan")
  if start_step < total_steps:
    if chief and config.summary_images:
      _write_input_images(train_writer, datasets, start_step, config.summary_images, start_step)
    dataset = strategy.distribute_datasets_from_function(
        lambda context: datasets.train_fn(context, start_step))
    iterator = iter(dataset)
    train_steps = trainer.train_function()
    step = start_step
    window_start, window_images = time.time(), 0
    steps_done_timed, time_timed = 0, 0.0
    first_execution = True
    while step < total_steps:
      boundaries = [total_steps, step + config.steps_per_execution,
                    (step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps,
                    (step // config.log_every_steps + 1) * config.log_every_steps]
      if config.eval_every_steps:
        boundaries.append((step // config.eval_every_steps + 1) * config.eval_every_steps)
      num_steps = min(boundaries) - step
      started = time.time()
      metrics = train_steps(iterator, tf.constant(num_steps, tf.int32))
      metrics = {k: float(v.numpy()) for k, v in metrics.items()}
      elapsed = time.time() - started
      step += num_steps
      train_loss = metrics["loss"]
      if not math.isfinite(train_loss):
        raise FloatingPointError(f"Loss is {train_loss} at step {step}; lower --learning_rate or "
                                 "check the data.")
      if first_execution:  # the first call includes tracing / XLA compilation
        first_execution = False
        window_start, window_images = time.time(), 0
      else:
        steps_done_timed += num_steps
        time_timed += elapsed
        window_images += num_steps * config.train_batch_size
      if step % config.log_every_steps == 0 or step == total_steps:
        now = time.time()
        rate = window_images / max(now - window_start, 1e-9) if window_images else float("nan")
        per_step = time_timed / steps_done_timed if steps_done_timed else elapsed / num_steps
        lr = float(trainer.schedule(step - 1))
        results["history"].append({"step": step, "learning_rate": lr, **metrics})
        speed = f"{rate:.1f} images/s" if window_images else "first call (tracing)"
        say(f"step {step}/{total_steps}  loss {train_loss:.4f}  lr {lr:.5f}  {speed}  "
            f"ETA {_format_eta(per_step * (total_steps - step))}")
        with train_writer.as_default():
          for key in ("loss", "cross_entropy", "weight_decay", "gradient_norm", "accuracy"):
            tf.summary.scalar(key, metrics[key], step=step)
          tf.summary.scalar("learning_rate", lr, step=step)
          if math.isfinite(rate):
            tf.summary.scalar("images_per_second", rate, step=step)
        window_start, window_images = now, 0
      if step % config.checkpoint_every_steps == 0 or step == total_steps:
        writer.save(step)
      if config.eval_every_steps and step % config.eval_every_steps == 0 and step < total_steps:
        run_eval(step)
    if time_timed > 0:
      images_per_second = steps_done_timed * config.train_batch_size / time_timed
  elif writer.manager.latest_checkpoint is None:
    writer.save(start_step)

  results.update(step=trainer.step, train_loss=train_loss, images_per_second=images_per_second,
                 seconds=time.time() - train_started)
  final = run_eval(trainer.step, final=True)
  if final is not None:
    results["eval"] = final
    if trainer.ema is not None:
      results["eval_raw"] = trainer.evaluate(eval_dataset(), use_ema=False)
      say(f"  (raw weights: top-1 {results['eval_raw']['top1']:.4f}  "
          f"top-5 {results['eval_raw']['top5']:.4f})")
  train_writer.flush()
  eval_writer.flush()
  if chief:
    atomic.write_json(os.path.join(model_dir, "results.json"),
                      {"config": dataclasses.asdict(config), **results})
  return results
