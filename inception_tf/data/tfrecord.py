"""TF-slim's ImageNet `tf.train.Example` layout: feature keys, encoding and parsing.

The layout is the one written by TF-slim's `build_imagenet_data.py` (and read by its
`datasets/imagenet.py`), so TFRecords built by either tool are interchangeable:

| key                                   | type          | meaning                                   |
|---------------------------------------|---------------|-------------------------------------------|
| `image/encoded`                       | bytes         | RGB JPEG                                  |
| `image/format`                        | bytes         | `JPEG`                                    |
| `image/colorspace`, `image/channels`  | bytes, int64  | `RGB`, 3                                  |
| `image/height`, `image/width`         | int64         | pixel size of the encoded image           |
| `image/filename`                      | bytes         | base name of the source file              |
| `image/class/label`                   | int64         | class index, `labels_offset`-based        |
| `image/class/synset`, `.../text`      | bytes         | class id (e.g. `n01440764`) and its name  |
| `image/object/bbox/{xmin,ymin,xmax,ymax}` | float list | normalised boxes, one entry per box      |
| `image/object/bbox/label`             | int64 list    | the class label repeated per box          |
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_COLORSPACE = "image/colorspace"
IMAGE_CHANNELS = "image/channels"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_FILENAME = "image/filename"
CLASS_LABEL = "image/class/label"
CLASS_SYNSET = "image/class/synset"
CLASS_TEXT = "image/class/text"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
BBOX_LABEL = "image/object/bbox/label"


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values: Sequence[float]) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def encode_example(*, image_bytes: bytes, label: int, height: int, width: int, filename: str = "",
                   synset: str = "", text: str = "",
                   bboxes: Sequence[Sequence[float]] = (), image_format: str = "JPEG") -> bytes:
  """Serializes one image in slim's layout.

  Args:
    image_bytes: the encoded image (an RGB JPEG for records written by the builder).
    label: class label, already including the labels offset (1..N with 0 = background in slim's
      1001-class layout).
    height: image height in pixels.
    width: image width in pixels.
    filename: base name of the source file.
    synset: class identifier (ImageNet synset id or class folder name).
    text: human-readable class name.
    bboxes: boxes as `(xmin, ymin, xmax, ymax)`, normalised to [0, 1].
    image_format: value of `image/format`.

  Returns:
    The serialized `tf.train.Example`.

  Raises:
    ValueError: if a box is not 4 numbers in [0, 1] with min <= max.
  """
  for box in bboxes:
    if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[0] > box[2] or box[1] > box[3]:
      raise ValueError(f"Bounding box {tuple(box)!r} of {filename!r} must be (xmin, ymin, xmax, ymax) "
                       "normalised to [0, 1] with xmin <= xmax and ymin <= ymax.")
  feature = {
      IMAGE_ENCODED: _bytes([image_bytes]),
      IMAGE_FORMAT: _bytes([image_format.encode()]),
      IMAGE_COLORSPACE: _bytes([b"RGB"]),
      IMAGE_CHANNELS: _ints([3]),
      IMAGE_HEIGHT: _ints([height]),
      IMAGE_WIDTH: _ints([width]),
      IMAGE_FILENAME: _bytes([filename.encode()]),
      CLASS_LABEL: _ints([label]),
      CLASS_SYNSET: _bytes([synset.encode()]),
      CLASS_TEXT: _bytes([text.encode()]),
      BBOX_XMIN: _floats([b[0] for b in bboxes]),
      BBOX_YMIN: _floats([b[1] for b in bboxes]),
      BBOX_XMAX: _floats([b[2] for b in bboxes]),
      BBOX_YMAX: _floats([b[3] for b in bboxes]),
      BBOX_LABEL: _ints([label] * len(bboxes)),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


FEATURE_SPEC = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
    IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="JPEG"),
    IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
    CLASS_LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
    BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
    BBOX_XMAX: tf.io.VarLenFeature(tf.float32),
    BBOX_YMAX: tf.io.VarLenFeature(tf.float32),
}


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
  """Parses one serialized record (graph- and eager-safe).

  Args:
    serialized: scalar string tensor holding a `tf.train.Example` in slim's layout.

  Returns:
    A dict with `image_bytes` (scalar string), `label` (int32 scalar), `filename` (scalar
    string) and `bbox`: float32 `[1, num_boxes, 4]` as `(ymin, xmin, ymax, xmax)`, the argument
    order of `tf.image.sample_distorted_bounding_box`.
  """
  features = tf.io.parse_single_example(serialized, FEATURE_SPEC)
  coords = [tf.sparse.to_dense(features[key]) for key in (BBOX_YMIN, BBOX_XMIN, BBOX_YMAX, BBOX_XMAX)]
  bbox = tf.expand_dims(tf.stack(coords, axis=-1), 0)  # 1 x num_boxes x 4
  return {
      "image_bytes": features[IMAGE_ENCODED],
      "label": tf.cast(features[CLASS_LABEL], tf.int32),
      "filename": features[IMAGE_FILENAME],
      "bbox": bbox,
  }
