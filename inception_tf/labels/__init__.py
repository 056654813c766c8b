"""Class names shipped with the package: the ILSVRC-2012 label map in TF-slim's 1001-class layout.

`ilsvrc2012_classes.tsv` lists, for TF-slim indices 1..1000 (0 is the background class the published
checkpoints carry), the WordNet synset and its lemmas, in the sorted-synset order every ImageNet
TFRecord conversion (and keras.applications, shifted by one) uses.

    >>> labels = imagenet_label_map(1001)
    >>> labels.ids[1], labels.names[1]
    ('n01440764', 'tench, Tinca tinca')

Other datasets carry their label map in their TFRecord manifest; `label_map_from_names` builds the
same structure from a list of class names.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
from typing import Sequence

IMAGENET_CLASSES_FILE = "ilsvrc2012_classes.tsv"
BACKGROUND = "background"


@dataclasses.dataclass(frozen=True)
class LabelMap:
  """The meaning of each logit: `ids[i]` (e.g. a WordNet synset) and readable `names[i]`."""

  ids: tuple[str, ...]
  names: tuple[str, ...]

  def __post_init__(self):
    if len(self.ids) != len(self.names):
      raise ValueError(f"LabelMap needs one id per name; got {len(self.ids)} ids and "
                       f"{len(self.names)} names.")
    if not self.ids:
      raise ValueError("LabelMap needs at least one class.")

  def __len__(self) -> int:
    return len(self.names)

  def display_name(self, index: int) -> str:
    """`"tabby, tabby cat (n02123045)"`, or just the name when the id repeats it."""
    name, label_id = self.names[index], self.ids[index]
    return name if name == label_id else f"{name} ({label_id})"

  def to_json(self) -> dict:
    return {"ids": list(self.ids), "names": list(self.names)}

  @classmethod
  def from_json(cls, data: dict) -> "LabelMap":
    return cls(ids=tuple(data["ids"]), names=tuple(data["names"]))


@functools.lru_cache(maxsize=1)
def _imagenet_rows() -> tuple[tuple[str, str], ...]:
  text = importlib.resources.files(__package__).joinpath(IMAGENET_CLASSES_FILE).read_text("utf-8")
  rows = []
  for line in text.splitlines():
    if not line.strip() or line.startswith("#"):
      continue
    index, synset, lemmas = line.split("\t")
    if int(index) != len(rows) + 1:
      raise ValueError(f"{IMAGENET_CLASSES_FILE}: expected index {len(rows) + 1}, found {index}.")
    rows.append((synset, lemmas))
  if len(rows) != 1000:
    raise ValueError(f"{IMAGENET_CLASSES_FILE} holds {len(rows)} classes, expected 1000.")
  return tuple(rows)


def imagenet_label_map(num_classes: int = 1001) -> LabelMap:
  """The ILSVRC-2012 label map for a 1001-logit (slim, index 0 = background) or 1000-logit model.

  Args:
    num_classes: 1001 (TF-slim layout) or 1000 (keras.applications layout, no background).

  Returns:
    A `LabelMap` of `num_classes` entries.

  Raises:
    ValueError: any other `num_classes`.
  """
  rows = _imagenet_rows()
  if num_classes == 1001:
    rows = ((BACKGROUND, BACKGROUND),) + rows
  elif num_classes != 1000:
    raise ValueError(f"The ImageNet label map has 1000 or 1001 classes, not {num_classes}; pass "
                     "the dataset's own label map (label_map_from_names) for other datasets.")
  return LabelMap(ids=tuple(r[0] for r in rows), names=tuple(r[1] for r in rows))


def label_map_from_names(class_names: Sequence[str], *, num_classes: int,
                         labels_offset: int = 0) -> LabelMap:
  """A label map for a dataset's class names, with `labels_offset` leading background entries.

  Args:
    class_names: the dataset's classes in label order (label 0 first).
    num_classes: logits width of the model.
    labels_offset: how many logits precede label 0 (1 for a slim-style background class).

  Returns:
    A `LabelMap` of `num_classes` entries whose ids are the class names.

  Raises:
    ValueError: when `labels_offset + len(class_names) != num_classes`.
  """
  names = [BACKGROUND] * labels_offset + [str(n) for n in class_names]
  if len(names) != num_classes:
    raise ValueError(f"{len(class_names)} class names + labels_offset {labels_offset} do not match "
                     f"the model's {num_classes} logits.")
  return LabelMap(ids=tuple(names), names=tuple(names))


def label_map_for_data(class_names: Sequence[str], *, num_classes: int,
                       labels_offset: int = 0) -> LabelMap:
  """The label map of a data set's classes; ImageNet's names when they are ImageNet's synsets.

  Args:
    class_names: the data set's classes by label (`DatasetInfo.class_names`: index = label, so the
      first `labels_offset` entries are the background).
    num_classes: logits width of the model.
    labels_offset: how many logits precede the first class.

  Returns:
    A `LabelMap` of `num_classes` entries.

  Raises:
    ValueError: the classes (plus labels_offset) do not match `num_classes`.
  """
  names = [str(n) for n in class_names][labels_offset:]
  if num_classes in (1000, 1001) and len(names) == 1000:
    if names == list(imagenet_label_map(1000).ids):
      return imagenet_label_map(num_classes)
  return label_map_from_names(names, num_classes=num_classes, labels_offset=labels_offset)


def default_label_map(num_classes: int) -> LabelMap:
  """ImageNet names for 1000/1001 logits, otherwise `class_<i>` placeholders the user can replace."""
  if num_classes in (1000, 1001):
    return imagenet_label_map(num_classes)
  names = tuple(f"class_{i}" for i in range(num_classes))
  return LabelMap(ids=names, names=names)


__all__ = ["LabelMap", "imagenet_label_map", "label_map_from_names", "label_map_for_data",
           "default_label_map"]
