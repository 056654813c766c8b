"""Converts a PyTorch state_dict (torchvision / timm layout) into a verified `.keras` file.

    python tools/convert_torch_checkpoint.py --model=resnext50_32x4d \
        --checkpoint=resnext50_32x4d.safetensors --output=resnext50_32x4d.keras \
        [--num_classes=N] [--image_size=S] [--model_options=groups=8,width_per_group=14] \
        [--prefix=module.] [--overwrite]

`.safetensors` files need no torch; `.pth`/`.pt` files need torch (read with weights_only=True).
Every weight of the written model equals its tensor in the file (checked before writing and after
reloading the written file); see `inception_tf.checkpoints.torch.convert_torch_checkpoint`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402  (first: quiets TensorFlow before it is imported)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf import checkpoints  # noqa: E402
from inception_tf.checkpoints import torch as torch_checkpoints  # noqa: E402
from inception_tf.models import list_models  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "Registered model name, e.g. resnext50_32x4d.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The state_dict: .safetensors (or .pth/.pt).")
_OUTPUT = flags.DEFINE_string("output", None, "The .keras file to write.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None,
                                    "Logits width (default: the state_dict's fc.weight rows).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the network's).")
_MODEL_OPTIONS = flags.DEFINE_list("model_options", [],
                                   "Family options as key=value, e.g. groups=8,width_per_group=14.")
_PREFIX = flags.DEFINE_string("prefix", "", "A prefix of every key to strip, e.g. 'module.'.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")


def main(argv):
  del argv
  if _MODEL.value not in list_models():
    raise app.UsageError(f"--model={_MODEL.value!r} is not a registered model; valid: "
                         f"{', '.join(list_models())}.")
  options = cli.model_options(_MODEL_OPTIONS.value)
  try:
    report = torch_checkpoints.convert_torch_checkpoint(
        _MODEL.value, _CHECKPOINT.value, _OUTPUT.value, num_classes=_NUM_CLASSES.value,
        image_size=_IMAGE_SIZE.value, model_options=options, prefix=_PREFIX.value,
        overwrite=_OVERWRITE.value)
  except (FileNotFoundError, ImportError) as error:
    sys.exit(f"error: --checkpoint: {error}")
  except checkpoints.TorchCheckpointMismatch as error:
    sys.exit(f"error: --checkpoint={_CHECKPOINT.value} is not a {_MODEL.value} state_dict "
             f"(check --model and --model_options):\n{error}")
  except ValueError as error:
    sys.exit(f"error: {error}")
  print(report)


if __name__ == "__main__":
  flags.mark_flags_as_required(["model", "checkpoint", "output"])
  app.run(main)
