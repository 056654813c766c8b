"""A tiny model and in-memory datasets with the contracts of inception_tf.models / inception_tf.data,
for trainer tests that must run in seconds (also imported by the subprocess scripts)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from inception_tf.train import config as config_lib
from inception_tf.train import loop

IMAGE_SIZE = 8
NUM_CLASSES = 4


def tiny_config(**changes) -> config_lib.TrainConfig:
  """A TrainConfig for `tiny_model_fn` on `in_memory_datasets`: 16 steps of 8, checkpoints every 8,
  logs every 4, EMA 0.8; `changes` override any field."""
  base = dict(model="tiny", image_size=IMAGE_SIZE, train_batch_size=8, eval_batch_size=10,
              train_steps=16, learning_rate=0.05, learning_rate_batch_size=8,
              checkpoint_every_steps=8, log_every_steps=4, steps_per_execution=4,
              summary_images=2, ema_decay=0.8)
  base.update(changes)
  return config_lib.TrainConfig(**base)


def tiny_model_fn(config, num_classes, image_size, *, batch_norm=True, dropout=True, aux=True):
  """Conv(+BN)+ReLU -> pool -> [dropout] -> Dense logits, plus an aux Dense head; slim-style names."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(config.precision)
  try:
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=not batch_norm, name="Conv2d_1a_3x3")(
        inputs)
    if batch_norm:
      x = keras.layers.BatchNormalization(momentum=config.batch_norm_momentum, scale=False,
                                          name="Conv2d_1a_3x3.BatchNorm")(x)
    x = keras.layers.ReLU(name="Conv2d_1a_3x3.Relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="AvgPool")(x)
    outputs = {}
    if aux:
      outputs["aux_logits"] = keras.layers.Dense(num_classes, dtype="float32",
                                                 name="AuxLogits.Logits")(x)
    if dropout:
      x = keras.layers.Dropout(1 - config.dropout_keep_prob, name="Logits.Dropout")(x)
    outputs["logits"] = keras.layers.Dense(num_classes, dtype="float32", name="Logits.Logits")(x)
    return keras.Model(inputs, outputs, name="Tiny")
  finally:
    keras.config.set_dtype_policy(previous)


def make_arrays(num_examples, *, seed=0, image_size=IMAGE_SIZE, num_classes=NUM_CLASSES):
  """Learnable data: the class sets the mean colour of the image, plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
  colours = np.linspace(-0.8, 0.8, num_classes * 3).reshape(num_classes, 3)
  rng.shuffle(colours)
  images = colours[labels][:, None, None, :] + 0.3 * rng.standard_normal(
      (num_examples, image_size, image_size, 3))
  return images.astype(np.float32), labels


def in_memory_datasets(*, global_batch=8, eval_batch=10, num_train=64, num_eval=20, seed=0,
                       shuffle=True):
  """`loop.Datasets` over numpy arrays: replica i of n gets rows [i*b, (i+1)*b) of each global
  batch, so a distributed run sees exactly the global batches of a single-device run."""
  train_images, train_labels = make_arrays(num_train, seed=seed)
  eval_images, eval_labels = make_arrays(num_eval, seed=seed + 1)

  def share(context, batch_size):
    """This pipeline's rows of a global batch, and the per-replica batch size.

    `distribute_datasets_from_function` hands the consecutive elements of one pipeline to its
    replicas in turn, so the pipeline yields its replicas' chunks one after the other.
    """
    if context is None:
      return 0, batch_size, batch_size
    per_replica = batch_size // context.num_replicas_in_sync
    rows = batch_size // context.num_input_pipelines
    return context.input_pipeline_id * rows, rows, per_replica

  def train_fn(context, skip_batches):
    start, rows, per_replica = share(context, global_batch)
    dataset = tf.data.Dataset.from_tensor_slices({"images": train_images, "labels": train_labels})
    if shuffle:
      dataset = dataset.shuffle(num_train, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(global_batch, drop_remainder=True)
    dataset = dataset.map(lambda b: {k: v[start:start + rows] for k, v in b.items()})
    dataset = dataset.unbatch().batch(per_replica, drop_remainder=True)
    return dataset.skip(skip_batches * (rows // per_replica))

  def eval_fn(context):
    start, rows, per_replica = share(context, eval_batch)
    total = -(-num_eval // eval_batch) * eval_batch
    pad = total - num_eval
    images = np.concatenate([eval_images, np.zeros((pad,) + eval_images.shape[1:], np.float32)])
    labels = np.concatenate([eval_labels, np.zeros(pad, np.int32)])
    mask = np.concatenate([np.ones(num_eval, np.float32), np.zeros(pad, np.float32)])
    dataset = tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels,
                                                  "mask": mask})
    dataset = dataset.batch(eval_batch, drop_remainder=True)
    dataset = dataset.map(lambda b: {k: v[start:start + rows] for k, v in b.items()})
    return dataset.unbatch().batch(per_replica, drop_remainder=True)

  return loop.Datasets(train_fn=train_fn, eval_fn=eval_fn, num_train_examples=num_train,
                       num_eval_examples=num_eval, num_classes=NUM_CLASSES,
                       description="in-memory test data")

