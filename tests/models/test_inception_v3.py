"""Inception-v3 against the real TF-slim network, the published variable list and the paper studies.

The reference is `tf_slim.nets.inception_v3` from the tf-slim pip package, built in a TF1 graph with
random weights and non-trivial batch-norm statistics (tests/slim_reference.py); its checkpoint is
loaded with `load_slim_checkpoint`, and logits, aux logits and every endpoint must agree within
1e-4 relative, at 299 and at 150, on a real photo and a random image.
"""

from __future__ import annotations

import functools
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf import checkpoints
from inception_tf.models import create_model
from inception_tf.models import feature_extractor
from inception_tf.models import inception_v3
from inception_tf.models import model_info
from inception_tf.models import naming
from inception_tf.models import stats
from inception_tf.models.registry import endpoint_layer_name

import slim_parity  # tests/models/slim_parity.py: slim runner, tolerance


# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("inception_v3")


# Endpoint -> (H, W, C), as in TF-slim's inception_v3_test (299) and worked out for 150 (VALID
# stride-2 layers: (n - 3) // 2 + 1); checked against the real slim network below.
ENDPOINT_SHAPES = {
    299: {
        "Conv2d_1a_3x3": (149, 149, 32), "Conv2d_2a_3x3": (147, 147, 32),
        "Conv2d_2b_3x3": (147, 147, 64), "MaxPool_3a_3x3": (73, 73, 64),
        "Conv2d_3b_1x1": (73, 73, 80), "Conv2d_4a_3x3": (71, 71, 192),
        "MaxPool_5a_3x3": (35, 35, 192), "Mixed_5b": (35, 35, 256), "Mixed_5c": (35, 35, 288),
        "Mixed_5d": (35, 35, 288), "Mixed_6a": (17, 17, 768), "Mixed_6b": (17, 17, 768),
        "Mixed_6c": (17, 17, 768), "Mixed_6d": (17, 17, 768), "Mixed_6e": (17, 17, 768),
        "Mixed_7a": (8, 8, 1280), "Mixed_7b": (8, 8, 2048), "Mixed_7c": (8, 8, 2048),
        "PreLogits": (1, 1, 2048),
    },
    150: {
        "Conv2d_1a_3x3": (74, 74, 32), "Conv2d_2a_3x3": (72, 72, 32),
        "Conv2d_2b_3x3": (72, 72, 64), "MaxPool_3a_3x3": (35, 35, 64),
        "Conv2d_3b_1x1": (35, 35, 80), "Conv2d_4a_3x3": (33, 33, 192),
        "MaxPool_5a_3x3": (16, 16, 192), "Mixed_5b": (16, 16, 256), "Mixed_5c": (16, 16, 288),
        "Mixed_5d": (16, 16, 288), "Mixed_6a": (7, 7, 768), "Mixed_6b": (7, 7, 768),
        "Mixed_6c": (7, 7, 768), "Mixed_6d": (7, 7, 768), "Mixed_6e": (7, 7, 768),
        "Mixed_7a": (3, 3, 1280), "Mixed_7b": (3, 3, 2048), "Mixed_7c": (3, 3, 2048),
        "PreLogits": (1, 1, 2048),
    },
}


def _images(size: int) -> np.ndarray:
  """[2, size, size, 3] in [-1, 1]: scikit-image's chelsea photo and a uniform random image."""
  import skimage.data
  import skimage.transform
  photo = skimage.transform.resize(skimage.data.chelsea(), (size, size), anti_aliasing=True)
  noise = np.random.default_rng(size).uniform(0.0, 1.0, (size, size, 3))
  return (np.stack([photo, noise]) * 2.0 - 1.0).astype(np.float32)


class _Parity:
  """Our model loaded from the checkpoint of the real slim network at one input size."""

  def __init__(self, size: int, directory: pathlib.Path):
    slim_parity.import_tf_slim()
    from tf_slim.nets import inception_v3 as slim_v3  # pylint: disable=import-outside-toplevel
    self.size = size
    self.images = _images(size)
    prefix = str(directory / f"inception_v3_{size}.ckpt")
    self.slim_logits, self.slim_endpoints, self.slim_shapes = slim_parity.run_slim(
        slim_v3.inception_v3, slim_v3.inception_v3_arg_scope, self.images, prefix,
        num_classes=1001)
    self.prefix = prefix
    self.model = create_model("inception_v3", image_size=size)
    self.report = checkpoints.load_slim_checkpoint(self.model, prefix)
    extractor = feature_extractor(self.model, inception_v3.ENDPOINTS)
    self.endpoints = {k: np.asarray(v) for k, v in extractor(self.images, training=False).items()}
    self.outputs = {k: np.asarray(v) for k, v in self.model(self.images, training=False).items()}


@pytest.fixture(scope="module")
def parity_at(tmp_path_factory):
  """`parity_at(size)`: the slim run and our loaded model at `size`, built once per module."""
  cache = {}

  def get(size: int) -> _Parity:
    if size not in cache:
      cache[size] = _Parity(size, tmp_path_factory.mktemp(f"slim{size}"))
    return cache[size]

  return get


@pytest.mark.slow
@pytest.mark.parametrize("size", [299, 150])
def test_equals_real_tf_slim(size, parity_at):
  parity = parity_at(size)
  # The checkpoint of slim's graph loads completely (aux head included) with no leftovers.
  assert len(parity.report.loaded) == len(parity.slim_shapes) and not parity.report.unused
  for image, what in ((0, "chelsea photo"), (1, "random image")):
    slim_parity.assert_close(parity.outputs["logits"][image], parity.slim_logits[image],
                             f"logits at {size}, {what}")
    slim_parity.assert_close(parity.outputs["aux_logits"][image],
                             parity.slim_endpoints["AuxLogits"][image],
                             f"aux logits at {size}, {what}")
    common = set(parity.endpoints) & set(parity.slim_endpoints)
    assert common == set(inception_v3.ENDPOINTS)
    for endpoint in inception_v3.ENDPOINTS:
      slim_parity.assert_close(parity.endpoints[endpoint][image],
                               parity.slim_endpoints[endpoint][image],
                               f"{endpoint} at {size}, {what}")
  # The photo's and the noise's logits differ (the comparison is not of constants).
  assert np.max(np.abs(parity.outputs["logits"][0] - parity.outputs["logits"][1])) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("size", [299, 150])
def test_endpoint_shape_table(size, parity_at):
  parity = parity_at(size)
  ours = {e: tuple(v.shape[1:]) for e, v in parity.endpoints.items()}
  slim = {e: tuple(parity.slim_endpoints[e].shape[1:]) for e in inception_v3.ENDPOINTS}
  assert ours == slim == ENDPOINT_SHAPES[size]
  assert model_info("inception_v3").endpoints == tuple(ENDPOINT_SHAPES[299])


@pytest.mark.slow
def test_small_input_aux_head_follows_slims_reduced_kernel(parity_at):
  parity_150 = parity_at(150)
  # At 150, Mixed_6e is 7x7, the 5x5/3 pool gives 1x1, so slim names the layer Conv2d_2a_1x1.
  shapes = parity_150.slim_shapes
  assert shapes["InceptionV3/AuxLogits/Conv2d_2a_1x1/weights"] == (1, 1, 128, 768)
  assert "InceptionV3/AuxLogits/Conv2d_2a_5x5/weights" not in shapes
  assert tuple(parity_150.model.get_layer("AuxLogits.Conv2d_2a_1x1").kernel.shape) == (
      1, 1, 128, 768)
  assert parity_150.model.get_layer("Logits.AvgPool_1a_3x3") is not None


def test_variables_equal_the_published_checkpoint():
  published = slim_parity.published_variables("inception_v3")
  model = create_model("inception_v3")
  ours = dict(checkpoints.variable_names(model))
  assert sorted(set(published) - set(ours)) == []
  assert sorted(set(ours) - set(published)) == []
  assert {n: s for n, s in ours.items() if published[n] != s} == {}
  assert len(ours) == len(published)
  # Parameter counts: the whole checkpoint (incl. aux head and BN moving statistics) ...
  total = sum(int(np.prod(s)) for s in published.values())
  moving = sum(int(np.prod(s)) for n, s in published.items() if "/moving_" in n)
  counts = stats.count_parameters(model)
  assert counts.total == total == 27_182_194
  assert counts.trainable == total - moving
  # ... without the aux head (what runs at inference): base + 2048 x 1001 + 1001 ...
  no_aux = stats.count_parameters(model, exclude=stats.is_aux_layer).total
  assert no_aux == 21_802_784 + 2048 * 1001 + 1001 == 23_853_833


def test_base_parameter_count_and_feature_outputs():
  # TF-slim's test and keras.applications' InceptionV3(include_top=False): 21,802,784.
  base = create_model("inception_v3", include_top=False, pooling="avg")
  assert base.count_params() == 21_802_784
  assert tuple(base.output.shape) == (None, 2048)
  assert base.name == "InceptionV3"
  assert [v.path for v in base.weights if "AuxLogits" in v.path or "Logits" in v.path] == []


@pytest.mark.slow
def test_keras_and_savedmodel_round_trips(parity_at, tmp_path):
  parity_150 = parity_at(150)
  model, images = parity_150.model, parity_150.images
  expected = parity_150.outputs
  path = tmp_path / "inception_v3.keras"
  model.save(path)
  reloaded = keras.saving.load_model(path)  # no custom objects needed
  assert reloaded.name == "InceptionV3"
  assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
  got = reloaded(images, training=False)
  for key in ("logits", "aux_logits"):
    np.testing.assert_array_equal(np.asarray(got[key]), expected[key], err_msg=f".keras {key}")
  export_dir = str(tmp_path / "saved_model")
  model.export(export_dir, verbose=False)
  loaded = tf.saved_model.load(export_dir)  # keep it referenced while serving
  served = loaded.serve(tf.constant(images))
  for key in ("logits", "aux_logits"):
    np.testing.assert_allclose(np.asarray(served[key]), expected[key], rtol=1e-6, atol=1e-6,
                               err_msg=f"SavedModel {key}")


def test_depth_multiplier_and_min_depth():
  model = create_model("inception_v3", image_size=150, depth_multiplier=0.5, min_depth=32,
                       aux_logits=False)
  shapes = dict(checkpoints.variable_names(model))
  assert shapes["InceptionV3/Conv2d_1a_3x3/weights"] == (3, 3, 3, 32)  # max(16, 32)
  assert shapes["InceptionV3/Conv2d_2b_3x3/weights"] == (3, 3, 32, 32)  # max(32, 32)
  assert shapes["InceptionV3/Mixed_7c/Branch_2/Conv2d_0a_1x1/weights"] == (1, 1, 1024, 224)
  assert shapes["InceptionV3/Logits/Conv2d_1c_1x1/weights"] == (1, 1, 1024, 1001)
  with pytest.raises(ValueError, match="depth_multiplier"):
    create_model("inception_v3", depth_multiplier=0.0)


def test_bad_options_raise():
  with pytest.raises(ValueError, match="receptive_field"):
    create_model("inception_v3", receptive_field=224)
  with pytest.raises(ValueError, match="minimum input size 75"):
    create_model("inception_v3", image_size=74)
  with pytest.raises(ValueError, match="dropout_keep_prob"):
    create_model("inception_v3", image_size=75, dropout_keep_prob=0.0)


def test_minimum_input_size_with_aux_head_in_mixed_precision():
  # slim's aux head would fail at 75 (Mixed_6e is 3x3 < its 5x5 pool); ours pools the 3x3 grid.
  model = create_model("inception_v3", image_size=75, num_classes=10, dtype="mixed_bfloat16")
  assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
  out = model(np.zeros((1, 75, 75, 3), np.float32), training=False)
  assert out["logits"].shape == (1, 10) and out["aux_logits"].shape == (1, 10)
  assert tuple(model.get_layer("Mixed_7c").output.shape[1:]) == (1, 1, 2048)
  # The body computes in bfloat16, the classifier heads in float32.
  assert model.get_layer("Mixed_7c.Branch_0.Conv2d_0a_1x1").compute_dtype == "bfloat16"
  assert out["logits"].dtype == out["aux_logits"].dtype == "float32"
  for name in ("Logits.Conv2d_1c_1x1", "AuxLogits.Conv2d_2b_1x1", "PreLogits"):
    assert model.get_layer(name).compute_dtype == "float32", name


# --- Paper studies (v3 paper Table 2 and Table 3) ---------------------------------------------


def _base_multiply_adds(model: keras.Model) -> int:
  return stats.count_multiply_adds(
      model, exclude=lambda name: stats.is_aux_layer(name) or name.startswith("Logits."))


@pytest.fixture(scope="module")
def base_299():
  return create_model("inception_v3", include_top=False)


def test_low_resolution_networks_have_the_same_grid_and_cost(base_299):
  """Table 2 (§9): 151 and 79 receptive fields end on the same 8x8 grid at about the same cost."""
  cost_299 = _base_multiply_adds(base_299)
  assert tuple(base_299.output.shape[1:]) == (8, 8, 2048)
  costs = {}
  for field in (151, 79):
    model = create_model("inception_v3", image_size=field, include_top=False,
                         receptive_field=field)
    assert tuple(model.output.shape[1:]) == (8, 8, 2048), field
    assert model.count_params() == base_299.count_params()  # same layers, only strides/pools
    costs[field] = _base_multiply_adds(model)
  assert costs[151] == cost_299  # stride 1 on 151 gives the 149x149 grid stride 2 gives on 299
  assert 0.85 * cost_299 < costs[79] < cost_299  # "slightly cheaper"
  names_79 = {layer.name for layer in model.layers}
  assert "MaxPool_3a_3x3" not in names_79
  assert model.get_layer("Conv2d_1a_3x3").strides == (1, 1)


def test_unfactorized_7x7_stem(base_299):
  """Table 3 "Inception-v2" row: one 7x7 convolution instead of three 3x3 (+Factorized 7x7)."""
  model = create_model("inception_v3", include_top=False, factorized_7x7=False)
  names = {layer.name for layer in model.layers}
  assert {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"}.isdisjoint(names)
  conv = model.get_layer("Conv2d_1a_7x7")
  assert tuple(conv.kernel.shape) == (7, 7, 3, 64) and conv.strides == (2, 2)
  assert tuple(conv.output.shape[1:]) == (147, 147, 64)
  assert tuple(model.output.shape[1:]) == (8, 8, 2048)
  factorized = 3 * 3 * 3 * 32 + 3 * 3 * 32 * 32 + 3 * 3 * 32 * 64
  assert base_299.count_params() - model.count_params() == factorized - 7 * 7 * 3 * 64 + 2 * 3 * 32


def test_aux_head_without_batch_norm():
  """Table 3 "BN-auxiliary": slim batch-normalises the aux head's fully connected Conv2d_2a."""
  with_bn = dict(checkpoints.variable_names(create_model("inception_v3", image_size=150)))
  model = create_model("inception_v3", image_size=150, aux_batch_norm=False)
  without_bn = dict(checkpoints.variable_names(model))
  scope = "InceptionV3/AuxLogits/Conv2d_2a_1x1"
  assert set(with_bn) - set(without_bn) == {f"{scope}/BatchNorm/{v}" for v in
                                            ("beta", "moving_mean", "moving_variance")}
  assert set(without_bn) - set(with_bn) == {f"{scope}/biases"}
  assert without_bn[f"{scope}/biases"] == (768,)
  # Conv2d_1b_1x1 keeps its batch norm; the ReLU after Conv2d_2a stays.
  assert "InceptionV3/AuxLogits/Conv2d_1b_1x1/BatchNorm/beta" in without_bn
  assert endpoint_layer_name(model, "AuxLogits.Conv2d_2a_1x1") == "AuxLogits.Conv2d_2a_1x1.Relu"


def test_default_options_are_the_slim_layout(base_299):
  names = {layer.name for layer in base_299.layers}
  assert {"Conv2d_1a_3x3", "MaxPool_3a_3x3", "Mixed_5c.Branch_1.Conv_1_0c_5x5",
          "Mixed_6a.Branch_0.Conv2d_1a_1x1", "Mixed_7b.Branch_1.Conv2d_0b_3x1",
          "Mixed_7c.Branch_1.Conv2d_0c_3x1"} <= names
  assert base_299.get_layer("Conv2d_1a_3x3").strides == (2, 2)
  assert naming.slim_variables(base_299)  # every variable maps to a slim name


def test_ablation_options_follow_the_papers_formulas():
  """receptive_field=79 (Table 2: stride 1, no first pool), factorized_7x7=False (Table 3: one 7x7
  convolution) and aux_batch_norm=False (Table 3: aux "fully connected" layer with bias, no batch
  norm), written out with tf.nn ops from the model's weights; none has a published reference."""
  model = create_model("inception_v3", image_size=79, receptive_field=79, factorized_7x7=False,
                       aux_batch_norm=False, depth_multiplier=0.25)
  slim_parity.randomize_plainly(model, seed=7)
  images = np.random.default_rng(8).uniform(-1.0, 1.0, (2, 79, 79, 3)).astype(np.float32)
  ours = slim_parity.our_endpoints(model, ["MaxPool_5a_3x3", "Mixed_6e"], images)
  ours["aux_logits"] = np.asarray(model(images, training=False)["aux_logits"])
  c = functools.partial(slim_parity.formula_conv_bn, model)
  # 7x7/1 V 16 (no MaxPool_3a), 1x1 V 20, 3x3 V 48, 3x3/2 V max pool: 79 -> 73 -> 71 -> 35.
  x = c("Conv2d_1a_7x7", images, padding="VALID")
  x = c("Conv2d_4a_3x3", c("Conv2d_3b_1x1", x, padding="VALID"), padding="VALID")
  stem = tf.nn.max_pool2d(x, 3, 2, "VALID").numpy()
  assert stem.shape == (2, 35, 35, 48)
  slim_parity.assert_close(ours["MaxPool_5a_3x3"], stem, "Table 2/3 stem")
  # Aux head on the 17 x 17 Mixed_6e: 5x5/3 V avg pool, 1x1 conv + BN + ReLU, 5x5 V conv + bias
  # + ReLU, 1x1 linear logits.
  x = tf.nn.avg_pool2d(ours["Mixed_6e"], 5, 3, "VALID")
  x = c("AuxLogits.Conv2d_1b_1x1", x)
  x = tf.nn.relu(slim_parity.formula_conv_bias(model, "AuxLogits.Conv2d_2a_5x5", x,
                                               padding="VALID"))
  aux = slim_parity.formula_conv_bias(model, "AuxLogits.Conv2d_2b_1x1", x)[:, 0, 0, :].numpy()
  slim_parity.assert_close(ours["aux_logits"], aux, "aux head without batch norm")
  for value in (stem, aux):  # the two images differ by more than the comparison's tolerance
    assert np.abs(value[0] - value[1]).max() > 5 * 1e-4 * np.abs(value).max()
