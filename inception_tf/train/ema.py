"""Exponential moving average of the weights AND the batch-norm statistics, TF1 style.

    decay_t = min(decay, (1 + t) / (10 + t))          (tf.train.ExponentialMovingAverage, num_updates=t)
    shadow <- shadow - (1 - decay_t) * (shadow - variable)

Keras' built-in optimizer EMA covers trainable variables only and has no ramp; slim's trainer and
the TPU recipe average `moving_average_variables()`, which include batch-norm moving mean/variance,
and evaluate and export with the averages. The shadows live in the training checkpoint (under
`ema/shadows/<variable path>`) and `swapped()` puts them into the model for evaluation.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


def averaged_variables(model: keras.Model) -> list:
  """Trainable variables plus the floating-point non-trainable ones (batch-norm statistics).

  Integer state (dropout seed generators) is excluded.
  """
  variables = list(model.trainable_variables)
  variables += [v for v in model.non_trainable_variables
                if tf.as_dtype(v.dtype).is_floating]
  return variables


def ramped_decay(decay: float, step):
  """TF1's `min(decay, (1 + step) / (10 + step))` as a float32 tensor."""
  step = tf.cast(step, tf.float32)
  return tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))


class ExponentialMovingAverage(tf.Module):
  """Shadow copies of `variables`, updated with the TF1 ramp; create under the strategy scope.

  Args:
    variables: the variables to average (see `averaged_variables`).
    decay: the final decay (0.9999 in slim's recipe, 0.995 in the TPU recipe).
    ramp: use `min(decay, (1+t)/(10+t))` (TF1 `num_updates`); False: constant decay.
  """

  def __init__(self, variables, decay: float, *, ramp: bool = True, name: str = "ema"):
    super().__init__(name=name)
    if not 0.0 < decay < 1.0:
      raise ValueError(f"EMA decay must be in (0, 1), got {decay}.")
    self.decay = float(decay)
    self.ramp = ramp
    variables = list(variables)
    # A closure, not an attribute: tf.Module would track (and checkpoint) the model variables twice.
    self._averaged = lambda: variables
    paths = [v.path for v in variables]
    if len(set(paths)) != len(paths):
      raise ValueError("EMA variables must have unique paths.")
    self.shadows = {}
    for variable in variables:
      self.shadows[variable.path] = tf.Variable(
          lambda v=variable: tf.identity(v.value), trainable=False,
          name=variable.path.replace("/", "_") + "_ema",
          synchronization=tf.VariableSynchronization.ON_WRITE,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  @property
  def variables_averaged(self) -> list:
    return list(self._averaged())

  def shadow(self, variable) -> tf.Variable:
    """The shadow of one averaged variable."""
    return self.shadows[variable.path]

  def decay_at(self, step):
    """The decay applied at `step` (float32 tensor)."""
    if self.ramp:
      return ramped_decay(self.decay, step)
    return tf.constant(self.decay, tf.float32)

  def update(self, step) -> None:
    """One EMA step with the decay of `step` (the number of optimizer updates before this one)."""
    decay = self.decay_at(step)
    for variable in self._averaged():
      shadow = self.shadows[variable.path]
      value = tf.cast(variable.value, shadow.dtype)
      shadow.assign_sub((1.0 - tf.cast(decay, shadow.dtype)) * (shadow - value))

  def reset(self) -> None:
    """Sets every shadow to its variable's current value (after loading an init checkpoint)."""
    for variable in self._averaged():
      self.shadows[variable.path].assign(variable.value)

  def copy_to_model(self) -> None:
    """Overwrites the model variables with the averages (for export; not reversible)."""
    for variable in self._averaged():
      variable.assign(tf.cast(self.shadows[variable.path].value(), variable.dtype))

  @contextlib.contextmanager
  def swapped(self):
    """Within the block the model holds the averages; its own values come back afterwards."""
    backup = [tf.identity(v.value) for v in self._averaged()]
    self.copy_to_model()
    try:
      yield
    finally:
      for variable, value in zip(self._averaged(), backup):
        variable.assign(value)
