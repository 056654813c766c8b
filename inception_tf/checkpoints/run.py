"""Our own runs: the training checkpoint layout and the run's `config.json`.

A training run directory (`--model_dir`) holds

    config.json                 the run's configuration, written before the first step: model,
                                model options, num_classes, class names (the label map), image size,
                                preprocessing, precision, the data's facts and the whole recipe
    checkpoint, ckpt-<step>.*   object-based checkpoints: {"model", "rng", "optimizer", "ema"}
    train/, eval/               TensorBoard summaries
    results.json                the final metrics (written when the run finishes)

so every tool (`evaluate`, `export`, `predict`) rebuilds the network from the directory alone.

The checkpoint layout is the trainer's (`inception_tf.train.checkpointing.make_checkpoint`); the EMA
shadows sit under `ema/shadows/<variable path>` (`inception_tf.train.ema`). This module reads that
layout without importing the trainer, so evaluation and export do not depend on `train/`.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

from inception_tf import atomic

RUN_CONFIG = "config.json"
RESULTS = "results.json"
RUN_CONFIG_FORMAT = "inception_tf.run/1"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
EMA_PREFIX = "ema/"


def write_run_config(model_dir: str, config: dict) -> str:
  """Writes `<model_dir>/config.json` (atomically); returns its path."""
  path = os.path.join(model_dir, RUN_CONFIG)
  tf.io.gfile.makedirs(model_dir)
  atomic.write_json(path, {"format": RUN_CONFIG_FORMAT, **config})
  return path


def run_directory(path: str) -> str:
  """The run directory of a run path: the directory itself, or the one holding a `ckpt-N` prefix."""
  path = os.fspath(path)
  return path if tf.io.gfile.isdir(path) else os.path.dirname(path)


def run_config_file(path: str) -> str:
  """The file a run's configuration is read from: `config.json`, else (older runs) `results.json`."""
  directory = run_directory(path)
  for name in (RUN_CONFIG, RESULTS):
    if tf.io.gfile.exists(os.path.join(directory, name)):
      return os.path.join(directory, name)
  return os.path.join(directory, RUN_CONFIG)


def read_run_config(path: str) -> dict:
  """The configuration a training run recorded ({} when it recorded none).

  Args:
    path: a run directory or a checkpoint prefix inside one.

  Returns:
    `config.json`'s content; for runs older than `config.json`, the "config" of `results.json`.

  Raises:
    ValueError: a `config.json` that is not valid JSON (names the file).
  """
  file = run_config_file(path)
  if not tf.io.gfile.exists(file):
    return {}
  try:
    with tf.io.gfile.GFile(file) as f:
      content = json.load(f)
  except json.JSONDecodeError as error:
    raise ValueError(f"{file} is not valid JSON ({error}); restore it or delete it and pass "
                     "--model, --model_options and --num_classes explicitly.") from error
  if os.path.basename(file) == RESULTS:
    return dict(content.get("config") or {})
  return content


def is_training_checkpoint(prefix: str) -> bool:
  """True for a checkpoint written by this trainer (object-based), False for TF1/slim ones."""
  reader = tf.train.load_checkpoint(prefix)
  return reader.has_tensor(OBJECT_GRAPH_KEY)


def verify_checkpoint(prefix: str) -> bool:
  """Reads every tensor of `prefix`; False (with a warning) when any file is missing or corrupt."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as error:  # pylint: disable=broad-except  (truncated files raise IndexError)
    logging.warning("Checkpoint %s is unreadable, ignoring it: %s", prefix, error)
    return False
  return True


def latest_valid_checkpoint(directory: str) -> str | None:
  """The newest checkpoint in `directory` (per its state file) that reads completely, or None."""
  state = tf.train.get_checkpoint_state(directory)
  if state is None:
    return None
  candidates = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  if state.model_checkpoint_path and state.model_checkpoint_path not in candidates:
    candidates.append(state.model_checkpoint_path)
  for prefix in reversed(candidates):
    if not os.path.isabs(prefix) and "://" not in prefix:
      prefix = os.path.join(directory, prefix)
    if verify_checkpoint(prefix):
      return prefix
  return None


def has_ema(prefix: str) -> bool:
  """Whether a training checkpoint kept EMA shadows."""
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  return any(key.startswith(EMA_PREFIX) for key in shapes)


def checkpoint_step(prefix: str) -> int | None:
  """The step of a checkpoint: its optimizer's iterations or slim's global_step, else `-N`."""
  reader = tf.train.load_checkpoint(prefix)
  for key in ("global_step", "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE",
              "step/.ATTRIBUTES/VARIABLE_VALUE"):
    if reader.has_tensor(key):
      return int(reader.get_tensor(key))
  stem = os.path.basename(prefix).rpartition("-")[2]
  return int(stem) if stem.isdigit() else None


class _Shadows(tf.Module):
  """The `ema` object of a training checkpoint: `shadows[<variable path>]` (see train/ema.py)."""

  def __init__(self, variables):
    super().__init__(name="ema")
    self.shadows = {v.path: tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                        name=v.path.replace("/", "_") + "_ema")
                    for v in variables}


def _averaged_variables(model: keras.Model) -> list:
  """The variables the trainer's EMA averages: trainable + floating non-trainable ones."""
  return list(model.trainable_variables) + [
      v for v in model.non_trainable_variables if tf.as_dtype(v.dtype).is_floating]


def restore_for_inference(model: keras.Model, path: str, use_ema: bool = True) -> str:
  """Loads a checkpoint of this trainer into `model` (its EMA weights by default).

  Args:
    model: a model with the same architecture and num_classes as the trained one (e.g. from
      `create_model` with the run's arguments).
    path: a run directory (its newest valid checkpoint) or a checkpoint prefix (`.../ckpt-1000`).
    use_ema: load the exponential moving averages of the weights and batch-norm statistics, as
      evaluation and export should. A run without EMA loads its raw weights (with a warning).

  Returns:
    The checkpoint prefix loaded.

  Raises:
    FileNotFoundError: no (valid) checkpoint at `path`.
    ValueError: `path` is a TF-slim/TF1 checkpoint or does not match the model.
  """
  path = os.fspath(path)
  if tf.io.gfile.isdir(path):
    prefix = latest_valid_checkpoint(path)
    if prefix is None:
      raise FileNotFoundError(f"No valid training checkpoint in directory {path!r}.")
  else:
    prefix = path[:-len(".index")] if path.endswith(".index") else path
    if not tf.io.gfile.exists(prefix + ".index"):
      raise FileNotFoundError(f"No checkpoint at {path!r} (looked for {prefix}.index).")
  if not is_training_checkpoint(prefix):
    raise ValueError(f"{prefix!r} is a TF1 / TF-slim name-based checkpoint, not one of this "
                     "trainer; load it with inception_tf.checkpoints.load_slim_checkpoint.")
  shadows = None
  if use_ema and has_ema(prefix):
    shadows = _Shadows(_averaged_variables(model))
  elif use_ema:
    logging.warning("Checkpoint %s has no EMA; loading the raw weights.", prefix)
  checkpoint = tf.train.Checkpoint(model=model, **({"ema": shadows} if shadows else {}))
  try:
    checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise ValueError(f"Checkpoint {prefix!r} does not match model {model.name!r} (another network, "
                     f"options or num_classes?): {error}") from error
  if shadows is not None:
    for variable in _averaged_variables(model):
      variable.assign(tf.cast(shadows.shadows[variable.path], variable.dtype))
  return prefix
