"""Executes the Colab notebooks end to end on CPU with small parameters (nbclient).

The kernel is this interpreter (`sys.executable`), from a kernelspec written for the test, so the
user's own Jupyter kernels (a `python3` kernel of another environment) play no part.

Parameters are injected as a cell right after the cell tagged `parameters` (papermill's rule), so
the notebooks run exactly as committed otherwise. The notebooks must also be what
experiments/colab/make_notebooks.py generates (no hand edits that the generator would undo).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "experiments", "colab")


def _with_parameters(path: str, parameters: dict):
  notebook = nbformat.read(path, as_version=4)
  tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
  assert len(tagged) == 1, f"{path}: exactly one cell must be tagged 'parameters'"
  source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
  cell = nbformat.v4.new_code_cell(source)
  cell.metadata["tags"] = ["injected-parameters"]
  notebook.cells.insert(tagged[0] + 1, cell)
  # Every injected name must be a parameter the notebook declares.
  declared = notebook.cells[tagged[0]].source
  for name in parameters:
    assert f"\n{name} = " in "\n" + declared, f"{name} is not a parameter of {path}"
  return notebook


def _this_interpreter_kernel(directory: str) -> KernelManager:
  """A kernel manager whose only kernelspec runs ipykernel on `sys.executable`."""
  spec_dir = os.path.join(directory, "inception_tf_test")
  os.makedirs(spec_dir, exist_ok=True)
  with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
    json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
               "display_name": "inception_tf tests", "language": "python"}, f)
  specs = KernelSpecManager(kernel_dirs=[directory])
  return KernelManager(kernel_name="inception_tf_test", kernel_spec_manager=specs)


def _execute(notebook, cwd: str):
  env_before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  try:
    with tempfile.TemporaryDirectory() as kernels:
      manager = _this_interpreter_kernel(kernels)
      assert manager.kernel_spec.argv[0] == sys.executable
      client = NotebookClient(notebook, km=manager, timeout=1800,
                              resources={"metadata": {"path": cwd}})
      client.execute()
  finally:
    if env_before is None:
      os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
      os.environ["TF_CPP_MIN_LOG_LEVEL"] = env_before
  return notebook


def _text(notebook) -> str:
  parts = []
  for cell in notebook.cells:
    for output in cell.get("outputs", []):
      if output.get("output_type") == "stream":
        parts.append(output["text"])
      elif "data" in output and "text/plain" in output["data"]:
        parts.append(output["data"]["text/plain"])
  return "\n".join(parts)


def _images(notebook) -> int:
  return sum(1 for c in notebook.cells for o in c.get("outputs", [])
             if "data" in o and "image/png" in o["data"])


def test_notebooks_match_their_generator():
  import runpy  # pylint: disable=import-outside-toplevel
  generator = runpy.run_path(os.path.join(COLAB, "make_notebooks.py"))
  for name, cells in (("train_on_tpu.ipynb", generator["train_on_tpu"]()),
                      ("pretrained_inference.ipynb", generator["pretrained_inference"]())):
    committed = nbformat.read(os.path.join(COLAB, name), as_version=4)
    nbformat.validate(committed)
    assert [c.source for c in committed.cells] == [c.source for c in cells], name
    assert [c.metadata.get("tags") for c in committed.cells] == [
        c.metadata.get("tags") for c in cells], name


def test_train_on_tpu_notebook_runs_on_cpu(tmp_path):
  """TPU attempt -> fallback, train on the digits, plot, 12-crop eval, export, serve."""
  parameters = dict(
      INSTALL_FROM=None, DATA_DIR=None, MODEL_DIR=str(tmp_path / "run"),
      EXPORT_DIR=str(tmp_path / "export"), USE_TPU=True, MODEL="inception_v3",
      MODEL_OPTIONS={"depth_multiplier": 0.1, "min_depth": 8}, IMAGE_SIZE=75, TRAIN_STEPS=3,
      TRAIN_BATCH_SIZE=16, JIT_COMPILE=False, EVAL_CROPS=12, SHOW_TENSORBOARD=False)
  notebook = _with_parameters(os.path.join(COLAB, "train_on_tpu.ipynb"), parameters)
  notebook = _execute(notebook, str(tmp_path))
  text = _text(notebook)
  assert "No TPU" in text and "OneDeviceStrategy with 1 replica(s)" in text
  with open(tmp_path / "run" / "results.json") as f:
    results = json.load(f)
  assert results["step"] == 3
  assert results["config"]["model_options"] == {"depth_multiplier": 0.1, "min_depth": 8}
  assert results["eval"]["num_examples"] == 360
  assert _images(notebook) >= 1  # the loss / accuracy / learning-rate plot
  # The 12-crop report over every validation image (format_report's line), and the export.
  report = re.search(r"^inception_v3@3(?: \(EMA\))? \| validation \| 12 crop\(s\) at \[75\] \| "
                     r"360 examples \| top-1 (\d+\.\d\d)% \(error (\d+\.\d\d)%\)", text, re.M)
  assert report, text[-3000:]
  assert float(report.group(1)) + float(report.group(2)) == pytest.approx(100.0, abs=0.011)
  assert os.path.isdir(tmp_path / "export" / "saved_model")
  with open(tmp_path / "export" / "export_info.json") as f:
    info = json.load(f)
  assert info["label_map"]["names"][1:] == [str(d) for d in range(10)]
  # The served predictions name digits with probabilities.
  served = [l for l in text.splitlines() if l.startswith("image ")]
  assert len(served) == 4, text[-2000:]
  for line in served:
    names = [part.split()[0] for part in line.split(":", 1)[1].split(",")]
    assert len(names) == 5
    assert set(names) <= {"background"} | {str(d) for d in range(10)}, line


def test_pretrained_inference_notebook_converts_and_classifies(tmp_path):
  """A slim checkpoint of a randomly initialised thin inception_v3 -> .keras -> top-5 names."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  options = {"depth_multiplier": 0.1, "min_depth": 8}
  model = models.create_model("inception_v3", 1001, image_size=107, **options)
  # Random but not degenerate batch-norm statistics, as a trained checkpoint has.
  rng = np.random.default_rng(0)
  for weight in model.weights:
    if weight.path.endswith("moving_variance"):
      weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
  prefix = checkpoints.save_slim_checkpoint(model, str(tmp_path / "slim" / "model.ckpt"))
  parameters = dict(
      INSTALL_FROM=None, SLIM_CHECKPOINT=prefix, MODEL="inception_v3", MODEL_OPTIONS=options,
      IMAGE_SIZE=107, OUTPUT=str(tmp_path / "converted.keras"),
      SAMPLE_IMAGES=["astronaut", "chelsea", "coffee"], TOP_K=5)
  notebook = _with_parameters(os.path.join(COLAB, "pretrained_inference.ipynb"), parameters)
  notebook = _execute(notebook, str(tmp_path))
  text = _text(notebook)
  assert os.path.isfile(tmp_path / "converted.keras")
  # Top-5 lines carry ImageNet names (the package's label map), for each of the three photos.
  from inception_tf import labels  # pylint: disable=import-outside-toplevel
  label_map = labels.imagenet_label_map(1001)
  rows = re.findall(r"^\s*\d\.\s+[\d.]+%\s+\[\s*(\d+)\]\s+(.+)$", text, re.M)
  assert len(rows) == 3 * 5, text[-3000:]
  for index, shown in rows:
    assert shown.strip() == label_map.display_name(int(index)), (index, shown)
  for photo in ("astronaut", "chelsea", "coffee"):
    assert photo in text
  assert _images(notebook) >= 1  # the photos with their top-5
  # The converted model reproduces the checkpoint's logits (the converter verified them too).
  import keras  # pylint: disable=import-outside-toplevel
  converted = keras.models.load_model(str(tmp_path / "converted.keras"), compile=False)
  image = rng.uniform(-1, 1, (1, 107, 107, 3)).astype("float32")
  expected = model(image, training=False)["logits"]
  got = converted(image, training=False)
  got = got["logits"] if isinstance(got, dict) else got
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-4)
