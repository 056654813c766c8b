"""Inception-ResNet-v1 / -v2: slim's published layout, the paper's layouts, options, round trips.

tf-slim's pip package ships no inception_resnet_v2, so the slim layout is checked against the
published checkpoint's variable list (tests/golden/inception_resnet_v2.vars.json: every name, every
shape), and the residual wiring of each block against a hand-written TF computation of the paper's
formula `relu(x + scale * up(concat(towers)))` on random weights and batch-norm statistics.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import inception_resnet
from inception_tf.models import layers
from inception_tf.models import model_info
from inception_tf.models import naming
from inception_tf.models.registry import endpoint_layer_name


# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("inception_resnet")


def _randomize(model: keras.Model, seed: int) -> None:
  """Random conv/dense weights, biases, betas and non-trivial BN moving statistics."""
  rng = np.random.default_rng(seed)
  for name, variable in naming.slim_variables(model).items():
    shape = tuple(variable.shape)
    if name.endswith("moving_mean"):
      value = rng.normal(0.0, 0.1, shape)
    elif name.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith(("beta", "biases")):
      value = rng.normal(0.0, 0.1, shape)
    else:
      fan_in = int(np.prod(shape[:-1]))
      value = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
    variable.assign(value.astype(np.float32))


def _shapes(model: keras.Model, endpoints) -> dict[str, tuple]:
  """Endpoint -> output shape without the batch dimension (symbolic, no execution)."""
  return {e: tuple(model.get_layer(endpoint_layer_name(model, e)).output.shape[1:])
          for e in endpoints}


@pytest.fixture(scope="module")
def irv2():
  """TF-slim's layout at 299 with the aux head, random weights and statistics."""
  model = create_model("inception_resnet_v2")
  _randomize(model, seed=1)
  return model


@pytest.fixture(scope="module")
def images_299():
  return slim_parity.make_images(299, preprocessing="inception")


# ---------------------------------------------------------------------------------------------
# slim layout = the published checkpoint.


def test_variables_equal_the_published_checkpoint(irv2):
  published = slim_parity.published_variables("inception_resnet_v2")
  ours = dict(checkpoints.variable_names(irv2))
  assert sorted(set(published) - set(ours)) == []  # nothing missing
  assert sorted(set(ours) - set(published)) == []  # nothing extra
  assert {n: s for n, s in ours.items() if published[n] != s} == {}  # no shape differs
  assert len(ours) == len(published) == 908


def test_parameter_counts(irv2):
  published = slim_parity.published_variables("inception_resnet_v2")
  total, trainable = slim_parity.parameter_counts(published)
  assert irv2.count_params() == total == 59_244_594
  assert sum(int(np.prod(v.shape)) for v in irv2.trainable_weights) == trainable
  aux = sum(int(np.prod(s)) for n, s in published.items() if "/AuxLogits/" in n)
  without_aux = total - aux
  print(f"\ninception_resnet_v2 (1001 classes): total {total:,}, trainable {trainable:,}, "
        f"without aux {without_aux:,}")
  # The issue's published figure "55.8M" is the network without the aux head; keras.applications'
  # InceptionResNetV2 (1000 classes, no aux) has 55,873,736 = ours without aux minus one class.
  assert round(without_aux / 1e6, 1) == 55.9 and int(without_aux / 1e5) == 558
  assert without_aux - (1536 + 1) == 55_873_736


def test_endpoint_shapes_299(irv2):
  assert model_info("inception_resnet_v2").endpoints == inception_resnet.ENDPOINTS_V2
  assert _shapes(irv2, inception_resnet.ENDPOINTS_V2) == {
      "Conv2d_1a_3x3": (149, 149, 32), "Conv2d_2a_3x3": (147, 147, 32),
      "Conv2d_2b_3x3": (147, 147, 64), "MaxPool_3a_3x3": (73, 73, 64),
      "Conv2d_3b_1x1": (73, 73, 80), "Conv2d_4a_3x3": (71, 71, 192),
      "MaxPool_5a_3x3": (35, 35, 192), "Mixed_5b": (35, 35, 320), "Mixed_6a": (17, 17, 1088),
      "PreAuxLogits": (17, 17, 1088), "Mixed_7a": (8, 8, 2080), "Conv2d_7b_1x1": (8, 8, 1536),
      "AuxLogits": (1001,), "global_pool": (1, 1, 1536), "PreLogitsFlatten": (1536,),
      "Logits": (1001,),
  }
  assert irv2.output["logits"].shape[1:] == (1001,)
  assert irv2.output["aux_logits"].shape[1:] == (1001,)


def test_block_counts_and_default_scales(irv2):
  """10 x block35 (0.17), 20 x block17 (0.10), 9 x block8 (0.20), then Block8: scale 1, no ReLU."""
  names = {layer.name for layer in irv2.layers}
  for prefix, count, scale in (("Repeat.block35", 10, 0.17), ("Repeat_1.block17", 20, 0.10),
                               ("Repeat_2.block8", 9, 0.20)):
    assert f"{prefix}_{count}.Add" in names and f"{prefix}_{count + 1}.Add" not in names
    for i in range(1, count + 1):
      assert irv2.get_layer(f"{prefix}_{i}.Scale").scale == pytest.approx(scale)
      assert f"{prefix}_{i}.Relu" in names
  assert "Block8.Add" in names and "Block8.Scale" not in names and "Block8.Relu" not in names


def test_slim_checkpoint_round_trip(irv2, images_299, tmp_path):
  prefix = checkpoints.save_slim_checkpoint(irv2, str(tmp_path / "model.ckpt"))
  fresh = create_model("inception_resnet_v2")
  before = fresh(images_299, training=False)["logits"].numpy()
  expected = irv2(images_299, training=False)
  assert not np.allclose(before, expected["logits"].numpy(), atol=1e-3)
  report = checkpoints.load_slim_checkpoint(fresh, prefix)
  assert len(report.loaded) == 908 and not report.unused
  got = fresh(images_299, training=False)
  np.testing.assert_array_equal(got["logits"].numpy(), expected["logits"].numpy())
  np.testing.assert_array_equal(got["aux_logits"].numpy(), expected["aux_logits"].numpy())
  assert np.std(expected["logits"].numpy()) > 1e-3  # not a degenerate output


def test_inception_v4_checkpoint_is_rejected(irv2, tmp_path):
  """The published inception_v4 layout (names and shapes) does not load into inception_resnet_v2."""
  v4 = slim_parity.published_variables("inception_v4")
  prefix = str(tmp_path / "inception_v4.ckpt")
  names = sorted(v4)
  with tf.device("/cpu:0"):
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.zeros(v4[n], tf.float32) for n in names])
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    checkpoints.load_slim_checkpoint(irv2, prefix)
  message = str(error.value)
  assert "InceptionResnetV2" in message and "['InceptionV4']" in message
  assert "908 missing from the checkpoint" in message
  assert "InceptionResnetV2/Conv2d_1a_3x3/weights" in message


@pytest.mark.slow
def test_minimum_size_shapes_and_keras_round_trip(tmp_path):
  """75 is the smallest input (74 is rejected); the .keras file reloads without custom objects."""
  with pytest.raises(ValueError, match="minimum input size 75"):
    create_model("inception_resnet_v2", image_size=74)
  model = create_model("inception_resnet_v2", image_size=75, num_classes=10)
  assert _shapes(model, inception_resnet.ENDPOINTS_V2) == {
      "Conv2d_1a_3x3": (37, 37, 32), "Conv2d_2a_3x3": (35, 35, 32), "Conv2d_2b_3x3": (35, 35, 64),
      "MaxPool_3a_3x3": (17, 17, 64), "Conv2d_3b_1x1": (17, 17, 80),
      "Conv2d_4a_3x3": (15, 15, 192), "MaxPool_5a_3x3": (7, 7, 192), "Mixed_5b": (7, 7, 320),
      "Mixed_6a": (3, 3, 1088), "PreAuxLogits": (3, 3, 1088), "Mixed_7a": (1, 1, 2080),
      "Conv2d_7b_1x1": (1, 1, 1536), "AuxLogits": (10,), "global_pool": (1, 1, 1536),
      "PreLogitsFlatten": (1536,), "Logits": (10,),
  }
  # slim's 5x5/3 aux pool does not fit the 3 x 3 grid: reduced to 3 x 3, then a 1 x 1 Conv2d_2a_5x5.
  assert tuple(model.get_layer("AuxLogits.Conv2d_2a_5x5").kernel.shape) == (1, 1, 128, 768)
  _randomize(model, seed=2)
  images = slim_parity.make_images(75, preprocessing="inception")
  expected = model(images, training=False)
  path = str(tmp_path / "irv2.keras")
  model.save(path)
  reloaded = keras.saving.load_model(path)
  got = reloaded(images, training=False)
  for key in ("logits", "aux_logits"):
    assert np.all(np.isfinite(expected[key].numpy()))
    np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


@pytest.mark.slow
def test_output_stride_8_and_aligned_feature_maps():
  """slim's atrous option (ends at PreAuxLogits) and SAME-padded aligned feature maps."""
  atrous = create_model("inception_resnet_v2", include_top=False, output_stride=8)
  assert atrous.output.shape[1:] == (33, 33, 1088)
  assert _shapes(atrous, ("Mixed_5b", "Mixed_6a", "PreAuxLogits")) == {
      "Mixed_5b": (35, 35, 320), "Mixed_6a": (33, 33, 1088), "PreAuxLogits": (33, 33, 1088)}
  assert atrous.get_layer("Repeat_1.block17_1.Branch_1.Conv2d_0b_1x7").dilation_rate == (2, 2)
  assert "Mixed_7a" not in {layer.name for layer in atrous.layers}

  aligned = create_model("inception_resnet_v2", align_feature_maps=True)
  assert _shapes(aligned, inception_resnet.ENDPOINTS_V2[:12]) == {
      "Conv2d_1a_3x3": (150, 150, 32), "Conv2d_2a_3x3": (150, 150, 32),
      "Conv2d_2b_3x3": (150, 150, 64), "MaxPool_3a_3x3": (75, 75, 64),
      "Conv2d_3b_1x1": (75, 75, 80), "Conv2d_4a_3x3": (75, 75, 192),
      "MaxPool_5a_3x3": (38, 38, 192), "Mixed_5b": (38, 38, 320), "Mixed_6a": (19, 19, 1088),
      "PreAuxLogits": (19, 19, 1088), "Mixed_7a": (10, 10, 2080), "Conv2d_7b_1x1": (10, 10, 1536),
  }
  # Same variables as the published checkpoint: aligned maps change paddings only.
  assert dict(checkpoints.variable_names(aligned)) == slim_parity.published_variables(
      "inception_resnet_v2")

  atrous_aligned = create_model("inception_resnet_v2", include_top=False, output_stride=8,
                                align_feature_maps=True, pooling="avg")
  extractor = feature_extractor(atrous_aligned, ["PreAuxLogits"])
  assert tuple(extractor.output["PreAuxLogits"].shape[1:]) == (38, 38, 1088)
  assert atrous_aligned.output.shape[1:] == (1088,)


@pytest.mark.parametrize("options, match", [
    (dict(layout="keras"), "layout must be one of"),
    (dict(output_stride=32, include_top=False), "output_stride must be 8 or 16"),
    (dict(output_stride=8), "pass include_top=False"),
    (dict(layout="paper", align_feature_maps=True), "options of TF-slim's layout"),
    (dict(residual_scale=(0.1, 0.2)), "residual_scale must be"),
    (dict(residual_scale=0.0), "residual_scale must be"),
])
def test_bad_options_are_rejected(options, match):
  with pytest.raises(ValueError, match=match):
    create_model("inception_resnet_v2", **options)


# ---------------------------------------------------------------------------------------------
# The paper's layouts.


def test_inception_resnet_v2_paper_layout():
  model = create_model("inception_resnet_v2", layout="paper")
  assert _shapes(model, inception_resnet.ENDPOINTS_V2_PAPER) == {
      "Conv2d_1a_3x3": (149, 149, 32), "Conv2d_2a_3x3": (147, 147, 32),
      "Conv2d_2b_3x3": (147, 147, 64), "Mixed_3a": (73, 73, 160), "Mixed_4a": (71, 71, 192),
      "Mixed_5a": (35, 35, 384), "Mixed_6a": (17, 17, 1152), "PreAuxLogits": (17, 17, 1152),
      "Mixed_7a": (8, 8, 2144), "Repeat_2": (8, 8, 2144), "AuxLogits": (1001,),
      "global_pool": (1, 1, 2144), "PreLogitsFlatten": (2144,), "Logits": (1001,),
  }
  names = {layer.name for layer in model.layers}
  for prefix, count, scale in (("Repeat.block35", 5, 0.17), ("Repeat_1.block17", 10, 0.10),
                               ("Repeat_2.block8", 5, 0.20)):
    assert f"{prefix}_{count}.Relu" in names and f"{prefix}_{count + 1}.Add" not in names
    assert model.get_layer(f"{prefix}_{count}.Scale").scale == pytest.approx(scale)
  assert "Block8.Add" not in names and "Conv2d_7b_1x1" not in names
  # Figures 16/17/19 tower widths and the input-width up-projections (1152 / 2144, see docstring).
  assert tuple(model.get_layer("Repeat.block35_1.Branch_2.Conv2d_0c_3x3").kernel.shape) == (
      3, 3, 48, 64)
  assert tuple(model.get_layer("Repeat_1.block17_1.Conv2d_1x1").kernel.shape) == (1, 1, 384, 1152)
  assert tuple(model.get_layer("Repeat_2.block8_1.Conv2d_1x1").kernel.shape) == (1, 1, 448, 2144)
  print(f"\ninception_resnet_v2 layout='paper': {model.count_params():,} parameters with aux")


@pytest.fixture(scope="module")
def irv1_scaled():
  return create_model("inception_resnet_v1", residual_scale=(0.3, 0.2, 0.1))


def test_inception_resnet_v1_layout(irv1_scaled):
  model = irv1_scaled
  assert model.name == "InceptionResnetV1"
  assert _shapes(model, inception_resnet.ENDPOINTS_V1) == {
      "Conv2d_1a_3x3": (149, 149, 32), "Conv2d_2a_3x3": (147, 147, 32),
      "Conv2d_2b_3x3": (147, 147, 64), "MaxPool_3a_3x3": (73, 73, 64),
      "Conv2d_3b_1x1": (73, 73, 80), "Conv2d_4a_3x3": (71, 71, 192),
      "Conv2d_4b_3x3": (35, 35, 256), "Mixed_6a": (17, 17, 896), "PreAuxLogits": (17, 17, 896),
      "Mixed_7a": (8, 8, 1792), "Repeat_2": (8, 8, 1792), "global_pool": (1, 1, 1792),
      "PreLogitsFlatten": (1792,), "Logits": (1001,),
  }
  assert set(model.output) == {"logits"}  # no aux head in the paper
  assert model.count_params() == slim_parity.inception_resnet_v1_paper_count(1001)
  print(f"\ninception_resnet_v1: {model.count_params():,} parameters")
  assert all(n.startswith("InceptionResnetV1/") for n in naming.slim_variables(model))
  with pytest.raises(ValueError, match="no auxiliary head"):
    create_model("inception_resnet_v1", aux_logits=True)


def test_residual_scale_option_sets_the_rescaling_layers(irv1_scaled):
  scales = {layer.name: layer.scale for layer in irv1_scaled.layers
            if isinstance(layer, keras.layers.Rescaling)}
  expected = {f"Repeat.block35_{i}.Scale": 0.3 for i in range(1, 6)}
  expected.update({f"Repeat_1.block17_{i}.Scale": 0.2 for i in range(1, 11)})
  expected.update({f"Repeat_2.block8_{i}.Scale": 0.1 for i in range(1, 6)})
  assert scales == pytest.approx(expected)
  assert inception_resnet.residual_scales(0.25) == (0.25, 0.25, 0.25)
  assert inception_resnet.residual_scales(None) == (0.17, 0.10, 0.20)


# ---------------------------------------------------------------------------------------------
# The residual blocks' math, against a hand-written TF computation of the same formula.


_ref_conv_bn = slim_parity.formula_conv_bn
_ref_up = slim_parity.formula_conv_bias


def _block_model(block_fn, channels, **kwargs):
  inputs = keras.Input((9, 9, channels))
  outputs = block_fn(inputs, batch_norm=layers.BatchNorm(), **kwargs)
  model = keras.Model(inputs, outputs)
  _randomize_plain(model, seed=3)
  return model


_randomize_plain = slim_parity.randomize_plainly


def test_block35_math():
  s = "Repeat.block35_4"
  model = _block_model(inception_resnet.block35, 320, scope=s, scale=0.17, tower_1x1=32,
                       tower_3x3=(32, 32), tower_double_3x3=(32, 48, 64))
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 320)).astype(np.float32)
  t0 = _ref_conv_bn(model, f"{s}.Branch_0.Conv2d_1x1", x)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0b_3x3",
                    _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0a_1x1", x))
  t2 = _ref_conv_bn(model, f"{s}.Branch_2.Conv2d_0a_1x1", x)
  t2 = _ref_conv_bn(model, f"{s}.Branch_2.Conv2d_0b_3x3", t2)
  t2 = _ref_conv_bn(model, f"{s}.Branch_2.Conv2d_0c_3x3", t2)
  up = _ref_up(model, f"{s}.Conv2d_1x1", tf.concat([t0, t1, t2], axis=3))
  expected = tf.nn.relu(x + 0.17 * up).numpy()
  np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
  assert np.mean(expected > 0) > 0.2 and np.std(0.17 * up.numpy()) > 0.01


def test_block17_math_with_atrous_rate():
  s = "Repeat_1.block17_7"
  model = _block_model(inception_resnet.block17, 64, scope=s, scale=0.1, tower_1x1=24,
                       tower_7x7=(16, 20, 24), dilation_rate=2)
  x = np.random.default_rng(1).normal(size=(2, 9, 9, 64)).astype(np.float32)
  t0 = _ref_conv_bn(model, f"{s}.Branch_0.Conv2d_1x1", x)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0a_1x1", x)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0b_1x7", t1, dilations=2)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0c_7x1", t1, dilations=2)
  up = _ref_up(model, f"{s}.Conv2d_1x1", tf.concat([t0, t1], axis=3))
  expected = tf.nn.relu(x + 0.1 * up).numpy()
  np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_last_block8_math_without_scale_and_relu():
  s = "Block8"
  model = _block_model(inception_resnet.block8, 64, scope=s, scale=1.0, tower_1x1=16,
                       tower_3x3=(16, 20, 24), activation=False)
  x = np.random.default_rng(2).normal(size=(2, 9, 9, 64)).astype(np.float32)
  t0 = _ref_conv_bn(model, f"{s}.Branch_0.Conv2d_1x1", x)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0a_1x1", x)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0b_1x3", t1)
  t1 = _ref_conv_bn(model, f"{s}.Branch_1.Conv2d_0c_3x1", t1)
  up = _ref_up(model, f"{s}.Conv2d_1x1", tf.concat([t0, t1], axis=3))
  expected = (x + up).numpy()
  got = model(x, training=False).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  assert np.min(got) < 0  # no ReLU


# ---------------------------------------------------------------------------------------------
# Whole-network wiring of the layouts without a published reference (Inception-ResNet-v1, the
# paper layout of v2), against the paper's figures written out with tf.nn ops.


def _two_inputs(size: int) -> np.ndarray:
  return np.random.default_rng(4).uniform(-1.0, 1.0, (2, size, size, 3)).astype(np.float32)


def test_inception_resnet_v1_stem_and_reduction_b_follow_figures_14_and_12():
  model = create_model("inception_resnet_v1", image_size=75)
  _randomize_plain(model, seed=5)
  images = _two_inputs(75)
  ours = slim_parity.our_endpoints(model, ["Conv2d_4b_3x3", "PreAuxLogits", "Mixed_7a"], images)
  c = functools.partial(_ref_conv_bn, model)
  # Figure 14: 3x3/2 V 32, 3x3 V 32, 3x3 64, 3x3/2 V max pool, 1x1 80, 3x3 V 192, 3x3/2 V 256.
  x = c("Conv2d_1a_3x3", images, strides=2, padding="VALID")
  x = c("Conv2d_2b_3x3", c("Conv2d_2a_3x3", x, padding="VALID"))
  x = tf.nn.max_pool2d(x, 3, 2, "VALID")
  x = c("Conv2d_4a_3x3", c("Conv2d_3b_1x1", x), padding="VALID")
  stem = c("Conv2d_4b_3x3", x, strides=2, padding="VALID").numpy()
  slim_parity.assert_close(ours["Conv2d_4b_3x3"], stem, "Figure 14 stem")
  # Figure 12 on the 17 x 17 x 896 grid: three 1x1 256 towers (-> 3x3/2 V 384; -> 3x3/2 V 256;
  # -> 3x3 256 -> 3x3/2 V 256) and a 3x3/2 V max pool, concatenated in that order.
  x, s = ours["PreAuxLogits"], "Mixed_7a"
  towers = [c(f"{s}.Branch_0.Conv2d_1a_3x3", c(f"{s}.Branch_0.Conv2d_0a_1x1", x), strides=2,
              padding="VALID"),
            c(f"{s}.Branch_1.Conv2d_1a_3x3", c(f"{s}.Branch_1.Conv2d_0a_1x1", x), strides=2,
              padding="VALID"),
            c(f"{s}.Branch_2.Conv2d_1a_3x3",
              c(f"{s}.Branch_2.Conv2d_0b_3x3", c(f"{s}.Branch_2.Conv2d_0a_1x1", x)), strides=2,
              padding="VALID"),
            tf.nn.max_pool2d(x, 3, 2, "VALID")]
  assert [t.shape[-1] for t in towers] == [384, 256, 256, 896]
  slim_parity.assert_close(ours["Mixed_7a"], tf.concat(towers, axis=3).numpy(), "Figure 12")
  for value in (stem, ours["Mixed_7a"]):  # the two images give different outputs
    assert np.abs(value[0] - value[1]).max() > 0.1


@pytest.mark.slow
def test_inception_resnet_v2_paper_layout_first_block_follows_figure_16():
  """Figure 16 on the v4 stem's 35 x 35 x 384 output: towers 32 | 32-32 | 32-48-64, a linear 1x1
  back to 384 channels, scaled by 0.17, added, ReLU."""
  model = create_model("inception_resnet_v2", layout="paper", image_size=75, aux_logits=False)
  _randomize_plain(model, seed=6)
  images = _two_inputs(75)
  ours = slim_parity.our_endpoints(model, ["Mixed_5a"], images)
  block = keras.Model(model.input, model.get_layer("Repeat.block35_1.Relu").output)
  x, s = ours["Mixed_5a"], "Repeat.block35_1"
  c = functools.partial(_ref_conv_bn, model)
  t0 = c(f"{s}.Branch_0.Conv2d_1x1", x)
  t1 = c(f"{s}.Branch_1.Conv2d_0b_3x3", c(f"{s}.Branch_1.Conv2d_0a_1x1", x))
  t2 = c(f"{s}.Branch_2.Conv2d_0c_3x3",
         c(f"{s}.Branch_2.Conv2d_0b_3x3", c(f"{s}.Branch_2.Conv2d_0a_1x1", x)))
  assert [t.shape[-1] for t in (t0, t1, t2)] == [32, 32, 64]
  up = _ref_up(model, f"{s}.Conv2d_1x1", tf.concat([t0, t1, t2], axis=3))
  expected = tf.nn.relu(x + 0.17 * up).numpy()
  slim_parity.assert_close(np.asarray(block(images, training=False)), expected, "Figure 16")
  assert np.abs(expected[0] - expected[1]).max() > 0.1
