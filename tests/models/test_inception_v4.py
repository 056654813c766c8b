"""Inception-v4 in TF-slim's layout: published variables, shapes, sizes, round trips.

tf-slim's pip package ships no inception_v4, so the layout is checked against the published
checkpoint's variable list (tests/golden/inception_v4.vars.json: every name, every shape).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import slim_parity
from inception_tf import checkpoints
from inception_tf.models import create_model
from inception_tf.models import inception_v4
from inception_tf.models import model_info
from inception_tf.models import naming
from inception_tf.models.registry import endpoint_layer_name


# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("inception_v4")


def _randomize(model: keras.Model, seed: int) -> None:
  """Random weights, biases, betas and non-trivial BN moving statistics."""
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
      value = rng.normal(0.0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
    variable.assign(value.astype(np.float32))


def _shapes(model: keras.Model) -> dict[str, tuple]:
  return {e: tuple(model.get_layer(endpoint_layer_name(model, e)).output.shape[1:])
          for e in inception_v4.ENDPOINTS}


@pytest.fixture(scope="module")
def v4():
  model = create_model("inception_v4")
  _randomize(model, seed=1)
  return model


def test_variables_equal_the_published_checkpoint(v4):
  published = slim_parity.published_variables("inception_v4")
  ours = dict(checkpoints.variable_names(v4))
  assert sorted(set(published) - set(ours)) == []  # nothing missing
  assert sorted(set(ours) - set(published)) == []  # nothing extra
  assert {n: s for n, s in ours.items() if published[n] != s} == {}  # no shape differs
  assert len(ours) == len(published) == 608


def test_parameter_counts(v4):
  """Equal to the published list; the v4 paper states no parameter count, the issue says 42.7M."""
  published = slim_parity.published_variables("inception_v4")
  total, trainable = slim_parity.parameter_counts(published)
  assert v4.count_params() == total == 46_074_066
  assert sum(int(np.prod(v.shape)) for v in v4.trainable_weights) == trainable
  aux = sum(int(np.prod(s)) for n, s in published.items() if "/AuxLogits/" in n)
  ours_aux = sum(int(np.prod(v.shape)) for n, v in naming.slim_variables(v4).items()
                 if "/AuxLogits/" in n)
  assert ours_aux == aux
  without_aux = total - aux
  print(f"\ninception_v4 (1001 classes): total {total:,}, trainable {trainable:,}, "
        f"without aux {without_aux:,}")
  assert f"{without_aux / 1e6:.1f}M" == "42.7M"  # the published figure


def test_endpoint_shapes_299(v4):
  assert model_info("inception_v4").endpoints == inception_v4.ENDPOINTS
  expected = {
      "Conv2d_1a_3x3": (149, 149, 32), "Conv2d_2a_3x3": (147, 147, 32),
      "Conv2d_2b_3x3": (147, 147, 64), "Mixed_3a": (73, 73, 160), "Mixed_4a": (71, 71, 192),
      "Mixed_5a": (35, 35, 384), "Mixed_6a": (17, 17, 1024), "Mixed_7a": (8, 8, 1536),
      "AuxLogits": (1001,), "global_pool": (1, 1, 1536), "PreLogitsFlatten": (1536,),
      "Logits": (1001,),
  }
  expected.update({f"Mixed_5{c}": (35, 35, 384) for c in "bcde"})
  expected.update({f"Mixed_6{c}": (17, 17, 1024) for c in "bcdefgh"})
  expected.update({f"Mixed_7{c}": (8, 8, 1536) for c in "bcd"})
  assert _shapes(v4) == expected
  assert list(_shapes(v4)) == list(inception_v4.ENDPOINTS)


def test_slim_checkpoint_round_trip(v4, tmp_path):
  images = slim_parity.make_images(299, preprocessing="inception")
  prefix = checkpoints.save_slim_checkpoint(v4, str(tmp_path / "model.ckpt"))
  assert checkpoints.read_slim_checkpoint(prefix) == slim_parity.published_variables(
      "inception_v4")
  fresh = create_model("inception_v4")
  expected = v4(images, training=False)
  assert not np.allclose(fresh(images, training=False)["logits"].numpy(),
                         expected["logits"].numpy(), atol=1e-3)
  report = checkpoints.load_slim_checkpoint(fresh, prefix)
  assert len(report.loaded) == 608
  got = fresh(images, training=False)
  np.testing.assert_array_equal(got["logits"].numpy(), expected["logits"].numpy())
  np.testing.assert_array_equal(got["aux_logits"].numpy(), expected["aux_logits"].numpy())
  assert np.std(expected["logits"].numpy()) > 1e-3


@pytest.mark.slow
def test_minimum_size_shapes_and_keras_round_trip(tmp_path):
  """75 is the smallest input; the aux head shrinks its pool there; `.keras` reloads exactly."""
  with pytest.raises(ValueError, match="minimum input size 75"):
    create_model("inception_v4", image_size=74)
  model = create_model("inception_v4", image_size=75, num_classes=10)
  expected = {
      "Conv2d_1a_3x3": (37, 37, 32), "Conv2d_2a_3x3": (35, 35, 32), "Conv2d_2b_3x3": (35, 35, 64),
      "Mixed_3a": (17, 17, 160), "Mixed_4a": (15, 15, 192), "Mixed_5a": (7, 7, 384),
      "Mixed_6a": (3, 3, 1024), "Mixed_7a": (1, 1, 1536), "AuxLogits": (10,),
      "global_pool": (1, 1, 1536), "PreLogitsFlatten": (1536,), "Logits": (10,),
  }
  expected.update({f"Mixed_5{c}": (7, 7, 384) for c in "bcde"})
  expected.update({f"Mixed_6{c}": (3, 3, 1024) for c in "bcdefgh"})
  expected.update({f"Mixed_7{c}": (1, 1, 1536) for c in "bcd"})
  assert _shapes(model) == expected
  assert model.get_layer("AuxLogits.AvgPool_1a_5x5").pool_size == (3, 3)
  assert tuple(model.get_layer("AuxLogits.Conv2d_2a").kernel.shape) == (1, 1, 128, 768)
  _randomize(model, seed=2)
  images = slim_parity.make_images(75, preprocessing="inception")
  before = model(images, training=False)
  path = str(tmp_path / "inception_v4.keras")
  model.save(path)
  reloaded = keras.saving.load_model(path)
  after = reloaded(images, training=False)
  for key in ("logits", "aux_logits"):
    assert np.all(np.isfinite(before[key].numpy()))
    np.testing.assert_array_equal(after[key].numpy(), before[key].numpy())


def test_aux_pool_matches_slim_from_107():
  """slim's 5x5 aux pool fits Mixed_6h from 107 x 107 inputs up (5 x 5 grid); below it shrinks."""
  def grid_6h(size):  # Figure 3 stem + Reduction-A, VALID paddings
    size = (size - 3) // 2 + 1 - 2          # Conv2d_1a_3x3, Conv2d_2a_3x3
    size = (size - 3) // 2 + 1 - 2          # Mixed_3a, Mixed_4a
    return ((size - 3) // 2 + 1 - 3) // 2 + 1  # Mixed_5a, Mixed_6a
  assert grid_6h(299) == 17 and grid_6h(75) == 3
  assert grid_6h(inception_v4.SLIM_AUX_MIN_IMAGE_SIZE) == 5
  assert grid_6h(inception_v4.SLIM_AUX_MIN_IMAGE_SIZE - 1) == 4
  assert inception_v4.aux_pool_size(17) == 5 and inception_v4.aux_pool_size(3) == 3


def test_features_without_top(v4, tmp_path):
  """include_top=False, pooling="avg" gives the full network's global_pool (checked against slim
  in test_slim_references.py) for the same weights, without any classifier variable."""
  model = create_model("inception_v4", include_top=False, pooling="avg")
  assert model.output.shape[1:] == (1536,)
  assert not any("Logits" in n for n in naming.slim_variables(model))
  prefix = checkpoints.save_slim_checkpoint(v4, str(tmp_path / "model.ckpt"))
  report = checkpoints.load_slim_checkpoint(model, prefix, skip_logits=True)
  assert len(report.loaded) == 608 - 12  # all but the 2 Logits and 10 AuxLogits variables
  images = slim_parity.make_images(299, preprocessing="inception")
  expected = slim_parity.our_endpoints(v4, ["global_pool"], images)["global_pool"][:, 0, 0, :]
  got = np.asarray(model(images, training=False))
  slim_parity.assert_close(got, expected, "avg-pooled Mixed_7d")
  assert not np.allclose(got[0], got[1], atol=1e-3)
