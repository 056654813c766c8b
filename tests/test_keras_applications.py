"""keras.applications InceptionV3 / InceptionResNetV2 weights imported into our models.

keras.applications' models get random weights and non-trivial batch-norm statistics; after the
import our feature maps and logits must equal theirs within 1e-4 relative, checked here
independently of the import's own verification, from a model object and from the files users have
(`.keras`, `.weights.h5`, and the legacy `.h5` weight format keras.applications distributes).
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

from inception_tf.keras_applications import import_keras_applications
from inception_tf.keras_applications import KerasApplicationsMismatch
from inception_tf.models import create_model
from inception_tf.models import stats


# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("keras_applications")


def _randomize(model: keras.Model, seed: int) -> None:
  """He-normal kernels, random biases/betas, moving means ~N(0, 0.1), variances in [0.5, 1.5]."""
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    name, shape = variable.path, tuple(variable.shape)
    if name.endswith("moving_mean"):
      value = rng.normal(0.0, 0.1, shape)
    elif name.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith(("beta", "bias")):
      value = rng.normal(0.0, 0.1, shape)
    else:
      value = rng.normal(0.0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
    variable.assign(value.astype(np.float32))


def _zero(model: keras.Model) -> None:
  for variable in model.weights:
    variable.assign(np.zeros(variable.shape, np.float32))


def _images(size: int) -> np.ndarray:
  import skimage.data
  import skimage.transform
  photo = skimage.transform.resize(skimage.data.chelsea(), (size, size), anti_aliasing=True)
  noise = np.random.default_rng(size).uniform(0.0, 1.0, (size, size, 3))
  return (np.stack([photo, noise]) * 2.0 - 1.0).astype(np.float32)


def _assert_close(ours, theirs, what: str) -> None:
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  assert ours.shape == theirs.shape, f"{what}: {ours.shape} vs {theirs.shape}"
  scale = float(np.max(np.abs(theirs)))
  assert scale > 0, what
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


def _assert_equal_outputs(ours: keras.Model, theirs: keras.Model, *, our_features: str,
                          their_features: str, background: bool, size: int) -> None:
  """Feature maps equal, and keras' softmax equals the softmax of our logits (w/o background)."""
  images = _images(size)
  ours_fn = keras.Model(ours.input, {"features": ours.get_layer(our_features).output,
                                     "logits": ours.output["logits"]})
  theirs_fn = keras.Model(theirs.input, {"features": theirs.get_layer(their_features).output,
                                         "probabilities": theirs.output})
  got, want = ours_fn(images, training=False), theirs_fn(images, training=False)
  _assert_close(got["features"], want["features"], "feature map")
  logits = np.asarray(got["logits"])[:, 1:] if background else np.asarray(got["logits"])
  probabilities = np.asarray(keras.ops.softmax(logits, axis=-1))
  np.testing.assert_allclose(probabilities, np.asarray(want["probabilities"]), rtol=1e-4,
                             atol=1e-6, err_msg="class probabilities")
  # Not a vacuous comparison: the two images are classified differently.
  assert np.max(np.abs(logits[0] - logits[1])) > 1e-3


def _write_legacy_h5_weights(model: keras.Model, path: str) -> None:
  """The format of keras.applications' downloads (`inception_v3_weights_tf_dim_ordering_...h5`)."""
  from keras.src.legacy.saving import legacy_h5_format
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


# --- Inception-v3 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_v3():
  model = keras.applications.InceptionV3(weights=None)  # 299, 1000 classes, softmax
  _randomize(model, seed=3)
  return model


@pytest.fixture(scope="module")
def ours_v3():
  return create_model("inception_v3")  # 1001 classes with background, aux head


def test_inception_v3_from_model_into_1001_classes(ours_v3, keras_v3):
  report = import_keras_applications(ours_v3, keras_v3)
  assert len(report.pairs) == 2 * 94  # 94 conv + batch-norm pairs in the base
  assert report.pairs[0] == ("Conv2d_1a_3x3", keras_v3.layers[1].name)
  assert report.feature_error <= 1e-4 and report.logits_error <= 1e-4
  assert "background" in report.classifier
  assert sorted(report.left_as_initialised) == [
      "AuxLogits.Conv2d_1b_1x1", "AuxLogits.Conv2d_1b_1x1.BatchNorm", "AuxLogits.Conv2d_2a_5x5",
      "AuxLogits.Conv2d_2a_5x5.BatchNorm", "AuxLogits.Conv2d_2b_1x1"]
  _assert_equal_outputs(ours_v3, keras_v3, our_features="Mixed_7c", their_features="mixed10",
                        background=True, size=299)
  head = ours_v3.get_layer("Logits.Conv2d_1c_1x1")
  np.testing.assert_array_equal(head.kernel.numpy()[0, 0, :, 0], 0.0)
  np.testing.assert_array_equal(head.kernel.numpy()[0, 0, :, 1:],
                                keras_v3.get_layer("predictions").kernel.numpy())


def test_inception_v3_1000_classes_has_keras_parameter_count(keras_v3):
  ours = create_model("inception_v3", num_classes=1000, aux_logits=False)
  assert ours.count_params() == keras_v3.count_params() == 23_851_784
  report = import_keras_applications(ours, keras_v3)
  assert report.classifier == "1000 classes copied" and report.left_as_initialised == []
  _assert_equal_outputs(ours, keras_v3, our_features="Mixed_7c", their_features="mixed10",
                        background=False, size=299)


@pytest.mark.parametrize("kind", [".keras", ".weights.h5", "legacy.h5"])
def test_inception_v3_from_files(kind, ours_v3, keras_v3, tmp_path):
  path = str(tmp_path / f"inception_v3{kind if kind != 'legacy.h5' else '.h5'}")
  if kind == ".keras":
    keras_v3.save(path)
  elif kind == ".weights.h5":
    keras_v3.save_weights(path)
  else:
    _write_legacy_h5_weights(keras_v3, path)
  _zero(ours_v3)
  report = import_keras_applications(ours_v3, path)
  assert report.feature_error <= 1e-4 and report.logits_error <= 1e-4
  _assert_equal_outputs(ours_v3, keras_v3, our_features="Mixed_7c", their_features="mixed10",
                        background=True, size=299)


def test_feature_model_without_top(keras_v3):
  ours = create_model("inception_v3", include_top=False, pooling="avg")
  report = import_keras_applications(ours, keras_v3)
  assert report.classifier.startswith("not imported") and report.logits_error is None
  assert report.feature_error <= 1e-4 and ours.count_params() == 21_802_784


def test_mismatches_raise(keras_v3):
  with pytest.raises(KerasApplicationsMismatch, match="num_classes=1000"):
    import_keras_applications(create_model("inception_v3", num_classes=10, aux_logits=False),
                              keras_v3)
  with pytest.raises(KerasApplicationsMismatch, match="Input shapes differ"):
    import_keras_applications(create_model("inception_v3", image_size=150), keras_v3)
  with pytest.raises(FileNotFoundError):
    import_keras_applications(create_model("inception_v3", include_top=False), "/nonexistent.h5")


# --- Inception-ResNet-v2 ------------------------------------------------------------------------

IRV2_SIZE = 150  # keras.applications accepts >= 75; a smaller input keeps the test fast


@pytest.fixture(scope="module")
def keras_irv2():
  model = keras.applications.InceptionResNetV2(weights=None, input_shape=(IRV2_SIZE,) * 2 + (3,))
  _randomize(model, seed=4)
  return model


@pytest.fixture(scope="module")
def ours_irv2():
  return create_model("inception_resnet_v2", image_size=IRV2_SIZE)


def test_inception_resnet_v2_from_model(ours_irv2, keras_irv2):
  report = import_keras_applications(ours_irv2, keras_irv2)
  assert report.feature_error <= 1e-4 and report.logits_error <= 1e-4
  assert ("Conv2d_7b_1x1", "conv_7b") in report.pairs
  assert ("Repeat.block35_1.Conv2d_1x1", "block35_1_conv") in report.pairs
  assert ("Block8.Conv2d_1x1", "block8_10_conv") in report.pairs
  assert all(name.startswith("AuxLogits.") for name in report.left_as_initialised)
  _assert_equal_outputs(ours_irv2, keras_irv2, our_features="Conv2d_7b_1x1.Relu",
                        their_features="conv_7b_ac", background=True, size=IRV2_SIZE)
  # Same parameters as keras.applications' apart from the aux head and the background class.
  ours_count = stats.count_parameters(ours_irv2, exclude=stats.is_aux_layer).total
  assert ours_count == keras_irv2.count_params() + 1536 + 1


@pytest.mark.slow
def test_inception_resnet_v2_from_keras_file(ours_irv2, keras_irv2, tmp_path):
  path = str(tmp_path / "inception_resnet_v2.keras")
  keras_irv2.save(path)  # reloading needs its unregistered CustomScaleLayer, which we supply
  _zero(ours_irv2)
  report = import_keras_applications(ours_irv2, path)
  assert report.feature_error <= 1e-4 and report.logits_error <= 1e-4
  _assert_equal_outputs(ours_irv2, keras_irv2, our_features="Conv2d_7b_1x1.Relu",
                        their_features="conv_7b_ac", background=True, size=IRV2_SIZE)


def test_other_layouts_are_refused(keras_irv2):
  ours_v3 = create_model("inception_v3", image_size=IRV2_SIZE, include_top=False)
  with pytest.raises(KerasApplicationsMismatch, match="not the same network"):
    import_keras_applications(ours_v3, keras_irv2)
