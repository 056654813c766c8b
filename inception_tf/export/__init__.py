"""Export for serving: SavedModel with an image-bytes signature, `.keras` file, TFLite.

    model = inception_tf.export.load_model(model_name="inception_v3", checkpoint="runs/v3")
    inception_tf.export.export_model(model, "exports/v3", tflite=True)

writes

    exports/v3/saved_model/          signatures serving_default (encoded images -> top-k classes
                                     with names) and predict_images (float images -> logits)
    exports/v3/model.keras           the inference model (no aux head), no custom objects
    exports/v3/model_float32.tflite  predict_images in TFLite, and its dynamic-range int8 twin
    exports/v3/model_dynamic_int8.tflite
    exports/v3/export_info.json      image size, preprocessing, label map, options used

See `inference` (the inference model), `serving` (the signatures), `tflite`, `predict`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from inception_tf import labels as labels_lib
from inception_tf.export import inference
from inception_tf.export import serving
from inception_tf.export import tflite as tflite_lib
from inception_tf.export.inference import load_model
from inception_tf.export.inference import make_inference_model
from inception_tf.export.inference import model_facts
from inception_tf.export.serving import DEFAULT_MAX_PIXELS
from inception_tf.export.serving import ServingModule

EXPORT_INFO = "export_info.json"
SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"


@dataclasses.dataclass
class ExportResult:
  """Paths written by `export_model` (None for what was not requested)."""

  saved_model: str
  keras_file: str | None
  tflite_files: dict[str, str]
  info_file: str
  info: dict


def label_map_for_dataset(source: str, num_classes: int) -> labels_lib.LabelMap:
  """The label map of a TFRecord dataset (its manifest), ImageNet names for ImageNet's synsets.

  Args:
    source: what `inception_tf.data.dataset_info` accepts (a TFRecord directory or dataset name).
    num_classes: the model's logits width.

  Returns:
    A `LabelMap` of `num_classes` entries.

  Raises:
    ValueError: the dataset's classes (plus its labels_offset) do not match `num_classes`.
  """
  from inception_tf import data  # pylint: disable=import-outside-toplevel
  info = data.dataset_info(source)
  # `class_names` is indexed by label: its first `labels_offset` entries are the background.
  names = list(info.class_names)[info.labels_offset:]
  if num_classes in (1000, 1001) and len(names) == 1000:
    imagenet = labels_lib.imagenet_label_map(1000)
    if names == list(imagenet.ids):
      return labels_lib.imagenet_label_map(num_classes)
  return labels_lib.label_map_from_names(names, num_classes=num_classes,
                                         labels_offset=info.labels_offset)


def read_export_info(path: str) -> dict | None:
  """`export_info.json` of an export directory (or beside a `.keras`/SavedModel path), if any."""
  candidates = [os.path.join(path, EXPORT_INFO), os.path.join(os.path.dirname(path), EXPORT_INFO),
                os.path.join(os.path.dirname(os.path.normpath(path)), EXPORT_INFO)]
  for candidate in candidates:
    if os.path.isfile(candidate):
      with open(candidate) as f:
        return json.load(f)
  return None


def build_serving_module(model: keras.Model, *, label_map: labels_lib.LabelMap | None = None,
                         dtype: str = "float32", fold_batch_norm: bool = False, top_k: int = 5,
                         max_pixels: int = DEFAULT_MAX_PIXELS,
                         crop_fraction: float | None = None) -> ServingModule:
  """The serving functions of `model` (made an inference model first), without writing anything.

  Args:
    model: a classifier of this package (aux head, dropout and BN are handled).
    label_map: class ids and names; default: ImageNet for 1000/1001 classes.
    dtype: "float32" or "bfloat16" weights and compute (classifier stays float32).
    fold_batch_norm: fold conv+BN pairs into biased convolutions.
    top_k: classes returned by `serving_default`.
    max_pixels: decode bound of `serving_default` (see `serving.decode_image_bounded`).
    crop_fraction: eval central crop; default the network's own (0.875).

  Returns:
    A `ServingModule`.

  Raises:
    ValueError: a model whose eval preprocessing is not Inception's [-1, 1] scaling, or see
      `make_inference_model` / `ServingModule`.
  """
  facts = model_facts(model)
  if facts["preprocessing"] != "inception":
    raise ValueError(f"{model.name} expects {facts['preprocessing']!r} preprocessing; the serving "
                     "signature implements Inception's [-1, 1] eval preprocessing only.")
  if label_map is None:
    label_map = labels_lib.default_label_map(facts["num_classes"])
  inference_model = make_inference_model(model, dtype=dtype, fold_batch_norm=fold_batch_norm)
  return ServingModule(inference_model, label_map=label_map, image_size=facts["image_size"],
                       crop_fraction=crop_fraction or facts["crop_fraction"], top_k=top_k,
                       max_pixels=max_pixels)


def export_model(model: keras.Model, output_dir: str, *,
                 label_map: labels_lib.LabelMap | None = None, dtype: str = "float32",
                 fold_batch_norm: bool = False, top_k: int = 5,
                 max_pixels: int = DEFAULT_MAX_PIXELS, keras_file: bool = True,
                 tflite: bool = False, overwrite: bool = False) -> ExportResult:
  """Writes the SavedModel, `.keras` file and optionally TFLite files of `model` to `output_dir`.

  Args:
    model: a classifier of this package, weights loaded (see `load_model`).
    output_dir: directory to create (see the module docstring for its layout).
    label_map: class ids and names; default: ImageNet for 1000/1001 classes.
    dtype: "float32" or "bfloat16" weights for the SavedModel and `.keras` file.
    fold_batch_norm: fold conv+BN pairs (see `inference`).
    top_k: classes returned by `serving_default`.
    max_pixels: decode bound of `serving_default`.
    keras_file: also write `model.keras` (the inference model).
    tflite: also write float32 and dynamic-range int8 TFLite files of `predict_images` (always
      converted from float32 weights).
    overwrite: allow writing into an existing non-empty directory.

  Returns:
    An `ExportResult`.

  Raises:
    FileExistsError: `output_dir` is not empty and `overwrite` is False.
  """
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise FileExistsError(f"{output_dir!r} is not empty; pass overwrite=True (--overwrite) or "
                          "choose a new directory.")
  os.makedirs(output_dir, exist_ok=True)
  facts = model_facts(model)
  if label_map is None:
    label_map = labels_lib.default_label_map(facts["num_classes"])
  module = build_serving_module(model, label_map=label_map, dtype=dtype,
                                fold_batch_norm=fold_batch_norm, top_k=top_k,
                                max_pixels=max_pixels)
  saved_model = serving.export_saved_model(module, os.path.join(output_dir, SAVED_MODEL_DIR))
  keras_path = None
  if keras_file:
    keras_path = os.path.join(output_dir, KERAS_FILE)
    module.model.save(keras_path)
  tflite_files = {}
  if tflite:
    float_module = module if dtype == "float32" else build_serving_module(
        model, label_map=label_map, dtype="float32", fold_batch_norm=fold_batch_norm)
    function = float_module.predict_images.get_concrete_function()
    for quantization in tflite_lib.QUANTIZATIONS:
      path = os.path.join(output_dir, f"model_{quantization}.tflite")
      with open(path, "wb") as f:
        f.write(tflite_lib.convert_to_tflite(function, quantization=quantization,
                                             trackable=float_module))
      tflite_files[quantization] = path
  info = dict(facts, dtype=dtype, fold_batch_norm=fold_batch_norm, top_k=module.top_k,
              max_pixels=max_pixels, signatures=["serving_default", "predict_images"],
              files={"saved_model": SAVED_MODEL_DIR,
                     "keras": KERAS_FILE if keras_path else None,
                     "tflite": {k: os.path.basename(v) for k, v in tflite_files.items()}},
              label_map=label_map.to_json())
  info_file = os.path.join(output_dir, EXPORT_INFO)
  with open(info_file, "w") as f:
    json.dump(info, f, indent=1)
  return ExportResult(saved_model=saved_model, keras_file=keras_path, tflite_files=tflite_files,
                      info_file=info_file, info=info)


__all__ = ["export_model", "build_serving_module", "load_model", "make_inference_model",
           "label_map_for_dataset", "read_export_info", "ExportResult", "ServingModule",
           "inference", "serving"]
