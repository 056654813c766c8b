"""Helpers of the export tests, imported as `export_fixtures` (pytest puts this dir on sys.path)."""

import io

import keras
import numpy as np
from PIL import Image

# A small Inception-v3 keeps export and tracing fast; the code paths are those of the full model.
MODEL_NAME = "inception_v3"
MODEL_OPTIONS = {"depth_multiplier": 0.25}
IMAGE_SIZE = 128
NUM_CLASSES = 1001
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def randomize_batch_norm(model: keras.Model, seed: int = 0) -> None:
  """Gives every batch norm non-trivial statistics and offsets, as a trained model has."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      shape = layer.moving_mean.shape
      layer.moving_mean.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
      layer.beta.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))


def animated_gif(image: np.ndarray, frames: int = 12) -> bytes:
  """A looping GIF of `frames` shifted copies of `image` (the first frame is `image` itself)."""
  pictures = [Image.fromarray(np.roll(image, 9 * i, axis=1)) for i in range(frames)]
  buffer = io.BytesIO()
  pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=40, loop=0)
  return buffer.getvalue()
