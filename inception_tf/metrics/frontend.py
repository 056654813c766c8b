"""The input side of the 2015-12-05 Inception graph, outside the graph: resize, then scale.

The graph receives images of any size with values in [0, 255] and runs, before its first
convolution, `ResizeBilinear` to 299 x 299 with `align_corners=False` and no half-pixel centres
(TF1's `tf.image.resize_bilinear`; TF2's `tf.image.resize` samples at half-pixel centres and gives
other pixels), then `Sub` 128 and `Mul` 1/128, i.e. (x - 128) / 128 (exact in float32: 1/128 is a
power of two). Published FIDs depend on this resize: another interpolation moves FID noticeably.
The resize is `inception_tf.data.preprocessing.resize_bilinear_tf1`, applied to the float [0, 255]
values (an image already 299 x 299 passes through unchanged).
"""

from __future__ import annotations

import tensorflow as tf

from inception_tf.data import preprocessing

IMAGE_SIZE = 299  # the graph's ResizeBilinear size
OFFSET = 128.0
SCALE = 1.0 / 128.0


def preprocess(images) -> tf.Tensor:
  """Images in [0, 255] (uint8 or float, `[H, W, C]` or `[N, H, W, C]`, C in 1..4) -> network input.

  Args:
    images: pixel values 0..255 (floats are taken as they are: pass [0, 1] data multiplied by 255).
      Gray is replicated to RGB, alpha dropped.

  Returns:
    float32 `[299, 299, 3]` (or `[N, 299, 299, 3]`) = (resize_bilinear_tf1(x) - 128) / 128.
  """
  images = preprocessing.to_rgb(tf.convert_to_tensor(images))
  resized = preprocessing.resize_bilinear_tf1(tf.cast(images, tf.float32), IMAGE_SIZE, IMAGE_SIZE)
  return (resized - OFFSET) * SCALE
