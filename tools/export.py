"""Exports a trained classifier for serving: SavedModel (image-bytes signature), .keras, TFLite.

    # our training run (EMA weights), ImageNet names:
    python tools/export.py --model=inception_v3 --checkpoint=runs/v3 --output_dir=exports/v3
    # a converted TF-slim checkpoint, bfloat16 weights, TFLite too:
    python tools/export.py --model=inception_v3 --checkpoint=inception_v3.ckpt \
        --output_dir=exports/v3_bf16 --dtype=bfloat16 --tflite
    # a .keras file, labels of a TFRecord dataset:
    python tools/export.py --keras_file=flowers.keras --dataset=/data/flowers --output_dir=exports/f

Then: `saved_model_cli show --all --dir exports/v3/saved_model`, `python tools/predict.py
--saved_model=exports/v3 cat.jpg`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf import export  # noqa: E402
from inception_tf.export import inference  # noqa: E402
from inception_tf.export import serving  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "Registered model name (with --checkpoint).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A training run directory / checkpoint of ours, or a TF-slim checkpoint.")
_CHECKPOINT_FORMAT = flags.DEFINE_enum("checkpoint_format", "auto", inference.CHECKPOINT_FORMATS,
                                       "auto: ours if written by our trainer, else TF-slim.")
_USE_EMA = flags.DEFINE_bool("use_ema", True, "Export the exponential moving averages.")
_KERAS_FILE = flags.DEFINE_string("keras_file", None, "A .keras file (instead of --model).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1001, "Logits width of the checkpoint.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the network's).")
_MODEL_OPTIONS = flags.DEFINE_list(
    "model_options", [], "Family options as key=value, e.g. depth_multiplier=0.5.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "TFRecord dataset whose manifest gives the label map (default: ImageNet "
    "names for 1000/1001 classes).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the export.", required=True)
_DTYPE = flags.DEFINE_enum("dtype", "float32", inference.DTYPES, "Weights/compute dtype.")
_FOLD = flags.DEFINE_bool(
    "fold_batch_norm", False, "Fold batch norm into the convolutions (speed measured in "
    "WORKSPACE_NOTES: within noise in session 1, 1.02x float32 / 1.11x bfloat16 in session 2).")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes returned by serving_default.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", serving.DEFAULT_MAX_PIXELS,
                                   "Largest image decoded at full scale by serving_default.")
_TFLITE = flags.DEFINE_bool("tflite", False, "Also write float32 and dynamic-range int8 TFLite.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output_dir.")


def main(argv):
  del argv
  model = export.load_model(
      keras_file=_KERAS_FILE.value, model_name=_MODEL.value, checkpoint=_CHECKPOINT.value,
      checkpoint_format=_CHECKPOINT_FORMAT.value, num_classes=_NUM_CLASSES.value,
      image_size=_IMAGE_SIZE.value, use_ema=_USE_EMA.value,
      **inference.parse_model_options(_MODEL_OPTIONS.value))
  label_map = None
  if _DATASET.value:
    num_classes = export.model_facts(model)["num_classes"]
    label_map = export.label_map_for_dataset(_DATASET.value, num_classes)
  result = export.export_model(
      model, _OUTPUT_DIR.value, label_map=label_map, dtype=_DTYPE.value,
      fold_batch_norm=_FOLD.value, top_k=_TOP_K.value, max_pixels=_MAX_PIXELS.value,
      tflite=_TFLITE.value, overwrite=_OVERWRITE.value)
  print(f"SavedModel: {result.saved_model}")
  if result.keras_file:
    print(f"Keras file: {result.keras_file}")
  for quantization, path in result.tflite_files.items():
    print(f"TFLite ({quantization}): {path}")
  print(f"Export info: {result.info_file}")


if __name__ == "__main__":
  app.run(main)
