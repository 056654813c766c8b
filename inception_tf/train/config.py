"""The training recipe as one dataclass; every default is the value the papers used, cited.

Sources:
  [v3]   Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (2015), §7-§8.
  [slim] TF-slim: nets/inception_utils.py (arg scope) and train_image_classifier.py (the trainer
         that produced the published checkpoints).
  [tpu]  The Cloud TPU Inception-v3 reference script (batch 1024, bfloat16).

Presets are functions returning a modified default (flax's habit): `paper_v3()`, `tpu()` and
`quickstart()` (the no-flag run of `tools/train.py` on the built-in digits data).
"""

from __future__ import annotations

import dataclasses
from typing import Any

OPTIMIZERS = ("rmsprop", "momentum", "adam")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LR_SCALINGS = ("linear", "none")


@dataclasses.dataclass
class TrainConfig:
  """Everything a training run needs. `tools/train.py` maps one flag to each field."""

  # --- Model.
  model: str = "inception_v3"
  model_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # depth_multiplier, ...
  image_size: int | None = None  # None: the network's default (299 for v3).
  num_classes: int | None = None  # None: from the dataset (labels_offset included).
  aux_logits: bool | None = None  # None: on where the network has an auxiliary head.
  dropout_keep_prob: float = 0.8  # [slim] inception_v3(dropout_keep_prob=0.8).
  batch_norm_momentum: float = 0.9997  # [slim] inception_arg_scope(batch_norm_decay=0.9997).
  precision: str = "float32"  # or mixed_bfloat16 (TPU) / mixed_float16 (GPU); loss stays float32.

  # --- Data.
  data_dir: str | None = None  # TFRecords (local or gs://); None with no tfds_name: built-in digits.
  tfds_name: str | None = None
  train_split: str = "train"
  eval_split: str = "validation"
  # None: the network's own (`ModelInfo.preprocessing`: VGG for slim's resnet_v1, Inception's for
  # the Inception family, CIFAR's for resnet20 ...); or "inception" / "vgg" / "torchvision" /
  # "cifar" (`inception_tf.data.preprocessing.PREPROCESSING_KINDS`).
  preprocessing: str | None = None
  cache_data: bool = False
  fast_preprocessing: bool = True  # slim's fast_mode (its default): bilinear resize, 2 colour ops
  # [tpu] style: the host only crops, flips and resizes (uint8 batches); the step applies slim's
  # colour distortion to the batch on the accelerator (inception_tf.data.distort_color_batch).
  color_distortion_on_device: bool = False

  # --- Duration and batch.
  train_batch_size: int = 32  # [v3] §8: batch 32 (per replica of 50; here the GLOBAL batch).
  eval_batch_size: int = 100
  train_steps: int | None = None
  train_epochs: float | None = 100.0  # [v3] §8: 100 epochs.

  # --- Optimizer. [v3] §8: "RMSProp with decay of 0.9 and epsilon = 1.0".
  optimizer: str = "rmsprop"
  rmsprop_decay: float = 0.9  # [v3] §8.
  momentum: float = 0.9  # [slim] train_image_classifier --momentum=0.9 (RMSProp and SGD).
  epsilon: float = 1.0  # [v3] §8 (RMSProp); for Adam pass a small value, e.g. 1e-7 / 0.1.
  adam_beta_1: float = 0.9
  adam_beta_2: float = 0.999
  gradient_clip_norm: float | None = 2.0  # [v3] §8: "gradient clipping with threshold 2.0".

  # --- Learning rate. [v3] §8: 0.045, decayed every two epochs with an exponential rate of 0.94.
  learning_rate: float = 0.045
  learning_rate_batch_size: int = 32  # the global batch `learning_rate` is stated for ([v3]: 32).
  learning_rate_scaling: str = "linear"  # lr = learning_rate * train_batch_size / that batch.
  learning_rate_decay: float = 0.94  # [v3] §8.
  epochs_per_decay: float = 2.0  # [v3] §8; counted in global examples seen.
  staircase: bool = True  # [slim] train_image_classifier: exponential_decay(staircase=True).
  warmup_epochs: float = 0.0
  min_learning_rate_ratio: float = 0.0  # floor as a fraction of the peak ([tpu]: 1e-4).

  # --- Loss.
  label_smoothing: float = 0.1  # [v3] §7 "label-smoothing regularization", epsilon = 0.1.
  aux_loss_weight: float = 0.4  # [slim] train_image_classifier: AuxLogits loss weight 0.4.
  weight_decay: float = 4e-5  # [slim] inception_arg_scope(weight_decay=4e-5): 4e-5 * sum(w^2) / 2.

  # --- Moving average of the weights and batch-norm statistics, used for eval and export.
  ema_decay: float | None = 0.9999  # [slim] --moving_average_decay=0.9999 (v3's recipe); None off.

  # --- Running.
  strategy: str = "default"
  tpu: str | None = None
  num_gpus: int = 0
  jit_compile: bool | None = None  # None: on for one GPU (TPU: always), off on CPU / multi-device.
  steps_per_execution: int = 1
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 5
  eval_every_steps: int | None = None  # None: evaluate only at the end.
  log_every_steps: int = 100
  summary_images: int = 3  # input images written to TensorBoard (first step of each run).
  init_checkpoint: str | None = None  # TF-slim checkpoint or one of our model_dirs.
  checkpoint_exclude_scopes: tuple[str, ...] = ()
  trainable_scopes: tuple[str, ...] = ()  # empty: train everything.
  seed: int = 0
  deterministic: bool = False

  def validate(self) -> None:
    """Checks values that need no data or model; raises ValueError naming the field and fix."""
    checks = [
        (self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r}; valid: {OPTIMIZERS}"),
        (self.precision in PRECISIONS, f"precision={self.precision!r}; valid: {PRECISIONS}"),
        (self.learning_rate_scaling in LR_SCALINGS,
         f"learning_rate_scaling={self.learning_rate_scaling!r}; valid: {LR_SCALINGS}"),
        (self.train_batch_size >= 1, f"train_batch_size={self.train_batch_size} must be >= 1"),
        (self.eval_batch_size >= 1, f"eval_batch_size={self.eval_batch_size} must be >= 1"),
        (self.learning_rate > 0, f"learning_rate={self.learning_rate} must be > 0"),
        (self.learning_rate_batch_size >= 1,
         f"learning_rate_batch_size={self.learning_rate_batch_size} must be >= 1"),
        (0 < self.learning_rate_decay <= 1,
         f"learning_rate_decay={self.learning_rate_decay} must be in (0, 1]"),
        (self.epochs_per_decay > 0, f"epochs_per_decay={self.epochs_per_decay} must be > 0"),
        (self.warmup_epochs >= 0, f"warmup_epochs={self.warmup_epochs} must be >= 0"),
        (0 <= self.min_learning_rate_ratio < 1,
         f"min_learning_rate_ratio={self.min_learning_rate_ratio} must be in [0, 1)"),
        (0 <= self.label_smoothing < 1, f"label_smoothing={self.label_smoothing} must be in [0, 1)"),
        (self.aux_loss_weight >= 0, f"aux_loss_weight={self.aux_loss_weight} must be >= 0"),
        (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0"),
        (self.ema_decay is None or 0 < self.ema_decay < 1,
         f"ema_decay={self.ema_decay} must be in (0, 1) or None"),
        (self.gradient_clip_norm is None or self.gradient_clip_norm > 0,
         f"gradient_clip_norm={self.gradient_clip_norm} must be > 0 or None"),
        (self.steps_per_execution >= 1,
         f"steps_per_execution={self.steps_per_execution} must be >= 1"),
        (self.checkpoint_every_steps >= 1,
         f"checkpoint_every_steps={self.checkpoint_every_steps} must be >= 1"),
        (self.keep_checkpoints >= 1, f"keep_checkpoints={self.keep_checkpoints} must be >= 1"),
        (self.eval_every_steps is None or self.eval_every_steps >= 1,
         f"eval_every_steps={self.eval_every_steps} must be >= 1 or None"),
        (self.log_every_steps >= 1, f"log_every_steps={self.log_every_steps} must be >= 1"),
        (self.train_steps is not None or self.train_epochs is not None,
         "set train_steps or train_epochs (train_steps wins when both are set)"),
        (self.train_steps is None or self.train_steps >= 1,
         f"train_steps={self.train_steps} must be >= 1"),
        (self.train_epochs is None or self.train_epochs > 0,
         f"train_epochs={self.train_epochs} must be > 0"),
        (not (self.color_distortion_on_device and self.preprocessing not in (None, "inception")),
         "color_distortion_on_device needs preprocessing='inception' (got "
         f"{self.preprocessing!r})"),
        (not (self.data_dir and self.tfds_name),
         f"give data_dir ({self.data_dir!r}) or tfds_name ({self.tfds_name!r}), not both"),
    ]
    errors = [message for ok, message in checks if not ok]
    if errors:
      raise ValueError("Invalid training config: " + "; ".join(errors) + ".")

  def replace(self, **changes) -> "TrainConfig":
    """A copy with `changes` applied (unknown field names raise TypeError)."""
    return dataclasses.replace(self, **changes)


def paper_v3(**changes) -> TrainConfig:
  """Inception-v3 as in [v3] §7-§8 (RMSProp 0.045 at batch 32, x0.94 every 2 epochs, 100 epochs)."""
  return TrainConfig().replace(**changes)


def tpu(**changes) -> TrainConfig:
  """The [tpu] recipe: batch 1024, lr 0.165 per 256 images, x0.94 every 3 epochs, floor 1e-4 of the
  peak, batch-norm momentum 0.996, EMA 0.995, bfloat16, XLA, colour distortion in the step."""
  config = TrainConfig(
      train_batch_size=1024,
      learning_rate=0.165,
      learning_rate_batch_size=256,
      epochs_per_decay=3.0,
      min_learning_rate_ratio=1e-4,
      batch_norm_momentum=0.996,
      ema_decay=0.995,
      precision="mixed_bfloat16",
      strategy="tpu",
      tpu="local",
      jit_compile=True,
      steps_per_execution=100,
      eval_batch_size=1024,
      color_distortion_on_device=True,
  )
  return config.replace(**changes)


def quickstart(**changes) -> TrainConfig:
  """`python tools/train.py` with no flags: the built-in digits data (8x8 digits upsampled to 96x96
  RGB, 10 classes + background) on a 2-core CPU. Inception-v1 with depth_multiplier 0.5 at 32x32
  (the digits carry 8x8 pixels of information; v1's minimum input is 32), the paper's loss
  (label smoothing, weight decay, EMA), clipping and RMSProp with TF1 semantics at the paper's
  0.045 per 32 images.

  What differs from the paper, because the data set is 1,000x smaller: a 2-epoch warm-up, decay
  every 4 epochs, EMA 0.99 and batch-norm momentum 0.99 (0.9999 / 0.9997 average over more steps
  than the whole run). A learning rate of 0.18 diverged (measured, see WORKSPACE_NOTES.md).
  """
  config = TrainConfig(
      model="inception_v1",
      model_options={"depth_multiplier": 0.5},
      image_size=32,
      train_batch_size=32,
      eval_batch_size=100,
      train_epochs=50.0,
      learning_rate=0.045,
      warmup_epochs=2.0,
      epochs_per_decay=4.0,
      ema_decay=0.99,
      batch_norm_momentum=0.99,
      checkpoint_every_steps=500,
      log_every_steps=50,
      eval_every_steps=None,
      steps_per_execution=10,
      fast_preprocessing=True,
      cache_data=True,
  )
  return config.replace(**changes)
