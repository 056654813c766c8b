"""Shared fixtures of the export tests: real photos as encoded bytes, a small trained-looking model."""

import os

import keras
import numpy as np
import pytest

from export_fixtures import encode
from export_fixtures import IMAGE_SIZE
from export_fixtures import MODEL_NAME
from export_fixtures import MODEL_OPTIONS
from export_fixtures import NUM_CLASSES
from export_fixtures import PHOTOS
from export_fixtures import randomize_batch_norm


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
  """scikit-image's sample colour photographs (shipped with the package, no download)."""
  import skimage.data  # pylint: disable=import-outside-toplevel
  return {name: getattr(skimage.data, name)() for name in PHOTOS}


@pytest.fixture(scope="session")
def jpegs(photos) -> dict[str, bytes]:
  return {name: encode(image, "JPEG", quality=92) for name, image in photos.items()}


@pytest.fixture(scope="session")
def model() -> keras.Model:
  """inception_v3 (depth 0.25, 128 px, 1001 classes) with its aux head and randomized BN."""
  from inception_tf.models import create_model  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(1)
  built = create_model(MODEL_NAME, NUM_CLASSES, image_size=IMAGE_SIZE, aux_logits=True,
                       **MODEL_OPTIONS)
  randomize_batch_norm(built)
  return built


@pytest.fixture(scope="session")
def export_dir(model, tmp_path_factory) -> str:
  """A float32 export (SavedModel, .keras, TFLite float32 + int8, export_info.json) of `model`."""
  from inception_tf import export  # pylint: disable=import-outside-toplevel
  path = str(tmp_path_factory.mktemp("export") / "v3")
  export.export_model(model, path, fold_batch_norm=True, tflite=True)
  return path


@pytest.fixture(scope="session")
def repo_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
