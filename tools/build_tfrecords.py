"""Builds sharded TFRecords in TF-slim's ImageNet layout (plus manifest.json).

Examples:
  # A folder per class (ImageNet's train/n01440764/*.JPEG included) and ImageNet's flat validation
  # folder (labels: tfds' validation_labels.txt unless --validation_labels_file is given):
  python tools/build_tfrecords.py --output_dir=/data/imagenet-tfrecords \
      --train_dir=/data/ILSVRC2012/train --validation_dir=/data/ILSVRC2012/val \
      --bounding_boxes=/data/imagenet_2012_bounding_boxes.csv

  # Any tfds image classification dataset already prepared on disk:
  python tools/build_tfrecords.py --output_dir=/data/imagenette --tfds_name=imagenette/320px-v2

  # The built-in digits dataset (what `python tools/train.py` uses by default):
  python tools/build_tfrecords.py --digits --output_dir=~/.cache/inception_tf/digits

  # Fashion-MNIST (`apt-get install dataset-fashion-mnist`, or --fashion_mnist=DIR holding the
  # four *-idx?-ubyte.gz files): 60,000 train / 10,000 validation (= test) 28x28 grayscale PNGs:
  python tools/build_tfrecords.py --fashion_mnist --output_dir=/data/fashion_mnist

Rerunning the same command after an interruption writes only the missing shards.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.data import builder
from inception_tf.data import default_dataset
from inception_tf.data import idx

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where shards and manifest.json go.")
_TRAIN_DIR = flags.DEFINE_string("train_dir", None, "Training images: DIR/<class>/<image>.")
_VALIDATION_DIR = flags.DEFINE_string(
    "validation_dir", None, "Validation images: DIR/<class>/<image>, or a flat folder labelled by "
    "--validation_labels_file (ImageNet's ILSVRC2012_val_*.JPEG).")
_VALIDATION_LABELS_FILE = flags.DEFINE_string(
    "validation_labels_file", None, "Labels of a flat validation folder: one synset per line in "
    "sorted file order, or 'filename,synset' lines. Default: tfds' ImageNet validation labels.")
_BOUNDING_BOXES = flags.DEFINE_string(
    "bounding_boxes", None, "slim's bounding box CSV or a directory of ImageNet XML annotations.")
_TFDS_NAME = flags.DEFINE_string("tfds_name", None, "Convert this tfds dataset (on disk).")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir.")
_TFDS_MANUAL_DIR = flags.DEFINE_string(
    "tfds_manual_dir", None, "tfds manual_dir (e.g. ImageNet's tar files); runs tfds' "
    "download_and_prepare first when given.")
_DIGITS = flags.DEFINE_bool("digits", False, "Build the built-in scikit-learn digits dataset.")
_FASHION_MNIST = flags.DEFINE_string(
    "fashion_mnist", None, "Build Fashion-MNIST from the directory holding its four IDX files; "
    f"bare --fashion_mnist means {builder.FASHION_MNIST_DIR} (apt-get install "
    f"{builder.FASHION_MNIST_PACKAGE}).")
_LABELS_OFFSET = flags.DEFINE_integer(
    "labels_offset", 1, "1: labels 1..N with 0 = background (slim); 0: 0-based labels.")
_TRAIN_SHARDS = flags.DEFINE_integer(
    "train_shards", None, "Training shards (default: ~1000 images per shard, at most 1024).")
_VALIDATION_SHARDS = flags.DEFINE_integer(
    "validation_shards", None, "Validation shards (default: ~1000 images per shard).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", None, "Parallel shard writers (default: CPUs).")
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "Quality of re-encoded JPEGs.")


def main(argv):
  del argv
  if _DIGITS.value:
    print(default_dataset.digits_data_dir(_OUTPUT_DIR.value, progress=True))
    return
  if not _OUTPUT_DIR.value:
    raise app.UsageError("--output_dir is required.")
  shards = {k: v for k, v in (("train", _TRAIN_SHARDS.value),
                              ("validation", _VALIDATION_SHARDS.value)) if v}
  common = dict(labels_offset=_LABELS_OFFSET.value, num_shards=shards or None,
                num_workers=_NUM_WORKERS.value, jpeg_quality=_JPEG_QUALITY.value)
  if _FASHION_MNIST.value:
    try:
      manifest = builder.build_fashion_mnist(_OUTPUT_DIR.value, _FASHION_MNIST.value, **common)
    except (FileNotFoundError, idx.IdxError) as error:
      raise app.UsageError(f"--fashion_mnist={_FASHION_MNIST.value}: {error}") from None
  elif _TFDS_NAME.value:
    manifest = builder.build_from_tfds(
        _OUTPUT_DIR.value, _TFDS_NAME.value, data_dir=_TFDS_DATA_DIR.value,
        manual_dir=_TFDS_MANUAL_DIR.value, download_and_prepare=bool(_TFDS_MANUAL_DIR.value),
        **common)
  elif _TRAIN_DIR.value or _VALIDATION_DIR.value:
    manifest = builder.build_from_directories(
        _OUTPUT_DIR.value, train_dir=_TRAIN_DIR.value, validation_dir=_VALIDATION_DIR.value,
        validation_labels_file=_VALIDATION_LABELS_FILE.value,
        bounding_boxes=_BOUNDING_BOXES.value, **common)
  else:
    raise app.UsageError("Give --train_dir/--validation_dir, --tfds_name, --fashion_mnist or "
                         "--digits.")
  for split, info in manifest["splits"].items():
    print(f"{split}: {info['num_examples']} examples in {info['num_shards']} shards, "
          f"{info['num_skipped']} skipped, {info['num_converted']} re-encoded")
    for entry in info["skipped"][:20]:
      print(f"  skipped {entry['file']}: {entry['reason']}")


def parse_flags(argv):
  """absl's parser, with a bare `--fashion_mnist` meaning `--fashion_mnist=<Debian's directory>`."""
  bare = ("--fashion_mnist", "-fashion_mnist")
  argv = [f"--fashion_mnist={builder.FASHION_MNIST_DIR}" if a in bare else a for a in argv]
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    sys.stderr.write(f"FATAL Flags parsing error: {error}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
