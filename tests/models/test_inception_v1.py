"""inception_v1 against the real TF-slim Inception-v1 (tf-slim pip package) and its published layout."""

import numpy as np
import pytest

import keras

import slim_parity
from inception_tf.models import create_model, model_info, naming

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("inception_v1")


MODEL = "inception_v1"
SMALL = 150  # odd feature maps on the way down: 75, 38, 19, 10, 5


@pytest.fixture(scope="module")
def slim_runs(tmp_path_factory):
  """{size: slim_parity.SlimRun} of the real slim network at 224 and SMALL."""
  return slim_parity.reference_runs(MODEL, (224, SMALL), tmp_path_factory)


@pytest.fixture(scope="module")
def models(slim_runs):
  """{size: our model at that size with that size's slim checkpoint loaded}."""
  return slim_parity.loaded_models(MODEL, slim_runs)


@pytest.mark.parametrize("size", [224, SMALL])
def test_logits_and_endpoints_equal_slim(size, slim_runs, models):
  run = slim_runs[size]
  compared = slim_parity.compare_with_slim(MODEL, models[size], run.images, run.logits,
                                           run.end_points, run.slim_key)
  # Every endpoint slim has is compared: the whole base, and at SMALL the pool head as well.
  expected = set(model_info(MODEL).endpoints) - ({"AvgPool_0a_7x7"} if size == 224 else set())
  assert set(compared) == expected


def test_variables_and_parameter_counts_equal_published(slim_runs, models):
  slim_parity.assert_published_layout(MODEL, models[224], slim_runs, total=6_633_209,
                                      trainable=6_618_649)


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  slim_parity.assert_endpoint_shapes(MODEL, models[size], slim_runs[size], size)


def test_depth_multiplier_thins_like_slim():
  # slim's rule (v2/v3; slim's v1 has no depth_multiplier): d -> max(int(d * multiplier), 16).
  model = create_model(MODEL, image_size=64, depth_multiplier=0.5)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(model).items()}
  published = slim_parity.published_variables(MODEL)
  assert set(ours) == set(published)
  for name, shape in published.items():
    if "/Logits/" in name:
      continue
    assert ours[name][-1] == max(int(shape[-1] * 0.5), 16), name
  assert ours["InceptionV1/Mixed_3b/Branch_2/Conv2d_0a_1x1/weights"][-1] == 16  # min_depth binds
  assert ours["InceptionV1/Logits/Conv2d_0c_1x1/weights"] == (1, 1, 512, 1001)
  with pytest.raises(ValueError, match="depth_multiplier"):
    create_model(MODEL, depth_multiplier=0.0)


def test_minimum_input_size():
  slim_parity.assert_minimum_size(MODEL, "Mixed_5c", depth_multiplier=0.25)


def test_features_without_top(slim_runs):
  slim_parity.assert_pooled_features(MODEL, slim_runs[224], 224, "Mixed_5c")
  assert create_model(MODEL, include_top=False, image_size=SMALL).output.shape[1:] == (5, 5, 1024)
  assert create_model(MODEL, include_top=False, pooling="max").output.shape[1:] == (1024,)
  with pytest.raises(ValueError, match="pooling"):
    create_model(MODEL, include_top=False, pooling="sum")


def test_keras_round_trip(tmp_path):
  model = create_model(MODEL, num_classes=10, image_size=96, depth_multiplier=0.25)
  rng = np.random.default_rng(1)
  for variable in model.weights:  # non-trivial values everywhere, BN statistics included
    value = rng.normal(0.0, 0.1, variable.shape)
    if variable.path.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, variable.shape)
    variable.assign(value.astype(np.float32))
  path = str(tmp_path / "v1.keras")
  model.save(path)
  restored = keras.models.load_model(path)  # built-in layers only: no custom_objects
  images = rng.uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(restored(images, training=False)["logits"]),
                                np.asarray(model(images, training=False)["logits"]))
  assert restored.name == "InceptionV1"
  assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]


def test_mixed_precision_keeps_the_head_in_float32():
  model = create_model(MODEL, image_size=64, depth_multiplier=0.25, dtype="mixed_bfloat16")
  assert model.get_layer("Mixed_5c").compute_dtype == "bfloat16"
  assert model.get_layer("Logits.Conv2d_0c_1x1").compute_dtype == "float32"
  logits = model(np.zeros((1, 64, 64, 3), np.float32), training=False)["logits"]
  assert logits.dtype == "float32"
  assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
