"""resnet_v1_50 against the real TF-slim ResNet-50 v1 (tf-slim pip package) and its published layout."""

import pytest

import slim_parity
from inception_tf.models import create_model, model_info

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("resnet_v1")


MODEL = "resnet_v1_50"
SMALL = 150  # conv2d_same on odd maps: 150 -> 75 -> 38 -> 19 -> 10 -> 5


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
  # slim records neither pool1 nor the global mean (its shape is in test_endpoint_shapes).
  assert set(compared) == set(model_info(MODEL).endpoints) - {"pool1", "global_pool"}
  ours = slim_parity.our_endpoints(models[size], ["global_pool"], run.images)
  slim_parity.assert_close(ours["global_pool"],
                           run.end_points["resnet_v1_50/block4"].mean(axis=(1, 2), keepdims=True),
                           "global_pool")


def test_variables_and_parameter_counts_equal_published(slim_runs, models):
  # 1000 classes as the published checkpoint; trainable = torchvision's ResNet-50 (25,557,032).
  slim_parity.assert_published_layout(MODEL, models[224], slim_runs, total=25_610_152,
                                      trainable=25_557_032)


def test_resnet_batch_norm_and_preprocessing(models):
  info = model_info(MODEL)
  assert (info.preprocessing, info.default_image_size, info.slim_scope) == ("vgg", 224, MODEL)
  assert info.num_classes == 1000 and models[224].output["logits"].shape[-1] == 1000
  bn = models[224].get_layer("block2.unit_1.bottleneck_v1.conv2.BatchNorm")
  assert bn.scale and bn.center and bn.epsilon == 1e-5 and bn.momentum == 0.997
  # The strided 3x3 is slim's conv2d_same: explicit 1/1 padding and a 'VALID' convolution.
  assert models[224].get_layer("block1.unit_3.bottleneck_v1.conv2.Pad").padding == ((1, 1), (1, 1))
  conv = models[224].get_layer("block1.unit_3.bottleneck_v1.conv2")
  assert conv.padding == "valid" and conv.strides == (2, 2)
  assert models[224].get_layer("conv1.Pad").padding == ((3, 3), (3, 3))


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  pool1 = -(-size // 4)  # conv1 and pool1 both halve, rounding up
  slim_parity.assert_endpoint_shapes(MODEL, models[size], slim_runs[size], size,
                                     extra={"pool1": (pool1, pool1, 64),
                                            "global_pool": (1, 1, 2048)})


def test_minimum_input_size():
  slim_parity.assert_minimum_size(MODEL, "block4")


def test_features_without_top(slim_runs):
  slim_parity.assert_pooled_features(MODEL, slim_runs[SMALL], SMALL, "block4")
  with pytest.raises(ValueError, match="auxiliary"):
    create_model(MODEL, aux_logits=True)
