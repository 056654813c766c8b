"""Every registered model (`list_models()`): forward, backward, `.keras` round trip, published size.

One module parametrized over the registry, so a model added to the zoo is checked without a new
test, and a model whose parameter count nobody published (or derived from a publication) fails
until `PUBLISHED` has an entry with its source.

Each model is built once at its smallest input size with its defaults (classes, heads), batch 1.
Models with an auxiliary head are built at their default size: slim's aux head only has its
published 5 x 5 kernel on the 17 x 17 grid of a 299 x 299 input (smaller inputs shrink it).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf.models import create_model
from inception_tf.models import list_models
from inception_tf.models import model_info

GOLDEN_DIR = pathlib.Path(__file__).resolve().parents[1] / "golden"

# How each published figure counts: "all variables" (slim's checkpoint lists, BN moving statistics
# included), "parameters" (torch's `parameters()`: BN moving statistics excluded).
SLIM = "slim"
TORCH = "torch"
PAPER = "paper"


def _slim_list_total(model_name: str) -> int:
  """Elements of every variable of the published TF-slim layout (tests/golden/*.vars.json, equal to
  ../shared/slim_checkpoints/). The lists are written at 1001 classes; the published resnet_v1
  checkpoints have 1000 (no background class), so the logits are counted at the model's width."""
  with open(GOLDEN_DIR / f"{model_name}.vars.json") as f:
    listed = json.load(f)
  classes = model_info(model_name).num_classes
  total = 0
  for variable in listed["variables"]:
    shape = list(variable["shape"])
    if "logits/" in variable["name"].lower() and shape[-1] == listed["num_classes"]:
      shape[-1] = classes
    total += int(np.prod(shape))
  return total


def _torchvision_without_projections(published: int) -> int:
  """A plain ImageNet net of the ResNet paper (Table 2: no shortcuts) from torchvision's ResNet-18/34
  count: drop its three 1x1 stride-2 projection shortcuts with batch norm (weights, gamma, beta)."""
  return published - sum(cin * cout + 2 * cout for cin, cout in ((64, 128), (128, 256), (256, 512)))


def _inception_resnet_v1_paper() -> int:
  import slim_parity  # tests/models/slim_parity.py
  return slim_parity.inception_resnet_v1_paper_count(1001)


# model -> (how counted, expected count or the paper's rounded text, source)
_TORCHVISION = "torchvision.models documentation (num_params of the IMAGENET1K_V1 weights)"
_TABLE6 = "ResNet paper (He et al. 2015) Table 6"
_TABLE6_PLAIN = (_TABLE6 + ": CIFAR plain nets use option A shortcuts in the residual nets, "
                 "'exactly the same ... number of parameters as the plain counterparts'")
PUBLISHED = {
    **{name: (SLIM, lambda name=name: _slim_list_total(name), f"TF-slim checkpoint {name}")
       for name in ("inception_v1", "inception_v2", "inception_v3", "inception_v4",
                    "inception_resnet_v2", "resnet_v1_50", "resnet_v1_101", "resnet_v1_152",
                    "resnet_v1_200", "resnet_v2_50", "resnet_v2_101", "resnet_v2_152",
                    "resnet_v2_200")},
    "inception_resnet_v1": (SLIM, _inception_resnet_v1_paper,
                            "Inception-v4 paper Figures 7, 10-14, added up by hand "
                            "(slim_parity.inception_resnet_v1_paper_count)"),
    "resnet18": (TORCH, 11_689_512, _TORCHVISION),
    "resnet34": (TORCH, 21_797_672, _TORCHVISION),
    "resnet50": (TORCH, 25_557_032, _TORCHVISION),
    "resnet101": (TORCH, 44_549_160, _TORCHVISION),
    "resnet152": (TORCH, 60_192_808, _TORCHVISION),
    "resnext50_32x4d": (TORCH, 25_028_904, _TORCHVISION),
    "resnext101_32x8d": (TORCH, 88_791_336, _TORCHVISION),
    "resnext101_64x4d": (TORCH, 83_455_272, _TORCHVISION),
    "plain18": (TORCH, _torchvision_without_projections(11_689_512), _TORCHVISION + " (resnet18)"),
    "plain34": (TORCH, _torchvision_without_projections(21_797_672), _TORCHVISION + " (resnet34)"),
    "fid_inception_v3": (TORCH, 23_850_960, "pytorch-fid's FID Inception-v3 (pt_inception-2015-12-05)"),
    "resnet20": (PAPER, "0.27M", _TABLE6), "resnet32": (PAPER, "0.46M", _TABLE6),
    "resnet44": (PAPER, "0.66M", _TABLE6), "resnet56": (PAPER, "0.85M", _TABLE6),
    "resnet110": (PAPER, "1.7M", _TABLE6),
    "plain20": (PAPER, "0.27M", _TABLE6_PLAIN), "plain32": (PAPER, "0.46M", _TABLE6_PLAIN),
    "plain44": (PAPER, "0.66M", _TABLE6_PLAIN), "plain56": (PAPER, "0.85M", _TABLE6_PLAIN),
    "plain110": (PAPER, "1.7M", _TABLE6_PLAIN),
    "resnext_cifar": (PAPER, "34.4M", "ResNeXt paper (Xie et al. 2017) Table 7, ResNeXt-29 8x64d"),
}


def _build_size(name: str) -> int:
  info = model_info(name)
  return info.default_image_size if info.has_aux_logits else info.min_image_size


def _inputs(model: keras.Model) -> np.ndarray:
  size = model.input_shape[1]
  return np.random.default_rng(0).uniform(-1.0, 1.0, (1, size, size, 3)).astype(np.float32)


def _outputs(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
  out = model(images, training=False)
  out = out if isinstance(out, dict) else {"output": out}
  return {key: np.asarray(value) for key, value in out.items()}


def _is_moving_statistic(weight) -> bool:
  return weight.path.endswith(("moving_mean", "moving_variance"))


# Models of more than 40M parameters: their `.keras` files and rebuilds dominate the module's time.
HEAVY = {"inception_resnet_v2", "inception_v4", "resnet101", "resnet152", "resnet_v1_101",
         "resnet_v1_152", "resnet_v1_200", "resnet_v2_101", "resnet_v2_152", "resnet_v2_200",
         "resnext101_32x8d", "resnext101_64x4d"}


def _param(name):
  # One xdist group per model: its four tests run in one worker, which builds the model once
  # (setup.cfg runs xdist with --dist loadgroup).
  marks = [pytest.mark.xdist_group(f"zoo-{name}")] + ([pytest.mark.slow] if name in HEAVY else [])
  return pytest.param(name, marks=marks)


@pytest.fixture(scope="module", params=[_param(name) for name in list_models()])
def built(request):
  """(name, model, its outputs on `_inputs`), one model at a time, with the batch-norm statistics
  of a calibration batch. The outputs are computed once, for the forward and round-trip tests.

  With its initial statistics (mean 0, variance 1) an untrained deep plain net (plain110) passes
  almost nothing through in inference mode (logits ~1e-19). One training-mode call with momentum 0
  sets every moving mean and variance to that batch's statistics, as training leaves them.
  """
  keras.utils.set_random_seed(0)
  model = create_model(request.param, image_size=_build_size(request.param))
  size = model.input_shape[1]
  calibration = np.random.default_rng(1).uniform(-1.0, 1.0, (4, size, size, 3)).astype(np.float32)
  norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
  momenta = [layer.momentum for layer in norms]
  for layer in norms:
    layer.momentum = 0.0
  model(calibration, training=True)
  for layer, momentum in zip(norms, momenta):
    layer.momentum = momentum
  yield request.param, model, _outputs(model, _inputs(model))
  keras.backend.clear_session()


def test_forward_is_finite_and_depends_on_the_input(built):
  name, model, out = built
  assert out, name
  other = _outputs(model, -_inputs(model))
  for key, value in out.items():
    assert value.shape[0] == 1 and np.all(np.isfinite(value)), (name, key)
    assert not np.allclose(value, other[key]), (name, key)


def test_backward_reaches_every_trainable_weight(built):
  """Inference-mode batch norm (batch 1 on a 1 x 1 grid has no batch variance); a random
  projection of every output, so no symmetry cancels a gradient."""
  name, model, _ = built
  images = tf.constant(_inputs(model))
  with tf.GradientTape() as tape:
    out = model(images, training=False)
    out = out if isinstance(out, dict) else {"output": out}
    rng = np.random.default_rng(2)
    loss = tf.add_n([tf.reduce_sum(tf.cast(value, tf.float32) *
                                   rng.normal(size=value.shape[1:]).astype(np.float32))
                     for value in out.values()])
  gradients = tape.gradient(loss, model.trainable_weights)
  assert len(model.trainable_weights) > 0
  missing = [w.path for w, g in zip(model.trainable_weights, gradients) if g is None]
  zero = [w.path for w, g in zip(model.trainable_weights, gradients)
          if g is not None and not np.any(np.asarray(tf.convert_to_tensor(g)))]
  assert missing == [] and zero == [], (name, missing[:5], zero[:5])


def test_keras_file_round_trip_gives_identical_outputs(built, tmp_path):
  """The file goes to memory (/dev/shm) where there is one: the same bytes, written faster than to
  the disk (WORKSPACE_NOTES.md, "Tool start-up")."""
  name, model, expected = built
  shm = "/dev/shm"
  with tempfile.TemporaryDirectory(dir=shm if os.access(shm, os.W_OK) else str(tmp_path)) as temp:
    path = os.path.join(temp, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
  got = _outputs(reloaded, _inputs(model))
  assert sorted(got) == sorted(expected), name
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name} {key}")


def test_parameter_count_equals_the_published_one(built):
  name, model, _ = built
  assert name in PUBLISHED, (
      f"{name} has no published parameter count: add it to PUBLISHED in {__file__} with its "
      f"source (a paper table, a checkpoint's variable list, a library's documentation).")
  how, expected, source = PUBLISHED[name]
  expected = expected() if callable(expected) else expected
  total = model.count_params()
  parameters = total - sum(int(np.prod(w.shape)) for w in model.weights if _is_moving_statistic(w))
  if how == SLIM:
    assert total == expected, (name, total, expected, source)
  elif how == TORCH:
    assert parameters == expected, (name, parameters, expected, source)
  else:  # the paper's rounding: two significant digits ("0.27M", "1.7M"), or 34.4M
    digits = len(expected.rstrip("M").replace("0.", "").replace(".", ""))
    assert f"{parameters / 1e6:.{digits}g}M" == expected, (name, parameters, expected, source)


def test_every_published_entry_names_a_registered_model():
  assert sorted(set(PUBLISHED) - set(list_models())) == []
