"""The ResNet paper's CIFAR augmentation: the input of its small-image nets (resnet20, plain20, ...)

ResNet paper (He et al. 2015, arXiv:1512.03385) §4.2: "4 pixels are padded on each side, and a
32x32 crop is randomly sampled from the padded image or its horizontal flip. For testing, we only
evaluate the single view of the original 32x32 image."

* `preprocess_for_eval`: the whole image (no central crop) resized to S x S with TF1's bilinear
  resize (`image_ops.resize_bilinear_tf1`, the Inception kind's eval resize; an image that is
  already S x S is unchanged), scaled to [-1, 1]. It equals the Inception kind's
  `preprocess_for_eval(image, S, S, central_fraction=None)`.
* `preprocess_for_train`: that eval image padded by `pad` pixels on each side with black (-1), a
  random S x S window of the (S + 2 pad) x (S + 2 pad) result (every offset 0..2 pad equally likely)
  and a random left-right flip (p = 0.5). The window and the flip are drawn from a stateless `seed`,
  so a seed gives the same output eagerly, in a `tf.function` and in `tf.data`.

One difference from the paper: it subtracts the per-pixel mean of the training set; we scale to
[-1, 1] like the rest of the zoo (both centre the input, and the batch norm after the first
convolution normalises its responses either way), so the padding is black (-1), not the paper's
zero (the mean). `pad` is in output pixels (4 at S = 32, the paper's); smaller images
(Fashion-MNIST's 28 x 28) are first resized to S, then padded.

Inputs are encoded bytes (JPEG, PNG, GIF, BMP) or one image `[H, W, C]` with C in 1..4 (gray is
replicated to RGB, alpha dropped), integer (scaled to [0, 1]) or float in [0, 1], of any size.
"""

from __future__ import annotations

import tensorflow as tf

from inception_tf.data.image_ops import TensorLike
from inception_tf.data.image_ops import as_image
from inception_tf.data.image_ops import check_size
from inception_tf.data.image_ops import resize_bilinear_tf1
from inception_tf.data.image_ops import seed_table
from inception_tf.data.image_ops import to_float

PAD = 4  # §4.2: "4 pixels are padded on each side"
BLACK = -1.0  # the padding: black in [-1, 1]
# Rows of `image_ops.seed_table` (its crop and flip entries, as the other kinds).
_CROP_SEED, _FLIP_SEED = 0, 2


def preprocess_for_eval(image: TensorLike, image_size: int = 32) -> tf.Tensor:
  """The whole image resized to `image_size` x `image_size` (TF1 bilinear), scaled to [-1, 1].

  Args:
    image: encoded bytes or an image `[H, W, C]` (C in 1..4; integer dtypes are scaled to [0, 1],
      floats are taken to be in [0, 1]).
    image_size: the square output size S.

  Returns:
    float32 `[S, S, 3]` in [-1, 1].

  Raises:
    ValueError: a bad size, rank or channel count.
  """
  check_size(image_size, image_size)
  image = as_image(image)
  if image.shape.rank != 3:
    raise ValueError(f"Expected one image [H, W, C] or encoded bytes; got shape {image.shape}.")
  image = resize_bilinear_tf1(to_float(image), image_size, image_size)  # S x S x 3
  return tf.ensure_shape((image - 0.5) * 2.0, [image_size, image_size, 3])


def preprocess_for_train(image: TensorLike, image_size: int = 32, *, seed=None, pad: int = PAD,
                         random_flip: bool = True) -> tf.Tensor:
  """§4.2's training view: the eval image padded with black, a random S x S crop, a random flip.

  Args:
    image: as `preprocess_for_eval`.
    image_size: the square output size S.
    seed: None (random), an int or a shape [2] integer tensor; equal seeds give equal outputs.
    pad: pixels of black (-1) added on each side of the S x S image before the crop (4: §4.2).
    random_flip: the random left-right flip (p = 0.5).

  Returns:
    float32 `[S, S, 3]` in [-1, 1]: a window of the padded eval image, possibly mirrored.

  Raises:
    ValueError: a bad size, pad, seed, rank or channel count.
  """
  if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
    raise ValueError(f"pad must be an int >= 0 (pixels on each side); got {pad!r}.")
  seeds = seed_table(seed)
  image = preprocess_for_eval(image, image_size)  # S x S x 3
  image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]],
                 constant_values=BLACK)  # (S + 2 pad) x (S + 2 pad) x 3
  image = tf.image.stateless_random_crop(image, [image_size, image_size, 3],
                                         seed=seeds[_CROP_SEED])  # S x S x 3
  if random_flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[_FLIP_SEED])
  return image
