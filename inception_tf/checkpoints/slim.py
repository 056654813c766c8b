"""TF-slim checkpoints <-> Keras models, by name.

`load_slim_checkpoint(model, "inception_v3.ckpt")` reads a checkpoint as TF-slim published it (or as
`save_slim_checkpoint` / TF1's `tf.train.Saver` wrote it) and assigns every model variable from the
checkpoint tensor of the same slim name (see `inception_tf.models.naming`), checking shapes. Anything
that does not match is reported at once, in one `SlimCheckpointMismatch` error.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from inception_tf.models import naming

EMA_SUFFIX = "/ExponentialMovingAverage"
# Optimizer slots and bookkeeping a training checkpoint may hold beside the model variables.
_NON_MODEL_MARKERS = (EMA_SUFFIX, "/RMSProp", "/Momentum", "/Adam", "/ExponentialMovingAverage_1")
_NON_MODEL_NAMES = ("global_step",)


class SlimCheckpointMismatch(ValueError):
  """The checkpoint does not hold the model's variables: lists what is missing, extra or misshapen."""


@dataclasses.dataclass
class LoadReport:
  """What `load_slim_checkpoint` did."""

  path: str
  loaded: list[str]
  skipped: list[str]
  ema_used: int
  unused: list[str]

  def __str__(self):
    return (f"{self.path}: loaded {len(self.loaded)} variables "
            f"({self.ema_used} from EMA shadows), skipped {len(self.skipped)}, "
            f"left {len(self.unused)} checkpoint tensors unused.")


def resolve_checkpoint_path(path: str) -> str:
  """A checkpoint prefix from a prefix, an `.index`/`.data-*` file, or a directory."""
  path = os.fspath(path)
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is not None:
      return latest
    # No `checkpoint` state file (e.g. written by `save_slim_checkpoint`): a single prefix will do.
    indexes = sorted(f for f in tf.io.gfile.glob(os.path.join(path, "*.index"))
                     if not os.path.basename(f).startswith(".tmp-"))
    if len(indexes) == 1:
      return indexes[0][:-len(".index")]
    if not indexes:
      raise FileNotFoundError(f"No checkpoint found in directory {path!r}.")
    raise ValueError(f"Directory {path!r} holds {len(indexes)} checkpoints and no `checkpoint` "
                     f"state file; pass one prefix: {[i[:-len('.index')] for i in indexes]}.")
  for suffix in (".index", ".meta"):
    if path.endswith(suffix):
      return path[:-len(suffix)]
  if ".data-" in os.path.basename(path):
    return path[:path.rindex(".data-")]
  if not tf.io.gfile.exists(path + ".index") and not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No checkpoint at {path!r} (looked for {path}.index).")
  return path


def read_slim_checkpoint(path: str) -> dict[str, tuple[int, ...]]:
  """Name -> shape of every tensor in a checkpoint."""
  reader = tf.train.load_checkpoint(resolve_checkpoint_path(path))
  return {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}


def _is_model_variable(name: str) -> bool:
  return name not in _NON_MODEL_NAMES and not any(m in name for m in _NON_MODEL_MARKERS)


def _excluded(name: str, scope: str, exclude_scopes: Sequence[str]) -> bool:
  for excluded in exclude_scopes:
    excluded = excluded.strip().strip("/")
    if not excluded:
      continue
    if not excluded.startswith(scope + "/") and excluded != scope:
      excluded = f"{scope}/{excluded}"
    if name == excluded or name.startswith(excluded + "/"):
      return True
  return False


def logits_scopes(scope: str) -> list[str]:
  """The classifier scopes slim's fine-tuning recipe excludes (`--checkpoint_exclude_scopes`)."""
  return [f"{scope}/Logits", f"{scope}/AuxLogits", f"{scope}/logits"]


def load_slim_checkpoint(model: keras.Model,
                         path: str,
                         *,
                         scope: str | None = None,
                         use_ema: bool = False,
                         skip_logits: bool = False,
                         exclude_scopes: Sequence[str] = (),
                         drop_background_class: bool = False,
                         allow_unused: bool = False) -> LoadReport:
  """Assigns `model`'s variables from a TF-slim checkpoint, by name, with shape checks.

  Args:
    model: a model from `inception_tf.models.create_model`.
    path: checkpoint prefix (`model.ckpt`, `model.ckpt-1000`), one of its files, or a directory.
    scope: slim scope of the network; defaults to `model.name` (e.g. "InceptionV3").
    use_ema: take `<name>/ExponentialMovingAverage` where the checkpoint has it.
    skip_logits: leave the classifier layers (Logits, AuxLogits) as initialised, for fine-tuning
      with another `num_classes`.
    exclude_scopes: further slim scopes to leave as initialised (with or without the model scope).
    drop_background_class: load a 1001-class checkpoint into a 1000-class model by dropping logit 0.
    allow_unused: accept checkpoint model tensors under `scope` that the model has no variable for.

  Returns:
    A `LoadReport`.

  Raises:
    SlimCheckpointMismatch: listing the model variables missing from the checkpoint, the checkpoint
      tensors the model does not have (unless allow_unused) and the shape mismatches.
  """
  prefix = resolve_checkpoint_path(path)
  reader = tf.train.load_checkpoint(prefix)
  shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
  scope = scope or model.name
  excluded = list(exclude_scopes) + (logits_scopes(scope) if skip_logits else [])
  targets = naming.slim_variables(model, scope)

  missing, mismatched, assignments, skipped = [], [], [], []
  ema_used = 0
  for name, variable in targets.items():
    if _excluded(name, scope, excluded):
      skipped.append(name)
      continue
    if name not in shapes:
      missing.append(name)
      continue
    source = name
    if use_ema and name + EMA_SUFFIX in shapes:
      source = name + EMA_SUFFIX
      ema_used += 1
    want = tuple(variable.shape)
    have = shapes[source]
    drop_first = (drop_background_class and len(want) == len(have) and want[:-1] == have[:-1]
                  and have[-1] == want[-1] + 1)
    if have != want and not drop_first:
      mismatched.append(f"{name}: checkpoint {list(have)} vs model {list(want)}")
      continue
    assignments.append((name, variable, source, drop_first))

  wanted = set(targets)
  unused = sorted(k for k in shapes
                  if _is_model_variable(k) and k not in wanted)
  unexpected = [] if allow_unused else [
      k for k in unused if k.startswith(scope + "/") and not _excluded(k, scope, excluded)]
  if missing or mismatched or unexpected or not assignments:
    scopes_found = sorted({k.split("/")[0] for k in shapes if _is_model_variable(k)})
    lines = [f"Checkpoint {prefix!r} does not match model {model.name!r} (scope {scope!r}); "
             f"the checkpoint's top-level scopes are {scopes_found}."]
    for title, items in (("missing from the checkpoint", missing),
                         ("in the checkpoint but not in the model", unexpected),
                         ("shape mismatches", mismatched)):
      if items:
        shown = "\n    ".join(items[:20])
        more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
        lines.append(f"  {len(items)} {title}:\n    {shown}{more}")
    if mismatched and not skip_logits:
      lines.append("  For fine-tuning with another num_classes pass skip_logits=True "
                   "(--checkpoint_exclude_scopes); for 1001 -> 1000 classes, "
                   "drop_background_class=True.")
    raise SlimCheckpointMismatch("\n".join(lines))

  for name, variable, source, drop_first in assignments:
    value = reader.get_tensor(source)
    if drop_first:
      value = value[..., 1:]
    variable.assign(value.astype(variable.dtype) if hasattr(value, "astype") else value)
  return LoadReport(path=prefix, loaded=[a[0] for a in assignments], skipped=skipped,
                    ema_used=ema_used, unused=unused)


def save_slim_checkpoint(model: keras.Model,
                         path: str,
                         *,
                         scope: str | None = None,
                         global_step: int | None = None,
                         extra: dict[str, np.ndarray] | None = None) -> str:
  """Writes `model`'s variables as a TF1 name-based checkpoint that TF-slim's Saver restores.

  The tensors are written under a temporary prefix and renamed into place, the `.index` file last,
  so an interrupted save never leaves a checkpoint that looks complete.

  Args:
    model: the model to save.
    path: the checkpoint prefix to write (e.g. `/tmp/model.ckpt`).
    scope: slim scope; defaults to `model.name`.
    global_step: also write `global_step` (int64), as slim's training checkpoints have.
    extra: further named tensors to write (e.g. EMA shadows).

  Returns:
    The prefix written.
  """
  scope = scope or model.name
  tensors = {name: np.asarray(v.numpy()) for name, v in naming.slim_variables(model, scope).items()}
  if global_step is not None:
    tensors["global_step"] = np.asarray(global_step, np.int64)
  tensors.update(extra or {})
  directory = os.path.dirname(path) or "."
  tf.io.gfile.makedirs(directory)
  tmp_prefix = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
  names = sorted(tensors)
  with tf.device("/cpu:0"):
    tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
  written = tf.io.gfile.glob(tmp_prefix + ".*")
  try:
    # An old checkpoint at `path` loses its index first: between the renames below no index
    # exists, so an interruption cannot pair an old index with new data (or the reverse).
    if tf.io.gfile.exists(path + ".index"):
      tf.io.gfile.remove(path + ".index")
    data_files = [f for f in written if not f.endswith(".index")]
    for source in data_files + [tmp_prefix + ".index"]:
      tf.io.gfile.rename(source, path + source[len(tmp_prefix):], overwrite=True)
  finally:
    for leftover in tf.io.gfile.glob(tmp_prefix + ".*"):
      tf.io.gfile.remove(leftover)
  return path


def assign_by_name(model: keras.Model, values: dict[str, np.ndarray],
                   scope: str | None = None) -> None:
  """Assigns slim-named numpy values to `model` (all must be present, shapes equal)."""
  targets = naming.slim_variables(model, scope)
  missing = sorted(set(targets) - set(values))
  if missing:
    raise SlimCheckpointMismatch(f"{len(missing)} model variables have no value: {missing[:10]}")
  for name, variable in targets.items():
    value = np.asarray(values[name])
    if tuple(value.shape) != tuple(variable.shape):
      raise SlimCheckpointMismatch(
          f"{name}: value {list(value.shape)} vs model {list(variable.shape)}")
    variable.assign(value)


def variable_names(model: keras.Model, scope: str | None = None) -> Iterable[tuple[str, tuple]]:
  """(slim name, shape) of every model variable, for comparison with published layouts."""
  for name, variable in naming.slim_variables(model, scope).items():
    yield name, tuple(variable.shape)
