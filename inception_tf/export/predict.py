"""Classify image files with an exported SavedModel, a `.keras` file or a model + checkpoint.

    classifier = Classifier.from_saved_model("exports/v3/saved_model")
    for path, top in zip(paths, classifier.classify_files(paths)):
      print(path, top[0].name, top[0].probability)

Every source goes through the same `serving_default` function (decode + `preprocess_for_eval` +
model + top-k), in-process for `.keras` files and checkpoints, from the SavedModel otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from inception_tf import labels as labels_lib


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One of the top-k classes of an image."""

  index: int
  class_id: str
  name: str
  probability: float

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


class Classifier:
  """Top-k classification of encoded images through a `serving_default`-like function."""

  def __init__(self, serve, *, top_k: int, description: str):
    """Wraps `serve`: string[N] -> {classes, probabilities, class_names, class_ids}; use the
    `from_*` constructors."""
    self._serve = serve
    self.top_k = top_k
    self.description = description

  @classmethod
  def from_saved_model(cls, path: str) -> "Classifier":
    """From an exported SavedModel directory (or the export directory containing `saved_model/`)."""
    from inception_tf import export  # pylint: disable=import-outside-toplevel
    if os.path.isdir(os.path.join(path, export.SAVED_MODEL_DIR)):
      path = os.path.join(path, export.SAVED_MODEL_DIR)
    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
      raise ValueError(f"The SavedModel at {path!r} has no serving_default signature "
                       f"(signatures: {sorted(loaded.signatures)}).")
    serve = loaded.signatures["serving_default"]
    top_k = int(serve.structured_outputs["classes"].shape[-1])
    classifier = cls(lambda images: serve(images=images), top_k=top_k,
                     description=f"SavedModel {path}")
    classifier._loaded = loaded  # keeps the variables alive
    return classifier

  @classmethod
  def from_model(cls, model, *, label_map: labels_lib.LabelMap | None = None, top_k: int = 5,
                 description: str = "") -> "Classifier":
    """From a Keras classifier of this package (made an inference model in memory)."""
    from inception_tf import export  # pylint: disable=import-outside-toplevel
    module = export.build_serving_module(model, label_map=label_map, top_k=top_k)
    return cls(module.serving_default, top_k=module.top_k,
               description=description or f"Keras model {model.name}")

  def classify(self, images: Sequence[bytes], top_k: int | None = None) -> list[list[Prediction]]:
    """Top-k predictions of each encoded image (JPEG, PNG, GIF or BMP bytes)."""
    top_k = self.top_k if top_k is None else top_k
    if not 1 <= top_k <= self.top_k:
      raise ValueError(f"top_k must be in [1, {self.top_k}] for {self.description}, got {top_k}.")
    out = self._serve(tf.constant(list(images), tf.string))
    classes = np.asarray(out["classes"])
    probabilities = np.asarray(out["probabilities"])
    names = np.asarray(out["class_names"])
    ids = np.asarray(out["class_ids"])
    return [[Prediction(index=int(classes[i, j]), class_id=ids[i, j].decode("utf-8"),
                        name=names[i, j].decode("utf-8"),
                        probability=float(probabilities[i, j])) for j in range(top_k)]
            for i in range(len(classes))]

  def classify_files(self, paths: Sequence[str], top_k: int | None = None,
                     batch_size: int = 16) -> list[list[Prediction]]:
    """Reads and classifies image files in batches of `batch_size`."""
    results = []
    for start in range(0, len(paths), batch_size):
      batch = []
      for path in paths[start:start + batch_size]:
        with open(path, "rb") as f:
          batch.append(f.read())
      results.extend(self.classify(batch, top_k))
    return results


def classifier_from_source(*, saved_model: str | None = None, keras_file: str | None = None,
                           model_name: str | None = None, checkpoint: str | None = None,
                           checkpoint_format: str = "auto", num_classes: int = 1001,
                           image_size: int | None = None, model_options: dict | None = None,
                           dataset: str | None = None, top_k: int = 5) -> Classifier:
  """A `Classifier` from exactly one of a SavedModel, a `.keras` file or a model name + checkpoint.

  Args:
    saved_model: an export directory or its `saved_model/`.
    keras_file: a `.keras` file (label map from the `export_info.json` beside it when present).
    model_name: a registered model, weights from `checkpoint` (see `export.load_model`).
    checkpoint: ours or TF-slim.
    checkpoint_format: "auto", "ours" or "slim".
    num_classes: logits width of the checkpoint's model.
    image_size: input size of the checkpoint's model (default: the network's).
    model_options: family options of `create_model`.
    dataset: TFRecord dataset whose manifest gives the label map (not with `saved_model`, whose
      names are part of the export).
    top_k: classes per image (for a SavedModel: at most the exported top-k).

  Returns:
    A `Classifier`.

  Raises:
    ValueError: not exactly one source, or `dataset` with `saved_model`.
  """
  from inception_tf import export  # pylint: disable=import-outside-toplevel
  given = [name for name, value in (("saved_model", saved_model), ("keras_file", keras_file),
                                    ("model_name", model_name)) if value]
  if len(given) != 1:
    raise ValueError(f"Pass exactly one of saved_model, keras_file or model_name; got {given}.")
  if saved_model:
    if dataset:
      raise ValueError("A SavedModel carries its label map; dataset applies to .keras files and "
                       "checkpoints only.")
    return Classifier.from_saved_model(saved_model)
  if keras_file:
    model = export.load_model(keras_file=keras_file)
  else:
    model = export.load_model(model_name=model_name, checkpoint=checkpoint,
                              checkpoint_format=checkpoint_format, num_classes=num_classes,
                              image_size=image_size, **(model_options or {}))
  label_map = None
  if dataset:
    label_map = export.label_map_for_dataset(dataset, export.model_facts(model)["num_classes"])
  elif keras_file:
    info = export.read_export_info(keras_file)
    if info is not None and "label_map" in info:
      label_map = labels_lib.LabelMap.from_json(info["label_map"])
  return Classifier.from_model(model, label_map=label_map, top_k=top_k,
                               description=keras_file or f"{model_name} from {checkpoint}")


def format_predictions(paths: Sequence[str], predictions: list[list[Prediction]], *,
                       as_json: bool = False) -> str:
  """Readable top-k lines per image, or a JSON document (`as_json`)."""
  if as_json:
    return json.dumps([{"image": path, "predictions": [p.to_json() for p in top]}
                       for path, top in zip(paths, predictions)], indent=1)
  lines = []
  for path, top in zip(paths, predictions):
    lines.append(f"{path}:")
    for rank, p in enumerate(top, 1):
      label = p.name if p.name == p.class_id else f"{p.name} ({p.class_id})"
      lines.append(f"  {rank}. {p.probability:7.2%}  [{p.index:4d}] {label}")
  return "\n".join(lines)


__all__ = ["Classifier", "Prediction", "classifier_from_source", "format_predictions"]
