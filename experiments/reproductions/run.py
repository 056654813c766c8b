r"""Small-scale reproductions of the seed papers' claims, run for real on the built-in digits and on
Fashion-MNIST (Debian's `dataset-fashion-mnist`, built into TFRecords on first use).

    python experiments/reproductions/run.py --study=all            # every study, then the plots
    python experiments/reproductions/run.py --study=residual       # one study
    python experiments/reproductions/run.py --study=fashion --seeds=3   # the Fashion-MNIST studies
    python experiments/reproductions/run.py --study=all --plot_only

Studies (each run is `inception_tf.train.train_and_evaluate` with a `TrainConfig`):

* `residual` (v4 paper §5, Figures 21-26, "residual connections speed up training"): a scaled-down
  network of Inception-ResNet-A blocks (`inception_resnet.block35`, the library's block) against the
  same network with the identity shortcut removed (the same towers, concatenation and 1x1 projection,
  which gets batch norm and ReLU like every non-residual Inception convolution): equal cost,
  training curves side by side.
* `scaling` (v4 paper §3.3, "scaling of the residuals"): a WIDE residual network of the same blocks
  at a high learning rate, no gradient clipping, no warm-up, residual scale 1.0 (unscaled) vs 0.1.
* `smoothing` (v3 paper §7 and Table 3): Inception-v3 (depth multiplier 0.1, 75x75) with label
  smoothing 0.1 and the BN-auxiliary head, without label smoothing, and without batch norm in the
  auxiliary head's fully connected layer; several seeds, mean +- spread.
* `resolution` (v3 paper §9, Table 2): Inception-v3 (depth multiplier 0.1) with receptive fields
  79, 151 and 299 fed images of that size, i.e. (nearly) constant cost, per `receptive_field`.

On Fashion-MNIST (60,000 training images, the 10,000 test images as validation; every run the
ResNet paper's CIFAR recipe and augmentation, `_fashion_recipe` and `fashion_datasets`, for the
same number of epochs within a study, `FASHION_EPOCHS`):

* `degradation` (ResNet paper Fig. 6 / Table 6): plain20, plain56, resnet20, resnet56 from the
  registry; the claim is about training error (the deeper plain net's is higher).
* `cardinality` (ResNeXt paper Table 3, at CIFAR scale): `resnext_cifar` thinned to 20 layers at
  equal complexity with cardinality 1, 8 and 32 (`CARDINALITY_VARIANTS`). Its grouped
  convolutions (Keras `Conv2D(groups=C)`) train through the trainer's `fused_call`, which computes
  them with TF's grouped kernel (`inception_tf.models.grouped`), not Keras' slow nested XLA path.
* `residual_fashion`: the `residual` study's two networks on Fashion-MNIST.
* `smoothing_fashion` (v3 paper §7): resnet20 with label smoothing 0.1 and without; the run
  without smoothing is the `degradation` study's resnet20 run (same config and seed), copied.

Results: `experiments/reproductions/results/<study>.json` (every run: config, final validation
top-1, the logged training curve, the validation curve when the recipe evaluates during training,
seconds) and `<study>.png`. Runs already in the
JSON are skipped, so an interrupted invocation resumes. Model directories go to `--work_dir`
(default /tmp/inception_tf_reproductions), not into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import re
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position

from inception_tf import train  # pylint: disable=wrong-import-position
from inception_tf.models import inception_resnet  # pylint: disable=wrong-import-position
from inception_tf.models import layers  # pylint: disable=wrong-import-position

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DIGITS_STUDIES = ("residual", "scaling", "smoothing", "resolution")
# Cardinality last: its C32 runs cost the most per step (experiments/README.md).
FASHION_STUDIES = ("degradation", "residual_fashion", "smoothing_fashion", "cardinality")
STUDIES = DIGITS_STUDIES + FASHION_STUDIES
DEFAULT_FASHION_DIR = os.path.join(os.path.expanduser("~"), ".cache", "inception_tf",
                                   "fashion_mnist")


# ------------------------------------------------------------------------------------------------
# Scaled-down networks for the residual studies, built from the library's blocks.


@dataclasses.dataclass(frozen=True)
class MiniNet:
  """A small network of Inception(-ResNet)-A blocks on one grid.

  Attributes:
    width: channels of the block inputs/outputs (the residual stream).
    towers: (1x1 width, (1x1, 3x3) widths, (1x1, 3x3, 3x3) widths) as in Figure 16.
    num_blocks: blocks on the grid after the stem.
    residual: identity shortcuts (Inception-ResNet-A) or none (plain Inception blocks).
    residual_scale: the scale of the residual branch (paper §3.3); ignored without shortcuts.
  """

  width: int = 64
  towers: tuple = (16, (16, 16), (16, 24, 32))
  num_blocks: int = 8
  residual: bool = True
  residual_scale: float = 1.0


def plain_block(x, *, scope: str, batch_norm: layers.BatchNorm, towers: tuple):
  """The Inception-ResNet-A towers without the shortcut: concat -> 1x1 conv + BN + ReLU."""
  tower_1x1, tower_3x3, tower_double = towers
  b0 = layers.conv_bn(x, tower_1x1, 1, name=f"{scope}.Branch_0.Conv2d_1x1", batch_norm=batch_norm)
  b1 = layers.conv_bn(x, tower_3x3[0], 1, name=f"{scope}.Branch_1.Conv2d_0a_1x1",
                      batch_norm=batch_norm)
  b1 = layers.conv_bn(b1, tower_3x3[1], 3, name=f"{scope}.Branch_1.Conv2d_0b_3x3",
                      batch_norm=batch_norm)
  b2 = layers.conv_bn(x, tower_double[0], 1, name=f"{scope}.Branch_2.Conv2d_0a_1x1",
                      batch_norm=batch_norm)
  b2 = layers.conv_bn(b2, tower_double[1], 3, name=f"{scope}.Branch_2.Conv2d_0b_3x3",
                      batch_norm=batch_norm)
  b2 = layers.conv_bn(b2, tower_double[2], 3, name=f"{scope}.Branch_2.Conv2d_0c_3x3",
                      batch_norm=batch_norm)
  mixed = layers.concat([b0, b1, b2], name=f"{scope}.concat")
  return layers.conv_bn(mixed, x.shape[-1], 1, name=f"{scope}.Conv2d_1x1", batch_norm=batch_norm)


def mini_model_fn(net: MiniNet) -> Callable[..., keras.Model]:
  """A `train_and_evaluate` model_fn: stem (3x3/2, 3x3, 1x1 to `width`), blocks, pool, logits."""

  def model_fn(config: train.TrainConfig, num_classes: int, image_size: int) -> keras.Model:
    batch_norm = layers.BatchNorm(momentum=config.batch_norm_momentum)
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.conv_bn(inputs, 32, 3, strides=2, padding="valid", name="Conv2d_1a_3x3",
                       batch_norm=batch_norm)
    x = layers.conv_bn(x, 32, 3, padding="valid", name="Conv2d_2a_3x3", batch_norm=batch_norm)
    x = layers.conv_bn(x, net.width, 1, name="Conv2d_3b_1x1", batch_norm=batch_norm)
    for i in range(1, net.num_blocks + 1):
      scope = f"Repeat.block35_{i}"
      if net.residual:
        x = inception_resnet.block35(x, scope=scope, scale=net.residual_scale,
                                     batch_norm=batch_norm, tower_1x1=net.towers[0],
                                     tower_3x3=net.towers[1], tower_double_3x3=net.towers[2])
      else:
        x = plain_block(x, scope=scope, batch_norm=batch_norm, towers=net.towers)
    x = layers.global_avg_pool(x, name="Logits.AvgPool", dtype="float32")
    x = layers.dropout(x, config.dropout_keep_prob, name="Logits.Dropout")
    x = layers.conv_bias(x, num_classes, 1, name="Logits.Conv2d_1c_1x1", dtype="float32")
    logits = layers.squeeze_logits(x, num_classes, name="logits")
    name = "MiniInceptionResnet" if net.residual else "MiniInception"
    return keras.Model(inputs, {"logits": logits}, name=name)

  return model_fn


# ------------------------------------------------------------------------------------------------
# The studies: (run name, config, model_fn or None for the registry's model).


def _short_recipe(**changes) -> train.TrainConfig:
  """A recipe that learns the digits within ~100 steps (Adam 2e-3, constant after a short
  warm-up, batch-norm momentum 0.9, raw weights evaluated), with the papers' loss (label smoothing
  0.1, aux weight 0.4, weight decay 4e-5) and gradient clipping 2.0.

  The papers' RMSProp recipe (lr 0.045, epsilon 1.0) moves too slowly for runs this short: a first
  attempt with it (150 steps, Inception-v3 x0.1) stayed at chance on the validation split (see
  experiments/README.md), so the studies compare variants under this faster recipe instead.
  `model` must be given: the defaults come from `train.quickstart`, whose model has changed before.
  """
  if "model" not in changes:
    raise ValueError(f"_short_recipe needs an explicit model=; got changes {sorted(changes)}.")
  base = dict(train_epochs=None, optimizer="adam", learning_rate=2e-3, epsilon=1e-7,
              learning_rate_decay=1.0, warmup_epochs=0.2, batch_norm_momentum=0.9, ema_decay=None,
              log_every_steps=10, steps_per_execution=10, checkpoint_every_steps=100000,
              summary_images=0, eval_batch_size=120, jit_compile=False)
  base.update(changes)
  return train.quickstart(**base)


# Session 2 budgets (measured on this machine, see experiments/README.md): Inception-v3 x0.1 needs
# a few hundred steps, not 100, to learn the digits; the learning rate then decays x0.75 per epoch
# (45 steps), so the final raw weights are not those of a noisy constant-rate step.
V3_STEPS = {"smoothing": 300, "resolution": 150}


# Studies whose runs train on the central crops of the training images (no random crop, no colour
# distortion): the Inception augmentation (random crops of 5-100 % of the area) on 8x8 digits left
# Inception-v3 x0.1 at 16 % training accuracy after 100 steps (session 2, see experiments/README.md).
CENTRAL_CROP_STUDIES = ("smoothing", "resolution")


def central_crop_datasets(config: train.TrainConfig, *, image_size: int):
  """`train_and_evaluate`'s input with the training split preprocessed as for evaluation (central
  crop, resize, [-1, 1]), shuffled per epoch with `config.seed`; the evaluation input unchanged.

  The digits have 1,437 training images, so the preprocessed split is computed once and cached.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  from inception_tf.train import loop  # pylint: disable=import-outside-toplevel
  if config.data_dir or config.tfds_name:
    raise ValueError("central_crop_datasets reads the built-in digits only; got data_dir="
                     f"{config.data_dir!r}, tfds_name={config.tfds_name!r}.")
  default = loop.pipeline_datasets(config, image_size=image_size)
  source = data.default_dataset.digits_data_dir()

  def train_fn(context, skip_batches):
    batch = (context.get_per_replica_batch_size(config.train_batch_size) if context
             else config.train_batch_size)
    examples = data.make_dataset(
        source, split=config.train_split, is_training=False, batch_size=config.eval_batch_size,
        image_size=image_size, input_context=context, seed=config.seed, deterministic=True,
        cache=True, num_epochs=1, preprocessing=config.preprocessing).unbatch()
    examples = examples.filter(lambda e: e["mask"] > 0).map(
        lambda e: {"images": e["images"], "labels": e["labels"]}).cache()
    examples = examples.shuffle(default.num_train_examples, seed=config.seed,
                                reshuffle_each_iteration=True).repeat()
    return examples.batch(batch, drop_remainder=True).skip(skip_batches).prefetch(
        tf.data.AUTOTUNE)

  return dataclasses.replace(default, train_fn=train_fn,
                             description=default.description + ", central crops, no augmentation")


def _v3_recipe(*, steps: int, image_size: int, model_options: dict,
               **changes) -> train.TrainConfig:
  """Inception-v3 x0.1 (min depth 8) on the digits: `_short_recipe` plus a per-epoch decay and a
  validation evaluation every 100 steps (the learning curves of the plots)."""
  return _short_recipe(model="inception_v3", image_size=image_size, train_steps=steps,
                       learning_rate_decay=0.75, epochs_per_decay=1.0, eval_every_steps=100,
                       model_options={"depth_multiplier": 0.1, "min_depth": 8, **model_options},
                       **changes)


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST studies (issue 17): the data, the input, the recipe.


def fashion_data_dir(directory: str = DEFAULT_FASHION_DIR) -> str:
  """`directory`, holding Fashion-MNIST's TFRecords, built once from Debian's IDX files
  (`apt-get install dataset-fashion-mnist`); an interrupted build resumes."""
  from inception_tf.data import builder  # pylint: disable=import-outside-toplevel
  directory = os.path.abspath(os.path.expanduser(directory))
  if not os.path.isfile(os.path.join(directory, builder.MANIFEST_NAME)):
    builder.build_fashion_mnist(directory, num_workers=2)
  return directory


CIFAR_PAD = 4  # ResNet paper §4.2: "4 pixels are padded on each side"


def fashion_datasets(config: train.TrainConfig, *, image_size: int):
  """`train_and_evaluate`'s input on Fashion-MNIST (`config.data_dir`) with the ResNet paper's
  CIFAR augmentation (§4.2).

  Every 28x28 image is resized whole (no central crop) to `image_size` by the library's evaluation
  preprocessing, in [-1, 1]; evaluation stops there (padded, masked batches: every test image
  counts once). Training pads 4 pixels of black (-1) on each side, takes a random `image_size` crop
  and flips it horizontally at random, "a 32x32 crop randomly sampled from the padded image or its
  horizontal flip" - the maths of the library's "cifar" preprocessing kind
  (`inception_tf.data.cifar_preprocessing`, added after these studies started), kept here with its
  own seed derivation so that resumed studies draw the same crops and flips as their recorded runs.
  The records are shuffled every epoch with `config.seed`, and each example's
  crop and flip are drawn from (seed, position in the stream), so a resumed run sees the same
  batches as an uninterrupted one (the skipped records are not decoded).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  from inception_tf.train import loop  # pylint: disable=import-outside-toplevel
  if not config.data_dir:
    raise ValueError("fashion_datasets needs config.data_dir (Fashion-MNIST's TFRecords, see "
                     "fashion_data_dir / --fashion_dir).")
  default = loop.pipeline_datasets(config, image_size=image_size)
  files, _ = data.list_files(config.data_dir, config.train_split)

  def augment(index, serialized):
    example = data.tfrecord.parse_example(serialized)
    image = data.preprocess_for_eval(example["image_bytes"], image_size, image_size,
                                     central_fraction=None)  # image_size x image_size x 3
    image = tf.pad(image, [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]],
                   constant_values=-1.0)  # (image_size + 8) x (image_size + 8) x 3
    seed = tf.stack([tf.constant(config.seed, tf.int64), index])
    image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seed=seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=seed + [0, 2**40])
    return {"images": image, "labels": example["label"]}

  def train_fn(context, skip_batches):
    batch = (context.get_per_replica_batch_size(config.train_batch_size) if context
             else config.train_batch_size)
    records = tf.data.TFRecordDataset(files)
    if context and context.num_input_pipelines > 1:
      records = records.shard(context.num_input_pipelines, context.input_pipeline_id)
    records = records.cache().shuffle(default.num_train_examples, seed=config.seed,
                                      reshuffle_each_iteration=True).repeat()
    return (records.enumerate().skip(skip_batches * batch)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

  def eval_fn(context):
    batch = (context.get_per_replica_batch_size(config.eval_batch_size) if context
             else config.eval_batch_size)
    return data.make_dataset(
        config.data_dir, split=config.eval_split, is_training=False, batch_size=batch,
        image_size=image_size, input_context=context, seed=config.seed, deterministic=True,
        cache=True, num_epochs=1, central_fraction=None)

  return dataclasses.replace(default, train_fn=train_fn, eval_fn=eval_fn,
                             description=default.description + ", ResNet CIFAR augmentation "
                             "(pad 4, random crop, flip)")


FASHION_BATCH = 128  # ResNet paper §4.2: mini-batch 128


def _fashion_recipe(*, model: str, data_dir: str, epochs: float, image_size: int = 32,
                    **changes) -> train.TrainConfig:
  """The ResNet paper's CIFAR recipe (§4.2) for a budget of `epochs` on Fashion-MNIST.

  As the paper: SGD with momentum 0.9 at learning rate 0.1 for batch 128, weight decay 1e-4 (our
  slim-style `wd * sum(w^2) / 2` has the gradient `wd * w`, the paper's convention), batch norm,
  no dropout, no label smoothing, no auxiliary head, no gradient clipping, no weight averaging.
  Shortened: the paper's two /10 steps at 50 % and 75 % of 64k iterations become a smooth
  exponential decay from 0.1 to 0.001 over the run (x0.1 every half of the budget), after a
  0.2-epoch linear warm-up (the paper warms ResNet-110 up at 0.01; here every variant gets the
  same warm-up). Batch-norm momentum 0.9 (the paper's Torch/Caffe default); the validation split
  (the 10,000 test images) is evaluated half-way and at the end.
  """
  steps = max(1, round(epochs * 60_000 / FASHION_BATCH))
  base = dict(model=model, data_dir=data_dir, image_size=image_size, train_steps=steps,
              train_epochs=None, train_batch_size=FASHION_BATCH, learning_rate_batch_size=128,
              optimizer="momentum", learning_rate=0.1, momentum=0.9,
              learning_rate_decay=0.1, epochs_per_decay=epochs / 2, staircase=False,
              warmup_epochs=0.2, weight_decay=1e-4, label_smoothing=0.0, aux_logits=False,
              dropout_keep_prob=1.0, batch_norm_momentum=0.9, gradient_clip_norm=None,
              ema_decay=None, eval_batch_size=500, eval_every_steps=max(1, steps // 2),
              log_every_steps=50, steps_per_execution=10, checkpoint_every_steps=500,
              summary_images=0, jit_compile=False, cache_data=True)
  base.update(changes)
  return train.TrainConfig(**base)


# The cardinality study: the registry's `resnext_cifar` (ResNeXt paper §5.3: bottleneck blocks,
# 3 stages at 32x32 / 16x16 / 8x8, the bottleneck width doubling with the stage) scaled to this
# budget: a 3x3 stem to 48 channels, 2 units per stage with outputs 48 / 96 / 192 (20 layers).
# Cardinality C and group width d are chosen at equal complexity by the paper's count for a block
# of input and output width w (§4: w*C*d + 9*C*d^2 + C*d*w parameters), w = 48: 1x24d 7,488,
# 8x6d 7,200, 32x2d 7,296 (within 4 %, as the paper's Table 2 templates); the measured parameters
# and multiply-adds of each network are recorded with its runs.
CARDINALITY_VARIANTS = (("C1_24d", 1, 24), ("C8_6d", 8, 6), ("C32_2d", 32, 2))
CARDINALITY_TEMPLATE = {"units": (2, 2, 2), "widths": (48, 96, 192), "stem_width": 48}


def _require_models(study: str, names) -> None:
  """Raises ValueError naming the models of `study` that the registry does not have."""
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  missing = [n for n in names if n not in models.list_models()]
  if missing:
    raise ValueError(f"Study {study!r} needs {missing} in inception_tf.models.list_models() "
                     "(issue 17 §2: the ResNet paper's CIFAR networks and the ResNeXt template).")


# Budgets of the Fashion-MNIST studies in epochs of 60,000 images (469 steps of 128), the same for
# every variant of a study; the seconds per run measured for them are in experiments/README.md.
# One epoch for `residual_fashion` (its claim is about the speed of early training) and for
# `cardinality` (its grouped convolutions train at ~90 images/s on one core: 3 variants x 3 seeds
# at 2 epochs would take ~3 h of the machine); two for the studies about final training error and
# accuracy (`smoothing_fashion` reuses `degradation`'s ResNet-20 runs, so the two must agree).
FASHION_EPOCHS = {"degradation": 2.0, "cardinality": 1.0, "residual_fashion": 1.0,
                  "smoothing_fashion": 2.0}


def study_runs(study: str, *, seeds: int, quick: bool, fashion_dir: str | None = None,
               train_steps: int | None = None):
  """The runs of `study` as (name, config, model_fn).

  Args:
    study: one of STUDIES.
    seeds: a count (seeds 0..n-1) or the seeds.
    quick: 1/20 of the steps.
    fashion_dir: Fashion-MNIST's TFRecords (the Fashion-MNIST studies; default
      DEFAULT_FASHION_DIR, not built here).
    train_steps: overrides every run's steps (smoke and timing runs).
  """
  steps = (lambda n: max(10, n // 20)) if quick else (lambda n: n)
  if train_steps:
    steps = lambda n: train_steps  # noqa: E731
  seeds = range(seeds) if isinstance(seeds, int) else seeds
  runs = []
  if study in FASHION_STUDIES:
    fashion_dir = fashion_dir or DEFAULT_FASHION_DIR

    def recipe(**changes):
      config = _fashion_recipe(data_dir=fashion_dir, epochs=FASHION_EPOCHS[study], **changes)
      if train_steps:  # smoke / timing: log every 10 steps, evaluate once at the end
        return config.replace(train_steps=train_steps, log_every_steps=10, eval_every_steps=None)
      config = config.replace(train_steps=steps(config.train_steps))
      return config.replace(eval_every_steps=max(10, config.train_steps // 2),
                            log_every_steps=min(50, max(10, config.train_steps // 4)))

  if study == "degradation":
    # ResNet paper Fig. 6 / Table 6: the CIFAR nets (6n+2 layers, 16/32/64 filters, option A).
    names = ("plain20", "plain56", "resnet20", "resnet56")
    _require_models(study, names)
    for seed in seeds:
      for name in names:
        runs.append((f"{name}_seed{seed}", recipe(model=name, seed=seed), None))
  elif study == "cardinality":
    _require_models(study, ("resnext_cifar",))
    for seed in seeds:
      for name, cardinality, group_width in CARDINALITY_VARIANTS:
        options = dict(CARDINALITY_TEMPLATE, cardinality=cardinality,
                       bottleneck_width=group_width)
        runs.append((f"{name}_seed{seed}",
                     recipe(model="resnext_cifar", model_options=options, seed=seed), None))
  elif study == "residual_fashion":
    # The `residual` study's two networks (same towers and cost), on Fashion-MNIST.
    for seed in seeds:
      for residual in (False, True):
        name = "inception_resnet" if residual else "inception"
        runs.append((f"{name}_seed{seed}", recipe(model=f"mini_{name}", seed=seed),
                     mini_model_fn(MiniNet(residual=residual, residual_scale=1.0))))
  elif study == "smoothing_fashion":
    # v3 paper §7 on ResNet-20 (the cheapest network here): smoothing 0.1 or none, all else equal.
    _require_models(study, ("resnet20",))
    for seed in seeds:
      for smoothing in (0.0, 0.1):
        runs.append((f"resnet20_ls{smoothing:g}_seed{seed}",
                     recipe(model="resnet20", seed=seed, label_smoothing=smoothing), None))
  elif study == "residual":
    for seed in seeds:
      for residual in (False, True):
        net = MiniNet(residual=residual, residual_scale=1.0)
        config = _short_recipe(model="mini", image_size=32, train_steps=steps(100), seed=seed,
                               aux_logits=False)
        runs.append((f"{'inception_resnet' if residual else 'inception'}_seed{seed}", config,
                     mini_model_fn(net)))
  elif study == "scaling":
    for seed in seeds:
      for scale in (1.0, 0.1):
        net = MiniNet(width=192, towers=(32, (32, 32), (32, 48, 64)), num_blocks=8,
                      residual=True, residual_scale=scale)
        # The paper's RMSProp (epsilon 1.0, x0.94 every 2 epochs) at 0.3, ~7x its 0.045, with no
        # warm-up and no clipping: the regime where unscaled wide residual nets "die" (§3.3).
        config = _short_recipe(model="mini_wide", image_size=24, train_steps=steps(100),
                               seed=seed, aux_logits=False, optimizer="rmsprop", epsilon=1.0,
                               learning_rate=0.3, learning_rate_decay=0.94, epochs_per_decay=2.0,
                               warmup_epochs=0.0, batch_norm_momentum=0.99,
                               gradient_clip_norm=None, ema_decay=None)
        runs.append((f"scale{scale:g}_seed{seed}", config, mini_model_fn(net)))
  elif study == "smoothing":
    variants = (("v3_ls0.1_bnaux", 0.1, True), ("v3_no_ls", 0.0, True),
                ("v3_no_bnaux", 0.1, False))
    for seed in seeds:
      for name, smoothing, aux_bn in variants:
        config = _v3_recipe(steps=steps(V3_STEPS["smoothing"]), image_size=75, seed=seed,
                            label_smoothing=smoothing, model_options={"aux_batch_norm": aux_bn})
        runs.append((f"{name}_seed{seed}", config, None))
  elif study == "resolution":
    for seed in seeds:
      for field in (79, 151, 299):
        config = _v3_recipe(steps=steps(V3_STEPS["resolution"]), image_size=field, seed=seed,
                            model_options={"receptive_field": field})
        runs.append((f"rf{field}_seed{seed}", config, None))
  else:
    raise ValueError(f"Unknown study {study!r}; valid: {STUDIES}.")
  return runs


# ------------------------------------------------------------------------------------------------
# Running, recording, plotting.


def _load(path: str) -> dict:
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  return {"runs": {}}


def _add_run(path: str, name: str, entry: dict, command: str) -> dict:
  """Merges one run into the study's JSON under a file lock (studies may run in parallel)."""
  with open(path + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    record = _load(path)
    record["runs"][name] = entry
    commands = record.setdefault("commands", [])
    if command not in commands:
      commands.append(command)
    record["command"] = commands[0]
    with open(path + ".tmp", "w") as f:
      json.dump(record, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
  return record


def _library_commit() -> str:
  """The commit of the imported `inception_tf` (a snapshot's COMMIT file, else git HEAD)."""
  import inception_tf  # pylint: disable=import-outside-toplevel
  root = os.path.dirname(os.path.dirname(os.path.abspath(inception_tf.__file__)))
  stamp = os.path.join(root, "COMMIT")
  if os.path.isfile(stamp):
    with open(stamp) as f:
      return f.read().strip() + " (snapshot " + root + ")"
  try:
    import subprocess  # pylint: disable=import-outside-toplevel
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "inception_tf"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _eval_history(model_dir: str) -> list[dict]:
  """The validation evaluations `train_and_evaluate` wrote to `<model_dir>/eval` (TensorBoard
  events), as [{"step", "top1", "top5", "loss"}] by step; the run's result holds only the last."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  by_step: dict[int, dict] = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, "eval", "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag in ("top1", "top5", "loss"):
          by_step.setdefault(int(event.step), {"step": int(event.step)})[value.tag] = float(
              tf.make_ndarray(value.tensor))
  return [by_step[step] for step in sorted(by_step)]


def _model_cost(config: train.TrainConfig, model_fn, num_classes: int) -> dict:
  """Parameters and multiply-adds per image (`inception_tf.models.stats`) of a run's network."""
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  from inception_tf.models import stats  # pylint: disable=import-outside-toplevel
  if model_fn is not None:
    model = model_fn(config, num_classes, config.image_size)
  else:
    model = models.create_model(config.model, num_classes=num_classes,
                                image_size=config.image_size, **config.model_options)
  count = stats.count_parameters(model)
  return {"parameters": count.total, "trainable_parameters": count.trainable,
          "multiply_adds": stats.count_multiply_adds(model)}


def _same_run(results_dir: str, config: dict) -> tuple[str, dict] | None:
  """A recorded run (of any study in `results_dir`) with exactly `config`: a registry model,
  same recipe, data and seed, i.e. the same experiment; returns ("study/run", entry)."""
  for other in sorted(f for f in os.listdir(results_dir) if f.endswith(".json")):
    for name, entry in _load(os.path.join(results_dir, other)).get("runs", {}).items():
      if (entry.get("config") == config and entry.get("registry_model") and
          not entry.get("incomplete") and not entry.get("reused_from")):
        return f"{other[:-len('.json')]}/{name}", entry
  return None


def run_study(study: str, *, seeds, quick: bool, work_dir: str, results_dir: str,
              variants=None, fashion_dir: str | None = None,
              train_steps: int | None = None) -> dict:
  """Runs the missing runs of `study` (optionally only some seeds / variants), adding each to
  `<results_dir>/<study>.json`. A run whose registry model and config equal a run recorded by
  another study (e.g. ResNet-20 without label smoothing, in `degradation` and
  `smoothing_fashion`) is copied from it, marked `reused_from`, not trained again."""
  os.makedirs(results_dir, exist_ok=True)
  path = os.path.join(results_dir, f"{study}.json")
  record = _load(path)
  command = "python experiments/reproductions/run.py " + " ".join(sys.argv[1:])
  for name, config, model_fn in study_runs(study, seeds=seeds, quick=quick,
                                           fashion_dir=fashion_dir, train_steps=train_steps):
    variant = name.rsplit("_seed", 1)[0]
    if name in _load(path)["runs"] or (variants and variant not in variants):
      continue
    config_dict = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    same = _same_run(results_dir, config_dict) if model_fn is None else None
    if same is not None:
      print(f"=== {study}/{name}: the same run as {same[0]}, reused", flush=True)
      _add_run(path, name, dict(same[1], reused_from=same[0]), command)
      continue
    # The directory names the config, so a changed recipe never resumes another recipe's run.
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(config), sort_keys=True,
                                     default=str).encode()).hexdigest()[:10]
    model_dir = os.path.join(work_dir, study, f"{name}-{digest}")
    started, cpu_started = time.time(), time.process_time()
    entry = {"config": dataclasses.asdict(config)}
    print(f"=== {study}/{name}", flush=True)
    datasets = None
    if study in CENTRAL_CROP_STUDIES:
      datasets = central_crop_datasets(config, image_size=config.image_size)
      entry["train_input"] = "central crops, no augmentation (central_crop_datasets)"
    if study in FASHION_STUDIES:
      fashion_data_dir(config.data_dir)
      datasets = fashion_datasets(config, image_size=config.image_size)
      entry["train_input"] = datasets.description
      entry["registry_model"] = model_fn is None
      entry.update(_model_cost(config, model_fn, datasets.num_classes))
      keras.backend.clear_session()
    entry["library_commit"] = _library_commit()
    try:
      result = train.train_and_evaluate(config, model_dir, model_fn=model_fn, datasets=datasets)
      entry.update(
          diverged=False, step=result["step"], history=result["history"],
          top1=result["eval"]["top1"], top5=result["eval"]["top5"],
          eval_loss=result["eval"]["loss"],
          top1_raw=result.get("eval_raw", result["eval"])["top1"],
          images_per_second=result["images_per_second"],
          eval_history=_eval_history(model_dir))
    except FloatingPointError as error:  # the run diverged: that is a result of the study
      entry.update(diverged=True, error=str(error), top1=None)
    entry["seconds"] = time.time() - started
    entry["cpu_seconds"] = time.process_time() - cpu_started  # all threads: the machine is shared
    _add_run(path, name, entry, command)
  return _load(path)


_STEP_LINE = re.compile(r"^step (\d+)/(\d+)\s+loss ([0-9.naninf]+)\s+lr ([0-9.e-]+)")


def record_incomplete(study: str, name: str, log_path: str, *, results_dir: str) -> dict:
  """Records a run stopped before its end from its console log (training loss per logged step).

  The entry has `incomplete=True` and no evaluation: it documents how far the run got, it is not
  a result (summaries and plots show it as such).
  """
  config = {n: c for n, c, _ in study_runs(study, seeds=[int(name.rsplit("_seed", 1)[1])],
                                            quick=False)}[name]
  history = []
  with open(log_path) as f:
    for line in f:
      match = _STEP_LINE.match(line.strip())
      if match:
        history.append({"step": int(match.group(1)), "loss": float(match.group(3)),
                        "learning_rate": float(match.group(4))})
  entry = {"config": dataclasses.asdict(config), "diverged": False, "incomplete": True,
           "top1": None, "history": history, "seconds": None, "log": os.path.basename(log_path)}
  path = os.path.join(results_dir, f"{study}.json")
  variant, seed = name.rsplit("_seed", 1)
  last = history[-1]["step"] if history else 0
  command = (f"python experiments/reproductions/run.py --study={study} --seeds={seed}, "
             f"--variants={variant}  (stopped at step {last}; recorded with "
             f"--record_incomplete={name}={log_path})")
  return _add_run(path, name, entry, command)


def _groups(record: dict) -> dict[str, list[tuple[str, dict]]]:
  groups: dict[str, list] = {}
  for name, entry in record["runs"].items():
    groups.setdefault(name.rsplit("_seed", 1)[0], []).append((name, entry))
  return groups


def _std(values: list[float]) -> float | None:
  """The sample standard deviation (n - 1), None for fewer than 2 values."""
  if len(values) < 2:
    return None
  mean = sum(values) / len(values)
  return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(record: dict) -> dict[str, dict]:
  """Per variant: seeds, mean / std / min / max final validation top-1 (the weights evaluated by
  `train_and_evaluate`: raw, as these recipes have no EMA), diverged runs, training losses, the mean
  validation curve and the seconds per run."""
  summary = {}
  for variant, entries in _groups(record).items():
    top1 = [e["top1"] for _, e in entries if e.get("top1") is not None]
    complete = [(n, e) for n, e in entries if not e.get("incomplete")]
    losses = [e["history"][-1]["loss"] for _, e in complete if e.get("history")]
    train_errors = [1.0 - e["history"][-1]["accuracy"] for _, e in complete
                    if e.get("history") and "accuracy" in e["history"][-1]]
    early = []  # mean training loss over the first third of the logged steps: speed of training
    for _, e in complete:
      history = e.get("history") or []
      if history:
        third = history[:max(1, len(history) // 3)]
        early.append(sum(h["loss"] for h in third) / len(third))
    curve: dict[int, list[float]] = {}  # validation top-1 per evaluated step, over the seeds
    for _, e in complete:
      for h in e.get("eval_history") or []:
        curve.setdefault(h["step"], []).append(h["top1"])
    mean = sum(top1) / len(top1) if top1 else None
    std = _std(top1)
    summary[variant] = dict(
        seeds=len(entries), diverged=sum(1 for _, e in entries if e.get("diverged")),
        top1_mean=mean, top1_std=std, top1_min=min(top1) if top1 else None,
        top1_max=max(top1) if top1 else None,
        final_train_loss_mean=sum(losses) / len(losses) if losses else None,
        final_train_error_mean=(sum(train_errors) / len(train_errors)) if train_errors
        else None,
        final_train_error_std=_std(train_errors),
        parameters=next((e["parameters"] for _, e in entries if "parameters" in e), None),
        multiply_adds=next((e["multiply_adds"] for _, e in entries if "multiply_adds" in e),
                           None),
        reused=sum(1 for _, e in entries if e.get("reused_from")),
        early_train_loss_mean=sum(early) / len(early) if early else None,
        incomplete=len(entries) - len(complete),
        eval_curve_mean={step: sum(v) / len(v) for step, v in sorted(curve.items())},
        last_logged_step=max((e["history"][-1]["step"] for _, e in entries if e.get("history")),
                             default=None),
        seconds_mean=(sum(e["seconds"] for _, e in complete) / len(complete)) if complete
        else None)
  return summary


def markdown_table(study: str, record: dict) -> str:
  """The study's summary as a Markdown table (what experiments/README.md shows)."""
  rows = ["| variant | seeds | diverged | val top-1 (final weights) mean ± std [min, max] | "
          "val top-1 by step (mean over seeds) | "
          "train loss, first third of the logged steps | final train loss | s/run |",
          "|---|---|---|---|---|---|---|---|"]
  extra = []
  def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"
  for variant, s in sorted(summarize(record).items()):
    top1 = fmt(s["top1_mean"])
    if s["top1_std"] is not None:
      top1 += f" ± {s['top1_std']:.3f}"
    if s["top1_min"] is not None and s["seeds"] > 1:
      top1 += f" [{s['top1_min']:.3f}, {s['top1_max']:.3f}]"
    if s["incomplete"]:
      top1 = f"incomplete ({s['incomplete']} run(s) stopped at step {s['last_logged_step']})"
    curve = ", ".join(f"{step}: {value:.2f}" for step, value in s["eval_curve_mean"].items()
                      ) if len(s["eval_curve_mean"]) > 1 else "-"
    rows.append(f"| {variant} | {s['seeds']} | {s['diverged']} | {top1} | {curve} | "
                f"{fmt(s['early_train_loss_mean'])} | {fmt(s['final_train_loss_mean'])} | "
                f"{fmt(s['seconds_mean'], 0)} |")
    if s["final_train_error_mean"] is not None:
      error = fmt(s["final_train_error_mean"])
      if s["final_train_error_std"] is not None:
        error += f" ± {s['final_train_error_std']:.3f}"
      extra.append(f"| {variant} | {error} | {s['parameters'] or '-'} | "
                   f"{fmt((s['multiply_adds'] or 0) / 1e6, 1) if s['multiply_adds'] else '-'} | "
                   f"{s['reused']} |")
  table = "\n".join(rows)
  if extra:  # the Fashion-MNIST studies: training error (ResNet Fig. 6) and cost (ResNeXt Table 3)
    table += ("\n\n| variant | final train error (last logged window) mean ± std | parameters | "
              "M multiply-adds / image | runs reused from another study |\n|---|---|---|---|---|\n"
              + "\n".join(extra))
  # The command that reproduces the whole table (the recorded runs' own commands, which may each
  # have run a part of it, are in the JSON's "commands").
  seeds = max((s["seeds"] for s in summarize(record).values()), default=1)
  command = f"python experiments/reproductions/run.py --study={study} --seeds={seeds}"
  return f"**{study}** (`{command}`)\n\n" + table


def plot_study(study: str, record: dict, path: str) -> None:
  """Training loss and accuracy (the Fashion-MNIST studies: training error) per logged step, and
  validation top-1 per evaluation when the runs recorded several; one colour per variant, one
  line per seed."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  with_eval = any(len(e.get("eval_history") or []) > 1 for e in record["runs"].values())
  fashion = study in FASHION_STUDIES
  validation_size = "10,000 Fashion-MNIST test" if fashion else "360 digits"
  figure, axes = plt.subplots(1, 3 if with_eval else 2, figsize=(16 if with_eval else 11, 4))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  summary = summarize(record)
  for index, (variant, entries) in enumerate(sorted(_groups(record).items())):
    color = colors[index % len(colors)]
    s = summary[variant]
    label = variant
    if s["top1_mean"] is not None:
      label += f" (val top-1 {s['top1_mean']:.3f}"
      label += f" ± {s['top1_std']:.3f})" if s["top1_std"] is not None else ")"
    if s["diverged"]:
      label += f" [{s['diverged']}/{s['seeds']} diverged]"
    if s["incomplete"]:
      label += f" [INCOMPLETE: stopped at step {s['last_logged_step']}, no evaluation]"
    for k, (_, entry) in enumerate(entries):
      history = entry.get("history") or []
      steps = [h["step"] for h in history]
      axes[0].plot(steps, [h["loss"] for h in history], color=color, alpha=0.8,
                   label=label if k == 0 else None)
      if all("accuracy" in h for h in history):
        axes[1].plot(steps, [1.0 - h["accuracy"] if fashion else h["accuracy"]
                             for h in history], color=color, alpha=0.8)
      evals = entry.get("eval_history") or []
      if with_eval and evals:
        axes[2].plot([h["step"] for h in evals], [h["top1"] for h in evals], color=color,
                     alpha=0.8, marker="o", markersize=3)
  axes[0].set(xlabel="step", ylabel="training loss (logged window)", title=f"{study}: loss")
  if fashion:  # ResNet paper Fig. 6 plots training error, on a log scale here to separate curves
    axes[1].set(xlabel="step", ylabel="training error (logged window)", yscale="log",
                title=f"{study}: training error")
  else:
    axes[1].set(xlabel="step", ylabel="training accuracy (logged window)",
                title=f"{study}: accuracy")
  if with_eval:
    axes[2].set(xlabel="step", ylabel=f"validation top-1 ({validation_size} images)",
                title=f"{study}: validation")
  axes[0].legend(fontsize=8)
  for axis in axes:
    axis.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--study", default="all", choices=STUDIES + ("all", "fashion"),
                      help="one study, 'fashion' (the four Fashion-MNIST studies) or 'all'")
  parser.add_argument("--seeds", default=None,
                      help="seeds per variant (a count, default 1), or a list like 0,2")
  parser.add_argument("--variants", default=None,
                      help="comma-separated variant names to run (default: all of the study)")
  parser.add_argument("--quick", action="store_true", help="1/20 of the steps (smoke run)")
  parser.add_argument("--train_steps", type=int, default=None,
                      help="steps of every run (smoke and timing runs; use a separate "
                           "--results_dir and --work_dir)")
  parser.add_argument("--fashion_dir", default=DEFAULT_FASHION_DIR,
                      help="Fashion-MNIST TFRecords, built there from Debian's "
                           "dataset-fashion-mnist on first use")
  parser.add_argument("--plot_only", action="store_true")
  parser.add_argument("--record_incomplete", default=None, metavar="NAME=LOG",
                      help="record a stopped run of --study from its console log, e.g. "
                           "rf299_seed0=/tmp/rf299.log")
  parser.add_argument("--markdown", action="store_true",
                      help="print the Markdown tables of the recorded studies and exit")
  parser.add_argument("--work_dir", default="/tmp/inception_tf_reproductions")
  parser.add_argument("--results_dir", default=RESULTS_DIR)
  args = parser.parse_args(argv)
  studies = {"all": STUDIES, "fashion": FASHION_STUDIES}.get(args.study, (args.study,))
  if args.record_incomplete:
    name, _, log = args.record_incomplete.partition("=")
    record_incomplete(args.study, name, log, results_dir=args.results_dir)
    args.plot_only = True
  if args.markdown:
    for study in studies:
      record = _load(os.path.join(args.results_dir, f"{study}.json"))
      if record["runs"]:
        print(markdown_table(study, record) + "\n")
    return
  for study in studies:
    seeds = 1 if args.seeds is None else (
        [int(s) for s in args.seeds.split(",") if s] if "," in args.seeds else int(args.seeds))
    variants = set(args.variants.split(",")) if args.variants else None
    path = os.path.join(args.results_dir, f"{study}.json")
    if not args.plot_only:
      run_study(study, seeds=seeds, quick=args.quick, work_dir=args.work_dir,
                results_dir=args.results_dir, variants=variants, fashion_dir=args.fashion_dir,
                train_steps=args.train_steps)
    with open(path + ".lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      record = _load(path)
      if not record["runs"]:
        continue
      record["summary"] = summarize(record)
      with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1, default=str)
      os.replace(path + ".tmp", path)
    plot_study(study, record, os.path.join(args.results_dir, f"{study}.png"))
    print(json.dumps({study: record["summary"]}, indent=1), flush=True)


if __name__ == "__main__":
  main()
