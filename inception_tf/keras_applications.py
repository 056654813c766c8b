"""Import of keras.applications' InceptionV3 / InceptionResNetV2 weights into our models.

keras.applications ports TF-slim's networks layer for layer (batch norm without gamma, epsilon
1e-3, convolutions before batch norm without bias), but its inner layers are unnamed
(`conv2d_17`, `batch_normalization_17`), the numbers depend on what the session built before, and
`model.layers` lists parallel branches in another order than they were created in (checked: ours
and theirs differ from Mixed_5b on). Names and layer order cannot be matched, so `import_keras_applications` matches the two graphs by structure:

1. It finds the feature map of each network (the input of the global pooling before the
   classifier, or the output of an `include_top=False` model: our `Mixed_7c` / `Conv2d_7b_1x1`,
   their `mixed10` / `conv_7b_ac`).
2. From there it walks each graph towards the input, depth first, visiting the inputs of every
   layer in their positional order (a concatenation's branches in concatenation order, a residual
   sum's shortcut before its branch), and lists the layers that hold weights in the order the walk
   finishes them. Layers without weights (activations, pooling, our `Rescaling`+`Add` against
   their `CustomScaleLayer`, identities) only pass the walk through.
3. The two lists must have the same length, and each pair the same layer type, kernel size,
   strides, padding, dilation and variable shapes; batch norms must agree on epsilon and on gamma.
   Then the weights are copied pair by pair, by Keras variable name.

This depends only on the computation (which branch feeds which position of which concatenation),
not on names or creation order, and every pair is checked; a wrong pairing of two same-shaped
layers would show in step 5.

4. The classifier: their `predictions` Dense (kernel [C_in, 1000]) goes into our logits layer,
   a 1x1 convolution [1, 1, C_in, n] (Inception-v3) or a Dense [C_in, n] (Inception-ResNet-v2).
   With n = 1000 it is copied; with n = 1001 (TF-slim's class 0 = background) it fills classes
   1..1000 and the background class gets a zero kernel column and zero bias, so logits 1..1000 are
   keras' logits and logit 0 is 0 (drop it, e.g. `logits[:, 1:]`, for keras' probabilities).
   Other class counts are an error unless `include_top=False` on either side (then our logits
   layer is left as initialised). keras.applications has no auxiliary head: our `AuxLogits` layers
   stay as initialised and are listed in the report.
5. Verification (on by default): both models run the same random image batch in [-1, 1]; the
   feature maps and the logits (theirs taken before the softmax) must agree within `tolerance`
   relative to their largest magnitude, else `KerasApplicationsMismatch`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras
import numpy as np

_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_CONV_CONFIG = ("kernel_size", "strides", "padding", "dilation_rate", "use_bias", "filters")


class KerasApplicationsMismatch(ValueError):
  """The keras.applications model does not have the structure, shapes or outputs of ours."""


@dataclasses.dataclass
class ImportReport:
  """What `import_keras_applications` did."""

  pairs: list[tuple[str, str]]  # (our layer, their layer) whose weights were copied
  classifier: str  # how the classifier was handled
  left_as_initialised: list[str]  # our layers with weights not imported (aux head, logits)
  feature_error: float | None = None  # max |ours - theirs| / max |theirs| on the feature map
  logits_error: float | None = None

  def __str__(self):
    errors = ""
    if self.feature_error is not None:
      errors = f"; relative error features {self.feature_error:.2e}"
      if self.logits_error is not None:
        errors += f", logits {self.logits_error:.2e}"
    return (f"imported {len(self.pairs)} layers; classifier: {self.classifier}; "
            f"{len(self.left_as_initialised)} layers left as initialised{errors}.")


def _producer(tensor):
  return tensor._keras_history.operation  # pylint: disable=protected-access


def _parents(layer) -> list:
  """The layers feeding `layer`'s (single) call, in the positional order of its inputs."""
  nodes = layer._inbound_nodes  # pylint: disable=protected-access
  if len(nodes) != 1:
    raise KerasApplicationsMismatch(
        f"Layer {layer.name!r} is called {len(nodes)} times; only single-use layers are supported.")
  return [_producer(t) for t in nodes[0].input_tensors]


def _weight_layers_towards_input(tensor) -> list:
  """Layers with weights from `tensor` back to the input, in depth-first post-order."""
  order, done = [], set()
  stack = [(_producer(tensor), False)]
  while stack:
    layer, expanded = stack.pop()
    if id(layer) in done:
      continue
    if expanded:
      done.add(id(layer))
      if layer.weights:
        order.append(layer)
      continue
    stack.append((layer, True))
    if isinstance(layer, keras.layers.InputLayer):
      continue
    for parent in reversed(_parents(layer)):
      if id(parent) not in done:
        stack.append((parent, False))
  return order


def _feature_tensor(model: keras.Model, *, ours: bool):
  """The last feature map before the classifier (or the output of a model without top)."""
  for layer in model.layers:
    if isinstance(layer, _POOLS) and (not ours or layer.name.startswith("Logits.")
                                      or layer.name == "features"):
      return layer.input
  outputs = model.outputs
  if len(outputs) != 1 or len(outputs[0].shape) != 4:
    raise KerasApplicationsMismatch(f"Cannot find the feature map of model {model.name!r}.")
  return outputs[0]


def _our_logits_layer(model: keras.Model):
  """The layer computing our `logits` output (a conv or dense with bias), or None without top."""
  if not isinstance(model.output, dict) or "logits" not in model.output:
    return None
  layer = _producer(model.output["logits"])
  while not layer.weights:
    parents = _parents(layer)
    if len(parents) != 1:
      raise KerasApplicationsMismatch(f"Cannot trace the logits of {model.name!r} at {layer.name}.")
    layer = parents[0]
  return layer


def _their_classifier(model: keras.Model):
  """keras.applications' `predictions` Dense, or None for include_top=False."""
  if len(model.outputs) != 1:
    return None
  layer = _producer(model.outputs[0])
  return layer if isinstance(layer, keras.layers.Dense) else None


def _variables(layer) -> dict[str, Any]:
  return {v.path.rsplit("/", 1)[-1]: v for v in layer.weights}


def _check_pair(ours, theirs) -> None:
  where = f"our {ours.name!r} <-> their {theirs.name!r}"
  if type(ours) is not type(theirs):
    raise KerasApplicationsMismatch(
        f"Structure differs at {where}: {type(ours).__name__} vs {type(theirs).__name__}.")
  if isinstance(ours, keras.layers.Conv2D):
    for key in _CONV_CONFIG:
      a, b = getattr(ours, key), getattr(theirs, key)
      if (tuple(a) if isinstance(a, (list, tuple)) else a) != (
          tuple(b) if isinstance(b, (list, tuple)) else b):
        raise KerasApplicationsMismatch(f"{key} differs at {where}: {a} vs {b}.")
  if isinstance(ours, keras.layers.BatchNormalization):
    if ours.scale != theirs.scale or ours.center != theirs.center:
      raise KerasApplicationsMismatch(
          f"Batch norm gamma/beta differ at {where}: scale {ours.scale} vs {theirs.scale}.")
    if not np.isclose(ours.epsilon, theirs.epsilon):
      raise KerasApplicationsMismatch(
          f"Batch norm epsilon differs at {where}: {ours.epsilon} vs {theirs.epsilon}.")
  a, b = _variables(ours), _variables(theirs)
  if set(a) != set(b):
    raise KerasApplicationsMismatch(f"Variables differ at {where}: {sorted(a)} vs {sorted(b)}.")
  for key in a:
    if tuple(a[key].shape) != tuple(b[key].shape):
      raise KerasApplicationsMismatch(
          f"Shape of {key} differs at {where}: {tuple(a[key].shape)} vs {tuple(b[key].shape)}.")


def _load_source(source, *, input_shape: tuple[int, int, int]) -> keras.Model:
  """A keras.applications model from a model or a `.keras` / `.h5` / `.weights.h5` file."""
  if isinstance(source, keras.Model):
    return source
  path = os.fspath(source)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No keras.applications model or weight file at {path!r}.")
  from keras.src.applications import inception_resnet_v2  # CustomScaleLayer is not registered.
  custom = {"CustomScaleLayer": inception_resnet_v2.CustomScaleLayer}
  if path.endswith(".keras"):
    return keras.saving.load_model(path, custom_objects=custom, compile=False)
  if not path.endswith(".h5"):
    raise ValueError(f"Expected a keras.applications model, or a .keras or .h5 file, got {path!r}.")
  import h5py  # pylint: disable=import-outside-toplevel  (a Keras dependency)
  with h5py.File(path, "r") as f:
    full_model = "model_config" in f.attrs  # a whole model saved in the legacy h5 format
    if full_model:
      irv2 = v3 = classes = None
    elif "layers" in f:  # Keras 3 `.weights.h5`: layers keyed by class name ("dense", "conv2d_93")
      names = list(f["layers"].keys())
      irv2 = any(n.startswith("custom_scale_layer") for n in names)
      v3 = sum(n.startswith("conv2d") for n in names) == 94
      classes = int(f["layers/dense/vars/0"].shape[-1]) if "dense" in names else None
    else:  # keras.applications' distributed weight files: layers keyed by layer name
      names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("layer_names", [])]
      irv2, v3 = "conv_7b" in names, "mixed10" in names
      classes = None
      if "predictions" in names:
        shapes = []
        f["predictions"].visititems(
            lambda _, obj: shapes.append(obj.shape) if getattr(obj, "ndim", 0) == 2 else None)
        classes = int(shapes[0][-1])
  if full_model:
    return keras.saving.load_model(path, custom_objects=custom, compile=False)
  if irv2 == v3:
    raise ValueError(f"{path!r} holds neither keras.applications InceptionV3 nor "
                     "InceptionResNetV2 weights.")
  builder = keras.applications.InceptionResNetV2 if irv2 else keras.applications.InceptionV3
  include_top = classes is not None
  model = builder(weights=None, include_top=include_top, input_shape=input_shape,
                  classes=classes or 1000)
  model.load_weights(path)
  return model


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
  scale = float(np.max(np.abs(theirs)))
  return float(np.max(np.abs(ours - theirs))) / max(scale, 1e-12)


def import_keras_applications(model: keras.Model,
                              source,
                              *,
                              verify: bool = True,
                              tolerance: float = 1e-4,
                              seed: int = 0) -> ImportReport:
  """Copies the weights of keras.applications' InceptionV3 / InceptionResNetV2 into `model`.

  Args:
    model: our `create_model("inception_v3" | "inception_resnet_v2", ...)` (slim layout), with
      1000 or 1001 classes or include_top=False.
    source: a keras.applications `InceptionV3` / `InceptionResNetV2` model, or the path of one
      saved as `.keras` / `.h5`, or of its weights (`.h5` as keras.applications distributes them,
      or `.weights.h5`), which is loaded into a model built with `weights=None`.
    verify: run both models on a random batch and compare feature maps and logits.
    tolerance: largest accepted max |ours - theirs| / max |theirs|. Import into a float32 model
      (a mixed-precision one would need a far looser tolerance); a model built with another
      `dtype` policy then takes its weights with `set_weights(float32_model.get_weights())`.
    seed: seed of the verification batch.

  Returns:
    An `ImportReport`.

  Raises:
    KerasApplicationsMismatch: the structures, shapes, class counts or outputs differ.
    FileNotFoundError: `source` is a path that does not exist.
    ValueError: `source` is a file of another kind.

  Examples:
    >>> ours = create_model("inception_v3", num_classes=1000, aux_logits=False)
    >>> report = import_keras_applications(ours, keras.applications.InceptionV3(weights=None))
  """
  input_shape = tuple(int(d) for d in model.input.shape[1:])
  theirs = _load_source(source, input_shape=input_shape)
  their_shape = tuple(theirs.input.shape[1:])
  if any(t is not None and t != o for t, o in zip(their_shape, input_shape)):
    raise KerasApplicationsMismatch(
        f"Input shapes differ: ours {input_shape} vs theirs {their_shape}; build our model with "
        f"image_size={their_shape[0]} or theirs with input_shape={input_shape}.")

  our_features = _feature_tensor(model, ours=True)
  their_features = _feature_tensor(theirs, ours=False)
  our_layers = _weight_layers_towards_input(our_features)
  their_layers = _weight_layers_towards_input(their_features)
  if len(our_layers) != len(their_layers):
    raise KerasApplicationsMismatch(
        f"{model.name} has {len(our_layers)} layers with weights up to its feature map, "
        f"{theirs.name} has {len(their_layers)}: not the same network (ours must be built in "
        f"TF-slim's layout, e.g. inception_resnet_v2 with layout='slim').")
  for ours, their in zip(our_layers, their_layers):
    _check_pair(ours, their)

  our_head, their_head = _our_logits_layer(model), _their_classifier(theirs)
  head_values = None
  classifier = "not imported: no classifier on "
  if our_head is None or their_head is None:
    classifier += "our side" if our_head is None else "their side (include_top=False)"
  else:
    our_kernel = _variables(our_head)["kernel"]
    kernel = their_head.kernel.numpy()
    bias = their_head.bias.numpy()
    n_ours, n_theirs = int(our_kernel.shape[-1]), int(kernel.shape[-1])
    if int(np.prod(our_kernel.shape[:-1])) != kernel.shape[0]:
      raise KerasApplicationsMismatch(
          f"Classifier input widths differ: ours {tuple(our_kernel.shape)} vs theirs "
          f"{kernel.shape}.")
    if n_ours == n_theirs:
      offset = 0
      classifier = f"{n_theirs} classes copied"
    elif n_ours == n_theirs + 1:
      offset = 1
      classifier = (f"{n_theirs} classes copied into classes 1..{n_theirs}; background class 0 "
                    "has zero weights and bias")
      kernel = np.concatenate([np.zeros_like(kernel[:, :1]), kernel], axis=1)
      bias = np.concatenate([np.zeros_like(bias[:1]), bias])
    else:
      raise KerasApplicationsMismatch(
          f"Our model has {n_ours} classes, the keras.applications one {n_theirs}: build ours "
          f"with num_classes={n_theirs} (or {n_theirs + 1} with TF-slim's background class), or "
          "include_top=False.")
    head_values = (our_head, kernel.reshape(tuple(our_kernel.shape)), bias, offset, their_head)

  pairs = []
  for ours, their in zip(our_layers, their_layers):
    their_vars = _variables(their)
    for key, variable in _variables(ours).items():
      variable.assign(their_vars[key].numpy())
    pairs.append((ours.name, their.name))
  imported = {name for name, _ in pairs}
  if head_values is not None:
    our_head, kernel, bias, offset, their_head = head_values
    _variables(our_head)["kernel"].assign(kernel)
    _variables(our_head)["bias"].assign(bias)
    imported.add(our_head.name)
  left = [layer.name for layer in model.layers if layer.weights and layer.name not in imported]
  report = ImportReport(pairs=pairs, classifier=classifier, left_as_initialised=left)

  if verify:
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1.0, 1.0, (2,) + input_shape).astype(np.float32)
    ours_fn = keras.Model(model.input, {"features": our_features,
                                        **({"logits": model.output["logits"]}
                                           if head_values else {})})
    wanted = {"features": their_features}
    if head_values:
      wanted["pooled"] = their_head.input
    theirs_fn = keras.Model(theirs.input, wanted)
    got = {k: np.asarray(v, np.float32) for k, v in ours_fn(images, training=False).items()}
    want = {k: np.asarray(v, np.float32) for k, v in theirs_fn(images, training=False).items()}
    report.feature_error = _relative_error(got["features"], want["features"])
    if head_values:
      their_logits = want["pooled"] @ their_head.kernel.numpy() + their_head.bias.numpy()
      report.logits_error = _relative_error(got["logits"][:, offset:], their_logits)
    worst = max(report.feature_error, report.logits_error or 0.0)
    if not np.isfinite(worst) or worst > tolerance:
      raise KerasApplicationsMismatch(
          f"After the transfer the outputs differ: {report}. Tolerance {tolerance:.1e}.")
  return report
