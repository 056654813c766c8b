"""Tests of inception_tf.models.stats and tools/model_stats.py against counts done by hand."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

from inception_tf.models import stats

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tiny_model():
  """8x8x3 -> conv -> BN -> separable -> depthwise -> dense heads; every count is done by hand."""
  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", name="Conv")(inputs)  # 8 x 8 x 4
  x = keras.layers.BatchNormalization(scale=False, name="Conv.BatchNorm")(x)
  x = keras.layers.SeparableConv2D(6, 3, strides=2, padding="same", depth_multiplier=2,
                                   name="Separable")(x)  # 4 x 4 x 6
  x = keras.layers.DepthwiseConv2D(3, padding="valid", name="Depthwise")(x)  # 2 x 2 x 6
  spatial = keras.layers.Dense(2, name="SpatialDense")(x)  # 2 x 2 x 2
  x = keras.layers.MaxPooling2D(2, name="Pool")(x)  # 1 x 1 x 6
  x = keras.layers.Flatten(name="Flatten")(x)
  logits = keras.layers.Dense(5, name="Logits")(x)
  aux = keras.layers.Dense(3, name="AuxLogits.Dense")(x)
  return keras.Model(inputs, {"logits": logits, "aux_logits": aux, "spatial": spatial},
                     name="Tiny")


# Multiply-adds by hand (output positions x kernel size).
CONV = 8 * 8 * (3 * 3 * 3 * 4)  # 6912
SEPARABLE = 4 * 4 * (3 * 3 * 4 * 2) + 4 * 4 * (8 * 6)  # depthwise 1152 + pointwise 768
DEPTHWISE = 2 * 2 * (3 * 3 * 6)  # 216
SPATIAL_DENSE = 2 * 2 * (6 * 2)  # 48: Dense on a 4-D tensor acts at every position
LOGITS = 6 * 5
AUX = 6 * 3

# Parameters by hand.
TRAINABLE = ((3 * 3 * 3 * 4 + 4)  # conv kernel + bias
             + 4  # BN beta (no gamma)
             + (3 * 3 * 4 * 2 + 8 * 6 + 6)  # separable depthwise + pointwise + bias
             + (3 * 3 * 6 + 6)  # depthwise kernel + bias
             + (6 * 2 + 2) + (6 * 5 + 5) + (6 * 3 + 3))
NON_TRAINABLE = 4 + 4  # BN moving mean and variance
AUX_PARAMETERS = 6 * 3 + 3


@pytest.fixture(scope="module")
def tiny():
  return _tiny_model()


def test_multiply_adds_by_layer_match_hand_counts(tiny):
  assert stats.multiply_adds_by_layer(tiny) == {
      "Conv": CONV, "Separable": SEPARABLE, "Depthwise": DEPTHWISE,
      "SpatialDense": SPATIAL_DENSE, "Logits": LOGITS, "AuxLogits.Dense": AUX}


def test_count_multiply_adds_total_and_without_aux(tiny):
  total = CONV + SEPARABLE + DEPTHWISE + SPATIAL_DENSE + LOGITS
  assert stats.count_multiply_adds(tiny) == total + AUX
  assert stats.count_multiply_adds(tiny, exclude=stats.is_aux_layer) == total


def test_count_parameters_match_hand_counts_and_keras(tiny):
  counts = stats.count_parameters(tiny)
  assert counts == stats.ParameterCount(total=TRAINABLE + NON_TRAINABLE, trainable=TRAINABLE,
                                        non_trainable=NON_TRAINABLE)
  assert counts.total == tiny.count_params()
  without_aux = stats.count_parameters(tiny, exclude=stats.is_aux_layer)
  assert without_aux.trainable == TRAINABLE - AUX_PARAMETERS
  assert without_aux.non_trainable == NON_TRAINABLE


def test_nested_model_is_descended_into(tiny):
  inputs = keras.Input((8, 8, 3))
  outer = keras.Model(inputs, tiny(inputs)["logits"], name="Outer")
  assert stats.count_multiply_adds(outer) == CONV + SEPARABLE + DEPTHWISE + SPATIAL_DENSE + LOGITS + AUX
  assert stats.count_parameters(outer).total == tiny.count_params()


def test_unknown_spatial_size_is_a_clear_error():
  inputs = keras.Input((None, None, 3))
  model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
  with pytest.raises(ValueError, match="fixed input size"):
    stats.count_multiply_adds(model)


def test_is_aux_layer():
  assert stats.is_aux_layer("AuxLogits.Conv2d_1b_1x1")
  assert stats.is_aux_layer("AuxLogits")
  assert not stats.is_aux_layer("Logits.Conv2d_1c_1x1")
  assert not stats.is_aux_layer("AuxLogitsX")


def test_tool_prints_json_for_one_model():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run(
      [sys.executable, str(REPO / "tools" / "model_stats.py"), "--models=inception_v1", "--json"],
      capture_output=True, text=True, env=env, check=True, timeout=1800)
  (row,) = json.loads(out.stdout)
  assert row["model"] == "inception_v1" and row["image_size"] == 224
  # TF-slim's inception_v1 (GoogLeNet with BN, 1001 classes): 1.5G multiply-adds as published.
  assert row["multiply_adds_ratio"] == pytest.approx(1.0, abs=0.01)
  assert row["parameters"] == row["parameters_without_aux"]  # slim's v1 has no aux head
  assert row["trainable_parameters"] < row["parameters"]


def test_tool_rejects_unknown_model():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run(
      [sys.executable, str(REPO / "tools" / "model_stats.py"), "--models=inception_v9"],
      capture_output=True, text=True, env=env, timeout=1800)
  assert out.returncode != 0
  assert "inception_v9" in out.stderr and "inception_v1" in out.stderr
