"""TFLite conversion of the `predict_images` function: float32 and dynamic-range int8.

The in-graph JPEG decoding of `serving_default` has no TFLite kernel, so the TFLite file takes the
preprocessed float images ([N, S, S, 3] in [-1, 1]) and returns logits and probabilities; on-device
code does the decoding and `preprocess_for_eval` itself.

Dynamic-range quantization (`Optimize.DEFAULT` without a representative dataset) stores weights as
int8 and quantizes activations on the fly; it needs no calibration data.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

QUANTIZATIONS = ("float32", "dynamic_int8")


def convert_to_tflite(concrete_function, *, quantization: str = "float32", trackable=None) -> bytes:
  """Converts a concrete function (e.g. `ServingModule.predict_images`) to a TFLite flatbuffer.

  Args:
    concrete_function: the function to convert: one `images` input with a known shape but the
      batch, a dict of outputs (e.g. `ServingModule.predict_images`).
    quantization: "float32" or "dynamic_int8".
    trackable: the object holding the function's variables.

  Returns:
    The TFLite model bytes.

  Raises:
    ValueError: unknown quantization.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}.")
  # Keras 3 variables reach the converter as resource handles it leaves unfrozen (the flatbuffer
  # then holds uninitialized variables); freezing them into constants first embeds the weights.
  # The frozen graph returns a flat list; re-wrapping restores the output names (logits, ...).
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete_function)
  output_names = tf.nest.flatten({k: k for k in concrete_function.structured_outputs})
  (input_spec,), _ = concrete_function.structured_input_signature

  @tf.function(input_signature=[tf.TensorSpec(input_spec.shape, input_spec.dtype, name="images")],
               autograph=False)
  def named(images):
    return dict(zip(output_names, frozen(images)))

  converter = tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()],
                                                              trackable)
  if quantization == "dynamic_int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  return converter.convert()


class TFLiteClassifier:
  """Runs a converted `predict_images` TFLite model on preprocessed float images."""

  def __init__(self, model_path: str, *, num_threads: int | None = None):
    self._interpreter = tf.lite.Interpreter(model_path=model_path, num_threads=num_threads)
    signatures = self._interpreter.get_signature_list()
    if len(signatures) != 1:
      raise ValueError(f"{model_path} has signatures {sorted(signatures)}; expected one.")
    (key, io_names), = signatures.items()
    if io_names["inputs"] != ["images"] or "logits" not in io_names["outputs"]:
      raise ValueError(f"{model_path} takes {io_names['inputs']} and returns "
                       f"{io_names['outputs']}; expected images -> logits (predict_images).")
    self._runner = self._interpreter.get_signature_runner(key)
    self.image_size = int(self._runner.get_input_details()["images"]["shape"][1])

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """float32 [N, S, S, 3] in [-1, 1] -> {"logits": [N, C], "probabilities": [N, C]}."""
    images = np.asarray(images, np.float32)
    size = self.image_size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
      raise ValueError(f"Expected images [N, {size}, {size}, 3], got {images.shape}.")
    return self._runner(images=images)
