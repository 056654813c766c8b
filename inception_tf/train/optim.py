"""Optimizers with the semantics the papers trained with, as Keras 3 optimizers.

`TF1RMSProp` is TF1's `tf.train.RMSPropOptimizer` (the optimizer of [v3] §8), which differs from
`keras.optimizers.RMSprop` in one place that matters early in training: the mean-square slot starts
at ONES, not zeros (with zeros and epsilon=1.0 the first steps are ~3x larger). Per step:

    ms  <- decay * ms + (1 - decay) * g^2            ms_0 = 1
    mom <- momentum * mom + lr * g / sqrt(ms + eps)  mom_0 = 0   (epsilon inside the sqrt)
    w   <- w - mom

The trainer all-reduces and clips the gradients itself (clipping must see the GLOBAL gradient, not
one replica's), so the optimizers here take gradients that are already summed over replicas:
Keras' own all-reduce is turned off by `_AlreadyReducedGradients`.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class _AlreadyReducedGradients:
  """Mixin: gradients passed to `apply` are already summed over replicas by the caller."""

  def _all_reduce_sum_gradients(self, grads_and_vars):  # Keras' TF-backend hook.
    return list(grads_and_vars)


class TF1RMSProp(_AlreadyReducedGradients, keras.optimizers.Optimizer):
  """TF1 `RMSPropOptimizer` (non-centered): mean-square slot initialised to ones, epsilon in sqrt.

  Args:
    learning_rate: float or a `LearningRateSchedule` of the optimizer's iteration count.
    rho: the decay of the mean square ([v3] §8: 0.9).
    momentum: momentum of the update ([slim]: 0.9).
    epsilon: added to the mean square inside the square root ([v3] §8: 1.0).
    name: optimizer name; slot variables are named `<variable>_rms` and `<variable>_momentum`.
    **kwargs: the base optimizer's arguments (e.g. `global_clipnorm`, which would clip per replica;
      the trainer clips the reduced gradient instead).
  """

  def __init__(self, learning_rate=0.045, rho: float = 0.9, momentum: float = 0.9,
               epsilon: float = 1.0, name: str = "RMSProp", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    if not 0.0 <= rho < 1.0:
      raise ValueError(f"rho must be in [0, 1), got {rho}.")
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
    if epsilon <= 0.0:
      raise ValueError(f"epsilon must be > 0, got {epsilon}.")
    self.rho = rho
    self.momentum = momentum
    self.epsilon = epsilon

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self._mean_squares = self.add_optimizer_variables(variables, "rms", initializer="ones")
    self._momentums = self.add_optimizer_variables(variables, "momentum", initializer="zeros")

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    mean_square = self._mean_squares[index]
    momentum = self._momentums[index]
    lr = tf.cast(learning_rate, variable.dtype)
    gradient = tf.cast(gradient, variable.dtype)
    new_ms = self.rho * mean_square + (1.0 - self.rho) * tf.square(gradient)
    self.assign(mean_square, new_ms)
    new_momentum = self.momentum * momentum + lr * gradient * tf.math.rsqrt(new_ms + self.epsilon)
    self.assign(momentum, new_momentum)
    self.assign_sub(variable, new_momentum)

  def get_config(self):
    config = super().get_config()
    config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon})
    return config


class MomentumSGD(_AlreadyReducedGradients, keras.optimizers.SGD):
  """TF1 `MomentumOptimizer` (Keras SGD with momentum is the same update: v = m v - lr g)."""


class Adam(_AlreadyReducedGradients, keras.optimizers.Adam):
  """Adam (Kingma & Ba) taking pre-reduced gradients."""


def make_optimizer(config, learning_rate) -> keras.optimizers.Optimizer:
  """The optimizer named by `config.optimizer`, with `learning_rate` (a float or schedule).

  Create it under the strategy scope. Gradient clipping is NOT configured here: the trainer clips
  the all-reduced gradient by global norm (`clip_gradients`).

  Raises:
    ValueError: an unknown optimizer name.
  """
  if config.optimizer == "rmsprop":
    return TF1RMSProp(learning_rate=learning_rate, rho=config.rmsprop_decay,
                      momentum=config.momentum, epsilon=config.epsilon)
  if config.optimizer == "momentum":
    return MomentumSGD(learning_rate=learning_rate, momentum=config.momentum, name="Momentum")
  if config.optimizer == "adam":
    return Adam(learning_rate=learning_rate, beta_1=config.adam_beta_1,
                beta_2=config.adam_beta_2, epsilon=config.epsilon)
  raise ValueError(f"Unknown optimizer {config.optimizer!r}; valid: rmsprop, momentum, adam.")


def clip_gradients(gradients, clip_norm: float | None):
  """Clips by global norm ([v3] §8: threshold 2.0); returns (gradients, norm before clipping)."""
  norm = tf.linalg.global_norm([g for g in gradients if g is not None])
  if clip_norm is None:
    return list(gradients), norm
  clipped, _ = tf.clip_by_global_norm(gradients, clip_norm, use_norm=norm)
  return clipped, norm
