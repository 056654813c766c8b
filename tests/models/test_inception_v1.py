"""inception_v1 against the real TF-slim Inception-v1 (tf-slim pip package) and its published layout."""

import numpy as np
import pytest

import keras

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model, feature_extractor, model_info, naming

MODEL = "inception_v1"
SMALL = 150  # odd feature maps on the way down: 75, 38, 19, 10, 5


@pytest.fixture(scope="module")
def slim_runs(tmp_path_factory):
  """{size: slim_parity.SlimRun} of the real slim network at 224 and SMALL."""
  return {size: slim_parity.run_reference(MODEL, size, str(tmp_path_factory.mktemp(f"slim{size}")))
          for size in (224, SMALL)}


@pytest.fixture(scope="module")
def models(slim_runs):
  """{size: our inception_v1 at that size with that size's slim checkpoint loaded}."""
  result = {}
  for size, run in slim_runs.items():
    model = create_model(MODEL, image_size=size)
    checkpoints.load_slim_checkpoint(model, run.checkpoint)
    result[size] = model
  return result


@pytest.mark.parametrize("size", [224, SMALL])
def test_logits_and_endpoints_equal_slim(size, slim_runs, models):
  run = slim_runs[size]
  compared = slim_parity.compare_with_slim(MODEL, models[size], run.images, run.logits,
                                           run.end_points, run.slim_key)
  # Every endpoint slim has is compared: the whole base, and at SMALL the pool head as well.
  expected = set(model_info(MODEL).endpoints) - ({"AvgPool_0a_7x7"} if size == 224 else set())
  assert set(compared) == expected


def test_variables_equal_published_layout(slim_runs, models):
  published = slim_parity.published_variables(MODEL)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(models[224]).items()}
  assert ours == published
  # The real slim graph holds exactly the published variables too (at both sizes).
  for size in (224, SMALL):
    assert slim_runs[size].variable_shapes == published


def test_parameter_counts_equal_published(models):
  total, trainable = slim_parity.parameter_counts(slim_parity.published_variables(MODEL))
  model = models[224]
  assert model.count_params() == total == 6_633_209
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable == 6_618_649


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  golden = slim_parity.endpoint_shapes(MODEL)[str(size)]
  model = models[size]
  extractor = feature_extractor(model, list(golden))
  ours = {name: list(t.shape[1:]) for name, t in extractor.output.items()}
  assert ours == golden
  # The golden table is what slim measures.
  end_points = slim_runs[size].end_points
  assert {name: list(end_points[name].shape[1:]) for name in golden} == golden


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
  assert model_info(MODEL).min_image_size == 32
  with pytest.raises(ValueError, match="minimum input size 32"):
    create_model(MODEL, image_size=31)
  model = create_model(MODEL, image_size=32, depth_multiplier=0.25)
  assert feature_extractor(model, ["Mixed_5c"]).output["Mixed_5c"].shape[1:] == (1, 1, 256)
  logits = model(np.zeros((1, 32, 32, 3), np.float32), training=False)["logits"]
  assert logits.shape == (1, 1001) and np.all(np.isfinite(logits))


def test_features_without_top(slim_runs):
  run = slim_runs[224]
  model = create_model(MODEL, include_top=False, pooling="avg")
  report = checkpoints.load_slim_checkpoint(model, run.checkpoint, skip_logits=True)
  assert report.skipped == [] and len(report.loaded) == 228
  slim_parity.assert_close(np.asarray(model(run.images, training=False)),
                           run.end_points["Mixed_5c"].mean(axis=(1, 2)), "avg-pooled Mixed_5c")
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
