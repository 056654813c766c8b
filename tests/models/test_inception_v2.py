"""inception_v2 against the real TF-slim Inception-v2 (tf-slim pip package) and its published layout."""

import pytest

import keras

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model, model_info, naming

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("inception_v2")


MODEL = "inception_v2"
SMALL = 150  # Mixed_5c is 5x5: slim shrinks its 7x7 pool to 5x5, a global mean like ours


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
  # tf-slim 1.1.0 records no endpoint for the final pool; every other endpoint is compared.
  assert set(compared) == set(model_info(MODEL).endpoints) - {"AvgPool_1a"}


def test_variables_and_parameter_counts_equal_published(slim_runs, models):
  slim_parity.assert_published_layout(MODEL, models[224], slim_runs, total=11_199_137,
                                      trainable=11_179_361)


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


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  slim_parity.assert_endpoint_shapes(MODEL, models[size], slim_runs[size], size,
                                     extra={"AvgPool_1a": (1, 1, 1024)})


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
  slim_parity.assert_minimum_size(MODEL, "Mixed_5c", depth_multiplier=0.25)


def test_features_without_top(slim_runs):
  slim_parity.assert_pooled_features(MODEL, slim_runs[SMALL], SMALL, "Mixed_5c")
