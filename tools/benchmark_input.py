"""Throughput of the train and eval input pipelines next to plain JPEG decoding of the same records.

  python tools/benchmark_input.py                       # real photos (scikit-image samples)
  python tools/benchmark_input.py --data_dir=digits     # the built-in digits (96x96 JPEGs: a
                                                        # tiny decode, so ratios mean little)
  python tools/benchmark_input.py --data_dir=/data/imagenet-tfrecords --image_size=299

Prints images/s of each and the ratio to decode-only (target: train >= 0.8x decode-only).
`train` is the trainer's default pipeline (slim's fast mode, colour distortion on the host);
`train_device_color` is the host half of the TPU-style split (`--color_distortion_on_device`, the
`tpu` preset: crop-decode, resize, flip, uint8); `*_4_methods` are the same with
`fast_mode=False`. Then the cost of the colour distortion the split moves to the step: slim's
`distort_color` per image on the host vs `distort_color_batch` on a batch.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.benchmarks import input as benchmark
from inception_tf.data import default_dataset

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "photos", "TFRecord directory or pattern; 'photos' (default): real photos "
    "(scikit-image's samples, 300-1411 pixels a side) built once in a temporary directory; "
    "'digits': the built-in digits.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to read.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 299, "Output image size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_SECONDS = flags.DEFINE_float("seconds", 20.0, "Measurement time per pipeline (in 5 alternating windows).")
_FAST_MODE = flags.DEFINE_enum(
    "fast_mode", "both", ["both", "true", "false"],
    "Train pipelines to measure: slim's fast mode (the default of training), the 4-method mode, "
    "or both.")
_COLOR_SECONDS = flags.DEFINE_float(
    "color_seconds", 10.0, "Measurement time per colour-distortion variant; 0 skips that part.")


def main(argv):
  del argv
  source = _DATA_DIR.value
  if source == "digits":
    source = default_dataset.digits_data_dir()
  elif source == "photos":
    source = benchmark.photos_data_dir(os.path.join(tempfile.gettempdir(), "inception_tf_photos"))
  rates = benchmark.benchmark_input(source, split=_SPLIT.value, image_size=_IMAGE_SIZE.value,
                                    batch_size=_BATCH_SIZE.value, seconds=_SECONDS.value,
                                    fast_mode={"both": None, "true": True,
                                               "false": False}[_FAST_MODE.value])
  print(f"source={source} split={_SPLIT.value} image_size={_IMAGE_SIZE.value} "
        f"batch_size={_BATCH_SIZE.value} cpus={os.cpu_count()}")
  _print(rates)
  if _COLOR_SECONDS.value > 0:
    print(f"colour distortion alone ({_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}, batch "
          f"{_BATCH_SIZE.value}, this CPU):")
    _print(benchmark.benchmark_color_distortion(image_size=_IMAGE_SIZE.value,
                                                batch_size=_BATCH_SIZE.value,
                                                seconds=_COLOR_SECONDS.value,
                                                fast_mode=_FAST_MODE.value != "false"))


def _print(rates):
  for key, value in rates.items():
    print(f"{key:44s} {value:10.2f}" + (" images/s" if "/" not in key else "x"))


if __name__ == "__main__":
  app.run(main)
