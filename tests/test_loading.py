"""inception_tf.checkpoints.load: one loader that sniffs every format we read, with flag-named errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from inception_tf import checkpoints
from inception_tf.checkpoints import loading
from inception_tf.checkpoints import run as run_lib
from inception_tf.models import create_model
from inception_tf.train import checkpointing

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("loading")


OPTIONS = {"depth_multiplier": 0.25}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
NAMES = ["background"] + [f"n{i}" for i in range(1, 7)]


def _model(seed):
  tf.keras.utils.set_random_seed(seed)
  model = create_model("inception_v1", 7, image_size=32, **OPTIONS)
  for variable in model.weights:  # BN statistics too, so a wrong restore shows in the logits
    if "moving_variance" in variable.path:
      variable.assign(np.random.default_rng(seed).uniform(0.5, 2.0, variable.shape))
  return model


def _logits(model):
  return model(IMAGES, training=False)["logits"].numpy()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  base = tmp_path_factory.mktemp("sources")
  model = _model(1)
  run_dir = str(base / "run")
  tf.train.CheckpointManager(checkpointing.make_checkpoint(model), run_dir, 2).save(5)
  run_lib.write_run_config(run_dir, {"model": "inception_v1", "model_options": OPTIONS,
                                     "num_classes": 7, "image_size": 32, "aux_logits": False,
                                     "preprocessing": "inception",
                                     "label_map": {"ids": NAMES, "names": NAMES}})
  slim = checkpoints.save_slim_checkpoint(model, str(base / "slim" / "model.ckpt"))
  keras_file = str(base / "model.keras")
  model.save(keras_file)
  export_dir = base / "export"
  export_dir.mkdir()
  model.save(str(export_dir / "model.keras"))
  (export_dir / "export_info.json").write_text(json.dumps(
      {"preprocessing": "vgg", "label_map": {"ids": NAMES, "names": NAMES}}))
  torch_file = base / "weights.safetensors"
  torch_file.write_bytes(b"")
  return {"model": model, "run": run_dir, "prefix": os.path.join(run_dir, "ckpt-5"),
          "slim": slim, "keras": keras_file, "export": str(export_dir),
          "torch": str(torch_file), "logits": _logits(model)}


def test_sniff_tells_every_format(sources):
  assert loading.sniff(sources["run"]) == (loading.FORMAT_RUN, sources["prefix"])
  assert loading.sniff(sources["prefix"]) == (loading.FORMAT_RUN, sources["prefix"])
  assert loading.sniff(sources["slim"]) == (loading.FORMAT_SLIM, sources["slim"])
  assert loading.sniff(sources["keras"])[0] == loading.FORMAT_KERAS
  assert loading.sniff(sources["export"])[0] == loading.FORMAT_EXPORT
  assert loading.sniff(sources["torch"])[0] == loading.FORMAT_TORCH
  with pytest.raises(FileNotFoundError, match="--checkpoint=/no/such/run"):
    loading.sniff("/no/such/run")


def test_a_run_needs_nothing_else(sources):
  loaded = checkpoints.load(sources["run"])
  assert (loaded.name, loaded.format, loaded.step, loaded.num_classes, loaded.image_size,
          loaded.options) == ("inception_v1", loading.FORMAT_RUN, 5, 7, 32, OPTIONS)
  assert list(loaded.label_map.names) == NAMES and loaded.preprocessing == "inception"
  np.testing.assert_allclose(_logits(loaded.model), sources["logits"], rtol=1e-5, atol=1e-5)


def test_slim_keras_and_export_load_the_same_network(sources):
  slim = checkpoints.load(sources["slim"], model="inception_v1", model_options=OPTIONS,
                          image_size=32)
  assert (slim.format, slim.num_classes) == (loading.FORMAT_SLIM, 7)  # width from the logits
  for loaded in (slim, checkpoints.load(sources["keras"]), checkpoints.load(sources["export"])):
    np.testing.assert_allclose(_logits(loaded.model), sources["logits"], rtol=1e-5, atol=1e-5)
  exported = checkpoints.load(sources["export"])
  assert exported.preprocessing == "vgg" and list(exported.label_map.names) == NAMES
  with pytest.raises(checkpoints.LoadError, match="pass --model"):
    checkpoints.load(sources["slim"])


def test_contradictions_name_the_flag(sources):
  with pytest.raises(checkpoints.LoadError, match=r"trained as 'inception_v1' \(.*config\.json\)"
                     r", not --model=inception_v3"):
    checkpoints.load(sources["run"], model="inception_v3")
  with pytest.raises(checkpoints.LoadError, match="--num_classes=9 contradicts"):
    checkpoints.load(sources["run"], num_classes=9)
  with pytest.raises(checkpoints.LoadError, match="not --image_size=64; drop --image_size"):
    checkpoints.load(sources["keras"], image_size=64)
  with pytest.raises(checkpoints.LoadError, match="not --model=inception_v3; drop --model"):
    checkpoints.load(sources["keras"], model="inception_v3")
  with pytest.raises(checkpoints.LoadError, match="--checkpoint_format=slim"):
    checkpoints.load(sources["run"], checkpoint_format="slim")


def test_load_weights_initialises_a_built_model_from_any_source(sources):
  for source in ("run", "slim", "keras"):
    target = _model(2)
    assert not np.allclose(_logits(target), sources["logits"], atol=1e-3)
    message = checkpoints.load_weights(target, sources[source])
    assert message.startswith("Initialised")
    np.testing.assert_allclose(_logits(target), sources["logits"], rtol=1e-5, atol=1e-5,
                               err_msg=source)
  with pytest.raises(checkpoints.LoadError, match="drop --checkpoint_exclude_scopes"):
    checkpoints.load_weights(_model(3), sources["keras"], exclude_scopes=["InceptionV1/Logits"])
