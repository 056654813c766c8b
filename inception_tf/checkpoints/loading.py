"""One way to load a model from anything we read: `load(path, ...)` sniffs the format.

    loaded = load("runs/v3")                                   # our run: nothing else needed
    loaded = load("inception_v3.ckpt", model="inception_v3")   # TF-slim: the network is named
    loaded = load("exports/v3")                                # an export (its model.keras)
    loaded.model, loaded.name, loaded.label_map, loaded.preprocessing, loaded.step

Formats (`sniff`):

  training_checkpoint  a run directory or a `ckpt-N` prefix of our trainer (object-based); the
                       network, its options, classes, image size and label map come from the run's
                       `config.json`; EMA weights by default when the run kept them
  slim_checkpoint      a TF1 / TF-slim name-based checkpoint, loaded by name (`--model` required);
                       its `ExponentialMovingAverage` shadows by default when present
  keras                a `.keras` file (label map from an `export_info.json` beside it)
  export               a directory written by `inception_tf.export.export_model` (its model.keras)
  torch_state_dict     a torchvision / timm state_dict (`.safetensors`, `.pth`, `.pt`; `--model`
                       required), through `inception_tf.checkpoints.load_torch_checkpoint`

Explicit arguments override what the run recorded and are checked against it: a contradiction
(another network, another width, another value of a model option) is an error naming the flag and
the run's file. Messages name the command-line flags (`--model`, `--num_classes`, ...), which
carry the same names as these arguments.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import keras
import tensorflow as tf

from inception_tf import labels as labels_lib
from inception_tf.checkpoints import run as run_lib
from inception_tf.checkpoints import slim as slim_lib

FORMAT_RUN = "training_checkpoint"
FORMAT_SLIM = "slim_checkpoint"
FORMAT_KERAS = "keras"
FORMAT_EXPORT = "export"
FORMAT_TORCH = "torch_state_dict"
FORMATS = (FORMAT_RUN, FORMAT_SLIM, FORMAT_KERAS, FORMAT_EXPORT, FORMAT_TORCH)
# --checkpoint_format values of the tools.
CHECKPOINT_FORMATS = {"auto": None, "ours": FORMAT_RUN, "slim": FORMAT_SLIM, "keras": FORMAT_KERAS,
                      "export": FORMAT_EXPORT, "torch": FORMAT_TORCH}
TORCH_SUFFIXES = (".safetensors", ".pth", ".pt")
EXPORT_INFO = "export_info.json"
EXPORT_KERAS_FILE = "model.keras"


class LoadError(ValueError):
  """A model source that cannot be loaded as asked: says what was found and which flag to change."""


@dataclasses.dataclass
class LoadedModel:
  """A loaded network and what is known about it.

  Attributes:
    model: the Keras model (aux head included when the run trained one).
    name: the registry name (`list_models()`), else the Keras model's name.
    format: one of `FORMATS`.
    path: the resolved file / checkpoint prefix.
    step: the checkpoint's training step (None for files without one).
    ema_used: whether moving averages were loaded (None: not applicable).
    image_size: the input size the model was built for.
    num_classes: the logits width.
    options: family options the model was built with.
    preprocessing: the eval preprocessing the model expects ("inception", "vgg", "torchvision",
      "cifar").
    label_map: class ids and names per logit, when the source records them.
    run: the run's `config.json` ({} for other formats).
  """

  model: keras.Model
  name: str
  format: str
  path: str
  step: int | None = None
  ema_used: bool | None = None
  image_size: int | None = None
  num_classes: int | None = None
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  preprocessing: str | None = None
  label_map: labels_lib.LabelMap | None = None
  run: dict[str, Any] = dataclasses.field(default_factory=dict)


def _models():
  from inception_tf import models  # pylint: disable=import-outside-toplevel  (builds the registry)
  return models


def registered_name(model: keras.Model) -> str | None:
  """The registry name of a zoo model (matched by its slim scope), or None."""
  models = _models()
  for name in models.list_models():
    if models.model_info(name).slim_scope == model.name:
      return name
  return None


def logits_width(model: keras.Model) -> int:
  """The number of logits of a classifier returning `{"logits": ...}` or a logits tensor."""
  outputs = model.output
  if isinstance(outputs, dict):
    if "logits" not in outputs:
      raise LoadError(f"Model {model.name} returns {sorted(outputs)}, no 'logits'; build it with "
                      "include_top=True.")
    outputs = outputs["logits"]
  return int(outputs.shape[-1])


def read_export_info(path: str) -> dict | None:
  """`export_info.json` of an export directory (or beside a `.keras` / SavedModel path), if any."""
  path = os.path.normpath(os.fspath(path))
  for directory in (path, os.path.dirname(path)):
    candidate = os.path.join(directory, EXPORT_INFO)
    if os.path.isfile(candidate):
      with open(candidate) as f:
        return json.load(f)
  return None


def sniff(path: str) -> tuple[str, str]:
  """(format, resolved path) of a model source; see the module docstring for the formats.

  Raises:
    FileNotFoundError: nothing at `path` (the message names --checkpoint).
    LoadError: a directory that holds none of the formats.
  """
  path = os.fspath(path)
  if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"--checkpoint={path}: no such file, directory or checkpoint prefix "
                            f"(looked for {path} and {path}.index).")
  if path.endswith(".keras"):
    return FORMAT_KERAS, path
  if path.endswith(TORCH_SUFFIXES):
    return FORMAT_TORCH, path
  if tf.io.gfile.isdir(path):
    if tf.io.gfile.exists(os.path.join(path, EXPORT_KERAS_FILE)):
      return FORMAT_EXPORT, path
    prefix = run_lib.latest_valid_checkpoint(path)
    if prefix is None:
      try:
        prefix = slim_lib.resolve_checkpoint_path(path)
      except FileNotFoundError as error:
        hint = (" It looks like an export without model.keras: use tools/predict.py "
                "--saved_model=" + path + "." if tf.io.gfile.exists(
                    os.path.join(path, "saved_model")) else "")
        raise LoadError(f"--checkpoint={path}: the directory holds no checkpoint, no model.keras "
                        f"and no {run_lib.RUN_CONFIG} with checkpoints.{hint}") from error
  else:
    prefix = slim_lib.resolve_checkpoint_path(path)
  if run_lib.is_training_checkpoint(prefix):
    return FORMAT_RUN, prefix
  return FORMAT_SLIM, prefix


def _check_size(name: str, image_size: int) -> None:
  info = _models().model_info(name)
  if not isinstance(image_size, int) or image_size < info.min_image_size:
    raise LoadError(f"--image_size={image_size} is below the minimum input size "
                    f"{info.min_image_size} of {name}; use --image_size >= {info.min_image_size} "
                    f"(default {info.default_image_size}).")


def _load_file(fmt: str, path: str, *, model: str | None, num_classes: int | None,
               image_size: int | None, options: dict) -> LoadedModel:
  """A `.keras` file or an export: a built network, so the flags can only be checked."""
  keras_file = os.path.join(path, EXPORT_KERAS_FILE) if fmt == FORMAT_EXPORT else path
  net = keras.models.load_model(keras_file, compile=False)
  name = registered_name(net)
  if model and (name or net.name) != model:
    raise LoadError(f"{keras_file} holds a {name or net.name!r} network, not --model={model}; "
                    "drop --model (a .keras file knows its network).")
  if options:
    raise LoadError(f"--model_options={options} cannot change the built network in {keras_file}; "
                    "drop --model_options.")
  size = net.input_shape[1]
  if image_size and size and image_size != size:
    raise LoadError(f"{keras_file} takes {size}x{size} inputs, not --image_size={image_size}; "
                    "drop --image_size.")
  classes = logits_width(net)
  if num_classes and num_classes != classes:
    raise LoadError(f"{keras_file} has {classes} logits, not --num_classes={num_classes}; "
                    "drop --num_classes.")
  info = read_export_info(path) or {}
  label_map = labels_lib.LabelMap.from_json(info["label_map"]) if "label_map" in info else None
  preprocessing = info.get("preprocessing") or (
      _models().model_info(name).preprocessing if name else None)
  return LoadedModel(model=net, name=name or net.name, format=fmt, path=keras_file,
                     image_size=int(size) if size else None, num_classes=classes,
                     preprocessing=preprocessing, label_map=label_map)


def _merged_options(path: str, run: dict, options: dict) -> dict:
  recorded = dict(run.get("model_options") or {})
  for key, value in options.items():
    if key in recorded and recorded[key] != value:
      raise LoadError(f"--model_options={key}={value} contradicts the run at {path}, trained with "
                      f"{key}={recorded[key]} ({run_lib.run_config_file(path)}); drop it from "
                      "--model_options.")
  return {**recorded, **options}


def _run_label_map(run: dict, num_classes: int) -> labels_lib.LabelMap | None:
  data = run.get("label_map")
  if not data:
    return None
  label_map = labels_lib.LabelMap.from_json(data)
  return label_map if len(label_map) == num_classes else None


def load(path: str, *, model: str | None = None, num_classes: int | None = None,
         image_size: int | None = None, model_options: dict | None = None,
         use_ema: bool | None = None, checkpoint_format: str = "auto",
         data_classes: int | None = None) -> LoadedModel:
  """Builds and loads the network of `path` (a run, a checkpoint, a `.keras` file or an export).

  Args:
    path: what `--checkpoint` names (see the module docstring).
    model: the registry name (`--model`); required for TF-slim and torch checkpoints.
    num_classes: logits width (`--num_classes`); default: the run's, the slim checkpoint's
      logits, `data_classes`, else the registry's published width.
    image_size: input size (`--image_size`); default: the run's, else the network's.
    model_options: family options (`--model_options`), merged over the run's.
    use_ema: None = the moving averages when the checkpoint has them.
    checkpoint_format: a key of `CHECKPOINT_FORMATS` ("auto" sniffs).
    data_classes: the evaluated data's width, used when nothing else gives num_classes.

  Returns:
    A `LoadedModel`.

  Raises:
    FileNotFoundError: nothing at `path`.
    LoadError: a contradiction between the flags and the source, or weights that do not fit.
  """
  if checkpoint_format not in CHECKPOINT_FORMATS:
    raise LoadError(f"--checkpoint_format={checkpoint_format} is not one of "
                    f"{sorted(CHECKPOINT_FORMATS)}.")
  fmt, resolved = sniff(path)
  forced = CHECKPOINT_FORMATS[checkpoint_format]
  if forced and forced != fmt:
    raise LoadError(f"--checkpoint={path} is a {fmt}, not --checkpoint_format={checkpoint_format}; "
                    "use --checkpoint_format=auto.")
  options = dict(model_options or {})
  if fmt in (FORMAT_KERAS, FORMAT_EXPORT):
    return _load_file(fmt, resolved, model=model, num_classes=num_classes,
                      image_size=image_size, options=options)
  models = _models()
  run = run_lib.read_run_config(resolved) if fmt == FORMAT_RUN else {}
  recorded = run.get("model")
  config_file = run_lib.run_config_file(resolved)
  if recorded and model and recorded != model:
    raise LoadError(f"Checkpoint {resolved!r} was trained as {recorded!r} ({config_file}), not "
                    f"--model={model}; drop --model or pass --model={recorded}.")
  name = model or recorded
  if not name:
    where = (f"{resolved!r} has no {config_file}" if fmt == FORMAT_RUN
             else f"A {fmt} does not record its network")
    raise LoadError(f"{where}: pass --model (one of {', '.join(models.list_models())}).")
  try:
    info = models.model_info(name)
  except ValueError as error:
    raise LoadError(f"--model={name}: {error}") from error
  options = _merged_options(resolved, run, options)
  if run.get("num_classes") and num_classes and num_classes != run["num_classes"]:
    raise LoadError(f"--num_classes={num_classes} contradicts the run at {resolved!r}, trained "
                    f"with {run['num_classes']} classes ({config_file}); drop --num_classes.")
  size = int(image_size or run.get("image_size") or info.default_image_size)
  _check_size(name, size)
  if fmt == FORMAT_SLIM:
    shapes = slim_lib.read_slim_checkpoint(resolved)
    scopes = sorted({k.split("/")[0] for k in shapes if "/" in k})
    if info.slim_scope not in scopes:
      raise LoadError(f"Checkpoint {resolved!r} holds the scopes {scopes}, not "
                      f"{info.slim_scope!r}: it is not an {name} checkpoint; pass the matching "
                      "--model.")
    width = next((int(shape[-1]) for key, shape in sorted(shapes.items())
                  if key.startswith(f"{info.slim_scope}/Logits/") and key.endswith("/biases")
                  and slim_lib.EMA_SUFFIX not in key), None)
    classes = num_classes or width or data_classes or info.num_classes
  elif fmt == FORMAT_RUN:
    classes = num_classes or run.get("num_classes") or data_classes
    if not classes:
      raise LoadError(f"Cannot tell the number of classes of {resolved!r} (no {config_file}); "
                      "pass --num_classes.")
  else:
    classes = num_classes or info.num_classes
  # Our checkpoints are object-based: build the network exactly as trained (aux head included);
  # slim and torch checkpoints load by name, so the unused aux head is left out.
  aux_logits = run.get("aux_logits") if fmt == FORMAT_RUN else False
  net = models.create_model(name, int(classes), image_size=size, aux_logits=aux_logits, **options)
  described = f"--model={name} (num_classes={classes}, image_size={size}, options={options})"
  ema_used = None
  if fmt == FORMAT_SLIM:
    has_ema = any(k.endswith(slim_lib.EMA_SUFFIX) for k in shapes)
    ema_used = has_ema if use_ema is None else bool(use_ema and has_ema)
    if use_ema and not has_ema:
      logging.warning("Checkpoint %s has no EMA values; loading the raw weights.", resolved)
    try:
      slim_lib.load_slim_checkpoint(net, resolved, use_ema=ema_used, allow_unused=True)
    except slim_lib.SlimCheckpointMismatch as error:
      raise LoadError(f"Checkpoint {resolved!r} does not match {described}:\n{error}") from error
  elif fmt == FORMAT_RUN:
    has_ema = run_lib.has_ema(resolved)
    ema_used = has_ema if use_ema is None else bool(use_ema and has_ema)
    try:
      run_lib.restore_for_inference(net, resolved, use_ema=ema_used)
    except ValueError as error:
      raise LoadError(f"Checkpoint {resolved!r} does not match {described}: {error}") from error
  else:
    _load_torch(net, resolved)
  step = run_lib.checkpoint_step(resolved) if fmt in (FORMAT_RUN, FORMAT_SLIM) else None
  return LoadedModel(model=net, name=name, format=fmt, path=resolved, step=step,
                     ema_used=ema_used, image_size=size, num_classes=int(classes),
                     options=options, preprocessing=run.get("preprocessing") or info.preprocessing,
                     label_map=_run_label_map(run, int(classes)), run=run)


def _load_torch(model: keras.Model, path: str) -> None:
  try:
    from inception_tf.checkpoints import torch as torch_lib  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise LoadError(f"--checkpoint={path}: this installation cannot read torch state_dicts "
                    f"({error}).") from error
  torch_lib.load_torch_checkpoint(model, path)


def _copy_by_layer_name(model: keras.Model, source: keras.Model, path: str) -> int:
  """Assigns every weight of `model` from the same-named layer of `source`; returns the count."""
  layers = {layer.name: layer for layer in source.layers}
  missing, misshapen, count = [], [], 0
  for layer in model.layers:
    if not layer.weights:
      continue
    if layer.name not in layers or len(layers[layer.name].weights) != len(layer.weights):
      missing.append(layer.name)
      continue
    for target, value in zip(layer.weights, layers[layer.name].weights):
      if tuple(target.shape) != tuple(value.shape):
        misshapen.append(f"{target.path} {tuple(target.shape)} vs {tuple(value.shape)}")
      else:
        target.assign(tf.cast(value, target.dtype))
        count += 1
  if missing or misshapen:
    raise LoadError(f"{path} does not fit {model.name}: layers missing from the file: "
                    f"{missing[:10]}; misshapen weights: {misshapen[:10]}.")
  return count


def load_weights(model: keras.Model, path: str, *, use_ema: bool = True,
                 exclude_scopes=()) -> str:
  """Loads weights from any source into an already built `model` (fine-tuning's init checkpoint).

  Args:
    model: the network to initialise.
    path: our run / checkpoint (EMA weights by default), a TF-slim checkpoint (by name, minus
      `exclude_scopes`), a torch state_dict, a `.keras` file or an export (by layer name).
    use_ema: prefer moving averages when the source has them.
    exclude_scopes: slim scopes left out (TF-slim checkpoints only).

  Returns:
    A one-line description of what was loaded.

  Raises:
    FileNotFoundError / LoadError: as `load`; slim mismatches raise `SlimCheckpointMismatch`.
  """
  fmt, resolved = sniff(path)
  if exclude_scopes and fmt != FORMAT_SLIM:
    raise LoadError(f"--checkpoint_exclude_scopes applies to TF-slim checkpoints; {resolved!r} is "
                    f"a {fmt}, which restores whole models: drop --checkpoint_exclude_scopes.")
  if fmt == FORMAT_RUN:
    run_lib.restore_for_inference(model, resolved, use_ema=use_ema)
    return f"Initialised from {resolved} ({'EMA' if use_ema else 'raw'} weights)."
  if fmt == FORMAT_SLIM:
    report = slim_lib.load_slim_checkpoint(model, resolved, use_ema=use_ema,
                                           exclude_scopes=exclude_scopes)
    return f"Initialised from {report}"
  if fmt == FORMAT_TORCH:
    _load_torch(model, resolved)
    return f"Initialised from the torch state_dict {resolved}."
  keras_file = os.path.join(resolved, EXPORT_KERAS_FILE) if fmt == FORMAT_EXPORT else resolved
  count = _copy_by_layer_name(model, keras.models.load_model(keras_file, compile=False),
                              keras_file)
  return f"Initialised {count} weights from {keras_file} (by layer name)."


def load_model(checkpoint: str | None = None, *, keras_file: str | None = None,
               model_name: str | None = None, checkpoint_format: str = "auto",
               num_classes: int | None = None, image_size: int | None = None,
               use_ema: bool | None = None, **model_options) -> keras.Model:
  """`load(...).model`: the Keras model of a run, checkpoint, `.keras` file or export.

  Args:
    checkpoint: any source `load` reads.
    keras_file: a `.keras` file (same as `checkpoint=keras_file`).
    model_name: the registry name (`--model`).
    checkpoint_format, num_classes, image_size, use_ema: as `load`.
    **model_options: family options (depth_multiplier, ...).

  Raises:
    LoadError: no source or two sources, or see `load`.
  """
  if (checkpoint is None) == (keras_file is None):
    raise LoadError("Give exactly one model source: --checkpoint (a run directory, checkpoint, "
                    ".keras file or export) or --keras_file.")
  return load(checkpoint or keras_file, model=model_name, num_classes=num_classes,
              image_size=image_size, model_options=model_options, use_ema=use_ema,
              checkpoint_format=checkpoint_format).model
