r"""Trains an Inception network with the papers' recipe: `python tools/train.py [--flags]`.

With no flags: the quick start, Inception-v1 (depth multiplier 0.5, 32x32) on the built-in digits
data, 50 epochs, printing the validation top-1 / top-5 at the end (see WORKSPACE_NOTES.md
"## Training" for what was measured):

    python tools/train.py

The paper's recipe on ImageNet TFRecords, on all local GPUs, resuming from --model_dir if it holds
checkpoints:

    python tools/train.py --preset=paper_v3 --model=inception_v3 --data_dir=/data/imagenet \
        --model_dir=/runs/v3 --strategy=mirrored --train_batch_size=256

The TPU recipe (Colab / TPU VM): `--preset=tpu --data_dir=gs://... --model_dir=gs://...`.
Configs as flag files: `python tools/train.py --flagfile=experiments/quickstart.cfg`.

Flags left unset keep the preset's value (`--preset=auto` is `quickstart` without --data_dir /
--tfds_name and `paper_v3` with them); every recipe value has a flag. Library code reads no flags:
this file maps them onto `inception_tf.train.TrainConfig` and calls `train_and_evaluate`.
"""

from __future__ import annotations

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.data.preprocessing import PREPROCESSING_KINDS  # noqa: E402

PRESETS = ("auto", "quickstart", "paper_v3", "tpu")

flags.DEFINE_enum("preset", "auto", PRESETS, "Recipe the other flags modify.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, results.json (local or gs://). "
                    "Default: runs/<model>-<time>. An existing dir is resumed.")
# Model.
flags.DEFINE_string("model", None, "A name from inception_tf.models.list_models().")
flags.DEFINE_list("model_options", None, "Family options as key=value, e.g. "
                  "depth_multiplier=0.5,min_depth=8.")
flags.DEFINE_integer("image_size", None, "Square input size (default: the network's).")
flags.DEFINE_integer("num_classes", None, "Logits width (default: from the data).")
flags.DEFINE_boolean("aux_logits", None, "Auxiliary head (default: on where the network has one).")
flags.DEFINE_float("dropout_keep_prob", None, "Keep probability before the logits (0.8).")
flags.DEFINE_float("batch_norm_momentum", None, "Batch-norm decay (0.9997; TPU preset 0.996).")
flags.DEFINE_enum("precision", None, ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Compute dtype policy; the loss and logits stay float32.")
# Data.
flags.DEFINE_string("data_dir", None, "TFRecords written by tools/build_tfrecords.py (or gs://).")
flags.DEFINE_string("tfds_name", None, "A TFDS dataset already on disk, e.g. imagenet2012.")
flags.DEFINE_string("train_split", None, "Training split (train).")
flags.DEFINE_string("eval_split", None, "Evaluation split (validation); empty: no evaluation.")
flags.DEFINE_boolean("cache_data", None, "Cache the records in memory (small datasets).")
flags.DEFINE_enum("preprocessing", None, list(PREPROCESSING_KINDS),
                  "Input preprocessing (default: the network's own, from its registry entry).")
flags.DEFINE_boolean("fast_preprocessing", None,
                     "slim's fast_mode (default true, as slim): bilinear resize, brightness + "
                     "saturation; false: one of 4 resize methods and 4 colour-op orders.")
flags.DEFINE_boolean("color_distortion_on_device", None,
                     "Host sends uint8 crops; the colour distortion runs batched in the step "
                     "(TPU-style; default on in --preset=tpu).")
# Duration.
flags.DEFINE_integer("train_steps", None, "Training steps (overrides --train_epochs).")
flags.DEFINE_float("train_epochs", None, "Training epochs (paper: 100).")
flags.DEFINE_integer("train_batch_size", None, "GLOBAL batch, divided over the replicas.")
flags.DEFINE_integer("eval_batch_size", None, "GLOBAL eval batch.")
# Optimizer and schedule.
flags.DEFINE_enum("optimizer", None, ["rmsprop", "momentum", "adam"], "Optimizer (rmsprop).")
flags.DEFINE_float("learning_rate", None, "Learning rate at --learning_rate_batch_size (0.045).")
flags.DEFINE_integer("learning_rate_batch_size", None, "Batch the learning rate is quoted for.")
flags.DEFINE_enum("learning_rate_scaling", None, ["linear", "none"], "Scaling with the batch.")
flags.DEFINE_float("learning_rate_decay", None, "Decay factor (0.94).")
flags.DEFINE_float("epochs_per_decay", None, "Epochs between decays (2; TPU preset 3).")
flags.DEFINE_boolean("staircase", None, "Staircase decay.")
flags.DEFINE_float("warmup_epochs", None, "Linear warm-up epochs.")
flags.DEFINE_float("min_learning_rate_ratio", None, "Learning-rate floor as a fraction of the peak.")
flags.DEFINE_float("rmsprop_decay", None, "RMSProp decay (0.9).")
flags.DEFINE_float("momentum", None, "Momentum of RMSProp / SGD (0.9).")
flags.DEFINE_float("epsilon", None, "RMSProp / Adam epsilon (1.0).")
flags.DEFINE_float("gradient_clip_norm", None, "Global-norm clipping (2.0); 0 disables.")
flags.DEFINE_float("label_smoothing", None, "Label smoothing (0.1).")
flags.DEFINE_float("aux_loss_weight", None, "Auxiliary loss weight (0.4).")
flags.DEFINE_float("weight_decay", None, "slim weight decay: wd * sum(w^2) / 2 (4e-5).")
flags.DEFINE_float("ema_decay", None, "Moving-average decay (0.9999); 0 disables.")
# Running.
flags.DEFINE_enum("strategy", None, ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_string("tpu", None, "TPU name or 'local' (TPU VM / Colab).")
flags.DEFINE_integer("num_gpus", None, "Local GPUs for --strategy=mirrored (0: all).")
flags.DEFINE_boolean("jit_compile", None, "XLA-compile the step (default: on for one GPU and on "
                     "TPUs; off on CPUs, where XLA's convolutions are slower than TF's).")
flags.DEFINE_integer("steps_per_execution", None, "Steps per host round trip.")
flags.DEFINE_integer("checkpoint_every_steps", None, "Checkpoint interval in steps.")
flags.DEFINE_integer("keep_checkpoints", None, "Checkpoints kept.")
flags.DEFINE_integer("eval_every_steps", None, "Evaluate every K steps (0: only at the end).")
flags.DEFINE_integer("log_every_steps", None, "Console / TensorBoard interval.")
flags.DEFINE_string("init_checkpoint", None, "TF-slim checkpoint or one of our model_dirs to "
                    "start from (ignored when --model_dir already holds a checkpoint).")
flags.DEFINE_list("checkpoint_exclude_scopes", None, "Slim scopes not restored from "
                  "--init_checkpoint, e.g. InceptionV3/Logits,InceptionV3/AuxLogits.")
flags.DEFINE_list("trainable_scopes", None, "Only train these slim scopes (fine-tuning).")
flags.DEFINE_integer("seed", None, "Seed of initialisation, dropout and the input order.")
flags.DEFINE_boolean("deterministic", None, "Deterministic ops and input order (exact resume).")

FLAGS = flags.FLAGS

# Flags whose value maps 1:1 onto a TrainConfig field.
_DIRECT = (
    "model", "image_size", "num_classes", "aux_logits", "dropout_keep_prob", "batch_norm_momentum",
    "precision", "data_dir", "tfds_name", "train_split", "eval_split", "cache_data",
    "preprocessing", "fast_preprocessing", "color_distortion_on_device", "train_steps",
    "train_epochs",
    "train_batch_size", "eval_batch_size",
    "optimizer", "learning_rate", "learning_rate_batch_size", "learning_rate_scaling",
    "learning_rate_decay", "epochs_per_decay", "staircase", "warmup_epochs",
    "min_learning_rate_ratio", "rmsprop_decay", "momentum", "epsilon", "label_smoothing",
    "aux_loss_weight", "weight_decay", "strategy", "tpu", "num_gpus", "jit_compile",
    "steps_per_execution", "checkpoint_every_steps", "keep_checkpoints", "log_every_steps",
    "init_checkpoint", "seed", "deterministic")


def config_from_flags():
  """The `TrainConfig` of the preset with every flag that was given applied."""
  from inception_tf import train  # pylint: disable=import-outside-toplevel
  preset = FLAGS.preset
  if preset == "auto":
    preset = "paper_v3" if (FLAGS.data_dir or FLAGS.tfds_name) else "quickstart"
  config = {"quickstart": train.quickstart, "paper_v3": train.paper_v3, "tpu": train.tpu}[preset]()
  changes = {name: FLAGS[name].value for name in _DIRECT if FLAGS[name].value is not None}
  if FLAGS.train_steps is not None and FLAGS.train_epochs is None:
    changes["train_epochs"] = None
  if FLAGS.train_epochs is not None and FLAGS.train_steps is None:
    changes["train_steps"] = None
  if FLAGS.model_options is not None:
    changes["model_options"] = cli.model_options()
  elif FLAGS.model is not None and FLAGS.model != config.model:
    changes["model_options"] = {}  # the preset's options belong to the preset's model
  if FLAGS.gradient_clip_norm is not None:
    changes["gradient_clip_norm"] = FLAGS.gradient_clip_norm or None
  if FLAGS.ema_decay is not None:
    changes["ema_decay"] = FLAGS.ema_decay or None
  if FLAGS.eval_every_steps is not None:
    changes["eval_every_steps"] = FLAGS.eval_every_steps or None
  for name in ("checkpoint_exclude_scopes", "trainable_scopes"):
    if FLAGS[name].value is not None:
      changes[name] = tuple(FLAGS[name].value)
  return preset, config.replace(**changes)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from inception_tf import train  # pylint: disable=import-outside-toplevel
  preset, config = config_from_flags()
  model_dir = FLAGS.model_dir or os.path.join(
      "runs", f"{config.model}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
  print(f"Preset {preset}; model_dir {model_dir}", flush=True)
  from inception_tf.train import checkpointing  # pylint: disable=import-outside-toplevel
  from inception_tf.train import run_lock  # pylint: disable=import-outside-toplevel
  if config.init_checkpoint:  # the library checks it too; here the error can name the flag
    from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
    try:
      checkpoints.resolve_checkpoint_path(config.init_checkpoint)
    except (ValueError, FileNotFoundError) as error:
      sys.exit(f"error: --init_checkpoint: {error}")
  try:
    train.train_and_evaluate(config, model_dir)
  except (run_lock.RunDirectoryLocked, run_lock.RunLockLost,
          checkpointing.CheckpointWriteError, ValueError, FileNotFoundError) as error:
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  app.run(main)
