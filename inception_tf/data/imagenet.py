"""ImageNet (ILSVRC-2012) metadata: synset order, class names, validation labels, bounding boxes.

The class order is the one tfds ships (`tensorflow_datasets/datasets/imagenet2012/labels.txt`, the
sorted synset ids), which is also TF-slim's: label `i + 1` is `labels.txt` line `i`, 0 is background.
Class names come from `inception_tf/labels/ilsvrc2012_classes.tsv` (one copy in the package).
"""

from __future__ import annotations

import csv
import functools
import os
import re
import xml.etree.ElementTree as ET
from typing import Optional

import tensorflow as tf

SYNSET_PATTERN = re.compile(r"^n\d{8}$")


def _tfds_imagenet_file(name: str) -> str:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", name)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing from the installed tensorflow-datasets; reinstall "
                            "tensorflow-datasets==4.9.* or pass the file explicitly.")
  return path


@functools.lru_cache(maxsize=None)
def imagenet_synsets() -> tuple[str, ...]:
  """The 1000 ILSVRC-2012 synset ids in label order (tfds `labels.txt`)."""
  with open(_tfds_imagenet_file("labels.txt")) as f:
    synsets = tuple(line.strip() for line in f if line.strip())
  if len(synsets) != 1000:
    raise ValueError(f"Expected 1000 synsets in tfds labels.txt, found {len(synsets)}.")
  return synsets


@functools.lru_cache(maxsize=None)
def imagenet_class_texts() -> dict[str, str]:
  """synset id -> human-readable class name (e.g. `n01440764` -> `tench, Tinca tinca`)."""
  from inception_tf import labels  # pylint: disable=g-import-not-at-top
  imagenet = labels.imagenet_label_map(1000)
  return dict(zip(imagenet.ids, imagenet.names))


def default_validation_labels_file() -> str:
  """tfds' `validation_labels.txt`: the synset of each `ILSVRC2012_val_*.JPEG` in sorted order."""
  return _tfds_imagenet_file("validation_labels.txt")


def is_imagenet_synsets(names) -> bool:
  """True when every name is an ILSVRC-2012 synset id."""
  synsets = set(imagenet_synsets())
  return bool(names) and all(SYNSET_PATTERN.match(n) and n in synsets for n in names)


def _clip(v: float) -> float:
  return min(max(v, 0.0), 1.0)


def read_bounding_boxes(path: str) -> dict[str, list[tuple[float, float, float, float]]]:
  """Reads ImageNet bounding boxes keyed by image base name.

  Args:
    path: either slim's CSV (`process_bounding_boxes.py` output: lines
      `n00007846_64193.JPEG,xmin,ymin,xmax,ymax`, normalised), or a directory searched recursively
      for ImageNet's original PASCAL-VOC XML files (`<size>` and `<object><bndbox>` in pixels).

  Returns:
    base name -> list of `(xmin, ymin, xmax, ymax)` normalised to [0, 1] (clipped).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: for a malformed CSV line.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Bounding box file or directory {path!r} does not exist.")
  boxes: dict[str, list[tuple[float, float, float, float]]] = {}
  if not tf.io.gfile.isdir(path):
    with tf.io.gfile.GFile(path) as f:
      for line_number, row in enumerate(csv.reader(f), start=1):
        if not row or row[0].startswith("#"):
          continue
        if len(row) != 5:
          raise ValueError(f"{path}:{line_number}: expected 'filename,xmin,ymin,xmax,ymax', got {row}.")
        xmin, ymin, xmax, ymax = (_clip(float(v)) for v in row[1:])
        if xmin < xmax and ymin < ymax:
          boxes.setdefault(os.path.basename(row[0].strip()), []).append((xmin, ymin, xmax, ymax))
    return boxes
  for root, _, files in tf.io.gfile.walk(path):
    for name in sorted(files):
      if name.lower().endswith(".xml"):
        with tf.io.gfile.GFile(os.path.join(root, name), "rb") as f:
          _parse_voc_xml(f.read(), os.path.splitext(name)[0], boxes)
  return boxes


def _parse_voc_xml(data: bytes, stem: str, boxes: dict) -> None:
  tree = ET.fromstring(data)
  filename = tree.findtext("filename") or stem
  if not os.path.splitext(filename)[1]:
    filename += ".JPEG"
  width = float(tree.findtext("size/width") or 0)
  height = float(tree.findtext("size/height") or 0)
  if width <= 0 or height <= 0:
    return
  for obj in tree.iter("object"):
    box = obj.find("bndbox")
    if box is None:
      continue
    xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    # VOC pixel coordinates are 1-based inclusive; slim's converter divides by the image size.
    norm = (_clip(xmin / width), _clip(ymin / height), _clip(xmax / width), _clip(ymax / height))
    if norm[0] < norm[2] and norm[1] < norm[3]:
      boxes.setdefault(os.path.basename(filename), []).append(norm)


def read_validation_labels(labels_file: Optional[str], filenames: list[str]) -> dict[str, str]:
  """Maps validation file base names to synsets.

  Args:
    labels_file: either one synset per line, in the sorted order of `filenames` (tfds
      `validation_labels.txt`, slim's `imagenet_2012_validation_synset_labels.txt`), or lines
      `filename<TAB or comma or space>synset`. None: tfds' ImageNet validation labels.
    filenames: base names of the images in the flat folder.

  Returns:
    base name -> synset.

  Raises:
    ValueError: if the file has one label per line but not one per image.
  """
  labels_file = labels_file or default_validation_labels_file()
  with tf.io.gfile.GFile(labels_file) as f:
    lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
  if lines and len(re.split(r"[\t, ]+", lines[0])) >= 2:
    pairs = [re.split(r"[\t, ]+", line, maxsplit=1) for line in lines]
    return {os.path.basename(name): label.strip() for name, label in pairs}
  ordered = sorted(filenames)
  if len(lines) != len(ordered):
    raise ValueError(f"{labels_file} has {len(lines)} labels (one per line, in sorted file order) "
                     f"but the validation folder has {len(ordered)} images.")
  return dict(zip(ordered, lines))
