"""Learning-rate schedules counted in GLOBAL examples seen.

TF-slim's `train_image_classifier.py` computed `decay_steps = num_samples / batch_size * epochs`
with the per-clone batch size, so with k clones the decay came every 2k epochs instead of every 2.
Here the schedule is a function of `step * global_batch_size`, so it decays every
`epochs_per_decay` epochs whatever the number of replicas.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def peak_learning_rate(base_learning_rate: float, *, global_batch_size: int,
                       base_batch_size: int, scaling: str = "linear") -> float:
  """`base_learning_rate` scaled linearly from `base_batch_size` to `global_batch_size`.

  Args:
    base_learning_rate: the learning rate quoted for `base_batch_size` (0.045 at 32 in [v3] §8;
      0.165 at 256 in the TPU recipe).
    global_batch_size: the batch summed over all replicas.
    base_batch_size: the batch the base rate is quoted for.
    scaling: "linear" (Goyal et al. 2017) or "none".

  Returns:
    The peak learning rate.

  Raises:
    ValueError: unknown scaling or non-positive batch sizes.
  """
  if global_batch_size < 1 or base_batch_size < 1:
    raise ValueError(f"batch sizes must be >= 1, got global_batch_size={global_batch_size}, "
                     f"base_batch_size={base_batch_size}.")
  if scaling == "linear":
    return base_learning_rate * global_batch_size / base_batch_size
  if scaling == "none":
    return base_learning_rate
  raise ValueError(f"scaling must be 'linear' or 'none', got {scaling!r}.")


class ExponentialDecayInExamples(keras.optimizers.schedules.LearningRateSchedule):
  """`peak * decay_rate ** (epoch / epochs_per_decay)` with epoch = step * global_batch / N.

  Optional linear warm-up from 0 over `warmup_epochs` (the decay clock still starts at step 0, as
  in the TPU recipe) and a floor `min_learning_rate`.
  """

  def __init__(self,
               *,
               peak_learning_rate: float,
               global_batch_size: int,
               num_train_examples: int,
               decay_rate: float = 0.94,
               epochs_per_decay: float = 2.0,
               staircase: bool = True,
               warmup_epochs: float = 0.0,
               min_learning_rate: float = 0.0):
    if num_train_examples < 1:
      raise ValueError(f"num_train_examples must be >= 1, got {num_train_examples}.")
    if global_batch_size < 1:
      raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
    if epochs_per_decay <= 0:
      raise ValueError(f"epochs_per_decay must be > 0, got {epochs_per_decay}.")
    self.peak_learning_rate = float(peak_learning_rate)
    self.global_batch_size = int(global_batch_size)
    self.num_train_examples = int(num_train_examples)
    self.decay_rate = float(decay_rate)
    self.epochs_per_decay = float(epochs_per_decay)
    self.staircase = bool(staircase)
    self.warmup_epochs = float(warmup_epochs)
    self.min_learning_rate = float(min_learning_rate)
    # Integers so that the staircase boundary is exact at any step (float32 cannot hold step*B).
    self._examples_per_decay = max(1, round(self.num_train_examples * self.epochs_per_decay))

  def __call__(self, step):
    step = tf.cast(step, tf.int64)
    examples = step * self.global_batch_size  # global examples seen before this step
    if self.staircase:
      decays = tf.cast(examples // self._examples_per_decay, tf.float32)
    else:
      decays = tf.cast(examples, tf.float32) / float(self._examples_per_decay)
    rate = self.peak_learning_rate * tf.pow(tf.constant(self.decay_rate, tf.float32), decays)
    if self.warmup_epochs > 0:
      epoch = tf.cast(examples, tf.float32) / float(self.num_train_examples)
      warm = self.peak_learning_rate * epoch / self.warmup_epochs
      rate = tf.where(epoch < self.warmup_epochs, warm, rate)
    if self.min_learning_rate > 0:
      rate = tf.maximum(rate, self.min_learning_rate)
    return rate

  def get_config(self):
    return {
        "peak_learning_rate": self.peak_learning_rate,
        "global_batch_size": self.global_batch_size,
        "num_train_examples": self.num_train_examples,
        "decay_rate": self.decay_rate,
        "epochs_per_decay": self.epochs_per_decay,
        "staircase": self.staircase,
        "warmup_epochs": self.warmup_epochs,
        "min_learning_rate": self.min_learning_rate,
    }


def from_config(config, *, num_train_examples: int) -> ExponentialDecayInExamples:
  """The schedule of a `TrainConfig` for a training set of `num_train_examples`."""
  peak = peak_learning_rate(config.learning_rate, global_batch_size=config.train_batch_size,
                            base_batch_size=config.learning_rate_batch_size,
                            scaling=config.learning_rate_scaling)
  return ExponentialDecayInExamples(
      peak_learning_rate=peak,
      global_batch_size=config.train_batch_size,
      num_train_examples=num_train_examples,
      decay_rate=config.learning_rate_decay,
      epochs_per_decay=config.epochs_per_decay,
      staircase=config.staircase,
      warmup_epochs=config.warmup_epochs,
      min_learning_rate=peak * config.min_learning_rate_ratio)
