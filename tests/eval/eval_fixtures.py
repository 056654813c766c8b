"""Shared helpers of the evaluation tests: tiny models and small TFRecord sets."""

import os

import keras
import numpy as np
import tensorflow as tf

from inception_tf.data import tfrecord


def tiny_model(image_size: int = 32, num_classes: int = 14, seed: int = 0) -> keras.Model:
  """A small functional model following the models' output contract ({"logits": [N, C]})."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((image_size, image_size, 3), name="images")
  x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inputs)
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  return keras.Model(inputs, {"logits": keras.layers.Dense(num_classes, name="Logits")(x)},
                     name="Tiny")


def constant_model(logits, image_size: int = 32) -> keras.Model:
  """A model whose logits are `logits` for every input."""
  inputs = keras.Input((image_size, image_size, 3), name="images")
  x = keras.layers.GlobalAveragePooling2D()(inputs)
  dense = keras.layers.Dense(len(logits), kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(np.asarray(logits)))
  return keras.Model(inputs, {"logits": dense(x)}, name="Constant")


def write_records(directory: str, ids, *, split: str = "validation", num_shards: int = 2,
                  seed: int = 0) -> str:
  """Writes one JPEG per id (label = id, filename ILSVRC2012_val_<id>.JPEG) in the given order.

  Images alternate between landscape 40x56 and portrait 56x40.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  ids = list(ids)
  shards = np.array_split(np.arange(len(ids)), num_shards)
  for index, positions in enumerate(shards):
    path = os.path.join(directory, f"{split}-{index:05d}-of-{num_shards:05d}")
    with tf.io.TFRecordWriter(path) as writer:
      for position in positions:
        image_id = ids[position]
        h, w = (40, 56) if image_id % 2 else (56, 40)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        writer.write(tfrecord.encode_example(
            image_bytes=tf.io.encode_jpeg(pixels).numpy(), label=int(image_id), height=h, width=w,
            filename=f"ILSVRC2012_val_{image_id:08d}.JPEG"))
  return directory
