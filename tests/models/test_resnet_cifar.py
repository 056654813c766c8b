"""The ResNet paper's CIFAR nets (§4.2) and the ResNeXt paper's CIFAR template (§5.3)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inception_tf import models
from inception_tf.models import resnet_cifar

# Table 6 (CIFAR-10): parameters of the 6n + 2 layer ResNets, as printed.
TABLE_6_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6,
                  "resnet56": 0.85e6, "resnet110": 1.7e6}
# The exact counts here (10 classes, option A shortcuts: no parameters in the shortcuts).
EXACT_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
                "resnet56": 853_018, "resnet110": 1_727_962}


def _params(model: keras.Model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _printed_precision(value: float) -> float:
  """Half a unit of the last printed digit: 0.27M -> 5e3, 1.7M -> 5e4."""
  return 5e3 if value < 1e6 else 5e4


@pytest.mark.parametrize("name", sorted(TABLE_6_PARAMS))
def test_table6_parameter_counts(name):
  depth = int(name[len("resnet"):])
  model = models.create_model(name)
  plain = models.create_model(f"plain{depth}")
  assert _params(model) == _params(plain) == EXACT_PARAMS[name]
  assert abs(EXACT_PARAMS[name] - TABLE_6_PARAMS[name]) <= _printed_precision(TABLE_6_PARAMS[name])
  convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
  assert len(convs) + 1 == depth  # 6n + 2 weighted layers: 6n + 1 convolutions and the fc
  assert not [l for l in plain.layers if isinstance(l, keras.layers.Add)]
  info = models.model_info(name)
  assert (info.default_image_size, info.num_classes, info.preprocessing, info.crop_fraction) == (
      32, 10, "cifar", 1.0)


def test_stage_shapes_and_option_a_shortcut():
  model = models.create_model("resnet20")
  shapes = {k: tuple(v.shape[1:]) for k, v in models.feature_extractor(
      model, ["relu", "layer1", "layer2.0", "layer3", "avgpool"]).output.items()}
  assert shapes == {"relu": (32, 32, 16), "layer1": (32, 32, 16), "layer2.0": (16, 16, 32),
                    "layer3": (8, 8, 64), "avgpool": (64,)}
  # Option A: the shortcut is x[:, ::2, ::2, :] with 8 zero channels before and after.
  shortcut = keras.Model(model.input, [model.get_layer("layer1").output,
                                       model.get_layer("layer2.0.shortcut").output])
  images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  source, padded = (t.numpy() for t in shortcut(images, training=False))
  expected = np.zeros((2, 16, 16, 32), np.float32)
  expected[..., 8:24] = source[:, ::2, ::2, :]
  np.testing.assert_array_equal(padded, expected)
  assert [l.name for l in model.layers if "downsample" in l.name] == []


def test_shortcut_b_and_odd_sizes():
  model = models.create_model("resnet20", shortcut="B", image_size=28, num_classes=7)
  projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
  assert _params(model) == EXACT_PARAMS["resnet20"] - 650 + (64 * 7 + 7) + projections
  a = models.create_model("plain20", image_size=28, include_top=False)
  assert tuple(a.output.shape[1:]) == (7, 7, 64)
  option_a = models.create_model("resnet20", image_size=28, include_top=False)
  assert tuple(option_a.get_layer("layer3.0.shortcut").output.shape[1:]) == (7, 7, 64)
  with pytest.raises(ValueError, match=r"shortcut must be one of \('A', 'B'\), got 'C'"):
    models.create_model("resnet20", shortcut="C")


def test_resnext_template():
  """ResNeXt-29 8x64d: Table 7 prints 34.4M; cardinality 16 (16x64d): 68.1M (truncated)."""
  assert models.model_info("resnext_cifar").paper.startswith("Xie et al. 2017")
  for cardinality, exact, printed in ((8, 34_426_698, 34.4e6), (16, 68_155_210, 68.1e6)):
    model = models.create_model("resnext_cifar", cardinality=cardinality, include_top=True)
    assert _params(model) == exact
    assert 0 <= exact - printed < 1e5
  conv2 = [model.get_layer(f"layer{s}.0.conv2") for s in (1, 2, 3)]
  assert [(c.filters, c.groups) for c in conv2] == [(1024, 16), (2048, 16), (4096, 16)]
  assert [c.strides for c in conv2] == [(1, 1), (2, 2), (2, 2)]
  assert tuple(model.get_layer("layer3").output.shape[1:]) == (8, 8, 1024)


def test_thin_resnext_trains_and_reloads(tmp_path):
  """A scaled-down template (equal-complexity studies change cardinality and width only)."""
  keras.utils.set_random_seed(0)
  options = dict(units=(1, 1, 1), widths=(32, 64, 128), stem_width=16)
  wide = models.create_model("resnext_cifar", image_size=16, cardinality=1, bottleneck_width=16,
                             **options)
  grouped = models.create_model("resnext_cifar", image_size=16, cardinality=8,
                                bottleneck_width=2, **options)
  assert wide.get_layer("layer2.0.conv2").filters == 32
  assert grouped.get_layer("layer2.0.conv2").groups == 8
  images = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
  grouped.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
  losses = [float(grouped.train_on_batch(images, {"logits": np.arange(4)})) for _ in range(2)]
  assert np.all(np.isfinite(losses)) and losses[1] < losses[0]
  path = tmp_path / "resnext_cifar.keras"
  grouped.save(path)
  np.testing.assert_array_equal(keras.saving.load_model(path)(images)["logits"].numpy(),
                                grouped(images)["logits"].numpy())


def test_option_a_cannot_narrow():
  x = keras.Input((8, 8, 32))
  with pytest.raises(ValueError, match="cannot reduce the width"):
    resnet_cifar.zero_pad_shortcut(x, 16, 1, name="s")
