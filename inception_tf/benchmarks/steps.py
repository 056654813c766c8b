"""The trainer's step and the multi-crop evaluation, timed on synthetic data (`tools/benchmark.py`'s
"train" and "eval" sections). Not part of the library: nothing in it is imported by training or
evaluation.
"""

from __future__ import annotations

import time
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from inception_tf import checkpoints
from inception_tf import models
from inception_tf.benchmarks import sections
from inception_tf.eval import evaluate
from inception_tf.train import loop


def benchmark_train_step(model: str = "inception_v3", *, batch_size: int = 32,
                         image_size: int | None = None, num_classes: int = 1001, steps: int = 10,
                         warmup_steps: int = 2, precision: str = "float32",
                         jit_compile: bool = True, steps_per_execution: int = 1,
                         model_options: dict | None = None,
                         config: TrainConfig | None = None) -> dict[str, float]:
  """Times this trainer's full-paper step (aux loss, label smoothing, weight decay, clipping, TF1
  RMSProp, EMA) on one device with synthetic data, for `tools/benchmark.py`.

  Args:
    model: registry name.
    batch_size: global batch.
    image_size: input size (default: the network's).
    num_classes: logits width.
    steps: timed steps (after `warmup_steps`, which include compilation).
    warmup_steps: untimed steps.
    precision: "float32" / "mixed_bfloat16" / "mixed_float16".
    jit_compile: XLA-compile the step.
    steps_per_execution: steps per host call.
    model_options: family options (e.g. {"depth_multiplier": 0.5}).
    config: a base `TrainConfig` (its recipe fields are used); the arguments above override it.

  Returns:
    {"images_per_second", "seconds_per_step", "steps", "batch_size", "compile_seconds"}.
  """
  image_size = image_size or models.model_info(model).default_image_size
  config = (config or loop.TrainConfig()).replace(
      model=model, model_options=dict(model_options or {}), image_size=image_size,
      num_classes=num_classes, precision=precision, jit_compile=jit_compile,
      train_batch_size=batch_size, train_steps=steps + warmup_steps,
      steps_per_execution=steps_per_execution)
  config.validate()
  strategy = tf.distribute.get_strategy()
  trainer = loop.Trainer(config, strategy, num_classes=num_classes, num_train_examples=1_281_167,
                    image_size=image_size)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (batch_size, image_size, image_size, 3)).astype(np.float32)
  labels = rng.integers(0, num_classes, (batch_size,)).astype(np.int32)
  dataset = tf.data.Dataset.from_tensors({"images": images, "labels": labels}).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  train_steps = trainer.train_function()
  started = time.time()
  done = 0
  while done < max(warmup_steps, 1):
    n = min(steps_per_execution, max(warmup_steps, 1) - done)
    train_steps(iterator, tf.constant(n, tf.int32))["loss"].numpy()
    done += n
  compile_seconds = time.time() - started
  started = time.time()
  done = 0
  while done < steps:
    n = min(steps_per_execution, steps - done)
    train_steps(iterator, tf.constant(n, tf.int32))["loss"].numpy()
    done += n
  seconds = time.time() - started
  return {"images_per_second": steps * batch_size / seconds, "seconds_per_step": seconds / steps,
          "steps": steps, "batch_size": batch_size, "compile_seconds": compile_seconds}


def _synthetic_jpegs(count: int, height: int, width: int, seed: int = 0) -> tf.data.Dataset:
  rng = np.random.default_rng(seed)
  encoded = [tf.io.encode_jpeg(tf.constant(
      rng.integers(0, 256, (height, width, 3), dtype=np.uint8))).numpy() for _ in range(count)]
  return tf.data.Dataset.from_tensor_slices({
      "image_bytes": encoded, "label": (np.arange(count) % 10 + 1).astype(np.int32),
      "filename": [f"synthetic_{i:08d}.JPEG" for i in range(count)]})


def benchmark_multicrop(model: str | keras.Model = "inception_v3", *,
                        image_size: int | None = None, num_images: int = 2,
                        multi_crops: int = 144, num_classes: int = 1001,
                        source_height: int = 375, source_width: int = 500,
                        strategy: tf.distribute.Strategy | None = None,
                        model_options: dict | None = None, warmup: int = 1,
                        iterations: int = 3) -> dict:
  """Images/s of `multi_crops`-crop evaluation vs (single-crop images/s) / multi_crops, same run.

  Both evaluations use the same model (random weights), JPEGs of ImageNet's typical 500x375 and
  the same number of model inputs per step (`multi_crops` single-crop images vs one multi-crop
  image per replica), so the ratio measures what the multi-crop path costs beyond the model:
  decoding, the scale resizes, cutting and mirroring, averaging. Each timed call is a whole
  `Evaluator.run()` (input pipeline included); the two are timed alternately after `warmup`
  untimed calls (`inception_tf.sections.time_interleaved`), medians reported.

  Args:
    model: a registry name or a built Keras model (dict or tensor logits output).
    image_size: input size (default: the network's).
    num_images: multi-crop images per timed call (single-crop: num_images x multi_crops).
    multi_crops: 10, 12 or 144.
    num_classes: logits width of a registry model.
    source_height, source_width: size of the synthetic JPEGs.
    strategy: tf.distribute strategy (default: the current one).
    model_options: family options of a registry model.
    warmup: untimed calls of each evaluation.
    iterations: timed calls of each evaluation.

  Returns:
    {"single_crop_images_per_second", "multi_crop_images_per_second", "single_crop_over_crops",
     "ratio", ...}: ratio = multi / (single / multi_crops); the issue asks for >= 0.9.
  """
  strategy = strategy or tf.distribute.get_strategy()
  if isinstance(model, keras.Model):
    net, name = model, model.name
  else:
    name = model
    size = image_size or models.model_info(model).default_image_size
    with strategy.scope():
      net = models.create_model(model, num_classes, image_size=size, aux_logits=False,
                                  **(model_options or {}))
  size = int(net.input_shape[1])
  classes = checkpoints.loading.logits_width(net)
  replicas = strategy.num_replicas_in_sync
  multi_images = num_images * replicas
  single_images = multi_images * multi_crops
  evaluators = {
      "ours": evaluate.Evaluator(
          net, crops=multi_crops, batch_size=replicas, strategy=strategy, num_classes=classes,
          raw_dataset=_synthetic_jpegs(multi_images, source_height, source_width, 1), verbose=0),
      "theirs": evaluate.Evaluator(
          net, crops=1, batch_size=multi_crops * replicas, strategy=strategy,
          num_classes=classes, verbose=0,
          raw_dataset=_synthetic_jpegs(single_images, source_height, source_width, 2)),
  }
  timings = sections.time_interleaved({k: e.run for k, e in evaluators.items()},
                                      warmup=warmup, iterations=iterations)
  multi_ips = multi_images / timings["ours"].median
  single_ips = single_images / timings["theirs"].median
  return {"model": name, "image_size": size, "multi_crops": multi_crops,
          "multi_crop_images_per_second": multi_ips,
          "single_crop_images_per_second": single_ips,
          "single_crop_over_crops": single_ips / multi_crops,
          "ratio": multi_ips / (single_ips / multi_crops),
          "model_inputs_per_step": multi_crops * replicas,
          "strategy": type(strategy).__name__, "iterations": iterations}


@sections.register_section(
    "train", description="the trainer's full-paper step (aux loss, label smoothing, weight "
    "decay, clipping, TF1 RMSProp, EMA) vs keras.applications' model.fit (no aux head, label "
    "smoothing, RMSprop), synthetic data, 1 device")
def train_section(config: sections.BenchmarkConfig) -> Iterable[sections.Measurement]:
  peers = sections._PEERS  # pylint: disable=protected-access
  for name in config.models:
    for dtype in config.dtypes:
      result = benchmark_train_step(
          name, batch_size=config.batch_size, precision=dtype, steps=config.iterations,
          warmup_steps=config.warmup, jit_compile=config.jit_compile)
      theirs = (sections.keras_fit_images_per_second(name, dtype, config) if name in peers
                else None)
      yield sections.Measurement(
          "train", f"{name} paper step {dtype} b{config.batch_size}",
          ours=result["images_per_second"], theirs=theirs,
          peer=f"keras.applications.{peers[name][0]}.fit" if name in peers else "")


@sections.register_section(
    "eval", description="144-crop evaluation vs single-crop throughput / 144 (cost of the "
    "multi-crop path beyond the model; target >= 0.9)")
def eval_section(config: sections.BenchmarkConfig) -> Iterable[sections.Measurement]:
  for name in config.models:
    result = benchmark_multicrop(name, warmup=config.warmup, iterations=config.iterations)
    yield sections.Measurement("eval", f"{name} {result['multi_crops']}-crop eval",
                               ours=result["multi_crop_images_per_second"],
                               theirs=result["single_crop_over_crops"],
                               peer="single-crop images/s / crops")
