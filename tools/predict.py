"""Classifies image files and prints the top-5 classes with readable names and probabilities.

    python tools/predict.py --saved_model=exports/v3 cat.jpg dog.png
    python tools/predict.py --checkpoint=runs/v3 cat.jpg           # a training run: nothing else
    python tools/predict.py --checkpoint=exports/v3/model.keras --json cat.jpg
    python tools/predict.py --model=inception_v3 --checkpoint=inception_v3.ckpt cat.jpg

Images may be JPEG, PNG, GIF (first frame) or BMP; they are preprocessed as the model's evaluation
(its registry entry's preprocessing, or --preprocessing). A file that cannot be read or is not an
image gets one `error:` line on stderr, the others are still classified, and the exit status is 1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.data.preprocessing import PREPROCESSING_KINDS  # noqa: E402

cli.define_model_flags()
flags.DEFINE_string("saved_model", None, "An export directory or its saved_model/ directory.")
flags.DEFINE_string("keras_file", None, "A .keras file (same as --checkpoint=<file>.keras).")
flags.DEFINE_string("data_dir", None, "TFRecord dataset whose manifest gives the class names "
                    "(default: the run's / the export's).")
flags.DEFINE_alias("dataset", "data_dir")
flags.DEFINE_enum("preprocessing", None, list(PREPROCESSING_KINDS),
                  "Eval preprocessing (default: the model's own, from the registry).")
flags.DEFINE_integer("top_k", 5, "Classes to print per image.")
flags.DEFINE_bool("json", False, "Print JSON instead of text.")

FLAGS = flags.FLAGS


def main(argv):
  from inception_tf.export import predict  # pylint: disable=import-outside-toplevel
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Pass one or more image files.")
  with cli.errors_exit():
    classifier = predict.classifier_from_source(
        saved_model=FLAGS.saved_model, checkpoint=FLAGS.checkpoint, keras_file=FLAGS.keras_file,
        model_name=FLAGS.model, checkpoint_format=FLAGS.checkpoint_format,
        num_classes=FLAGS.num_classes, image_size=FLAGS.image_size,
        model_options=cli.model_options(), use_ema=FLAGS.use_ema, dataset=FLAGS.data_dir,
        preprocessing=FLAGS.preprocessing, top_k=FLAGS.top_k)
    results = classifier.classify_files(paths, top_k=FLAGS.top_k)
  good = [r for r in results if r.error is None]
  for result in results:
    if result.error is not None:
      print(f"error: {result.path}: {result.error}", file=sys.stderr, flush=True)
  if FLAGS.json:
    import json  # pylint: disable=import-outside-toplevel
    print(json.dumps([r.to_json() for r in results], indent=1))
  elif good:
    print(predict.format_predictions([r.path for r in good], [r.predictions for r in good]))
  if len(good) < len(results):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
