"""Exports a trained classifier for serving: SavedModel (image-bytes signature), .keras, TFLite.

    # a training run: network, options, classes, size and class names come from RUN/config.json
    python tools/export.py --checkpoint=runs/v3 --output_dir=exports/v3
    # a converted TF-slim checkpoint, bfloat16 weights, TFLite too:
    python tools/export.py --model=inception_v3 --checkpoint=inception_v3.ckpt \
        --output_dir=exports/v3_bf16 --dtype=bfloat16 --tflite
    # a .keras file, class names from a TFRecord dataset's manifest:
    python tools/export.py --checkpoint=flowers.keras --data_dir=/data/flowers --output_dir=exports/f

Then: `saved_model_cli show --all --dir exports/v3/saved_model`, `python tools/predict.py
--saved_model=exports/v3 cat.jpg`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

cli.define_model_flags()
flags.DEFINE_string("keras_file", None, "A .keras file (same as --checkpoint=<file>.keras).")
flags.DEFINE_string("data_dir", None, "TFRecord dataset whose manifest gives the class names "
                    "(default: the run's, else ImageNet's for 1000/1001 classes).")
flags.DEFINE_alias("dataset", "data_dir")
flags.DEFINE_string("output_dir", None, "Where to write the export.", required=True)
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Weights/compute dtype.")
flags.DEFINE_bool("fold_batch_norm", False, "Fold batch norm into the convolutions "
                  "(speed: see WORKSPACE_NOTES.md).")
flags.DEFINE_integer("top_k", 5, "Classes returned by serving_default.")
flags.DEFINE_integer("max_pixels", 4096 * 4096, "Largest image decoded at full scale by "
                     "serving_default.")
flags.DEFINE_bool("tflite", False, "Also write float32 and dynamic-range int8 TFLite.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir (the whole directory). "
                  "The export is written beside it and renamed into place when complete.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from inception_tf import export  # pylint: disable=import-outside-toplevel
  if FLAGS.keras_file:
    if FLAGS.checkpoint:
      raise app.UsageError("Give --checkpoint or --keras_file, not both.")
    FLAGS.checkpoint = FLAGS.keras_file
  from inception_tf import atomic  # pylint: disable=import-outside-toplevel
  with cli.errors_exit():  # before loading: a taken --output_dir fails at once
    atomic.check_writable(FLAGS.output_dir, overwrite=FLAGS.overwrite)
  loaded = cli.load_model_from_flags()
  with cli.errors_exit():
    label_map = loaded.label_map
    if FLAGS.data_dir:
      label_map = export.label_map_for_dataset(FLAGS.data_dir, loaded.num_classes)
    print(f"Exporting {loaded.name} ({loaded.format} {loaded.path}"
          + (f", step {loaded.step}" if loaded.step is not None else "")
          + (", EMA weights" if loaded.ema_used else "") + ")", flush=True)
    result = export.export_model(
        loaded.model, FLAGS.output_dir, label_map=label_map, dtype=FLAGS.dtype,
        fold_batch_norm=FLAGS.fold_batch_norm, top_k=FLAGS.top_k, max_pixels=FLAGS.max_pixels,
        tflite=FLAGS.tflite, overwrite=FLAGS.overwrite, preprocessing=loaded.preprocessing)
  print(f"SavedModel: {result.saved_model}")
  if result.keras_file:
    print(f"Keras file: {result.keras_file}")
  for quantization, path in result.tflite_files.items():
    print(f"TFLite ({quantization}): {path}")
  print(f"Export info: {result.info_file}")


if __name__ == "__main__":
  app.run(main)
