"""Prints parameters and multiply-adds of every registered model beside the published figures.

    python tools/model_stats.py
    python tools/model_stats.py --models=inception_v3,inception_v4 --json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.models import list_models  # noqa: E402
from inception_tf.models import stats  # noqa: E402

_MODELS = flags.DEFINE_list("models", None, "Models to count (default: every registered model).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1001, "Logits width (1001 as slim's checkpoints).")
_JSON = flags.DEFINE_bool("json", False, "Print a JSON list instead of a table.")


def main(argv):
  del argv
  names = _MODELS.value or list_models()
  unknown = sorted(set(names) - set(list_models()))
  if unknown:
    raise app.UsageError(f"Unknown model(s) {unknown}; valid: {', '.join(list_models())}.")
  rows = []
  for name in names:
    rows.append(stats.model_statistics(name, num_classes=_NUM_CLASSES.value))
    if not _JSON.value:
      print(f"counted {name}", file=sys.stderr, flush=True)
  if _JSON.value:
    print(json.dumps([r.as_dict() for r in rows], indent=2))
  else:
    print(stats.format_table(rows))


if __name__ == "__main__":
  app.run(main)
