"""Training checkpoints: model, optimizer (with its step), EMA shadows and dropout RNG state.

Crash safety. `tf.train.CheckpointManager.save` writes the tensors to a temporary directory and
moves them into `ckpt-N.data-*`, `ckpt-N.index` (MergeV2Checkpoints), and only then rewrites the
`checkpoint` state file (itself written to a temp file and renamed). A crash at any point therefore
leaves the state file naming only complete checkpoints. On start, `latest_valid_checkpoint` still
reads every tensor of the newest checkpoint before trusting it and falls back to the previous one
if it is unreadable (e.g. a file truncated by a full disk).

Failing storage. When the storage refuses a checkpoint write (no space left, permission denied),
`CheckpointWriter.save` removes that checkpoint's partial files and raises one
`CheckpointWriteError`; the state file still names only the earlier, complete checkpoints, so a
rerun resumes from the newest of them.

The data position is the optimizer step: the input pipeline is a function of (seed, step), and a
resumed run skips the `step` batches each replica already consumed (distributed iterators cannot be
checkpointed under tf.distribute).

Reading this layout (`restore_for_inference`, `latest_valid_checkpoint`, ...) lives in
`inception_tf.checkpoints.run`, so evaluation and export load our runs without importing the
trainer.
"""

from __future__ import annotations

import os
import shutil

import keras
import tensorflow as tf

from inception_tf.checkpoints.run import is_training_checkpoint  # noqa: F401  (re-exported)
from inception_tf.checkpoints.run import latest_valid_checkpoint
from inception_tf.checkpoints.run import restore_for_inference  # noqa: F401  (re-exported)
from inception_tf.checkpoints.run import verify_checkpoint  # noqa: F401  (re-exported)


def rng_variables(model: keras.Model) -> list:
  """The integer state variables of the model (dropout seed generators), in model order.

  `tf.train.Checkpoint(model=model)` does not save Keras' SeedGenerator state; without it a
  resumed run would draw other dropout masks than the uninterrupted one. A list, not a dict by
  path: seed generators are auto-named (`seed_generator_3`), so their paths depend on how many
  were created before in the process.
  """
  return [v for v in model.non_trainable_variables if not tf.as_dtype(v.dtype).is_floating]


def make_checkpoint(model: keras.Model, optimizer=None, ema=None) -> tf.train.Checkpoint:
  """The `tf.train.Checkpoint` of a training run (the layout `restore_for_inference` expects)."""
  objects = {"model": model, "rng": rng_variables(model)}
  if optimizer is not None:
    objects["optimizer"] = optimizer
  if ema is not None:
    objects["ema"] = ema
  return tf.train.Checkpoint(**objects)


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:400] if text else type(error).__name__


class CheckpointWriteError(OSError):
  """Writing a checkpoint failed (disk full, permission denied, ...); the previous one is intact."""


class CheckpointWriter:
  """Saves every N steps / at the end, keeps the last few; only the chief keeps its files.

  Under MultiWorkerMirroredStrategy every worker must take part in a save (reading mirrored
  variables may need collectives), so non-chief workers write to a private temporary directory
  that is deleted right after.

  With `lock` (the chief's `run_lock.RunLock`), every save first checks that this trainer still
  holds the run directory (`run_lock.RunLockLost` otherwise).
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, model_dir: str, *, keep: int,
               chief: bool = True, worker_index: int = 0, lock=None):
    self.checkpoint = checkpoint
    self.model_dir = model_dir
    self.chief = chief
    self.lock = lock
    directory = model_dir if chief else os.path.join(model_dir, f".worker{worker_index}_tmp")
    self.directory = directory
    self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)

  def restore_latest(self) -> str | None:
    """Restores the newest valid checkpoint of `model_dir`; returns its prefix or None.

    The chief first removes the `ckpt-N_temp/` directories of saves a kill interrupted.
    """
    if self.chief:
      self.remove_incomplete()
    prefix = latest_valid_checkpoint(self.model_dir)
    if prefix is None:
      return None
    try:
      self.checkpoint.restore(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
      raise ValueError(
          f"Cannot resume from {prefix!r}: it was written by a run with another recipe (model, "
          "num_classes, optimizer, EMA or precision differ) than the one given now. Train into a "
          "new --model_dir, or delete this one to start over, or rerun with the recipe that wrote "
          f"it (see {os.path.join(self.model_dir, 'config.json')}). "
          f"TensorFlow said: {_first_line(error)}") from error
    return prefix

  def remove_incomplete(self, step: int | None = None) -> list[str]:
    """Deletes what interrupted saves left (`ckpt-N_temp/`; with `step`, also `ckpt-<step>.*`
    unless the state file names it). Returns the paths removed."""
    pattern = os.path.join(self.directory, "ckpt-*_temp" if step is None else f"ckpt-{step}[._]*")
    named = {os.path.basename(p) for p in self.manager.checkpoints}
    removed = []
    for path in tf.io.gfile.glob(pattern):
      if os.path.basename(path).split(".")[0] in named:
        continue
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)
      removed.append(path)
    return removed

  def save(self, step: int) -> str | None:
    """Writes checkpoint `ckpt-<step>`; returns its prefix on the chief.

    Raises:
      CheckpointWriteError: the storage refused the write (no space left, permission denied, file
        too large, ...). The files of `ckpt-<step>` are removed; the state file still names the
        previous checkpoints, which are intact, so a rerun resumes from the newest of them.
      run_lock.RunLockLost: another trainer took the run directory over.
    """
    if self.lock is not None:
      self.lock.check()
    try:
      path = self.manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
      try:
        self.remove_incomplete(step)
      except (tf.errors.OpError, OSError):
        pass  # the storage may refuse deletes too; the state file ignores the leftovers anyway
      previous = self.manager.latest_checkpoint
      raise CheckpointWriteError(
          f"Could not write checkpoint ckpt-{step} to {self.directory}: {_first_line(error)} "
          "(disk full, quota, permissions?). " + (
              f"The previous checkpoint {previous} is intact; free space or fix the permissions "
              "and rerun the same command: it resumes from there." if previous else
              "No earlier checkpoint of this run exists; fix the storage and rerun.")) from None
    if not self.chief:
      shutil.rmtree(self.directory, ignore_errors=True)
      return None
    return path
