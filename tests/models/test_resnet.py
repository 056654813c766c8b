"""torchvision-layout ResNet / ResNeXt: the real torchvision nets' outputs, counts, options, XLA.

References: ../shared/torch_references holds the logits and pooled features of torchvision's own
eight networks (torch 2.14) on a real photo and on noise, with the exact state_dicts they came from
(`make_state_dict`, numpy only). Each test writes that state_dict to a `.safetensors` file, loads it
with `load_torch_checkpoint` and compares.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

from inception_tf import checkpoints
from inception_tf import models
from inception_tf.models import resnet

TORCH_REFERENCES = Path(__file__).resolve().parents[2] / ".." / "shared" / "torch_references"

# torchvision's published parameter counts (its model docs; also the references' `meta`).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
}
# 20-50 s each on 2 shared cores (state_dict generation, build, one eager forward).
BIG = ("resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d")


def _make_state_dict(name: str) -> dict[str, np.ndarray]:
  spec = importlib.util.spec_from_file_location("make_state_dict",
                                                TORCH_REFERENCES / "make_state_dict.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.make_state_dict(name, str(TORCH_REFERENCES))


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _trainable_count(model: keras.Model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in TORCHVISION_PARAMS])
def test_reproduces_torchvision(name, tmp_path):
  model = models.create_model(name)
  assert _trainable_count(model) == TORCHVISION_PARAMS[name]
  path = tmp_path / f"{name}.safetensors"
  save_file(_make_state_dict(name), str(path))
  report = checkpoints.load_torch_checkpoint(model, path)
  path.unlink()  # up to 355 MB
  assert len(report.loaded) == len(checkpoints.torch_state_dict(model))
  reference = np.load(TORCH_REFERENCES / f"{name}.npz")
  net = keras.Model(model.input, [model.get_layer("avgpool").output, model.output["logits"]])
  features, logits = (t.numpy() for t in net(reference["input"], training=False))
  assert _relative_error(logits, reference["logits"]) < 1e-4
  assert _relative_error(features, reference["features"]) < 1e-4
  assert np.max(np.abs(logits[0] - logits[1])) > 0.1 * np.max(np.abs(logits))  # two inputs


def test_a_resnet50_file_is_refused_by_resnext50():
  model = models.create_model("resnext50_32x4d", include_top=True)
  with pytest.raises(checkpoints.TorchCheckpointMismatch) as error:
    checkpoints.load_torch_checkpoint(model, _make_state_dict("resnet50"))
  message = str(error.value)
  assert "does not match model 'resnext50_32x4d'" in message
  assert "layer1.0.conv1.weight: state_dict [64, 64, 1, 1] vs model [128, 64, 1, 1]" in message
  assert "layer1.0.conv2.weight: state_dict [64, 64, 3, 3] vs model [128, 4, 3, 3]" in message
  assert "looks like another network" in message


def test_registry_facts():
  for name in [*TORCHVISION_PARAMS, "plain18", "plain34"]:
    info = models.model_info(name)
    assert (info.num_classes, info.preprocessing, info.default_image_size) == (
        1000, "torchvision", 224)
    assert (info.batch_norm_scale, info.batch_norm_epsilon, info.batch_norm_momentum) == (
        True, 1e-5, 0.9)
    assert info.crop_fraction == 0.875 and "arXiv" in info.paper


def test_strided_convolutions_pad_symmetrically():
  model = models.create_model("resnet18", image_size=64, include_top=False)
  strided = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.strides != (1, 1)]
  assert sorted(l.name for l in strided) == [
      "conv1", "layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv1",
      "layer3.0.downsample.0", "layer4.0.conv1", "layer4.0.downsample.0"]
  for layer in strided:
    assert layer.padding == "valid", layer.name
    if layer.kernel_size[0] > 1:
      assert model.get_layer(f"{layer.name}.pad").padding == ((k := layer.kernel_size[0] // 2, k),
                                                              (k, k))


def test_plain_twins_drop_only_the_shortcuts():
  # The three 1x1 projections (+ their BN) of resnet18/34: 64->128, 128->256, 256->512.
  projections = sum(i * o + 2 * o for i, o in ((64, 128), (128, 256), (256, 512)))
  for plain, residual in (("plain18", "resnet18"), ("plain34", "resnet34")):
    model = models.create_model(plain, image_size=32, include_top=True)
    assert _trainable_count(model) == TORCHVISION_PARAMS[residual] - projections
    assert not [l for l in model.layers if isinstance(l, keras.layers.Add)]


@pytest.mark.parametrize("groups,width_per_group,width", [
    (1, 64, 64), (2, 40, 80), (4, 24, 96), (8, 14, 112), (32, 4, 128)])
def test_resnext_table3_templates(groups, width_per_group, width):
  """ResNeXt paper Table 2: at ResNet-50's complexity, C x d templates have 3x3 width 64 ... 128."""
  model = models.create_model("resnet50", image_size=32, include_top=False, units=(2, 1, 1, 1),
                              groups=groups, width_per_group=width_per_group)
  conv2 = model.get_layer("layer1.1.conv2")
  assert (conv2.filters, conv2.groups) == (width, groups)
  block = sum(int(np.prod(model.get_layer(f"layer1.1.conv{i}").kernel.shape)) for i in (1, 2, 3))
  # Table 2's "~70k" parameters of a conv2 block: C * (256 d + 3*3*d*d + d 256).
  d = width_per_group
  assert block == groups * (256 * d + 9 * d * d + d * 256)
  assert abs(block - 70_000) < 0.03 * 70_000


def test_options_are_validated():
  with pytest.raises(ValueError, match="Basic blocks support only groups=1"):
    models.create_model("resnet18", groups=32, width_per_group=4)
  with pytest.raises(ValueError, match=r"units must be 4 positive integers.*\(3, 4\)"):
    models.create_model("resnet50", units=(3, 4))
  with pytest.raises(ValueError, match="shortcuts must be True"):
    models.create_model("resnet50", shortcuts="no")
  with pytest.raises(ValueError, match="Unknown option"):
    models.create_model("resnet50", cardinality=32)
  with pytest.raises(ValueError, match="no channel per group"):
    models.create_model("resnext50_32x4d", image_size=32, widths=(8, 16, 32, 64))


def _thin_resnext(**kwargs) -> keras.Model:
  return models.create_model("resnext50_32x4d", num_classes=10, image_size=32, units=(1, 1, 1, 1),
                             widths=(16, 32, 64, 128), **kwargs)


@pytest.mark.parametrize("jit_compile,dtype", [
    (False, "float32"), (True, "float32"),
    pytest.param(False, "mixed_bfloat16", marks=pytest.mark.slow)])
def test_grouped_convolutions_train(jit_compile, dtype):
  keras.utils.set_random_seed(0)
  model = _thin_resnext(dtype=dtype)
  assert model.get_layer("layer1.0.conv2").groups == 32
  images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
  labels = np.arange(4) % 10
  model.compile(optimizer=keras.optimizers.SGD(0.1),
                loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                jit_compile=jit_compile)
  kernel = model.get_layer("layer3.0.conv2").kernel
  before = kernel.numpy()
  losses = [float(model.train_on_batch(images, {"logits": labels})) for _ in range(2)]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
  assert not np.array_equal(kernel.numpy(), before)
  if jit_compile:  # the XLA forward equals the eager one
    eager = model(images, training=False)["logits"].numpy()
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)(images)
    np.testing.assert_allclose(compiled["logits"].numpy(), eager, rtol=1e-4, atol=1e-4)


def test_keras_file_round_trip_without_custom_objects(tmp_path):
  model = _thin_resnext()
  images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  path = tmp_path / "resnext.keras"
  model.save(path)
  reloaded = keras.saving.load_model(path)
  np.testing.assert_array_equal(reloaded(images)["logits"].numpy(),
                                model(images)["logits"].numpy())
  assert [l.name for l in reloaded.layers] == [l.name for l in model.layers]


def test_endpoints():
  model = models.create_model("resnet18", image_size=64)
  info = models.model_info("resnet18")
  assert info.endpoints == resnet.endpoints(resnet.TABLE_1["resnet18"])
  shapes = {k: tuple(v.shape[1:]) for k, v in models.feature_extractor(
      model, info.endpoints).output.items()}
  assert shapes["relu"] == (32, 32, 64) and shapes["maxpool"] == (16, 16, 64)
  assert shapes["layer1.1"] == shapes["layer1"] == (16, 16, 64)
  assert shapes["layer2.0"] == (8, 8, 128) and shapes["layer4"] == (2, 2, 512)
  assert shapes["avgpool"] == (512,) and shapes["fc"] == (1000,)
