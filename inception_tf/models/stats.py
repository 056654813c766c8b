"""Parameter and multiply-add counts of Keras models, and the figures the papers published.

`count_parameters(model)` sums the model's variables; `count_multiply_adds(model)` walks the
functional graph and adds, for every convolution and fully connected layer, the multiply-adds of one
forward pass of one image:

    Conv1D/2D/3D            output positions x kernel size (kh * kw * Cin/groups * Cout)
    DepthwiseConv1D/2D      output positions x depthwise kernel size (kh * kw * Cin * multiplier)
    SeparableConv1D/2D      output positions x (depthwise kernel size + pointwise kernel size)
    Conv2DTranspose/3D      input positions x kernel size
    Dense                   leading positions x (units x input width)

Bias additions, batch norm, activations, pooling, concatenation and residual additions are excluded,
as in the convention of the papers' figures (GoogLeNet's "1.5 billion multiply-adds", the v3 paper's
"5 billion multiply-adds"): they cost a small fraction of the convolutions.

`PUBLISHED` holds, per registered model name, the parameter and multiply-add figures published for
the network (with their source), which `tools/model_stats.py` prints beside ours.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable

import keras


@dataclasses.dataclass(frozen=True)
class ParameterCount:
  """Scalar counts of a model's variables."""

  total: int
  trainable: int
  non_trainable: int


def _size(variable) -> int:
  return int(math.prod(int(d) for d in variable.shape))


def count_parameters(model: keras.Model,
                     *,
                     exclude: Callable[[str], bool] | None = None) -> ParameterCount:
  """Counts the scalars of `model`'s variables (each shared variable once).

  Args:
    model: any built Keras model.
    exclude: optional predicate on a layer name; the variables of the layers it accepts are not
      counted (e.g. `lambda name: name.startswith("AuxLogits")` for the count without aux head).

  Returns:
    A `ParameterCount` (total = trainable + non-trainable; batch-norm moving statistics are
    non-trainable, as in Keras' `model.summary()`).
  """
  seen: set[int] = set()
  trainable = non_trainable = 0
  for layer in _flat_layers(model):
    if exclude is not None and exclude(layer.name):
      continue
    for variable in layer.trainable_weights:
      if id(variable) not in seen:
        seen.add(id(variable))
        trainable += _size(variable)
    for variable in layer.non_trainable_weights:
      if id(variable) not in seen:
        seen.add(id(variable))
        non_trainable += _size(variable)
  return ParameterCount(total=trainable + non_trainable, trainable=trainable,
                        non_trainable=non_trainable)


def _flat_layers(model: keras.Model) -> Iterable[keras.layers.Layer]:
  """The leaf layers of `model`, descending into nested models."""
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from _flat_layers(layer)
    else:
      yield layer


def _positions(shape) -> int:
  """Product of the non-batch, non-channel dimensions of a static shape."""
  dims = list(shape)[1:-1]
  if any(d is None for d in dims):
    raise ValueError(f"Cannot count multiply-adds with unknown spatial dimensions {tuple(shape)}; "
                     "build the model with a fixed input size.")
  return int(math.prod(dims))


def _layer_multiply_adds(layer, input_shape, output_shape) -> int:
  """Multiply-adds of one call of `layer`, 0 for layers outside the counted kinds."""
  layers = keras.layers
  if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
    return _positions(output_shape) * (_size(layer.depthwise_kernel) +
                                       _size(layer.pointwise_kernel))
  if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
    return _positions(output_shape) * _size(layer.kernel)
  if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
    return _positions(input_shape) * _size(layer.kernel)
  if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
    return _positions(output_shape) * _size(layer.kernel)
  if isinstance(layer, layers.Dense):
    leading = int(math.prod(list(input_shape)[1:-1]))
    return leading * _size(layer.kernel)
  return 0


def multiply_adds_by_layer(model: keras.Model) -> dict[str, int]:
  """Multiply-adds of every counted layer call in `model`'s graph, keyed by layer name.

  Nested models are descended into; their layers are keyed `outer/inner`. A layer called several
  times in the graph is summed over its calls.

  Raises:
    ValueError: if `model` is not a functional/sequential model with a graph, or a counted layer
      has unknown spatial dimensions.
  """
  nodes_by_depth = getattr(model, "_nodes_by_depth", None)
  if nodes_by_depth is None:
    raise ValueError(f"Model {model.name!r} has no functional graph; count_multiply_adds needs a "
                     "functional or Sequential model built on a fixed input shape.")
  result: dict[str, int] = {}
  for nodes in nodes_by_depth.values():
    for node in nodes:
      layer = node.operation
      if isinstance(layer, keras.Model):
        for name, macs in multiply_adds_by_layer(layer).items():
          key = f"{layer.name}/{name}"
          result[key] = result.get(key, 0) + macs
        continue
      if not node.input_tensors or not node.output_tensors:
        continue
      macs = _layer_multiply_adds(layer, node.input_tensors[0].shape, node.output_tensors[0].shape)
      if macs:
        result[layer.name] = result.get(layer.name, 0) + macs
  return result


def count_multiply_adds(model: keras.Model,
                        *,
                        exclude: Callable[[str], bool] | None = None) -> int:
  """Multiply-adds of one forward pass of one example through `model` (see the module docstring).

  Args:
    model: a functional or Sequential Keras model with a fixed input size.
    exclude: optional predicate on a layer name; those layers are not counted (e.g. the aux head,
      which does not run at inference).

  Returns:
    The number of multiply-adds (Conv, depthwise/separable conv, Dense), as an int.
  """
  return sum(macs for name, macs in multiply_adds_by_layer(model).items()
             if exclude is None or not exclude(name.rsplit("/", 1)[-1]))


@dataclasses.dataclass(frozen=True)
class PublishedFigures:
  """Figures published for a network (1000 classes, without auxiliary head, default resolution)."""

  parameters: float | None  # millions
  multiply_adds: float | None  # billions
  source: str


PUBLISHED: dict[str, PublishedFigures] = {
    "inception_v1": PublishedFigures(
        parameters=6.8, multiply_adds=1.5,
        source="GoogLeNet paper (Szegedy et al. 2014): 1.5G multiply-adds budget (Sec. 1); "
               "6.8M = sum of the params column of its Table 1 (no batch norm, no aux heads)"),
    "inception_v2": PublishedFigures(
        parameters=None, multiply_adds=2.0,
        source="BN-Inception paper (Ioffe & Szegedy 2015, Sec. 4.2) gives only relative figures: "
               "+25% parameters and ~+30% compute over GoogLeNet, i.e. ~2.0G multiply-adds"),
    "inception_v3": PublishedFigures(
        parameters=23.8, multiply_adds=5.7,
        source="timm / torchvision model card inception_v3 (no aux head); keras.applications "
               "InceptionV3: 23.9M; v3 paper: '5 billion multiply-adds' for the body"),
    "inception_v4": PublishedFigures(
        parameters=42.7, multiply_adds=12.3,
        source="timm model card inception_v4.tf_in1k (port of the slim checkpoint)"),
    "inception_resnet_v2": PublishedFigures(
        parameters=55.8, multiply_adds=13.2,
        source="timm model card inception_resnet_v2.tf_in1k (no aux head); keras.applications "
               "InceptionResNetV2: 55.9M"),
    "resnet_v1_50": PublishedFigures(
        parameters=25.6, multiply_adds=3.8,
        source="ResNet paper (He et al. 2015) Table 1: 3.8G FLOPs (multiply-adds); "
               "keras.applications ResNet50 / torchvision: 25.6M parameters"),
}


def is_aux_layer(layer_name: str) -> bool:
  """True for the layers of an auxiliary classifier head (slim scope `AuxLogits`)."""
  return layer_name == "AuxLogits" or layer_name.startswith("AuxLogits.")


@dataclasses.dataclass(frozen=True)
class ModelStatistics:
  """One row of `tools/model_stats.py`: our counts beside the published figures."""

  model: str
  image_size: int
  num_classes: int
  parameters: int
  trainable_parameters: int
  parameters_without_aux: int
  trainable_parameters_without_aux: int
  multiply_adds: int  # inference: without the aux head
  published_parameters: float | None  # millions
  published_multiply_adds: float | None  # billions
  source: str

  @property
  def parameters_ratio(self) -> float | None:
    """Ours (total without aux head, Keras' convention) / published."""
    if not self.published_parameters:
      return None
    return self.parameters_without_aux / (self.published_parameters * 1e6)

  @property
  def multiply_adds_ratio(self) -> float | None:
    """Ours / published."""
    if not self.published_multiply_adds:
      return None
    return self.multiply_adds / (self.published_multiply_adds * 1e9)

  def as_dict(self) -> dict:
    return dict(dataclasses.asdict(self), parameters_ratio=self.parameters_ratio,
                multiply_adds_ratio=self.multiply_adds_ratio)


def model_statistics(name: str, *, num_classes: int = 1001,
                     image_size: int | None = None) -> ModelStatistics:
  """Builds registered model `name` once (aux head on where it has one) and counts it.

  Args:
    name: one of `inception_tf.models.list_models()`.
    num_classes: logits width (1001 as the published TF-slim checkpoints).
    image_size: input size; defaults to the network's default resolution.

  Returns:
    A `ModelStatistics`; the counts "without aux" leave out the `AuxLogits` layers, and the
    multiply-adds are those of inference (no aux head).
  """
  # Imported here: `inception_tf.models` imports every family, which imports this module.
  from inception_tf.models import registry
  info = registry.model_info(name)
  size = image_size or info.default_image_size
  model = registry.create_model(name, num_classes=num_classes, image_size=size)
  try:
    full = count_parameters(model)
    no_aux = count_parameters(model, exclude=is_aux_layer)
    macs = count_multiply_adds(model, exclude=is_aux_layer)
  finally:
    del model
    keras.backend.clear_session()
  published = PUBLISHED.get(name, PublishedFigures(None, None, "no published figure known"))
  return ModelStatistics(
      model=name, image_size=size, num_classes=num_classes, parameters=full.total,
      trainable_parameters=full.trainable, parameters_without_aux=no_aux.total,
      trainable_parameters_without_aux=no_aux.trainable, multiply_adds=macs,
      published_parameters=published.parameters,
      published_multiply_adds=published.multiply_adds, source=published.source)


def format_table(rows: list[ModelStatistics]) -> str:
  """A fixed-width text table of `rows` with the sources of the published figures below it."""

  def millions(value):
    return f"{value / 1e6:.2f}M"

  def ratio(value):
    return "-" if value is None else f"{value:.3f}"

  def published(value, unit):
    return "-" if value is None else f"{value}{unit}"

  header = ("model", "size", "params", "trainable", "params-aux", "trainable-aux", "mult-adds",
            "published", "ratio", "pub. m-adds", "ratio")
  lines = []
  for r in rows:
    lines.append((r.model, str(r.image_size), millions(r.parameters),
                  millions(r.trainable_parameters), millions(r.parameters_without_aux),
                  millions(r.trainable_parameters_without_aux), f"{r.multiply_adds / 1e9:.3f}G",
                  published(r.published_parameters, "M"), ratio(r.parameters_ratio),
                  published(r.published_multiply_adds, "G"), ratio(r.multiply_adds_ratio)))
  widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
  out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                   enumerate(zip(header, widths)))]
  out.append("  ".join("-" * w for w in widths))
  for line in lines:
    out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                         enumerate(zip(line, widths))))
  classes = sorted({r.num_classes for r in rows})
  out.append("")
  out.append(f"params: all variables incl. batch-norm moving statistics (as Keras' summary), "
             f"{'/'.join(map(str, classes))} classes; '-aux': without the AuxLogits head; "
             "mult-adds: one image, inference (no aux head), conv + dense only (bias, BN, pooling "
             "excluded as in the papers). ratio = ours without aux / published.")
  for r in rows:
    out.append(f"  {r.model}: {r.source}")
  return "\n".join(out)
