"""Converts a TF-slim checkpoint into a verified, self-contained `.keras` file.

`convert_slim_checkpoint("inception_v4", "inception_v4.ckpt", "inception_v4.keras")`

1. builds the registered model (the number of classes and the aux head read from the checkpoint
   unless given),
2. loads the checkpoint by name (`inception_tf.checkpoints.load_slim_checkpoint`: every variable
   present with its shape, no checkpoint model tensor left over),
3. verifies the model against the checkpoint independently of the loader: every model variable
   equals its checkpoint tensor (the EMA shadow with `use_ema`, logit 0 dropped with
   `drop_background_class`),
4. saves to a temporary name beside the output, reloads that file without custom objects and checks
   its outputs equal the converted model's on a fixed batch, and only then renames it into place
   (`inception_tf.atomic.output_file`).

Any failure raises and leaves no file at `output` (and no temporary file); a SIGKILL at any moment
leaves `output` absent or complete, and the next conversion removes the killed one's temporary.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from inception_tf import atomic
from inception_tf import checkpoints
from inception_tf.models import naming
from inception_tf.models import registry


class ConversionError(ValueError):
  """The converted model does not reproduce the checkpoint (a value or a reloaded output differs)."""


@dataclasses.dataclass(frozen=True)
class ConversionReport:
  """What `convert_slim_checkpoint` wrote and checked."""

  output: str
  model: str
  num_classes: int
  aux_logits: bool
  variables: int
  ema_used: int
  max_reload_difference: float

  def __str__(self):
    return (f"Wrote {self.output}: {self.model}, {self.num_classes} classes, aux head "
            f"{'on' if self.aux_logits else 'off'}; {self.variables} variables equal to the "
            f"checkpoint ({self.ema_used} EMA shadows); reloaded outputs differ by at most "
            f"{self.max_reload_difference:g}.")


def _checkpoint_num_classes(shapes: dict[str, tuple[int, ...]], scope: str) -> int | None:
  """The logits width of the checkpoint: last dim of `<scope>/Logits/.../biases`."""
  widths = {shape[-1] for name, shape in shapes.items()
            if name.startswith(f"{scope}/Logits/") and name.endswith("/biases")
            and checkpoints.EMA_SUFFIX not in name}
  return widths.pop() if len(widths) == 1 else None


def _expected_value(reader, name: str, variable, *, use_ema: bool, drop_background_class: bool):
  source = name
  if use_ema and reader.has_tensor(name + checkpoints.EMA_SUFFIX):
    source = name + checkpoints.EMA_SUFFIX
  value = np.asarray(reader.get_tensor(source))
  if drop_background_class and value.shape != tuple(variable.shape):
    value = value[..., 1:]
  return value


def verify_against_checkpoint(model: keras.Model, path: str, *, scope: str | None = None,
                              use_ema: bool = False, drop_background_class: bool = False,
                              skip_scopes: tuple[str, ...] = ()) -> int:
  """Checks every variable of `model` equals its checkpoint tensor exactly.

  Args:
    model: a model loaded with `load_slim_checkpoint`.
    path: the checkpoint.
    scope: slim scope (default `model.name`).
    use_ema: compare with `<name>/ExponentialMovingAverage` where present.
    drop_background_class: compare logits with the checkpoint's classes 1..N.
    skip_scopes: slim name prefixes not compared (e.g. skipped logits).

  Returns:
    The number of variables compared.

  Raises:
    ConversionError: naming every variable that differs or is absent.
  """
  reader = tf.train.load_checkpoint(checkpoints.resolve_checkpoint_path(path))
  problems, compared = [], 0
  for name, variable in naming.slim_variables(model, scope).items():
    if any(name.startswith(s) for s in skip_scopes):
      continue
    if not reader.has_tensor(name):
      problems.append(f"{name}: not in the checkpoint")
      continue
    expected = _expected_value(reader, name, variable, use_ema=use_ema,
                               drop_background_class=drop_background_class)
    actual = np.asarray(variable.numpy())
    if expected.shape != actual.shape or not np.array_equal(expected.astype(actual.dtype), actual):
      problems.append(f"{name}: model value differs from the checkpoint tensor")
    compared += 1
  if problems:
    raise ConversionError(f"{len(problems)} variables do not equal the checkpoint:\n  " +
                          "\n  ".join(problems[:20]))
  return compared


def _outputs(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
  out = model(images, training=False)
  if not isinstance(out, dict):
    out = {"output": out}
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def convert_slim_checkpoint(model_name: str,
                            checkpoint: str,
                            output: str,
                            *,
                            num_classes: int | None = None,
                            aux_logits: bool | None = None,
                            use_ema: bool = False,
                            drop_background_class: bool = False,
                            image_size: int | None = None,
                            model_options: dict[str, Any] | None = None,
                            overwrite: bool = False) -> ConversionReport:
  """Converts a TF-slim checkpoint of `model_name` into a verified `.keras` file, atomically.

  Args:
    model_name: one of `inception_tf.models.list_models()`.
    checkpoint: checkpoint prefix, one of its files, or a directory.
    output: the `.keras` file to write.
    num_classes: logits width of the converted model; defaults to the checkpoint's (minus one with
      `drop_background_class`).
    aux_logits: keep the auxiliary head; defaults to on when the network and the checkpoint have it.
    use_ema: take the `ExponentialMovingAverage` shadows (the weights slim evaluated).
    drop_background_class: 1001-class checkpoint -> 1000-class model (drops logit 0).
    image_size: input size of the saved model (default: the network's).
    model_options: family options of `create_model` (depth_multiplier, output_stride, ...).
    overwrite: replace an existing `output`.

  Returns:
    A `ConversionReport`.

  Raises:
    ValueError: bad arguments (unknown model, output not ending in `.keras`, existing output).
    FileNotFoundError: no checkpoint at `checkpoint`.
    inception_tf.checkpoints.SlimCheckpointMismatch: the checkpoint does not hold this network.
    ConversionError: verification failed (nothing written).
  """
  info = registry.model_info(model_name)
  output = os.fspath(output)
  if not output.endswith(".keras"):
    raise ValueError(f"output must be a `.keras` file, got {output!r}.")
  atomic.check_writable(output, overwrite=overwrite)  # also removes a killed run's leftovers
  prefix = checkpoints.resolve_checkpoint_path(checkpoint)
  shapes = checkpoints.read_slim_checkpoint(prefix)
  scope = info.slim_scope
  if num_classes is None:
    found = _checkpoint_num_classes(shapes, scope)
    # Unknown (e.g. a checkpoint of another network): build the default and let the loader
    # report every difference at once.
    num_classes = (found or 1001) - (1 if drop_background_class and found else 0)
  if aux_logits is None:
    aux_logits = info.has_aux_logits and any(n.startswith(f"{scope}/AuxLogits/") for n in shapes)
  model = registry.create_model(model_name, num_classes=num_classes, image_size=image_size,
                                aux_logits=aux_logits, **(model_options or {}))
  report = checkpoints.load_slim_checkpoint(model, prefix, scope=scope, use_ema=use_ema,
                                            drop_background_class=drop_background_class)
  compared = verify_against_checkpoint(model, prefix, scope=scope, use_ema=use_ema,
                                       drop_background_class=drop_background_class)
  size = image_size or info.default_image_size
  images = np.random.default_rng(0).uniform(-1.0, 1.0, (2, size, size, 3)).astype(np.float32)
  expected = _outputs(model, images)

  with atomic.output_file(output, overwrite=overwrite) as temporary:
    model.save(temporary)
    reloaded = keras.models.load_model(temporary, compile=False)
    actual = _outputs(reloaded, images)
    if sorted(actual) != sorted(expected):
      raise ConversionError(f"Reloaded outputs {sorted(actual)} != {sorted(expected)}.")
    difference = max(float(np.max(np.abs(actual[k] - expected[k]))) for k in expected)
    scale = max(float(np.max(np.abs(expected[k]))) for k in expected)
    if not difference <= 1e-6 * max(scale, 1.0):
      raise ConversionError(f"The reloaded {temporary!r} gives outputs differing by {difference:g} "
                            f"(scale {scale:g}) from the converted model.")
  return ConversionReport(output=output, model=model_name, num_classes=num_classes,
                          aux_logits=bool(aux_logits), variables=compared,
                          ema_used=report.ema_used, max_reload_difference=difference)
