"""End-to-end tests of tools/convert_slim_checkpoint.py and inception_tf.convert."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf import checkpoints
from inception_tf import convert
from inception_tf.models import create_model
from inception_tf.models import naming

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("convert")


REPO = pathlib.Path(__file__).resolve().parents[1]
V3_OPTIONS = {"depth_multiplier": 0.1}
V3_SIZE = 75
V1_OPTIONS = {"depth_multiplier": 0.25}
V1_SIZE = 64


def _randomized_checkpoint(model, prefix, seed, with_ema):
  rng = np.random.default_rng(seed)
  for name, variable in naming.slim_variables(model).items():
    if name.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, variable.shape)
    else:
      value = rng.normal(0.0, 0.1, variable.shape)
    variable.assign(value.astype(np.float32))
  extra = {}
  if with_ema:
    extra = {f"{name}{checkpoints.EMA_SUFFIX}": (v.numpy() * 0.5).astype(np.float32)
             for name, v in naming.slim_variables(model).items()}
  return checkpoints.save_slim_checkpoint(model, prefix, global_step=100, extra=extra)


@pytest.fixture(scope="module")
def v3_checkpoint(tmp_path_factory):
  model = create_model("inception_v3", num_classes=1001, image_size=V3_SIZE, **V3_OPTIONS)
  prefix = str(tmp_path_factory.mktemp("v3") / "model.ckpt-100")
  return _randomized_checkpoint(model, prefix, seed=0, with_ema=True)


@pytest.fixture(scope="module")
def v1_checkpoint(tmp_path_factory):
  model = create_model("inception_v1", num_classes=1001, image_size=V1_SIZE, **V1_OPTIONS)
  prefix = str(tmp_path_factory.mktemp("v1") / "model.ckpt")
  return _randomized_checkpoint(model, prefix, seed=1, with_ema=False)


def test_cli_converts_with_ema_and_background_class_dropped(tmp_path, v3_checkpoint):
  output = tmp_path / "out" / "v3.keras"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(
      [sys.executable, str(REPO / "tools" / "convert_slim_checkpoint.py"), "--model=inception_v3",
       f"--checkpoint={v3_checkpoint}.index", f"--output={output}", "--drop_background_class",
       "--use_ema", f"--image_size={V3_SIZE}", "--model_options=depth_multiplier=0.1"],
      capture_output=True, text=True, env=env, timeout=1800)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "1000 classes, aux head on" in result.stdout
  assert sorted(os.listdir(output.parent)) == ["v3.keras"]
  # The saved file loads without custom objects and holds the EMA shadows, logits 1..1000.
  model = keras.models.load_model(output, compile=False)
  assert model.name == "InceptionV3"
  assert model.output["logits"].shape[-1] == 1000
  reader = tf.train.load_checkpoint(v3_checkpoint)
  variables = naming.slim_variables(model)
  assert any("AuxLogits" in name for name in variables)
  for name, variable in variables.items():
    expected = reader.get_tensor(name + checkpoints.EMA_SUFFIX)
    if name.startswith(("InceptionV3/Logits/Conv2d_1c_1x1/",
                        "InceptionV3/AuxLogits/Conv2d_2b_1x1/")):
      expected = expected[..., 1:]
    np.testing.assert_array_equal(variable.numpy(), expected, err_msg=name)


def test_checkpoint_of_another_network_fails_and_writes_nothing(tmp_path, v3_checkpoint):
  output = tmp_path / "v1.keras"
  with pytest.raises(checkpoints.SlimCheckpointMismatch) as error:
    convert.convert_slim_checkpoint("inception_v1", v3_checkpoint, str(output),
                                    image_size=V1_SIZE, model_options=V1_OPTIONS)
  assert "top-level scopes are ['InceptionV3']" in str(error.value)
  assert "missing from the checkpoint" in str(error.value)
  assert os.listdir(tmp_path) == []


def test_other_depth_multiplier_is_a_shape_mismatch(tmp_path, v1_checkpoint):
  with pytest.raises(checkpoints.SlimCheckpointMismatch, match="shape mismatches"):
    convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(tmp_path / "x.keras"),
                                    image_size=V1_SIZE, model_options={"depth_multiplier": 0.5})
  assert os.listdir(tmp_path) == []


def test_library_conversion_and_overwrite_rules(tmp_path, v1_checkpoint):
  output = tmp_path / "v1.keras"
  report = convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(output),
                                           image_size=V1_SIZE, model_options=V1_OPTIONS)
  assert report.num_classes == 1001 and not report.aux_logits and report.ema_used == 0
  assert report.variables == len(checkpoints.read_slim_checkpoint(v1_checkpoint)) - 1  # global_step
  assert report.max_reload_difference == 0.0
  with pytest.raises(ValueError, match="exists; pass overwrite=True"):
    convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(output),
                                    image_size=V1_SIZE, model_options=V1_OPTIONS)
  with pytest.raises(ValueError, match="must be a `.keras` file"):
    convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(tmp_path / "v1.h5"))
  with pytest.raises(ValueError, match="Unknown model 'inception_v9'"):
    convert.convert_slim_checkpoint("inception_v9", v1_checkpoint, str(tmp_path / "v9.keras"))


def test_verification_catches_a_wrong_value(tmp_path, v1_checkpoint, monkeypatch):
  real_load = checkpoints.load_slim_checkpoint

  def corrupting_load(model, path, **kwargs):
    report = real_load(model, path, **kwargs)
    variable = naming.slim_variables(model)["InceptionV1/Mixed_4b/Branch_1/Conv2d_0b_3x3/weights"]
    variable.assign(variable.numpy() + 1e-3)
    return report

  monkeypatch.setattr(convert.checkpoints, "load_slim_checkpoint", corrupting_load)
  with pytest.raises(convert.ConversionError,
                     match="Mixed_4b/Branch_1/Conv2d_0b_3x3/weights: model value differs"):
    convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(tmp_path / "v1.keras"),
                                    image_size=V1_SIZE, model_options=V1_OPTIONS)
  assert os.listdir(tmp_path) == []


def test_a_reload_that_differs_leaves_no_file(tmp_path, v1_checkpoint, monkeypatch):
  real_load_model = keras.models.load_model

  def drifting_load_model(path, **kwargs):
    model = real_load_model(path, **kwargs)
    kernel = model.get_layer("Logits.Conv2d_0c_1x1").kernel
    kernel.assign(kernel.numpy() * 1.01)
    return model

  monkeypatch.setattr(keras.models, "load_model", drifting_load_model)
  with pytest.raises(convert.ConversionError, match="gives outputs differing"):
    convert.convert_slim_checkpoint("inception_v1", v1_checkpoint, str(tmp_path / "v1.keras"),
                                    image_size=V1_SIZE, model_options=V1_OPTIONS)
  assert os.listdir(tmp_path) == []
