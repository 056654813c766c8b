"""Export for serving: SavedModel with an image-bytes signature, `.keras` file, TFLite.

    model = inception_tf.checkpoints.load_model("runs/v3")   # a run, checkpoint, .keras, ...
    inception_tf.export.export_model(model, "exports/v3", tflite=True)

writes

    exports/v3/saved_model/          signatures serving_default (encoded images -> top-k classes
                                     with names) and predict_images (float images -> logits)
    exports/v3/model.keras           the inference model (no aux head), no custom objects
    exports/v3/model_float32.tflite  predict_images in TFLite, and its dynamic-range int8 twin
    exports/v3/model_dynamic_int8.tflite
    exports/v3/export_info.json      image size, preprocessing, label map, options used

atomically: everything is written into a hidden sibling directory, checked (`verify_export`) and
renamed to `exports/v3` only when complete, so a killed export leaves no `exports/v3` at all (see
`inception_tf.atomic`; a rerun removes the leftover).

See `inference` (the inference model), `serving` (the signatures), `tflite`, `predict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import keras
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2

from inception_tf import atomic
from inception_tf import labels as labels_lib
from inception_tf.checkpoints.loading import EXPORT_INFO
from inception_tf.checkpoints.loading import EXPORT_KERAS_FILE as KERAS_FILE
from inception_tf.checkpoints.loading import load_model  # re-exported: the one loader
from inception_tf.checkpoints.loading import read_export_info
from inception_tf.export import inference
from inception_tf.export import serving
from inception_tf.export import tflite as tflite_lib
from inception_tf.export.inference import make_inference_model
from inception_tf.export.inference import model_facts
from inception_tf.export.serving import DEFAULT_MAX_PIXELS
from inception_tf.export.serving import ServingModule

SAVED_MODEL_DIR = "saved_model"


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
  return labels_lib.label_map_for_data(info.class_names, num_classes=num_classes,
                                       labels_offset=info.labels_offset)


def build_serving_module(model: keras.Model, *, label_map: labels_lib.LabelMap | None = None,
                         dtype: str = "float32", fold_batch_norm: bool = False, top_k: int = 5,
                         max_pixels: int = DEFAULT_MAX_PIXELS,
                         crop_fraction: float | None = None,
                         preprocessing: str | None = None) -> ServingModule:
  """The serving functions of `model` (made an inference model first), without writing anything.

  Args:
    model: a classifier of this package (aux head, dropout and BN are handled).
    label_map: class ids and names; default: ImageNet for 1000/1001 classes.
    dtype: "float32" or "bfloat16" weights and compute (classifier stays float32).
    fold_batch_norm: fold conv+BN pairs into biased convolutions.
    top_k: classes returned by `serving_default`.
    max_pixels: decode bound of `serving_default` (see `serving.decode_image_bounded`).
    crop_fraction: eval central crop; default the network's own (0.875).
    preprocessing: a kind of `PREPROCESSING_KINDS`; default: the registry's for the network
      (`ModelInfo.preprocessing`), e.g. VGG for slim's resnet_v1.

  Returns:
    A `ServingModule`.

  Raises:
    ValueError: see `make_inference_model` / `ServingModule`.
  """
  facts = model_facts(model)
  if label_map is None:
    label_map = labels_lib.default_label_map(facts["num_classes"])
  inference_model = make_inference_model(model, dtype=dtype, fold_batch_norm=fold_batch_norm)
  return ServingModule(inference_model, label_map=label_map, image_size=facts["image_size"],
                       crop_fraction=crop_fraction or facts["crop_fraction"], top_k=top_k,
                       max_pixels=max_pixels,
                       preprocessing=preprocessing or facts["preprocessing"])


def export_model(model: keras.Model, output_dir: str, *,
                 label_map: labels_lib.LabelMap | None = None, dtype: str = "float32",
                 fold_batch_norm: bool = False, top_k: int = 5,
                 max_pixels: int = DEFAULT_MAX_PIXELS, keras_file: bool = True,
                 tflite: bool = False, overwrite: bool = False,
                 preprocessing: str | None = None) -> ExportResult:
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
    overwrite: replace an existing `output_dir` (the whole directory).
    preprocessing: the serving signature's preprocessing kind; default: the network's.

  Returns:
    An `ExportResult`.

  Raises:
    inception_tf.atomic.OutputExistsError (a FileExistsError): `output_dir` exists and
      `overwrite` is False.
    ValueError: the written export failed `verify_export` (nothing is published).
  """
  with atomic.output_directory(output_dir, overwrite=overwrite, verify=verify_export) as staging:
    result = _write_export(model, staging, label_map=label_map, dtype=dtype,
                           fold_batch_norm=fold_batch_norm, top_k=top_k, max_pixels=max_pixels,
                           keras_file=keras_file, tflite=tflite, preprocessing=preprocessing)

  def moved(path):
    return os.path.join(output_dir, os.path.relpath(path, staging))

  return dataclasses.replace(
      result, saved_model=moved(result.saved_model), info_file=moved(result.info_file),
      keras_file=moved(result.keras_file) if result.keras_file else None,
      tflite_files={k: moved(v) for k, v in result.tflite_files.items()})


def _write_export(model, output_dir, *, label_map, dtype, fold_batch_norm, top_k, max_pixels,
                  keras_file, tflite, preprocessing) -> ExportResult:
  """Writes every file of `export_model`'s export into `output_dir` (its staging directory)."""
  facts = model_facts(model)
  if label_map is None:
    label_map = labels_lib.default_label_map(facts["num_classes"])
  module = build_serving_module(model, label_map=label_map, dtype=dtype,
                                fold_batch_norm=fold_batch_norm, top_k=top_k,
                                max_pixels=max_pixels, preprocessing=preprocessing)
  saved_model = serving.export_saved_model(module, os.path.join(output_dir, SAVED_MODEL_DIR))
  keras_path = None
  if keras_file:
    keras_path = os.path.join(output_dir, KERAS_FILE)
    module.model.save(keras_path)
  tflite_files = {}
  if tflite:
    float_module = module if dtype == "float32" else build_serving_module(
        model, label_map=label_map, dtype="float32", fold_batch_norm=fold_batch_norm,
        preprocessing=preprocessing)
    function = float_module.predict_images.get_concrete_function()
    for quantization in tflite_lib.QUANTIZATIONS:
      path = os.path.join(output_dir, f"model_{quantization}.tflite")
      with open(path, "wb") as f:
        f.write(tflite_lib.convert_to_tflite(function, quantization=quantization,
                                             trackable=float_module))
      tflite_files[quantization] = path
  info = dict(facts, preprocessing=module.preprocessing, dtype=dtype, fold_batch_norm=fold_batch_norm, top_k=module.top_k,
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


def verify_export(directory: str) -> dict:
  """Checks that an export directory is whole: every file `export_info.json` names is intact.

  Parses `saved_model/saved_model.pb` (with the signatures the info lists) and reads every tensor of
  its variables, checks every member of `model.keras` against its CRC, and the FlatBuffer
  identifier of each TFLite file. `export_model` runs it before publishing the directory.

  Args:
    directory: an export directory (or its staging directory).

  Returns:
    The content of `export_info.json`.

  Raises:
    ValueError: naming the first missing or damaged file.
  """
  try:
    with tf.io.gfile.GFile(os.path.join(directory, EXPORT_INFO)) as f:
      info = json.load(f)
    files = info["files"]
    saved_model = os.path.join(directory, files["saved_model"])
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(saved_model, "saved_model.pb"), "rb") as f:
      proto.ParseFromString(f.read())
    missing = set(info.get("signatures", ())) - set(proto.meta_graphs[0].signature_def)
    if missing:
      raise ValueError(f"signatures {sorted(missing)} are missing from {saved_model}")
    reader = tf.train.load_checkpoint(os.path.join(saved_model, "variables", "variables"))
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
    if files.get("keras"):
      with tf.io.gfile.GFile(os.path.join(directory, files["keras"]), "rb") as f:
        with zipfile.ZipFile(f) as archive:
          damaged = archive.testzip()
          if damaged is not None or "config.json" not in archive.namelist():
            raise ValueError(f"{files['keras']} is damaged ({damaged or 'no config.json'})")
    for name in files.get("tflite", {}).values():
      with tf.io.gfile.GFile(os.path.join(directory, name), "rb") as f:
        if f.read(8)[4:8] != b"TFL3":
          raise ValueError(f"{name} is not a TFLite FlatBuffer")
  except (OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile, DecodeError,
          tf.errors.OpError) as error:
    raise ValueError(f"Export {directory} is incomplete or damaged: {error}") from error
  return info


__all__ = ["export_model", "verify_export", "build_serving_module", "load_model", "make_inference_model",
           "label_map_for_dataset", "read_export_info", "ExportResult", "ServingModule",
           "inference", "serving"]
