"""README commands run as a user types them (`python tools/<tool>.py ...`), on tiny inputs.

Each command is the README's, with paths pointing at temporary files and only size flags added.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNSETS = ("n01440764", "n01443537")  # ImageNet's first two classes (tench, goldfish)


def _tool(*args, returncode=0, timeout=600) -> subprocess.CompletedProcess:
  process = subprocess.run([sys.executable, os.path.join(ROOT, "tools", args[0]), *args[1:]],
                           capture_output=True, text=True, timeout=timeout, check=False,
                           cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert process.returncode == returncode, process.stdout[-2000:] + process.stderr[-3000:]
  return process


def _jpeg(seed: int) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (40, 50, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
  return buffer.getvalue()


def test_data_command_builds_labelled_records_with_boxes(tmp_path):
  """`build_tfrecords.py --output_dir --train_dir --validation_dir --bounding_boxes` (README, Data)."""
  files = {}
  for split, per_class in (("train", 3), ("val", 2)):
    for label, synset in enumerate(SYNSETS):
      folder = tmp_path / split / synset
      folder.mkdir(parents=True)
      for index in range(per_class):
        name = f"{synset}_{split}{index}.JPEG"
        (folder / name).write_bytes(_jpeg(len(files)))
        files[name] = label + 1  # slim's labels: 0 is the background class
  box = (0.1, 0.2, 0.6, 0.9)
  (tmp_path / "boxes.csv").write_text(f"{SYNSETS[1]}_train2.JPEG,{','.join(map(str, box))}\n")
  out = tmp_path / "records"
  printed = _tool("build_tfrecords.py", f"--output_dir={out}", f"--train_dir={tmp_path / 'train'}",
                  f"--validation_dir={tmp_path / 'val'}",
                  f"--bounding_boxes={tmp_path / 'boxes.csv'}").stdout
  assert "train: 6 examples" in printed and "validation: 4 examples" in printed, printed
  assert (out / "manifest.json").is_file()
  seen = {}
  for split in ("train", "validation"):
    shards = sorted(str(p) for p in out.glob(f"{split}-*"))
    assert shards, split
    for record in tf.data.TFRecordDataset(shards):
      example = tf.train.Example.FromString(record.numpy()).features.feature
      name = os.path.basename(example["image/filename"].bytes_list.value[0].decode())
      seen[name] = example["image/class/label"].int64_list.value[0]
      boxes = [list(example[f"image/object/bbox/{k}"].float_list.value)
               for k in ("xmin", "ymin", "xmax", "ymax")]
      if name == f"{SYNSETS[1]}_train2.JPEG":
        np.testing.assert_allclose(np.ravel(boxes), box, atol=1e-6)
      else:
        assert boxes == [[], [], [], []], name
  assert seen == files


@pytest.mark.parametrize("tool, flag", [("benchmark.py", "--sections"),
                                        ("benchmark_input.py", "--data_dir")])
def test_benchmark_clis_print_their_help(tool, flag):
  text = _tool(tool, "--helpshort", returncode=1).stdout  # absl's help exits with status 1
  assert flag in text, text[-2000:]


def test_benchmark_lists_its_sections():
  """`benchmark.py --list_sections` names every section the README's command asks for."""
  text = _tool("benchmark.py", "--list_sections").stdout
  for section in ("models", "kernels", "train", "eval", "serving"):
    assert section in text, text


def test_ensemble_evaluation_command(tmp_path):
  """`evaluate.py --ensemble=<model>:<size>=<checkpoint> ... --crops=12` (README, Evaluation) on the
  built-in digits with two thin networks saved as `.keras` files; the CLI's report equals the
  library's evaluation of the same ensemble."""
  import keras  # pylint: disable=import-outside-toplevel
  from inception_tf.data import default_dataset  # pylint: disable=import-outside-toplevel
  from inception_tf.eval import evaluate as ev  # pylint: disable=import-outside-toplevel
  from inception_tf.models import create_model  # pylint: disable=import-outside-toplevel
  data_dir = default_dataset.digits_data_dir(str(tmp_path / "digits"))
  paths = []
  for seed, name in ((1, "inception_v1"), (2, "inception_v2")):
    keras.utils.set_random_seed(seed)
    path = str(tmp_path / f"{name}.keras")
    create_model(name, 11, image_size=32, depth_multiplier=0.1, min_depth=8).save(path)
    paths.append((name, path))
  output = tmp_path / "report.json"
  _tool("evaluate.py", *[f"--ensemble={name}:32={path}" for name, path in paths], "--crops=12",
        f"--data_dir={data_dir}", f"--output={output}", "--noprogress")
  report = json.loads(output.read_text())
  assert [m["name"] for m in report["models"]] == ["inception_v1", "inception_v2"]
  assert report["crops"] == 12 and report["num_examples"] == 360
  library = ev.evaluate([ev.ModelSpec(name=name, checkpoint=path, image_size=32)
                         for name, path in paths], data_dir, crops=12, verbose=0)
  assert report["top1_correct"] == library["top1_correct"]
  assert report["top5_accuracy"] == pytest.approx(library["top5_accuracy"])
