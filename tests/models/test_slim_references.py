"""Inception-v4 and Inception-ResNet-v2 against the real TF-slim networks' outputs.

The tf-slim pip package has neither network, so their outputs come from TF-slim's own
`nets/inception_v4.py` and `nets/inception_resnet_v2.py` (tensorflow/models research/slim,
`is_training=False`, 1001 classes), run on two 299 x 299 images (a photo and uniform noise) with known
weights: tests/golden/<model>.slim_outputs.npz, copied from ../shared/slim_references/. The weights
are a pure function of (seed, name, shape), rebuilt by `slim_parity.reference_weights`, written as a
TF1 name-based checkpoint by TF's SaveV2 op and loaded through `load_slim_checkpoint`.

Compared within 1e-4 relative: logits, aux logits, the classifier's input (PreLogitsFlatten) and,
for every tensor in slim's `end_points`, its shape and its per-image mean and standard deviation.
A deliberate mutation (Inception-A's average pool made a max pool) must fail the comparison.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import layers as model_layers
from inception_tf.models import model_info

MODELS = ("inception_v4", "inception_resnet_v2")
RTOL = 1e-4


def _reference(model_name: str) -> dict:
  with np.load(slim_parity.GOLDEN_DIR / f"{model_name}.slim_outputs.npz") as data:
    reference = {key: data[key] for key in data.files}
  reference["meta"] = json.loads(str(reference["meta"]))
  reference["ep_shapes"] = json.loads(str(reference["ep_shapes"]))
  reference["ep_names"] = [str(n) for n in reference["ep_names"]]
  return reference


def _write_checkpoint(weights: dict[str, np.ndarray], prefix: str) -> str:
  """A TF1 name-based checkpoint of `weights`, written by TF's own SaveV2 op."""
  names = sorted(weights)
  with tf.device("/cpu:0"):
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(weights[n]) for n in names])
  return prefix


def _statistics(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-image mean and (population) standard deviation over all but the batch axis."""
  flat = np.asarray(value, np.float64).reshape(value.shape[0], -1)
  return flat.mean(axis=1), flat.std(axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
  return shifted / shifted.sum(axis=1, keepdims=True)


def _loaded_model(model_name: str, reference: dict, tmp_path):
  model = create_model(model_name)  # 299 x 299, 1001 classes, aux head: slim's defaults
  weights = slim_parity.reference_weights(model_name, reference["meta"]["seed"])
  prefix = _write_checkpoint(weights, str(tmp_path / "model.ckpt"))
  report = checkpoints.load_slim_checkpoint(model, prefix)
  assert len(report.loaded) == len(weights) and report.unused == []
  return model


def _our_endpoints(model, model_name: str, images: np.ndarray) -> dict[str, np.ndarray]:
  """Every endpoint slim records, from our model; `Predictions` is the softmax of our logits."""
  outputs = feature_extractor(model, list(model_info(model_name).endpoints))(images, training=False)
  ours = {name: np.asarray(value) for name, value in outputs.items()}
  ours["Predictions"] = _softmax(ours["Logits"].astype(np.float64))
  return ours


def _mismatches(ours: dict[str, np.ndarray], reference: dict,
                names: list[str] | None = None) -> list[str]:
  """Endpoints (all of slim's, or `names`) whose shape, mean or std differ from slim's beyond RTOL."""
  failures = []
  for index, name in enumerate(reference["ep_names"]):
    if names is not None and name not in names:
      continue
    if name not in ours:
      failures.append(f"{name}: not an endpoint of our model")
      continue
    if list(ours[name].shape) != reference["ep_shapes"][name]:
      failures.append(f"{name}: shape {list(ours[name].shape)} vs {reference['ep_shapes'][name]}")
      continue
    mean, std = _statistics(ours[name])
    want_mean = reference["ep_mean"][index].astype(np.float64)
    want_std = reference["ep_std"][index].astype(np.float64)
    # A mean near zero (logits) is compared on the scale of its spread.
    if np.any(np.abs(mean - want_mean) > RTOL * (np.abs(want_mean) + want_std)):
      failures.append(f"{name}: mean {mean} vs slim {want_mean}")
    if np.any(np.abs(std - want_std) > RTOL * want_std):
      failures.append(f"{name}: std {std} vs slim {want_std}")
  return failures


@pytest.mark.parametrize("model_name", MODELS)
def test_equals_real_tf_slim_outputs(model_name, tmp_path):
  reference = _reference(model_name)
  images = reference["input"]
  assert images.shape == (2, 299, 299, 3)
  assert not np.allclose(images[0], images[1], atol=0.1)
  model = _loaded_model(model_name, reference, tmp_path)

  outputs = model(images, training=False)
  slim_parity.assert_close(outputs["logits"], reference["logits"], f"{model_name} logits")
  slim_parity.assert_close(outputs["aux_logits"], reference["aux_logits"],
                           f"{model_name} aux logits")
  ours = _our_endpoints(model, model_name, images)
  slim_parity.assert_close(ours["PreLogitsFlatten"], reference["prelogits"],
                           f"{model_name} pre-logits")
  assert _mismatches(ours, reference) == []
  assert len(reference["ep_names"]) == {"inception_v4": 27, "inception_resnet_v2": 17}[model_name]
  # The two images' outputs differ, so constant outputs could not have passed.
  assert np.max(np.abs(reference["logits"][0] - reference["logits"][1])) > 0.1
  assert np.max(np.abs(np.asarray(outputs["logits"])[0] - np.asarray(outputs["logits"])[1])) > 0.1


def test_inception_a_max_pool_mutant_fails(monkeypatch, tmp_path):
  """Inception-A's Branch_3 with a max pool in place of slim's average pool must not pass."""
  original = model_layers.avg_pool

  def mutant(x, pool_size, *, name, **kwargs):
    if name.startswith("Mixed_5") and ".Branch_3." in name:
      return model_layers.max_pool(x, pool_size, name=name, **kwargs)
    return original(x, pool_size, name=name, **kwargs)

  monkeypatch.setattr(model_layers, "avg_pool", mutant)
  reference = _reference("inception_v4")
  model = _loaded_model("inception_v4", reference, tmp_path)
  assert model.get_layer("Mixed_5b.Branch_3.AvgPool_0a_3x3").__class__.__name__ == "MaxPooling2D"
  before = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a"]
  outputs = feature_extractor(model, before + ["Mixed_5b"])(reference["input"], training=False)
  ours = {name: np.asarray(value) for name, value in outputs.items()}
  failures = _mismatches(ours, reference, names=list(ours))
  assert failures and all(f.startswith("Mixed_5b:") for f in failures), failures
