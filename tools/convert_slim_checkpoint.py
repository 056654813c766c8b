"""Converts a TF-slim checkpoint into a verified `.keras` file (see `inception_tf.convert`).

    python tools/convert_slim_checkpoint.py --model=inception_v4 \
        --checkpoint=inception_v4.ckpt --output=inception_v4.keras [--drop_background_class] \
        [--use_ema] [--num_classes=N] [--image_size=S] [--model_options=depth_multiplier=0.5]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402  (first: quiets TensorFlow before it is imported)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf import convert  # noqa: E402
from inception_tf.models import list_models  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "Registered model name, e.g. inception_v4.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, file or directory.")
_OUTPUT = flags.DEFINE_string("output", None, "The .keras file to write.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Logits width (default: the checkpoint's).")
_DROP_BACKGROUND = flags.DEFINE_bool("drop_background_class", False,
                                     "1001-class checkpoint -> 1000-class model (drops logit 0).")
_USE_EMA = flags.DEFINE_bool("use_ema", False, "Take the ExponentialMovingAverage shadows.")
_AUX_LOGITS = flags.DEFINE_enum("aux_logits", "auto", ["auto", "true", "false"],
                                "Keep the auxiliary head (auto: if network and checkpoint have it).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the network's).")
_MODEL_OPTIONS = flags.DEFINE_list("model_options", [],
                                   "Family options as key=value, e.g. depth_multiplier=0.5,"
                                   "output_stride=8.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --output file (the new "
                                "file is written beside it and renamed into place when verified).")


def main(argv):
  del argv
  if _MODEL.value not in list_models():
    raise app.UsageError(f"--model={_MODEL.value!r}; valid: {', '.join(list_models())}.")
  aux = {"auto": None, "true": True, "false": False}[_AUX_LOGITS.value]
  try:
    report = convert.convert_slim_checkpoint(
        _MODEL.value, _CHECKPOINT.value, _OUTPUT.value, num_classes=_NUM_CLASSES.value,
        aux_logits=aux, use_ema=_USE_EMA.value, drop_background_class=_DROP_BACKGROUND.value,
        image_size=_IMAGE_SIZE.value, model_options=cli.model_options(_MODEL_OPTIONS.value),
        overwrite=_OVERWRITE.value)
  except (ValueError, FileNotFoundError) as error:  # bad input: one line, no traceback
    sys.exit(f"error: {error}")
  print(report)


if __name__ == "__main__":
  flags.mark_flags_as_required(["model", "checkpoint", "output"])
  app.run(main)
