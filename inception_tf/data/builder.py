"""Builds sharded TFRecords in TF-slim's ImageNet layout, with a JSON manifest.

Sources: a folder per class (`DIR/<class>/*.jpg`, ImageNet's `train/n01440764/*.JPEG`), ImageNet's
flat validation folder plus a labels file, optional bounding boxes (slim's CSV or ImageNet's XML),
any in-memory list of images (the built-in digits dataset), tfds datasets already on disk and
Fashion-MNIST's IDX files (`build_fashion_mnist`; Debian package `dataset-fashion-mnist`).

Guarantees:
* Every file Pillow can fully decode is written once as an RGB JPEG (RGB JPEGs keep their original
  bytes; CMYK/grayscale JPEGs, PNGs, GIFs, BMPs ... whatever their extension, are re-encoded).
  With `keep_png=True` (Fashion-MNIST) 8-bit grayscale and RGB PNGs are kept, lossless.
  Empty, truncated and undecodable files are skipped and listed with the reason in the manifest.
* A shard is written under a hidden temporary name (`.tmp.train-00003-of-00008.<pid>`, which no
  `train-*` pattern matches) together with a sidecar `.train-00003-of-00008.json` (counts and a
  fingerprint of its inputs), and renamed when complete, so a killed build never leaves a shard
  that looks finished; a rerun rebuilds only the missing shards (or those whose inputs changed).
* `manifest.json` is written last (atomically): counts per split, per shard and per class, the label
  map, `labels_offset`, `num_classes` and the skipped files.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import hashlib
import io
import json
import os
import random
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from inception_tf.data import idx
from inception_tf.data import imagenet
from inception_tf.data import tfrecord

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "inception_tf.tfrecords/1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_SHUFFLE_SEED = 12345  # slim's build_imagenet_data.py seed
BACKGROUND = "background"


@dataclasses.dataclass(frozen=True)
class ImageItem:
  """One image to write.

  Attributes:
    label: 0-based class index (the written label is `label + labels_offset`).
    filename: base name stored in `image/filename`.
    path: file to read (None when `data` is given).
    data: encoded image bytes (for in-memory sources).
    bboxes: `(xmin, ymin, xmax, ymax)` boxes normalised to [0, 1].
  """

  label: int
  filename: str
  path: Optional[str] = None
  data: Optional[bytes] = dataclasses.field(default=None, repr=False)
  bboxes: tuple = ()

  @property
  def source(self) -> str:
    return self.path or self.filename


@dataclasses.dataclass(frozen=True)
class ClassMap:
  """Class index -> synset (class id) and text (name)."""

  synsets: tuple[str, ...]
  texts: tuple[str, ...]

  def __post_init__(self):
    if len(self.synsets) != len(self.texts) or not self.synsets:
      raise ValueError(f"ClassMap needs one text per synset and at least one class; got "
                       f"{len(self.synsets)} synsets and {len(self.texts)} texts.")
    if len(set(self.synsets)) != len(self.synsets):
      raise ValueError("ClassMap synsets must be unique.")

  @classmethod
  def from_names(cls, names: Sequence[str]) -> "ClassMap":
    """ImageNet synsets get their ImageNet names; other names are their own text."""
    texts = imagenet.imagenet_class_texts() if imagenet.is_imagenet_synsets(names) else {}
    return cls(tuple(names), tuple(texts.get(n, n) for n in names))


class SkippedImage(Exception):
  """Raised by `prepare_image` for a file that cannot be written; the message is the reason."""


def prepare_image(data: bytes, *, jpeg_quality: int = 95,
                  keep_png: bool = False) -> tuple[bytes, int, int, str]:
  """Validates one encoded image by fully decoding it, re-encoding odd ones to RGB JPEG.

  Args:
    data: encoded image bytes.
    jpeg_quality: quality of re-encoded JPEGs.
    keep_png: keep 8-bit grayscale and RGB PNGs as they are (lossless; the pipeline decodes any
      format to 3 channels). For sources whose pixels must stay exact, e.g. Fashion-MNIST.

  Returns:
    `(image_bytes, height, width, note)`; note is "" when the original bytes are kept, else what was
    converted (e.g. `"CMYK JPEG -> RGB JPEG"`).

  Raises:
    SkippedImage: empty, truncated or undecodable data.
  """
  if not data:
    raise SkippedImage("empty file")
  try:
    with Image.open(io.BytesIO(data)) as image:
      image_format, mode = image.format, image.mode
      image.load()  # full decode: raises on truncated data
      if (image_format == "JPEG" and mode == "RGB") or (
          keep_png and image_format == "PNG" and mode in ("L", "RGB")):
        return data, image.height, image.width, ""
      if mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256.0).convert("L")  # 16-bit gray -> 8-bit
      rgb = image.convert("RGB")
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
    raise SkippedImage(f"undecodable: {error}") from None
  buffer = io.BytesIO()
  rgb.save(buffer, format="JPEG", quality=jpeg_quality)
  return buffer.getvalue(), rgb.height, rgb.width, f"{mode} {image_format} -> RGB JPEG"


def list_class_folders(directory: str, *, class_names: Optional[Sequence[str]] = None,
                       bboxes: Optional[Mapping[str, list]] = None
                       ) -> tuple[list[ImageItem], ClassMap]:
  """Lists `directory/<class>/<image>` (files with an image extension or none, any case).

  Args:
    directory: root with one sub-folder per class.
    class_names: class order; default: ImageNet's synset order when every folder is an ImageNet
      synset, else the sorted folder names.
    bboxes: base name -> boxes, from `imagenet.read_bounding_boxes`.

  Returns:
    `(items, class_map)`.

  Raises:
    FileNotFoundError: missing directory or no class folder.
    ValueError: a folder that is not in `class_names`.
  """
  if not tf.io.gfile.isdir(directory):
    raise FileNotFoundError(f"Class-folder directory {directory!r} does not exist.")
  folders = sorted(d.rstrip("/") for d in tf.io.gfile.listdir(directory)
                   if tf.io.gfile.isdir(os.path.join(directory, d)))
  if not folders:
    raise FileNotFoundError(f"{directory!r} has no class sub-folders (expected DIR/<class>/*.jpg).")
  if class_names is None:
    class_names = list(imagenet.imagenet_synsets()) if imagenet.is_imagenet_synsets(folders) \
        else folders
  index = {name: i for i, name in enumerate(class_names)}
  unknown = [f for f in folders if f not in index]
  if unknown:
    raise ValueError(f"Class folders {unknown[:5]} of {directory!r} are not among the "
                     f"{len(class_names)} class names.")
  items = []
  for folder in folders:
    for name in sorted(tf.io.gfile.listdir(os.path.join(directory, folder))):
      path = os.path.join(directory, folder, name)
      if _is_image_name(name) and not tf.io.gfile.isdir(path):
        items.append(ImageItem(label=index[folder], filename=name, path=path,
                               bboxes=tuple((bboxes or {}).get(name, ()))))
  return items, ClassMap.from_names(class_names)


def _is_image_name(name: str) -> bool:
  ext = os.path.splitext(name)[1].lower()
  return not name.startswith(".") and (ext in IMAGE_EXTENSIONS or ext == "")


def list_flat_folder(directory: str, *, labels_file: Optional[str], class_map: ClassMap,
                     bboxes: Optional[Mapping[str, list]] = None) -> list[ImageItem]:
  """Lists ImageNet's flat validation folder, labelled by `labels_file` (see
  `imagenet.read_validation_labels`; None: tfds' ImageNet validation labels).

  Raises:
    FileNotFoundError: missing directory.
    ValueError: an image without a label, or a label not in `class_map`.
  """
  if not tf.io.gfile.isdir(directory):
    raise FileNotFoundError(f"Validation directory {directory!r} does not exist.")
  names = sorted(n for n in tf.io.gfile.listdir(directory)
                 if _is_image_name(n) and not tf.io.gfile.isdir(os.path.join(directory, n)))
  labels = imagenet.read_validation_labels(labels_file, names)
  index = {s: i for i, s in enumerate(class_map.synsets)}
  items = []
  for name in names:
    if name not in labels:
      raise ValueError(f"No label for {name!r} in {labels_file!r}.")
    if labels[name] not in index:
      raise ValueError(f"Label {labels[name]!r} of {name!r} is not one of the {len(index)} classes.")
    items.append(ImageItem(label=index[labels[name]], filename=name,
                           path=os.path.join(directory, name),
                           bboxes=tuple((bboxes or {}).get(name, ()))))
  return items


class _Progress:
  """Thread-safe progress line on stderr: count, images/s and ETA."""

  def __init__(self, split: str, total: Optional[int], enabled: bool):
    self._split, self._total, self._enabled = split, total, enabled
    self._done = 0
    self._start = self._last = time.monotonic()
    self._lock = threading.Lock()

  def update(self, n: int = 1) -> int:
    with self._lock:
      self._done += n
      now = time.monotonic()
      if self._enabled and now - self._last >= 0.5:
        self._last = now
        self._print(now, end="")
      return self._done

  def close(self) -> None:
    if self._enabled:
      self._print(time.monotonic(), end="\n")

  def _print(self, now: float, end: str) -> None:
    rate = self._done / max(now - self._start, 1e-9)
    total = f"/{self._total}" if self._total else ""
    eta = ""
    if self._total and rate > 0:
      eta = f", ETA {datetime.timedelta(seconds=round((self._total - self._done) / rate))}"
    sys.stderr.write(f"\r[{self._split}] {self._done}{total} images, {rate:.1f} images/s{eta}   "
                     + end)
    sys.stderr.flush()


def shard_name(split: str, index: int, num_shards: int) -> str:
  """`train-00003-of-01024`: slim's naming (5 digits, more when needed)."""
  digits = max(5, len(str(num_shards)))
  return f"{split}-{index:0{digits}d}-of-{num_shards:0{digits}d}"


def _sidecar_path(output_dir: str, name: str) -> str:
  return os.path.join(output_dir, f".{name}.json")


def _fingerprint(items: Sequence[ImageItem], labels_offset: int, jpeg_quality: int,
                 keep_png: bool = False) -> str:
  digest = hashlib.sha1(f"{labels_offset},{jpeg_quality}{',png' if keep_png else ''}".encode())
  for item in items:
    digest.update(f"{item.source}\0{item.label}\0{item.bboxes}\n".encode())
    if item.data is not None:
      digest.update(hashlib.sha1(item.data).digest())
  return digest.hexdigest()


def _atomic_write_text(path: str, text: str) -> None:
  tmp = os.path.join(os.path.dirname(path), f".tmp.{os.path.basename(path)}.{os.getpid()}."
                     f"{threading.get_ident()}")
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _read_bytes(item: ImageItem) -> bytes:
  if item.data is not None:
    return item.data
  with tf.io.gfile.GFile(item.path, "rb") as f:
    return f.read()


def _write_shard(output_dir: str, name: str, items: Iterable[ImageItem], *, fingerprint: str,
                 class_map: ClassMap, labels_offset: int, jpeg_quality: int, keep_png: bool,
                 progress: _Progress, hook: Optional[Callable[[str, int], None]],
                 split: str) -> dict:
  tmp = os.path.join(output_dir, f".tmp.{name}.{os.getpid()}.{threading.get_ident()}")
  counts: dict[int, int] = {}
  skipped, converted = [], []
  num_examples = 0
  with tf.io.TFRecordWriter(tmp) as writer:
    for item in items:
      try:
        data, height, width, note = prepare_image(_read_bytes(item), jpeg_quality=jpeg_quality,
                                                  keep_png=keep_png)
      except (SkippedImage, OSError) as error:
        skipped.append({"file": item.source, "reason": str(error)})
        done = progress.update(1)
        if hook:
          hook(split, done)
        continue
      if note:
        converted.append({"file": item.source, "conversion": note})
      writer.write(tfrecord.encode_example(
          image_bytes=data, label=item.label + labels_offset, height=height, width=width,
          filename=item.filename, synset=class_map.synsets[item.label],
          text=class_map.texts[item.label], bboxes=item.bboxes,
          image_format="PNG" if data[:4] == b"\x89PNG" else "JPEG"))
      counts[item.label] = counts.get(item.label, 0) + 1
      num_examples += 1
      done = progress.update(1)
      if hook:
        hook(split, done)
  stats = {"name": name, "num_examples": num_examples, "fingerprint": fingerprint,
           "class_counts": {str(k): v for k, v in sorted(counts.items())},
           "skipped": skipped, "converted": converted}
  # Sidecar first, shard last: a shard file that exists is complete and has its sidecar.
  _atomic_write_text(_sidecar_path(output_dir, name), json.dumps(stats))
  tf.io.gfile.rename(tmp, os.path.join(output_dir, name), overwrite=True)
  return stats


def _completed_shard(output_dir: str, name: str, fingerprint: str) -> Optional[dict]:
  sidecar = _sidecar_path(output_dir, name)
  if not (tf.io.gfile.exists(os.path.join(output_dir, name)) and tf.io.gfile.exists(sidecar)):
    return None
  try:
    with tf.io.gfile.GFile(sidecar) as f:
      stats = json.load(f)
  except (ValueError, OSError):
    return None
  return stats if stats.get("fingerprint") == fingerprint else None


def default_num_shards(num_items: int) -> int:
  """About 1,000 images per shard, at most 1,024 shards (ImageNet train: 1024, val: 50)."""
  return max(1, min(1024, num_items // 1000))


@dataclasses.dataclass(frozen=True)
class ShardSource:
  """A lazily-read shard input: `load()` yields the items, `fingerprint` identifies them."""

  num_items: int
  fingerprint: str
  load: Callable[[], Iterator[ImageItem]]


def _list_shards(items: Sequence[ImageItem], num_shards: int, *, shuffle: bool, seed: int,
                 labels_offset: int, jpeg_quality: int, keep_png: bool) -> list[ShardSource]:
  items = sorted(items, key=lambda it: (it.source, it.label))
  if shuffle:  # mixes classes across shards (slim shuffles with seed 12345)
    random.Random(seed).shuffle(items)
  bounds = [len(items) * k // num_shards for k in range(num_shards + 1)]
  shards = []
  for k in range(num_shards):
    chunk = items[bounds[k]:bounds[k + 1]]
    shards.append(ShardSource(len(chunk),
                              _fingerprint(chunk, labels_offset, jpeg_quality, keep_png),
                              lambda chunk=chunk: iter(chunk)))
  return shards


def build_tfrecords(output_dir: str, splits: Mapping[str, Sequence[ImageItem] | Sequence[ShardSource]],
                    *, class_map: ClassMap, labels_offset: int = 1,
                    num_shards: Optional[Mapping[str, int] | int] = None,
                    num_workers: Optional[int] = None, shuffle_seed: int = DEFAULT_SHUFFLE_SEED,
                    jpeg_quality: int = 95, keep_png: bool = False, name: str = "",
                    progress: bool = True,
                    progress_hook: Optional[Callable[[str, int], None]] = None,
                    source_description: Optional[dict] = None) -> dict:
  """Writes each split as sharded TFRecords and `manifest.json`; resumes an interrupted build.

  Args:
    output_dir: created if needed.
    splits: split name -> `ImageItem`s (sharded here after a seeded shuffle) or `ShardSource`s
      (one per shard, already split; e.g. tfds slices).
    class_map: class index -> synset and text.
    labels_offset: added to every class index (1: slim's layout with 0 = background; 0: 0-based).
    num_shards: shards per split (int for all, or per split); default `default_num_shards`.
      Ignored for splits given as `ShardSource`s.
    num_workers: parallel shard writers (threads; Pillow and TF release the GIL). Default: CPUs.
    shuffle_seed: seed of the item shuffle that spreads classes over shards.
    jpeg_quality: quality of re-encoded JPEGs.
    keep_png: store 8-bit grayscale / RGB PNGs losslessly as PNG (see `prepare_image`).
    name: dataset name stored in the manifest.
    progress: print a progress line per split on stderr.
    progress_hook: called as `hook(split, images_done)` after every image (e.g. for a UI).
    source_description: free-form JSON stored in the manifest (where the data came from).

  Returns:
    The manifest dict (also written to `output_dir/manifest.json`).

  Raises:
    ValueError: bad split names, offsets or shard counts, or labels out of range.
  """
  if labels_offset not in (0, 1):
    raise ValueError(f"labels_offset must be 0 (0-based labels) or 1 (slim: 0 = background); "
                     f"got {labels_offset!r}.")
  if not splits:
    raise ValueError("No split to build: give at least one of train/validation sources.")
  num_workers = num_workers or os.cpu_count() or 1
  tf.io.gfile.makedirs(output_dir)
  for stale in tf.io.gfile.glob(os.path.join(output_dir, ".tmp.*")):
    tf.io.gfile.remove(stale)  # temporary files of an interrupted build
  manifest_path = os.path.join(output_dir, MANIFEST_NAME)
  if tf.io.gfile.exists(manifest_path):
    tf.io.gfile.remove(manifest_path)  # the manifest marks a complete build
  num_classes = len(class_map.synsets)

  split_manifests = {}
  for split, entries in splits.items():
    if not split or "-" in split or "/" in split:
      raise ValueError(f"Split names must be non-empty without '-' or '/'; got {split!r}.")
    entries = list(entries)
    if entries and isinstance(entries[0], ShardSource):
      shards = entries
    else:
      bad = [it.source for it in entries if not 0 <= it.label < num_classes][:3]
      if bad:
        raise ValueError(f"Items {bad} have labels outside [0, {num_classes}).")
      count = num_shards.get(split) if isinstance(num_shards, Mapping) else num_shards
      count = count or default_num_shards(len(entries))
      if count < 1:
        raise ValueError(f"num_shards for {split!r} must be >= 1; got {count}.")
      shards = _list_shards(entries, count, shuffle=True, seed=shuffle_seed,
                            labels_offset=labels_offset, jpeg_quality=jpeg_quality,
                            keep_png=keep_png)
    names = [shard_name(split, k, len(shards)) for k in range(len(shards))]
    tracker = _Progress(split, sum(s.num_items for s in shards), progress)
    results: dict[str, dict] = {}
    todo = []
    for shard_source, shard in zip(shards, names):
      done = _completed_shard(output_dir, shard, shard_source.fingerprint)
      if done is not None:
        results[shard] = done
        tracker.update(shard_source.num_items)
      else:
        todo.append((shard_source, shard))
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
      futures = [pool.submit(_write_shard, output_dir, shard, source.load(),
                             fingerprint=source.fingerprint, class_map=class_map,
                             labels_offset=labels_offset, jpeg_quality=jpeg_quality,
                             keep_png=keep_png, progress=tracker, hook=progress_hook, split=split)
                 for source, shard in todo]
      for future in concurrent.futures.as_completed(futures):
        stats = future.result()
        results[stats["name"]] = stats
    tracker.close()
    split_manifests[split] = _split_manifest([results[n] for n in names], class_map)

  manifest = {
      "format": MANIFEST_FORMAT,
      "name": name,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "labels_offset": labels_offset,
      "num_classes": num_classes + labels_offset,
      "classes": ([{"label": 0, "synset": BACKGROUND, "text": BACKGROUND}] if labels_offset else [])
                 + [{"label": i + labels_offset, "synset": s, "text": t}
                    for i, (s, t) in enumerate(zip(class_map.synsets, class_map.texts))],
      "splits": split_manifests,
      "source": source_description or {},
  }
  _atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
  return manifest


def _split_manifest(shard_stats: list[dict], class_map: ClassMap) -> dict:
  class_counts = {s: 0 for s in class_map.synsets}
  for stats in shard_stats:
    for label, count in stats["class_counts"].items():
      class_counts[class_map.synsets[int(label)]] += count
  skipped = [entry for stats in shard_stats for entry in stats["skipped"]]
  converted = [entry for stats in shard_stats for entry in stats["converted"]]
  return {
      "num_examples": sum(s["num_examples"] for s in shard_stats),
      "num_shards": len(shard_stats),
      "files": [{"name": s["name"], "num_examples": s["num_examples"]} for s in shard_stats],
      "class_counts": class_counts,
      "num_skipped": len(skipped),
      "skipped": skipped,
      "num_converted": len(converted),
      "converted": converted,
  }


def build_from_directories(output_dir: str, *, train_dir: Optional[str] = None,
                           validation_dir: Optional[str] = None,
                           validation_labels_file: Optional[str] = None,
                           bounding_boxes: Optional[str] = None,
                           class_names: Optional[Sequence[str]] = None, **kwargs) -> dict:
  """Builds from class folders (train and/or validation) or ImageNet's flat validation folder.

  Args:
    output_dir: where shards and `manifest.json` go.
    train_dir: `DIR/<class>/*` tree.
    validation_dir: `DIR/<class>/*` tree, or a flat folder labelled by `validation_labels_file`
      (ImageNet's `ILSVRC2012_val_*.JPEG`; without a labels file tfds' ImageNet labels are used).
    validation_labels_file: see `imagenet.read_validation_labels`.
    bounding_boxes: slim's bounding box CSV or a directory of ImageNet XML annotations.
    class_names: explicit class order (default: ImageNet synset order for ImageNet folders, else
      sorted folder names of `train_dir`, or of `validation_dir`).
    **kwargs: passed to `build_tfrecords` (labels_offset, num_shards, num_workers, ...).

  Returns:
    The manifest dict.

  Raises:
    ValueError: no directory given, or the flat folder has no class map to use.
  """
  if not train_dir and not validation_dir:
    raise ValueError("Give train_dir and/or validation_dir.")
  boxes = imagenet.read_bounding_boxes(bounding_boxes) if bounding_boxes else None
  splits, class_map = {}, None
  if train_dir:
    splits["train"], class_map = list_class_folders(train_dir, class_names=class_names, bboxes=boxes)
    class_names = class_map.synsets
  if validation_dir:
    has_folders = any(tf.io.gfile.isdir(os.path.join(validation_dir, d))
                      for d in tf.io.gfile.listdir(validation_dir))
    if has_folders and not validation_labels_file:
      splits["validation"], class_map = list_class_folders(validation_dir, class_names=class_names,
                                                           bboxes=boxes)
    else:
      if class_map is None:
        class_map = ClassMap.from_names(list(class_names or imagenet.imagenet_synsets()))
      splits["validation"] = list_flat_folder(validation_dir, labels_file=validation_labels_file,
                                              class_map=class_map, bboxes=boxes)
  kwargs.setdefault("source_description", {"train_dir": train_dir, "validation_dir": validation_dir,
                                           "validation_labels_file": validation_labels_file,
                                           "bounding_boxes": bounding_boxes})
  return build_tfrecords(output_dir, splits, class_map=class_map, **kwargs)


def build_from_tfds(output_dir: str, tfds_name: str, *, data_dir: Optional[str] = None,
                    manual_dir: Optional[str] = None, splits: Optional[Sequence[str]] = None,
                    num_shards: Optional[Mapping[str, int] | int] = None,
                    download_and_prepare: bool = False, **kwargs) -> dict:
  """Converts a tfds image classification dataset (already on disk) to slim-layout TFRecords.

  Each shard reads its own slice (`train[a:b]`) of the tfds split, so nothing is held in memory.

  Args:
    output_dir: where shards and `manifest.json` go.
    tfds_name: e.g. `imagenet2012`, `imagenette/320px-v2`.
    data_dir: tfds data directory (default: tfds' own).
    manual_dir: tfds manual directory (ImageNet's tar files), used by `download_and_prepare`.
    splits: tfds splits to convert (default: all); `validation` and `test` keep their names.
    num_shards: per split or for all; default `default_num_shards`.
    download_and_prepare: run tfds' `download_and_prepare` first (only for manual/local sources;
      this machine has no network).
    **kwargs: passed to `build_tfrecords`.

  Returns:
    The manifest dict.

  Raises:
    ValueError: the dataset has no image + class label feature.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  if download_and_prepare:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  image_key, label_key, file_key = tfds_feature_keys(builder.info)
  names = list(builder.info.features[label_key].names)
  class_map = ClassMap.from_names(names)
  split_names = list(splits or builder.info.splits.keys())
  sources = {}
  for split in split_names:
    total = builder.info.splits[split].num_examples
    count = num_shards.get(split) if isinstance(num_shards, Mapping) else num_shards
    count = count or default_num_shards(total)
    bounds = [total * k // count for k in range(count + 1)]
    shard_sources = []
    for k in range(count):
      start, stop = bounds[k], bounds[k + 1]

      def load(start=start, stop=stop, split=split):
        ds = builder.as_dataset(split=f"{split}[{start}:{stop}]", shuffle_files=False,
                                decoders={image_key: tfds.decode.SkipDecoding()})
        for index, example in enumerate(ds.as_numpy_iterator(), start=start):
          filename = example[file_key].decode() if file_key else f"{split}_{index:08d}"
          yield ImageItem(label=int(example[label_key]), filename=filename,
                          data=bytes(example[image_key]))

      fingerprint = hashlib.sha1(f"tfds:{tfds_name}:{builder.info.version}:{split}:{start}:{stop}:"
                                 f"{kwargs.get('labels_offset', 1)}".encode()).hexdigest()
      shard_sources.append(ShardSource(stop - start, fingerprint, load))
    sources[split] = shard_sources
  kwargs.setdefault("name", tfds_name)
  kwargs.setdefault("source_description", {"tfds_name": tfds_name, "tfds_version":
                                           str(builder.info.version), "data_dir": data_dir})
  return build_tfrecords(output_dir, sources, class_map=class_map, **kwargs)


def tfds_feature_keys(info) -> tuple[str, str, Optional[str]]:
  """(image key, label key, file name key or None) of a tfds image classification dataset.

  Raises:
    ValueError: no Image or no ClassLabel feature.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = info.features
  image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  label_keys = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
  if not image_keys or not label_keys:
    raise ValueError(f"tfds dataset {info.name!r} needs an Image and a ClassLabel feature; it has "
                     f"{dict((k, type(f).__name__) for k, f in features.items())}.")
  pick = lambda keys, preferred: preferred if preferred in keys else keys[0]  # noqa: E731
  file_key = "file_name" if "file_name" in features else None
  return pick(image_keys, "image"), pick(label_keys, "label"), file_key


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 60,000 training and 10,000 test
# images, 28x28 grayscale, 10 classes, as four IDX files.

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
# Label 0..9 -> name, as in the dataset's README.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_IMAGE_SIZE = 28
# Our split -> (images, labels) file names without `.gz`; the official test set is our validation.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "validation": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _fashion_mnist_paths(directory: str) -> dict[str, tuple[str, str]]:
  """Split -> (images path, labels path), each `NAME.gz` or else `NAME` inside `directory`.

  Raises:
    FileNotFoundError: a file is missing; the message names the apt package and the files.
  """
  paths, missing = {}, []
  for split, names in FASHION_MNIST_FILES.items():
    found = []
    for name in names:
      candidates = [os.path.join(directory, name + ".gz"), os.path.join(directory, name)]
      present = [p for p in candidates if tf.io.gfile.exists(p)]
      if present:
        found.append(present[0])
      else:
        missing.append(name + ".gz")
    paths[split] = tuple(found)
  if missing:
    raise FileNotFoundError(
        f"Fashion-MNIST is not in {directory!r}: missing {', '.join(missing)}. Install it with "
        f"`apt-get install {FASHION_MNIST_PACKAGE}` (puts the four IDX files in "
        f"{FASHION_MNIST_DIR}), or give a directory holding the four files (linked from the "
        "dataset's GitHub page, zalandoresearch/fashion-mnist).")
  return paths


def read_fashion_mnist(directory: str = FASHION_MNIST_DIR
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads and checks Fashion-MNIST's IDX files.

  Args:
    directory: holds the four `*-idx?-ubyte.gz` files (or the unpacked files).

  Returns:
    Split ("train", "validation" = the official test set) -> (uint8 images [N, 28, 28], uint8
    labels [N] in 0..9).

  Raises:
    FileNotFoundError: missing files (the message names the apt package).
    idx.IdxError: malformed files, or arrays that are not 28x28 uint8 images with one label in
      0..9 each (the message names the file).
  """
  arrays = {}
  for split, (image_path, label_path) in _fashion_mnist_paths(directory).items():
    images, labels = idx.read_idx(image_path), idx.read_idx(label_path)
    size = FASHION_MNIST_IMAGE_SIZE
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
      raise idx.IdxError(f"{image_path}: expected uint8 images of shape [N, {size}, {size}]; got "
                         f"{images.dtype} {images.shape}.")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
      raise idx.IdxError(f"{label_path}: expected {images.shape[0]} uint8 labels (one per image of "
                         f"{os.path.basename(image_path)}); got {labels.dtype} {labels.shape}.")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
      raise idx.IdxError(f"{label_path}: label {int(labels.max())} is outside 0.."
                         f"{len(FASHION_MNIST_CLASSES) - 1}.")
    arrays[split] = (images, labels)
  return arrays


def _gray_png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
  return buffer.getvalue()


def build_fashion_mnist(output_dir: str, directory: str = FASHION_MNIST_DIR, **kwargs) -> dict:
  """Converts Fashion-MNIST's IDX files to slim-layout TFRecords (`train`: 60,000 images,
  `validation`: the 10,000 test images), with the class names in the manifest.

  Images are stored at their native 28x28 as 8-bit grayscale PNGs (~0.5 KB each): lossless, so the
  pixels are the dataset's, as in the published Fashion-MNIST results. The pipeline decodes them to
  3 channels (gray replicated) like every other source. An RGB JPEG (quality 95) would change half
  of the pixels (mean 0.9, max 11 gray levels over the first 5,000 training images) and take 2.3x
  the bytes.

  Args:
    output_dir: where shards and `manifest.json` go.
    directory: the four IDX files (default: Debian's `dataset-fashion-mnist`).
    **kwargs: passed to `build_tfrecords` (labels_offset, num_shards, num_workers, ...).

  Returns:
    The manifest dict.

  Raises:
    FileNotFoundError: the dataset is not in `directory` (the message names the apt package).
    idx.IdxError: malformed IDX files.
  """
  splits = {}
  for split, (images, labels) in read_fashion_mnist(directory).items():
    prefix = FASHION_MNIST_FILES[split][0].split("-")[0]  # train / t10k: the official file names
    splits[split] = [ImageItem(label=int(label), filename=f"{prefix}_{i:05d}.png",
                               data=_gray_png(image))
                     for i, (image, label) in enumerate(zip(images, labels))]
  kwargs.setdefault("name", "fashion_mnist")
  kwargs.setdefault("source_description", {
      "fashion_mnist": os.path.abspath(directory) if "://" not in directory else directory,
      "files": {split: list(names) for split, names in FASHION_MNIST_FILES.items()},
      "image_size": FASHION_MNIST_IMAGE_SIZE, "storage": "8-bit grayscale PNG, native size"})
  return build_tfrecords(output_dir, splits,
                         class_map=ClassMap(FASHION_MNIST_CLASSES, FASHION_MNIST_CLASSES),
                         keep_png=True, **kwargs)


def read_manifest(directory: str) -> dict:
  """Loads `directory/manifest.json`.

  Raises:
    FileNotFoundError: no manifest (the build never completed, or not a builder directory).
  """
  path = os.path.join(directory, MANIFEST_NAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No {MANIFEST_NAME} in {directory!r}: build it with "
                            "`python tools/build_tfrecords.py --output_dir ...` (an interrupted "
                            "build resumes when rerun).")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


