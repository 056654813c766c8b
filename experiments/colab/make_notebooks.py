"""Writes the Colab notebooks of this directory from the cell sources below (run after editing):

    python experiments/colab/make_notebooks.py

The notebooks only call library functions (`inception_tf.train.train_and_evaluate`,
`inception_tf.eval.evaluate.evaluate`, `inception_tf.export.export_model`,
`inception_tf.convert.convert_slim_checkpoint`, `inception_tf.export.predict.Classifier`), so a
notebook never holds logic the command-line tools lack. Each has one cell tagged `parameters`
(papermill's convention); `tests/test_notebooks.py` executes both with small parameters injected
after that cell, on CPU, on the built-in digits data.
"""

from __future__ import annotations

import os

import nbformat
from nbformat import v4

HERE = os.path.dirname(os.path.abspath(__file__))
# The package is not on PyPI: the notebooks install it from the user's copy of this repository.
REPOSITORY = "git+https://HOST/OWNER/inception_tf"  # replace with your clone's URL (or a path)

COLAB_METADATA = {
    "accelerator": "TPU",
    "colab": {"provenance": [], "toc_visible": True},
    "kernelspec": {"display_name": "Python 3", "name": "python3"},
    "language_info": {"name": "python"},
}


def _md(text: str):
  return v4.new_markdown_cell(text.strip("\n"))


def _code(text: str, *, tags=()):
  cell = v4.new_code_cell(text.strip("\n"))
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


INSTALL = _code('''
# Install the package from the repository (Colab / a fresh TPU VM). Skipped when it is importable.
import importlib.util, subprocess, sys
if INSTALL_FROM is not None and importlib.util.find_spec("inception_tf") is None:
  if "HOST/OWNER" in INSTALL_FROM:
    raise ValueError("Set INSTALL_FROM (parameters cell) to your copy of the inception_tf repository, "
                     "e.g. 'git+https://github.com/<you>/inception_tf' or a local path.")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", INSTALL_FROM], check=True)
import inception_tf
print("inception_tf from", inception_tf.__file__)
''')


def train_on_tpu():
  cells = [
      _md('''
# Train an Inception network on a TPU (or wherever this runs)

This notebook drives the same function as `tools/train.py`: `inception_tf.train.train_and_evaluate`.
It connects to a TPU when the runtime has one (Colab TPU runtime, TPU VM) and falls back to the
local default strategy (GPU or CPU) otherwise; it trains on ImageNet-style TFRecords from a `gs://`
bucket (written by `tools/build_tfrecords.py`) or on the built-in digits data, shows the training
in TensorBoard and as a loss plot, evaluates with the papers' crop protocols and exports a
SavedModel whose `serving_default` signature takes encoded images.

On a TPU, `DATA_DIR` and `MODEL_DIR` must be `gs://` paths (the TPU workers read and write them).
For a paper row use the values of its flag file in `experiments/` (see `experiments/README.md`).
'''),
      _code('''
# Parameters (papermill / the test override these).
INSTALL_FROM = "''' + REPOSITORY + '''"  # pip spec of your copy of the repo; None: installed
DATA_DIR = None            # "gs://BUCKET/imagenet" (TFRecords), or None: built-in digits data
MODEL_DIR = "/tmp/inception_tf_colab/run"  # "gs://BUCKET/runs/v3" on a TPU
EXPORT_DIR = "/tmp/inception_tf_colab/export"
USE_TPU = True             # try the TPU; falls back to the default strategy when there is none
MODEL = "inception_v3"
MODEL_OPTIONS = {"depth_multiplier": 0.25}   # {} for the paper's network
IMAGE_SIZE = 75            # 299 for the paper's network
TRAIN_STEPS = None         # None: TRAIN_EPOCHS
TRAIN_EPOCHS = 30.0
TRAIN_BATCH_SIZE = None    # None: the recipe's (32 on CPU/GPU, 1024 with the TPU recipe)
JIT_COMPILE = None         # None: the recipe's (XLA on one device and TPU); False skips compiling
EVAL_CROPS = 12            # 1, 10, 12 or 144 (the papers' protocols)
SHOW_TENSORBOARD = True    # the TensorBoard notebook extension (Colab / Jupyter with tensorboard)
''', tags=("parameters",)),
      INSTALL,
      _md('## Connect to the TPU, or fall back to the local strategy'),
      _code('''
import tensorflow as tf
from inception_tf import distribute

strategy = None
if USE_TPU:
  try:
    strategy = distribute.get_strategy("tpu", tpu="local")
  except (ValueError, RuntimeError, tf.errors.OpError) as error:  # no TPU in this runtime
    print(f"No TPU ({type(error).__name__}: {str(error).splitlines()[0][:120]}); "
          "using the default strategy.")
if strategy is None:
  strategy = distribute.get_strategy("default")
on_tpu = distribute.is_tpu(strategy)
print(type(strategy).__name__, "with", strategy.num_replicas_in_sync, "replica(s)")
'''),
      _md('''
## The recipe

`train.tpu()` is the Cloud TPU recipe (global batch 1024, bfloat16, XLA); `train.quickstart()`
is the small-data recipe of the built-in digits; `train.paper_v3()` the v3 paper's §8 recipe.
'''),
      _code('''
from inception_tf import train

recipe = train.tpu if on_tpu else (train.paper_v3 if DATA_DIR else train.quickstart)
changes = dict(model=MODEL, model_options=dict(MODEL_OPTIONS), image_size=IMAGE_SIZE,
               data_dir=DATA_DIR, strategy="tpu" if on_tpu else "default",
               tpu="local" if on_tpu else None)
if TRAIN_STEPS is not None:
  changes.update(train_steps=TRAIN_STEPS, train_epochs=None)
else:
  changes.update(train_steps=None, train_epochs=TRAIN_EPOCHS)
if TRAIN_BATCH_SIZE is not None:
  changes["train_batch_size"] = TRAIN_BATCH_SIZE
if JIT_COMPILE is not None:
  changes["jit_compile"] = JIT_COMPILE
config = recipe(**changes)
config.validate()
config
'''),
      _md('## TensorBoard (live while the next cell trains)'),
      _code('''
if SHOW_TENSORBOARD:
  try:
    get_ipython().run_line_magic("load_ext", "tensorboard")
    get_ipython().run_line_magic("tensorboard", f"--logdir {MODEL_DIR}")
  except Exception as error:  # tensorboard's notebook extension is not installed everywhere
    print("TensorBoard extension unavailable:", error)
'''),
      _md('## Train (resumes from `MODEL_DIR` if it holds checkpoints)'),
      _code('''
results = train.train_and_evaluate(config, MODEL_DIR, strategy=strategy)
print({k: results[k] for k in ("step", "train_loss", "images_per_second", "seconds")})
print("final evaluation:", results.get("eval"))
'''),
      _code('''
import matplotlib.pyplot as plt

history = results["history"]
figure, axes = plt.subplots(1, 3, figsize=(14, 3.5))
steps = [h["step"] for h in history]
for axis, key in zip(axes, ("loss", "accuracy", "learning_rate")):
  axis.plot(steps, [h[key] for h in history])
  axis.set(xlabel="step", title=key)
  axis.grid(alpha=0.3)
plt.show()
'''),
      _md('''
## Evaluate with a papers' protocol

`EVAL_CROPS=12` is the v3 paper's Table 4 protocol, 144 GoogLeNet's; every image counts once.
'''),
      _code('''
from inception_tf.eval import evaluate as evaluation

report = evaluation.evaluate(
    evaluation.ModelSpec(name=config.model, checkpoint=MODEL_DIR, options=dict(config.model_options),
                         image_size=IMAGE_SIZE),
    DATA_DIR, crops=EVAL_CROPS, strategy=strategy, verbose=0)
print(evaluation.format_report(report))
'''),
      _md('## Export a SavedModel (image bytes in, top-5 classes with names out)'),
      _code('''
from inception_tf import data, export

source = DATA_DIR or data.default_dataset.digits_data_dir()
num_classes = config.num_classes or data.dataset_info(source).num_classes
model = export.load_model(model_name=config.model, checkpoint=MODEL_DIR, num_classes=num_classes,
                          image_size=IMAGE_SIZE, **config.model_options)
label_map = export.label_map_for_dataset(source, num_classes)
exported = export.export_model(model, EXPORT_DIR, label_map=label_map, overwrite=True)
print("SavedModel:", exported.saved_model)
'''),
      _code('''
# Serve a few validation images through the exported signature.
import tensorflow as tf
from inception_tf.export.predict import Classifier

classifier = Classifier.from_saved_model(exported.saved_model)
files, _ = data.list_files(source, "validation")
raw = tf.data.TFRecordDataset(files[:1]).take(4)
encoded = [tf.io.parse_single_example(r, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
           ["image/encoded"].numpy() for r in raw]
for i, top in enumerate(classifier.classify(encoded)):
  print(f"image {i}:", ", ".join(f"{p.name} {p.probability:.2f}" for p in top))
'''),
  ]
  return cells


def pretrained_inference():
  cells = [
      _md('''
# Classify images with a converted TF-slim checkpoint

Point `SLIM_CHECKPOINT` at a published TF-slim checkpoint (e.g. `inception_v3.ckpt` from
`inception_v3_2016_08_28.tar.gz`, uploaded to Colab or on a bucket). The notebook converts it into
a verified `.keras` file with `inception_tf.convert.convert_slim_checkpoint` (the same function as
`tools/convert_slim_checkpoint.py`), then classifies photos (scikit-image's sample images, or
`IMAGE_FILES`) and shows each with its top-5 ImageNet classes.
'''),
      _code('''
# Parameters (papermill / the test override these).
INSTALL_FROM = "''' + REPOSITORY + '''"  # pip spec of your copy of the repo; None: installed
SLIM_CHECKPOINT = "inception_v3.ckpt"   # TF-slim checkpoint prefix (or its directory)
MODEL = "inception_v3"
MODEL_OPTIONS = {}                      # e.g. {"depth_multiplier": 0.5} for a thinned checkpoint
IMAGE_SIZE = None                       # None: the network's default (299 for inception_v3)
USE_EMA = False                         # take the ExponentialMovingAverage shadows if present
OUTPUT = "/tmp/inception_tf_colab/converted.keras"
IMAGE_FILES = []                        # your own photos; [] uses scikit-image's samples
SAMPLE_IMAGES = ["astronaut", "chelsea", "coffee", "rocket"]
TOP_K = 5
''', tags=("parameters",)),
      INSTALL,
      _md('## Convert (loads by name, checks every shape, verifies the outputs, writes atomically)'),
      _code('''
import os
from inception_tf import convert

os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
report = convert.convert_slim_checkpoint(MODEL, SLIM_CHECKPOINT, OUTPUT, image_size=IMAGE_SIZE,
                                         model_options=dict(MODEL_OPTIONS), use_ema=USE_EMA,
                                         overwrite=True)
print(report)
'''),
      _md('## Images'),
      _code('''
import io
import numpy as np
from PIL import Image
import skimage.data

images = {}  # name -> encoded bytes, what the serving signature takes
for path in IMAGE_FILES:
  with open(path, "rb") as f:
    images[os.path.basename(path)] = f.read()
if not IMAGE_FILES:
  for name in SAMPLE_IMAGES:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").save(buffer, "JPEG")
    images[name] = buffer.getvalue()
print(list(images))
'''),
      _md('## Classify (ImageNet names from the package\'s label map)'),
      _code('''
from inception_tf.export import predict

classifier = predict.classifier_from_source(keras_file=OUTPUT, top_k=TOP_K)
predictions = classifier.classify(list(images.values()))
print(predict.format_predictions(list(images), predictions))
'''),
      _code('''
import matplotlib.pyplot as plt

figure, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 5.2), squeeze=False)
for axis, (name, encoded), top in zip(axes[0], images.items(), predictions):
  axis.imshow(Image.open(io.BytesIO(encoded)))
  axis.set_axis_off()
  axis.set_title(name + "\\n" + "\\n".join(f"{p.probability:.2f} {p.name[:28]}" for p in top),
                 fontsize=8, loc="left")
plt.tight_layout()
plt.show()
'''),
  ]
  return cells


def write(name: str, cells) -> str:
  notebook = v4.new_notebook(cells=cells, metadata=dict(COLAB_METADATA))
  nbformat.validate(notebook)
  path = os.path.join(HERE, name)
  with open(path, "w") as f:
    nbformat.write(notebook, f)
  return path


def main() -> None:
  print(write("train_on_tpu.ipynb", train_on_tpu()))
  print(write("pretrained_inference.ipynb", pretrained_inference()))


if __name__ == "__main__":
  main()
