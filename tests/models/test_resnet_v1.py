"""resnet_v1_50 against the real TF-slim ResNet-50 v1 (tf-slim pip package) and its published layout."""

import numpy as np
import pytest

import keras

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model, feature_extractor, model_info, naming

MODEL = "resnet_v1_50"
SMALL = 150  # conv2d_same on odd maps: 150 -> 75 -> 38 -> 19 -> 10 -> 5


@pytest.fixture(scope="module")
def slim_runs(tmp_path_factory):
  """{size: slim_parity.SlimRun} of the real slim network at 224 and SMALL."""
  return {size: slim_parity.run_reference(MODEL, size, str(tmp_path_factory.mktemp(f"slim{size}")))
          for size in (224, SMALL)}


@pytest.fixture(scope="module")
def models(slim_runs):
  """{size: our resnet_v1_50 at that size with that size's slim checkpoint loaded}."""
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
  # slim records neither pool1 nor the global mean; both are checked below.
  assert set(compared) == set(model_info(MODEL).endpoints) - {"pool1", "global_pool"}
  ours = slim_parity.our_endpoints(models[size], ["global_pool", "pool1"], run.images)
  slim_parity.assert_close(ours["global_pool"],
                           run.end_points["resnet_v1_50/block4"].mean(axis=(1, 2), keepdims=True),
                           "global_pool")
  pool1 = -(-size // 4)  # conv1 and pool1 both halve, rounding up
  assert ours["pool1"].shape == (2, pool1, pool1, 64)


def test_variables_equal_published_layout(slim_runs, models):
  published = slim_parity.published_variables(MODEL)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(models[224]).items()}
  assert ours == published
  for size in (224, SMALL):
    assert slim_runs[size].variable_shapes == published


def test_parameter_counts_equal_published(models):
  total, trainable = slim_parity.parameter_counts(slim_parity.published_variables(MODEL))
  model = models[224]
  assert model.count_params() == total == 25_612_201
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable == 25_559_081


def test_resnet_batch_norm_and_preprocessing(models):
  info = model_info(MODEL)
  assert (info.preprocessing, info.default_image_size, info.slim_scope) == ("vgg", 224, MODEL)
  bn = models[224].get_layer("block2.unit_1.bottleneck_v1.conv2.BatchNorm")
  assert bn.scale and bn.center and bn.epsilon == 1e-5 and bn.momentum == 0.997
  # The strided 3x3 is slim's conv2d_same: explicit 1/1 padding and a 'VALID' convolution.
  assert models[224].get_layer("block1.unit_3.bottleneck_v1.conv2.Pad").padding == ((1, 1), (1, 1))
  conv = models[224].get_layer("block1.unit_3.bottleneck_v1.conv2")
  assert conv.padding == "valid" and conv.strides == (2, 2)
  assert models[224].get_layer("conv1.Pad").padding == ((3, 3), (3, 3))


@pytest.mark.parametrize("size", [224, SMALL])
def test_endpoint_shapes(size, slim_runs, models):
  golden = slim_parity.endpoint_shapes(MODEL)[str(size)]
  extractor = feature_extractor(models[size], list(golden))
  ours = {name: list(t.shape[1:]) for name, t in extractor.output.items()}
  assert ours == golden
  run = slim_runs[size]
  assert {name: list(run.end_points[run.slim_key(name)].shape[1:]) for name in golden} == golden


def test_minimum_input_size():
  assert model_info(MODEL).min_image_size == 32
  with pytest.raises(ValueError, match="minimum input size 32"):
    create_model(MODEL, image_size=31)
  model = create_model(MODEL, image_size=32)
  assert feature_extractor(model, ["block4"]).output["block4"].shape[1:] == (1, 1, 2048)
  logits = model(np.zeros((1, 32, 32, 3), np.float32), training=False)["logits"]
  assert logits.shape == (1, 1001) and np.all(np.isfinite(logits))


def test_features_without_top(slim_runs):
  run = slim_runs[SMALL]
  model = create_model(MODEL, image_size=SMALL, include_top=False, pooling="avg")
  checkpoints.load_slim_checkpoint(model, run.checkpoint, skip_logits=True)
  slim_parity.assert_close(np.asarray(model(run.images, training=False)),
                           run.end_points["resnet_v1_50/block4"].mean(axis=(1, 2)),
                           "avg-pooled block4")
  with pytest.raises(ValueError, match="auxiliary"):
    create_model(MODEL, aux_logits=True)
