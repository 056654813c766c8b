"""inception_v2 against the real TF-slim Inception-v2 (tf-slim pip package) and its published layout."""

import numpy as np
import pytest

import keras

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model, feature_extractor, model_info, naming

MODEL = "inception_v2"
SMALL = 150  # Mixed_5c is 5x5: slim shrinks its 7x7 pool to 5x5, a global mean like ours


@pytest.fixture(scope="module")
def slim_runs(tmp_path_factory):
  """{size: slim_parity.SlimRun} of the real slim network at 224 and SMALL."""
  return {size: slim_parity.run_reference(MODEL, size, str(tmp_path_factory.mktemp(f"slim{size}")))
          for size in (224, SMALL)}


@pytest.fixture(scope="module")
def models(slim_runs):
  """{size: our inception_v2 at that size with that size's slim checkpoint loaded}."""
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
  # tf-slim 1.1.0 records no endpoint for the final pool; every other endpoint is compared.
  assert set(compared) == set(model_info(MODEL).endpoints) - {"AvgPool_1a"}


def test_variables_equal_published_layout(slim_runs, models):
  published = slim_parity.published_variables(MODEL)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(models[224]).items()}
  assert ours == published
  for size in (224, SMALL):
    assert slim_runs[size].variable_shapes == published


def test_separable_first_conv_has_bias_and_no_batch_norm(models):
  # As published: depthwise [7, 7, 3, 8], pointwise [1, 1, 24, 64], biases [64]; no BatchNorm.
  published = slim_parity.published_variables(MODEL)
  first = {n: s for n, s in published.items() if n.startswith("InceptionV2/Conv2d_1a_7x7/")}
  assert first == {"InceptionV2/Conv2d_1a_7x7/depthwise_weights": (7, 7, 3, 8),
                   "InceptionV2/Conv2d_1a_7x7/pointwise_weights": (1, 1, 24, 64),
                   "InceptionV2/Conv2d_1a_7x7/biases": (64,)}
  layer = models[224].get_layer("Conv2d_1a_7x7")
  assert isinstance(layer, keras.layers.SeparableConv2D)
  assert layer.depth_multiplier == 8 and layer.strides == (2, 2) and layer.use_bias
  names = {layer.name for layer in models[224].layers}
  assert "Conv2d_1a_7x7.Relu" in names and "Conv2d_1a_7x7.BatchNorm" not in names


def test_plain_first_conv_option():
  model = create_model(MODEL, image_size=64, use_separable_conv=False)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(model).items()}
  first = {n: s for n, s in ours.items() if n.startswith("InceptionV2/Conv2d_1a_7x7/")}
  assert first == {"InceptionV2/Conv2d_1a_7x7/weights": (7, 7, 3, 64),
                   "InceptionV2/Conv2d_1a_7x7/BatchNorm/beta": (64,),
                   "InceptionV2/Conv2d_1a_7x7/BatchNorm/moving_mean": (64,),
                   "InceptionV2/Conv2d_1a_7x7/BatchNorm/moving_variance": (64,)}
  published = slim_parity.published_variables(MODEL)
  rest = {n: s for n, s in ours.items() if not n.startswith("InceptionV2/Conv2d_1a_7x7/")}
  assert rest == {n: s for n, s in published.items()
                  if not n.startswith("InceptionV2/Conv2d_1a_7x7/")}


def test_parameter_counts_equal_published(models):
  total, trainable = slim_parity.parameter_counts(slim_parity.published_variables(MODEL))
  model = models[224]
  assert model.count_params() == total == 11_199_137
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable == 11_179_361


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  golden = slim_parity.endpoint_shapes(MODEL)[str(size)]
  extractor = feature_extractor(models[size], list(golden) + ["AvgPool_1a"])
  ours = {name: list(t.shape[1:]) for name, t in extractor.output.items()}
  assert ours.pop("AvgPool_1a") == [1, 1, 1024]
  assert ours == golden
  end_points = slim_runs[size].end_points
  assert {name: list(end_points[name].shape[1:]) for name in golden} == golden


def test_depth_multiplier_equals_slim(tmp_path):
  # slim thins every width to max(int(d * 0.25), 16) and the first layer's channel multiplier to
  # min(int(depth(64) / 3), 8) = 5; the thinned network gives slim's logits and endpoints.
  run = slim_parity.run_reference(MODEL, 64, str(tmp_path), depth_multiplier=0.25)
  model = create_model(MODEL, image_size=64, depth_multiplier=0.25)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(model).items()}
  assert ours == run.variable_shapes
  assert ours["InceptionV2/Conv2d_1a_7x7/depthwise_weights"] == (7, 7, 3, 5)
  assert ours["InceptionV2/Logits/Conv2d_1c_1x1/weights"] == (1, 1, 256, 1001)
  checkpoints.load_slim_checkpoint(model, run.checkpoint)
  slim_parity.compare_with_slim(MODEL, model, run.images, run.logits, run.end_points,
                                run.slim_key)
  with pytest.raises(ValueError, match="depth_multiplier"):
    create_model(MODEL, depth_multiplier=-1.0)


def test_minimum_input_size():
  assert model_info(MODEL).min_image_size == 32
  with pytest.raises(ValueError, match="minimum input size 32"):
    create_model(MODEL, image_size=31)
  model = create_model(MODEL, image_size=32, depth_multiplier=0.25)
  assert feature_extractor(model, ["Mixed_5c"]).output["Mixed_5c"].shape[1:] == (1, 1, 256)
  logits = model(np.zeros((1, 32, 32, 3), np.float32), training=False)["logits"]
  assert logits.shape == (1, 1001) and np.all(np.isfinite(logits))


def test_features_without_top(slim_runs):
  run = slim_runs[SMALL]
  model = create_model(MODEL, image_size=SMALL, include_top=False, pooling="avg")
  checkpoints.load_slim_checkpoint(model, run.checkpoint, skip_logits=True)
  slim_parity.assert_close(np.asarray(model(run.images, training=False)),
                           run.end_points["Mixed_5c"].mean(axis=(1, 2)), "avg-pooled Mixed_5c")
