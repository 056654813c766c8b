"""PyTorch state_dicts (torchvision, timm, pytorch-fid, Hugging Face) <-> Keras models, by name.

A model whose Keras layer names are PyTorch module paths (`conv1`, `layer2.0.downsample.0`,
`Conv2d_1a_3x3.bn`, `fc`) loads a state_dict by rule, with no side table: the entry
`<layer name>.<torch parameter>` fills the layer's variable, converted from PyTorch's layout:

    Keras layer           Keras variable        state_dict entry      layout change
    Conv2D                kernel [kh,kw,i/g,o]  weight [o,i/g,kh,kw]   transpose (2, 3, 1, 0)
    Conv2D                bias [o]              bias [o]               -
    DepthwiseConv2D       kernel [kh,kw,c,m]    weight [c*m,1,kh,kw]   reshape, transpose
    Dense                 kernel [i, o]         weight [o, i]          transpose
    Dense                 bias [o]              bias [o]               -
    BatchNormalization    gamma / beta          weight / bias          -
                          moving_mean           running_mean           -
                          moving_variance       running_var            -
    LayerNormalization    gamma / beta          weight / bias          -

`num_batches_tracked` (BN's step counter) is ignored. A grouped Conv2D (`groups=g`) has PyTorch's
grouped layout already: both frameworks store `in/g` input channels per kernel, groups in the
order of the output channels. A Dense fed by a flattened feature map sees NHWC order where PyTorch
flattens NCHW; such layers need their own permutation and are not handled here (torchvision's
ResNets and Inception pool to a vector first).

Files: `.safetensors` are read with `safetensors.numpy` (no torch needed). `.pth` / `.pt` / `.bin`
files are pickles; they are read only when torch is importable and only with
`torch.load(..., weights_only=True)`, which refuses arbitrary objects. A checkpoint dict that wraps
the weights (`{"state_dict": ...}` or `{"model": ...}`, as training scripts save) is unwrapped.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable, Mapping

import keras
import numpy as np

from inception_tf import atomic
from inception_tf.models import registry

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
IGNORED_LEAVES = ("num_batches_tracked",)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


class TorchCheckpointMismatch(ValueError):
  """The state_dict does not hold the model's weights: lists missing, unexpected, misshapen keys."""


@dataclasses.dataclass(frozen=True)
class TorchParameter:
  """One state_dict entry of a Keras model: its variable and the two layout conversions."""

  key: str
  variable: keras.Variable
  torch_shape: tuple[int, ...]
  to_keras: Callable[[np.ndarray], np.ndarray]
  to_torch: Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class TorchLoadReport:
  """What `load_torch_checkpoint` did."""

  source: str
  loaded: list[str]
  skipped: list[str]
  ignored: list[str]  # e.g. num_batches_tracked
  unused: list[str]  # entries the model has no variable for (only with allow_unused=True)

  def __str__(self):
    return (f"{self.source}: loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, "
            f"ignored {len(self.ignored)}, left {len(self.unused)} unused.")


def _same(value: np.ndarray) -> np.ndarray:
  return value


def _conv_kernel_to_keras(value: np.ndarray) -> np.ndarray:
  return np.transpose(value, (2, 3, 1, 0))  # [o, i/g, kh, kw] -> [kh, kw, i/g, o]


def _conv_kernel_to_torch(value: np.ndarray) -> np.ndarray:
  return np.transpose(value, (3, 2, 0, 1))  # [kh, kw, i/g, o] -> [o, i/g, kh, kw]


def _depthwise_converters(kh: int, kw: int, channels: int, multiplier: int):
  """torch [c*m, 1, kh, kw] (output c*m + j) <-> Keras [kh, kw, c, m] (output c*m + j as well)."""

  def to_keras(value):
    return np.transpose(value.reshape(channels, multiplier, kh, kw), (2, 3, 0, 1))

  def to_torch(value):
    return np.transpose(value, (2, 3, 0, 1)).reshape(channels * multiplier, 1, kh, kw)

  return to_keras, to_torch


def _layer_parameters(layer) -> Iterable[tuple[str, keras.Variable, tuple, Callable, Callable]]:
  """(torch leaf, variable, torch shape, to_keras, to_torch) for every variable of one layer."""
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    kh, kw, channels, multiplier = layer.kernel.shape
    to_keras, to_torch = _depthwise_converters(kh, kw, channels, multiplier)
    yield ("weight", layer.kernel, (channels * multiplier, 1, kh, kw), to_keras, to_torch)
    if layer.bias is not None:
      yield "bias", layer.bias, tuple(layer.bias.shape), _same, _same
  elif isinstance(layer, keras.layers.Conv2D):
    kh, kw, per_group, out = layer.kernel.shape
    yield ("weight", layer.kernel, (out, per_group, kh, kw), _conv_kernel_to_keras,
           _conv_kernel_to_torch)
    if layer.bias is not None:
      yield "bias", layer.bias, tuple(layer.bias.shape), _same, _same
  elif isinstance(layer, keras.layers.Dense):
    units_in, units_out = layer.kernel.shape
    yield "weight", layer.kernel, (units_out, units_in), np.transpose, np.transpose
    if layer.bias is not None:
      yield "bias", layer.bias, tuple(layer.bias.shape), _same, _same
  elif isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
    for leaf, variable in (("weight", layer.gamma), ("bias", layer.beta),
                           ("running_mean", getattr(layer, "moving_mean", None)),
                           ("running_var", getattr(layer, "moving_variance", None))):
      if variable is not None:
        yield leaf, variable, tuple(variable.shape), _same, _same
  elif layer.weights:
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) has weights but no PyTorch "
                     "mapping; supported: Conv2D, DepthwiseConv2D, Dense, BatchNormalization, "
                     "LayerNormalization.")


def torch_parameters(model: keras.Model) -> dict[str, TorchParameter]:
  """Every variable of `model` under its state_dict key `<layer name>.<torch leaf>`, in model order.

  Raises:
    ValueError: a layer with weights of an unsupported type, or two variables with one key.
  """
  result: dict[str, TorchParameter] = {}
  for layer in model.layers:
    for leaf, variable, shape, to_keras, to_torch in _layer_parameters(layer):
      key = f"{layer.name}.{leaf}"
      if key in result:
        raise ValueError(f"Two variables map to state_dict key {key!r}.")
      result[key] = TorchParameter(key, variable, tuple(int(s) for s in shape), to_keras, to_torch)
  return result


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
  """The model's weights as a PyTorch state_dict (numpy, torch layouts, no step counters)."""
  return {key: np.ascontiguousarray(p.to_torch(np.asarray(p.variable.numpy())))
          for key, p in torch_parameters(model).items()}


def _unwrap(state: Mapping) -> Mapping:
  """The tensor dict inside a training checkpoint's wrapper dict, else `state` itself."""
  for key in _WRAPPER_KEYS:
    inner = state.get(key) if isinstance(state, Mapping) else None
    if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
      return inner
  return state


def _to_numpy(value) -> np.ndarray:
  """A numpy array from a numpy array or a torch tensor (bfloat16 widened to float32)."""
  if hasattr(value, "detach"):  # a torch.Tensor
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
      value = value.float()
    return value.numpy()
  return np.asarray(value)


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a state_dict file into {key: numpy array} (torch layouts).

  Args:
    path: a `.safetensors` file (read with numpy only), or a `.pth`/`.pt`/`.bin`/`.ckpt` pickle
      (needs torch; read with `weights_only=True`).

  Raises:
    FileNotFoundError: no file at `path`.
    ImportError: a pickle file while torch is not installed (names the two fixes).
    ValueError: an unknown file type, or a pickle that holds no tensor dict.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No PyTorch checkpoint at {path!r}.")
  lower = path.lower()
  if lower.endswith(SAFETENSORS_SUFFIXES):
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    return dict(load_file(path))
  if lower.endswith(PICKLE_SUFFIXES):
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as error:
      raise ImportError(
          f"{path!r} is a PyTorch pickle, which only torch can read, and torch is not installed. "
          "Either `pip install torch`, or convert the file once where torch is available: "
          "`from safetensors.torch import save_file; "
          "save_file(torch.load(path, map_location='cpu', weights_only=True), "
          "'model.safetensors')` and pass the .safetensors file.") from error
    state = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    if not isinstance(state, Mapping):
      raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state_dict (a dict of "
                       "tensors); save `model.state_dict()`, not the model.")
    return {str(k): _to_numpy(v) for k, v in state.items() if hasattr(v, "shape")}
  raise ValueError(f"Unknown PyTorch checkpoint type {path!r}; expected one of "
                   f"{SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES}.")


def _excluded(key: str, exclude: Iterable[str]) -> bool:
  return any(key == e or key.startswith(e + ".") for e in exclude)


def _format_mismatch(source: str, model: keras.Model, missing, unexpected, misshapen,
                     exclude) -> str:
  lines = [f"State_dict {source} does not match model {model.name!r}."]
  for title, items in (("model weights missing from the state_dict", missing),
                       ("state_dict entries the model does not have", unexpected),
                       ("shape mismatches (torch layout)", misshapen)):
    if items:
      shown = "\n    ".join(items[:20])
      more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
      lines.append(f"  {len(items)} {title}:\n    {shown}{more}")
  if missing and unexpected or len(misshapen) > 2:
    lines.append("  The file looks like another network (or other model options); check the model "
                 "name and options against where the weights came from.")
  elif misshapen and not exclude:
    lines.append("  To fine-tune with another num_classes, leave the classifier out, e.g. "
                 "exclude=('fc',) (--exclude=fc).")
  if unexpected and not missing and not misshapen:
    lines.append("  If these entries are deliberate extras, pass allow_unused=True.")
  return "\n".join(lines)


def load_torch_checkpoint(model: keras.Model,
                          path_or_state_dict,
                          *,
                          prefix: str = "",
                          exclude: Iterable[str] = (),
                          allow_unused: bool = False) -> TorchLoadReport:
  """Assigns `model`'s variables from a PyTorch state_dict, by name, with every shape checked.

  Args:
    model: a Keras model whose layer names are the PyTorch module paths (e.g. `create_model(
      "resnet50")`: `conv1`, `layer1.0.bn1`, `fc`).
    path_or_state_dict: a `.safetensors` / `.pth` file (see `read_torch_state_dict`) or a mapping
      {key: numpy array or torch tensor}.
    prefix: a prefix every key carries, stripped before matching (e.g. "module." from
      DataParallel); entries without it are unexpected.
    exclude: module paths left as initialised (e.g. ("fc",) to fine-tune with another
      num_classes); their state_dict entries are ignored too.
    allow_unused: accept state_dict entries the model has no variable for.

  Returns:
    A `TorchLoadReport`. Nothing is assigned unless everything matches.

  Raises:
    TorchCheckpointMismatch: one error listing the model weights missing from the state_dict, the
      entries the model does not have (unless allow_unused) and the shape mismatches.
    FileNotFoundError, ImportError, ValueError: see `read_torch_state_dict`.

  Examples:
    >>> model = create_model("resnet50")
    >>> load_torch_checkpoint(model, "resnet50.safetensors")  # doctest: +SKIP
  """
  exclude = tuple(e.strip(".") for e in exclude if e.strip("."))
  if isinstance(path_or_state_dict, Mapping):
    source = "(in memory)"
    raw = _unwrap(path_or_state_dict)
  else:
    source = repr(os.fspath(path_or_state_dict))
    raw = read_torch_state_dict(path_or_state_dict)
  state, unexpected, ignored = {}, [], []
  for key, value in raw.items():
    if prefix and not key.startswith(prefix):
      unexpected.append(key)
      continue
    key = key[len(prefix):]
    if key.rsplit(".", 1)[-1] in IGNORED_LEAVES or _excluded(key, exclude):
      ignored.append(key)
      continue
    state[key] = value
  targets = torch_parameters(model)
  missing, misshapen, assignments, skipped = [], [], [], []
  for key, parameter in targets.items():
    if _excluded(key, exclude):
      skipped.append(key)
    elif key not in state:
      missing.append(key)
    elif tuple(state[key].shape) != parameter.torch_shape:
      misshapen.append(f"{key}: state_dict {list(state[key].shape)} vs model "
                       f"{list(parameter.torch_shape)}")
    else:
      assignments.append(parameter)
  unused = sorted(set(state) - set(targets))
  if not allow_unused:
    unexpected += unused
  if missing or unexpected or misshapen or not assignments:
    raise TorchCheckpointMismatch(
        _format_mismatch(source, model, missing, unexpected, misshapen, exclude))
  for parameter in assignments:
    value = parameter.to_keras(_to_numpy(state[parameter.key]))
    parameter.variable.assign(value.astype(parameter.variable.dtype))
  return TorchLoadReport(source=source, loaded=[p.key for p in assignments], skipped=skipped,
                         ignored=ignored, unused=unused)


def compare_with_state_dict(model: keras.Model, path_or_state_dict, *, prefix: str = "",
                            exclude: Iterable[str] = ()) -> list[str]:
  """Differences between `model`'s weights and a state_dict, after the layout changes.

  Every model variable is converted to torch layout and compared exactly (float32) with its entry.

  Returns:
    One line per differing or absent entry; empty when the model holds exactly the file's weights.
  """
  if isinstance(path_or_state_dict, Mapping):
    raw = _unwrap(path_or_state_dict)
  else:
    raw = read_torch_state_dict(path_or_state_dict)
  exclude = tuple(e.strip(".") for e in exclude if e.strip("."))
  differences = []
  for key, value in torch_state_dict(model).items():
    if _excluded(key, exclude):
      continue
    if prefix + key not in raw:
      differences.append(f"{key}: not in the state_dict")
      continue
    expected = _to_numpy(raw[prefix + key]).astype(value.dtype)
    if expected.shape != value.shape:
      differences.append(f"{key}: shape {list(value.shape)} vs {list(expected.shape)}")
    elif not np.array_equal(expected, value):
      worst = float(np.max(np.abs(expected - value)))
      differences.append(f"{key}: values differ (max abs difference {worst:g})")
  return differences


@dataclasses.dataclass(frozen=True)
class TorchConversionReport:
  """What `convert_torch_checkpoint` wrote and checked."""

  output: str
  model: str
  num_classes: int
  tensors: int

  def __str__(self):
    return (f"Wrote {self.output}: {self.model}, {self.num_classes} classes; its {self.tensors} "
            "weights equal the state_dict's tensors (checked before writing and after reloading "
            "the written file).")


def convert_torch_checkpoint(model_name: str,
                             checkpoint: str | os.PathLike,
                             output: str | os.PathLike,
                             *,
                             num_classes: int | None = None,
                             image_size: int | None = None,
                             model_options: dict | None = None,
                             prefix: str = "",
                             overwrite: bool = False) -> TorchConversionReport:
  """Converts a PyTorch state_dict of a registered model into a verified `.keras` file, atomically.

  1. builds `model_name` (num_classes from the state_dict's `fc.weight` unless given),
  2. loads the state_dict by name (`load_torch_checkpoint`: every weight present and of its shape,
     no entry left over),
  3. checks every model weight, converted back to torch layout, equals its tensor in the file,
  4. saves to a temporary sibling of `output` (`inception_tf.atomic.output_file`), reloads it (no
     custom objects), repeats the check on the reloaded model, and only then renames it to `output`.

  Raises:
    ValueError: unknown model or output not a `.keras` file.
    inception_tf.atomic.OutputExistsError: `output` exists and overwrite is False.
    FileNotFoundError, ImportError: see `read_torch_state_dict`.
    TorchCheckpointMismatch: the state_dict does not hold this network (nothing is written).
  """
  registry.model_info(model_name)  # a clear error for an unknown name, before reading the file
  output = os.fspath(output)
  if not output.endswith(".keras"):
    raise ValueError(f"output must be a `.keras` file, got {output!r}.")
  atomic.check_writable(output, overwrite=overwrite)  # also removes a killed conversion's leftovers
  state = read_torch_state_dict(checkpoint)
  classifier = state.get(f"{prefix}fc.weight")
  if num_classes is None and classifier is not None and classifier.ndim == 2:
    num_classes = int(classifier.shape[0])
  model = registry.create_model(model_name, num_classes=num_classes, image_size=image_size,
                                **(model_options or {}))
  report = load_torch_checkpoint(model, state, prefix=prefix)
  source = repr(os.fspath(checkpoint))
  _require_equal(model, state, prefix, f"The converted model differs from {source}")

  def verify(temporary: str) -> None:
    reloaded = keras.models.load_model(temporary, compile=False)
    _require_equal(reloaded, state, prefix, f"The reloaded {temporary!r} differs from {source}")

  with atomic.output_file(output, overwrite=overwrite, verify=verify) as temporary:
    model.save(temporary)
  return TorchConversionReport(output=output, model=model_name,
                               num_classes=int(model.output["logits"].shape[-1]),
                               tensors=len(report.loaded))


def _require_equal(model: keras.Model, state: Mapping, prefix: str, what: str) -> None:
  differences = compare_with_state_dict(model, state, prefix=prefix)
  if differences:
    raise TorchCheckpointMismatch(f"{what} in {len(differences)} tensors:\n  " +
                                  "\n  ".join(differences[:20]))
