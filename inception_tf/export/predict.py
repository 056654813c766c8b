"""Classify image files with an exported SavedModel, or anything `inception_tf.checkpoints.load`
reads (a training run, a checkpoint, a `.keras` file).

    classifier = Classifier.from_saved_model("exports/v3/saved_model")
    for result in classifier.classify_files(paths):
      print(result.path, result.error or result.predictions[0].name)

Every source goes through the same `serving_default` function (decode + the model's eval
preprocessing + model + top-k), in-process for runs, checkpoints and `.keras` files, from the
SavedModel otherwise. A file that cannot be read or is not an image gets its own error; the others
are still classified.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Sequence

import numpy as np
import tensorflow as tf

from inception_tf import labels as labels_lib


@dataclasses.dataclass(frozen=True)
class FileResult:
  """The top-k predictions of one file, or why it could not be classified."""

  path: str
  predictions: list | None = None
  error: str | None = None

  def to_json(self) -> dict:
    if self.error is not None:
      return {"image": self.path, "error": self.error}
    return {"image": self.path, "predictions": [p.to_json() for p in self.predictions]}


def _short_message(error: tf.errors.OpError) -> str:
  """The reason a serving call rejected an image: the assertion's text without TF's graph context
  ("Graph execution error", node names, stack notes), and without "Image <i> of the request"."""
  text = error.message or str(error)
  match = re.search(r"assertion failed: \[(.*?)\]\s*(\[\[|\n|$)", text, re.DOTALL)
  if match:
    text = match.group(1)
  else:  # a decoder's own error: its last meaningful line
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("Graph execution error",
                                                              "Detected at node", "<stack",
                                                              "[[{{node"))]
    text = lines[0] if lines else type(error).__name__
  text = re.sub(r"\s*\[\[\{\{node .*$", "", text, flags=re.DOTALL)
  return re.sub(r"^Image \d+ of the request (is )?", "", text).strip()


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
                 description: str = "", preprocessing: str | None = None) -> "Classifier":
    """From a Keras classifier of this package (made an inference model in memory); its eval
    preprocessing is the network's unless `preprocessing` names another kind."""
    from inception_tf import export  # pylint: disable=import-outside-toplevel
    module = export.build_serving_module(model, label_map=label_map, top_k=top_k,
                                         preprocessing=preprocessing)
    return cls(module.serving_default, top_k=module.top_k,
               description=description or f"Keras model {model.name}")

  def classify(self, images: Sequence[bytes], top_k: int | None = None) -> list[list[Prediction]]:
    """Top-k predictions of each encoded image (JPEG, PNG, GIF or BMP bytes)."""
    top_k = self.top_k if top_k is None else top_k
    if not 1 <= top_k <= self.top_k:
      raise ValueError(f"--top_k={top_k}: {self.description} returns at most {self.top_k} "
                       f"classes; use --top_k between 1 and {self.top_k}.")
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
                     batch_size: int = 16) -> list[FileResult]:
    """Reads and classifies image files in batches of `batch_size`, one `FileResult` per path.

    A file that cannot be read, or whose bytes the serving function rejects (not an image, too
    large, corrupt), gets `error` set; the rest of its batch is classified one by one.
    """
    results = []
    for start in range(0, len(paths), batch_size):
      batch = []
      for path in paths[start:start + batch_size]:
        try:
          with open(path, "rb") as f:
            batch.append((path, f.read(), None))
        except OSError as error:
          batch.append((path, None, f"cannot read the file ({error.strerror or error})"))
      readable = [(path, data) for path, data, _ in batch if data is not None]
      try:
        done = dict(zip([p for p, _ in readable],
                        self.classify([d for _, d in readable], top_k))) if readable else {}
      except tf.errors.InvalidArgumentError:
        done = {}
        for path, data in readable:
          try:
            done[path] = self.classify([data], top_k)[0]
          except tf.errors.InvalidArgumentError as error:
            done[path] = _short_message(error)
      for path, data, problem in batch:
        outcome = done.get(path) if data is not None else problem
        if isinstance(outcome, str):
          results.append(FileResult(path=path, error=outcome))
        else:
          results.append(FileResult(path=path, predictions=outcome))
    return results


def classifier_from_source(*, saved_model: str | None = None, checkpoint: str | None = None,
                           keras_file: str | None = None, model_name: str | None = None,
                           checkpoint_format: str = "auto", num_classes: int | None = None,
                           image_size: int | None = None, model_options: dict | None = None,
                           use_ema: bool | None = None, dataset: str | None = None,
                           preprocessing: str | None = None, top_k: int = 5) -> Classifier:
  """A `Classifier` from a SavedModel, or from anything `inception_tf.checkpoints.load` reads.

  Args:
    saved_model: an export directory or its `saved_model/` (`--saved_model`).
    checkpoint: a training run, a checkpoint, a `.keras` file or an export (`--checkpoint`); the
      class names come from the run (or the export_info.json beside a .keras file).
    keras_file: same as `checkpoint=<file>.keras` (`--keras_file`).
    model_name, checkpoint_format, num_classes, image_size, model_options, use_ema: as
      `inception_tf.checkpoints.load` (`--model`, ...).
    dataset: TFRecord dataset whose manifest gives the class names (`--data_dir`; not with a
      SavedModel, whose names are part of the export).
    preprocessing: a preprocessing kind (`--preprocessing`); default: the model's.
    top_k: classes per image (for a SavedModel: at most the exported top-k).

  Returns:
    A `Classifier`.

  Raises:
    ValueError: not exactly one source, or `dataset` / `preprocessing` with `saved_model`.
  """
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  from inception_tf import export  # pylint: disable=import-outside-toplevel
  given = [flag for flag, value in (("--saved_model", saved_model), ("--checkpoint", checkpoint),
                                    ("--keras_file", keras_file)) if value]
  if len(given) != 1:
    raise ValueError("Give exactly one of --saved_model, --checkpoint or --keras_file; got "
                     f"{given or 'none'}.")
  if saved_model:
    for flag, value in (("--data_dir", dataset), ("--preprocessing", preprocessing),
                        ("--model", model_name)):
      if value:
        raise ValueError(f"A SavedModel carries its network, preprocessing and class names; "
                         f"{flag} applies to --checkpoint / --keras_file only.")
    return Classifier.from_saved_model(saved_model)
  loaded = checkpoints.load(checkpoint or keras_file, model=model_name, num_classes=num_classes,
                            image_size=image_size, model_options=model_options,
                            use_ema=use_ema, checkpoint_format=checkpoint_format)
  label_map = loaded.label_map
  if dataset:
    label_map = export.label_map_for_dataset(dataset, loaded.num_classes)
  return Classifier.from_model(loaded.model, label_map=label_map, top_k=top_k,
                               preprocessing=preprocessing or loaded.preprocessing,
                               description=f"{loaded.name} from {loaded.path}")


def format_predictions(paths: Sequence[str], predictions: list[list[Prediction]], *,
                       as_json: bool = False) -> str:
  """Readable top-k lines per image, or a JSON document (`as_json`)."""
  if as_json:
    return json.dumps([FileResult(path, top).to_json() for path, top in zip(paths, predictions)],
                      indent=1)
  lines = []
  for path, top in zip(paths, predictions):
    lines.append(f"{path}:")
    for rank, p in enumerate(top, 1):
      label = p.name if p.name == p.class_id else f"{p.name} ({p.class_id})"
      lines.append(f"  {rank}. {p.probability:7.2%}  [{p.index:4d}] {label}")
  return "\n".join(lines)


__all__ = ["Classifier", "FileResult", "Prediction", "classifier_from_source", "format_predictions"]
