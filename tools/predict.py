"""Classifies image files and prints the top-5 classes with readable names and probabilities.

    python tools/predict.py --saved_model=exports/v3 cat.jpg dog.png
    python tools/predict.py --keras_file=exports/v3/model.keras --json cat.jpg
    python tools/predict.py --model=inception_v3 --checkpoint=inception_v3.ckpt cat.jpg

Images may be JPEG, PNG, GIF (first frame) or BMP; they are preprocessed exactly as evaluation
(`preprocess_for_eval`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.export import inference  # noqa: E402
from inception_tf.export import predict  # noqa: E402

_SAVED_MODEL = flags.DEFINE_string("saved_model", None,
                                   "An export directory or its saved_model/ directory.")
_KERAS_FILE = flags.DEFINE_string("keras_file", None, "A .keras file.")
_MODEL = flags.DEFINE_string("model", None, "Registered model name (with --checkpoint).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Our training checkpoint or a TF-slim one.")
_CHECKPOINT_FORMAT = flags.DEFINE_enum("checkpoint_format", "auto", inference.CHECKPOINT_FORMATS,
                                       "auto: ours if written by our trainer, else TF-slim.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1001, "Logits width of the checkpoint.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the network's).")
_MODEL_OPTIONS = flags.DEFINE_list("model_options", [], "Family options as key=value.")
_DATASET = flags.DEFINE_string("dataset", None, "TFRecord dataset giving the label map.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes to print per image.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of text.")


def main(argv):
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Pass one or more image files.")
  classifier = predict.classifier_from_source(
      saved_model=_SAVED_MODEL.value, keras_file=_KERAS_FILE.value, model_name=_MODEL.value,
      checkpoint=_CHECKPOINT.value, checkpoint_format=_CHECKPOINT_FORMAT.value,
      num_classes=_NUM_CLASSES.value, image_size=_IMAGE_SIZE.value,
      model_options=inference.parse_model_options(_MODEL_OPTIONS.value), dataset=_DATASET.value,
      top_k=_TOP_K.value)
  predictions = classifier.classify_files(paths, top_k=_TOP_K.value)
  print(predict.format_predictions(paths, predictions, as_json=_JSON.value))


if __name__ == "__main__":
  app.run(main)
