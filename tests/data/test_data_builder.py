"""The TFRecord builder on real photos with odd files, kill-and-resume, ImageNet layouts."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

from inception_tf.data import builder
from inception_tf.data import imagenet
from inception_tf.data import tfrecord

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _jpeg(array, quality=90, mode=None):
  buffer = io.BytesIO()
  image = Image.fromarray(array)
  if mode:
    image = image.convert(mode)
  image.save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """Class folders of real JPEGs plus odd files. Returns (root, expected, bad) where expected maps
  file name -> (class folder, RGB pixels it must decode to approximately or None, original bytes
  when they must be kept unchanged) and bad maps file name -> reason fragment."""
  root = tmp_path_factory.mktemp("images")
  photos = {"astronaut": skimage.data.astronaut(), "cat": skimage.data.chelsea(),
            "coffee": skimage.data.coffee(), "rocket": skimage.data.rocket()}
  expected, bad = {}, {}

  def write(folder, name, data, pixels=None, keep=False):
    os.makedirs(root / folder, exist_ok=True)
    (root / folder / name).write_bytes(data)
    expected[name] = (folder, pixels, data if keep else None)

  for folder, photo in photos.items():
    for k in range(4):  # different crops: distinct real photos per class
      crop = photo[k * 20:k * 20 + 160 + 7 * k, k * 30:k * 30 + 200 - 5 * k].copy()
      write(folder, f"{folder}_{k}.jpg", _jpeg(crop), keep=True)
  digits = load_digits()
  for i in range(6):
    pixels = np.kron((digits.images[i] * 15).astype(np.uint8), np.ones((6, 6), np.uint8))
    write("digits", f"digit_{i}.JPEG", _jpeg(np.stack([pixels] * 3, -1)), keep=True)
  chelsea = photos["cat"][:120, :150].copy()
  write("cat", "cmyk.jpg", _jpeg(chelsea, 95, mode="CMYK"), pixels=chelsea)
  camera = skimage.data.camera()[:100, :90].copy()
  write("coffee", "gray.jpg", _jpeg(camera, 95), pixels=np.stack([camera] * 3, -1))
  rocket = photos["rocket"][:90, :110].copy()
  write("rocket", "png_named.jpg", _png(rocket), pixels=rocket)
  (root / "astronaut" / "empty.jpg").write_bytes(b"")
  bad["empty.jpg"] = "empty file"
  full = _jpeg(photos["astronaut"], 95)
  (root / "astronaut" / "truncated.jpg").write_bytes(full[:len(full) // 3])
  bad["truncated.jpg"] = "undecodable"
  (root / "digits" / "notes.jpg").write_bytes(b"this is not an image\n" * 10)
  bad["notes.jpg"] = "undecodable"
  return root, expected, bad


def _read_records(output_dir, split):
  names = sorted(f for f in os.listdir(output_dir) if f.startswith(f"{split}-"))
  records = []
  for name in names:
    for raw in tf.data.TFRecordDataset(os.path.join(output_dir, name)):
      example = tf.train.Example.FromString(raw.numpy())
      f = example.features.feature
      records.append({
          "shard": name,
          "filename": f[tfrecord.IMAGE_FILENAME].bytes_list.value[0].decode(),
          "label": f[tfrecord.CLASS_LABEL].int64_list.value[0],
          "synset": f[tfrecord.CLASS_SYNSET].bytes_list.value[0].decode(),
          "text": f[tfrecord.CLASS_TEXT].bytes_list.value[0].decode(),
          "encoded": f[tfrecord.IMAGE_ENCODED].bytes_list.value[0],
          "format": f[tfrecord.IMAGE_FORMAT].bytes_list.value[0],
          "height": f[tfrecord.IMAGE_HEIGHT].int64_list.value[0],
          "width": f[tfrecord.IMAGE_WIDTH].int64_list.value[0],
          "bbox": [list(f[k].float_list.value) for k in (tfrecord.BBOX_XMIN, tfrecord.BBOX_YMIN,
                                                          tfrecord.BBOX_XMAX, tfrecord.BBOX_YMAX)],
      })
  return names, records


def test_class_folders_with_odd_files(tree, tmp_path):
  root, expected, bad = tree
  manifest = builder.build_from_directories(str(tmp_path), train_dir=str(root),
                                            num_shards={"train": 3}, num_workers=2, progress=False)
  classes = sorted(os.listdir(root))  # astronaut, cat, coffee, digits, rocket
  names, records = _read_records(tmp_path, "train")
  assert names == [f"train-{k:05d}-of-00003" for k in range(3)]
  by_name = {r["filename"]: r for r in records}
  assert len(by_name) == len(records) == len(expected)  # each decodable image exactly once
  assert set(by_name) == set(expected)
  for name, (folder, pixels, original) in expected.items():
    record = by_name[name]
    assert record["label"] == classes.index(folder) + 1  # 0 = background
    assert record["synset"] == folder and record["format"] == b"JPEG"
    assert tf.io.is_jpeg(record["encoded"]).numpy()
    decoded = tf.io.decode_jpeg(record["encoded"]).numpy()  # channels from the file itself
    assert decoded.shape == (record["height"], record["width"], 3)  # stored as RGB
    if original is not None:
      assert record["encoded"] == original  # RGB JPEGs are kept byte for byte
    if pixels is not None:
      assert decoded.shape == pixels.shape
      assert np.abs(decoded.astype(float) - pixels).mean() < 8  # re-encoded, same picture
  split = manifest["splits"]["train"]
  assert split["num_examples"] == len(expected)
  assert {os.path.basename(s["file"]): s["reason"].split(":")[0] for s in split["skipped"]} == bad
  assert {os.path.basename(c["file"]) for c in split["converted"]} == {
      "cmyk.jpg", "gray.jpg", "png_named.jpg"}
  assert split["class_counts"] == {c: sum(1 for f, *_ in expected.values() if f == c)
                                   for c in classes}
  assert sum(f["num_examples"] for f in split["files"]) == len(expected)
  on_disk = json.loads((tmp_path / "manifest.json").read_text())
  assert on_disk["num_classes"] == 6 and on_disk["labels_offset"] == 1
  assert on_disk["classes"][0]["text"] == "background"
  # Zero-based labels on request.
  zero = builder.build_from_directories(str(tmp_path / "zero"), train_dir=str(root), labels_offset=0,
                                        num_shards=1, progress=False)
  assert zero["num_classes"] == 5
  _, zero_records = _read_records(tmp_path / "zero", "train")
  assert {r["filename"]: r["label"] for r in zero_records} == {
      n: r["label"] - 1 for n, r in by_name.items()}


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from inception_tf.data import builder
    root, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def hook(split, done):
      if done == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally blocks
    builder.build_from_directories(out, train_dir=root, num_shards={"train": 5}, num_workers=1,
                                   progress=False, progress_hook=hook)
""")


def test_killed_build_leaves_no_complete_looking_shard_and_resumes(tree, tmp_path):
  root, expected, bad = tree
  total = len(expected) + len(bad)
  bounds = [total * k // 5 for k in range(6)]
  kill_at = bounds[1] + 2  # midway through the second shard
  out = tmp_path / "killed"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
  result = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(root), str(out), str(kill_at)],
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
  assert not (out / "manifest.json").exists()
  shards = sorted(f for f in os.listdir(out) if f.startswith("train-"))
  assert shards == ["train-00000-of-00005"]  # only the finished shard has its final name
  assert any(f.startswith(".tmp.train-00001-of-00005") for f in os.listdir(out))  # the partial one
  _, records = _read_records(out, "train")
  sidecar = json.loads((out / ".train-00000-of-00005.json").read_text())
  assert len(records) == sidecar["num_examples"] > 0  # the finished shard is complete
  # Stamp the finished shard with a modification time no rewrite could give it (1 s after the
  # epoch): a file rewritten by the resumed build would carry the time of that write instead. This
  # holds on any filesystem, unlike inode numbers, which can be reused.
  os.utime(out / shards[0], ns=(1_000_000_000, 1_000_000_000))
  content = (out / shards[0]).read_bytes()

  manifest = builder.build_from_directories(str(out), train_dir=str(root), num_shards={"train": 5},
                                            num_workers=2, progress=False)
  assert os.stat(out / shards[0]).st_mtime_ns == 1_000_000_000  # not rewritten
  assert (out / shards[0]).read_bytes() == content
  assert not any(f.startswith(".tmp.") for f in os.listdir(out))
  _, records = _read_records(out, "train")
  assert sorted(r["filename"] for r in records) == sorted(expected)
  assert manifest["splits"]["train"]["num_examples"] == len(expected)
  assert len(manifest["splits"]["train"]["skipped"]) == len(bad)


def test_imagenet_layout_flat_validation_labels_and_boxes(tmp_path):
  synsets = imagenet.imagenet_synsets()
  assert len(synsets) == 1000 and synsets[0] == "n01440764"
  assert imagenet.imagenet_class_texts()["n01440764"].startswith("tench")
  photo = skimage.data.coffee()
  train = tmp_path / "train"
  for synset in ("n01443537", "n01440764"):
    os.makedirs(train / synset)
    for k in range(2):
      (train / synset / f"{synset}_{k}.JPEG").write_bytes(_jpeg(photo[k * 10:200, :300].copy()))
  val = tmp_path / "val"
  os.makedirs(val)
  val_synsets = ["n01443537", "n01440764", "n01443537"]
  for k in range(3):
    (val / f"ILSVRC2012_val_{k + 1:08d}.JPEG").write_bytes(_jpeg(photo[:150 + k].copy()))
  labels_file = tmp_path / "val_labels.txt"
  labels_file.write_text("\n".join(val_synsets) + "\n")  # one per line, sorted file order
  boxes_csv = tmp_path / "boxes.csv"
  boxes_csv.write_text("ILSVRC2012_val_00000002.JPEG,0.1,0.2,0.5,0.6\n"
                       "ILSVRC2012_val_00000002.JPEG,0.3,0.3,1.2,0.9\n")
  xml_dir = tmp_path / "xml" / "n01440764"
  os.makedirs(xml_dir)
  (xml_dir / "n01440764_1.xml").write_text(textwrap.dedent("""
      <annotation><filename>n01440764_1</filename><size><width>300</width><height>190</height>
      </size><object><name>n01440764</name><bndbox><xmin>30</xmin><ymin>19</ymin><xmax>150</xmax>
      <ymax>95</ymax></bndbox></object></annotation>"""))
  csv_boxes = imagenet.read_bounding_boxes(str(boxes_csv))
  assert csv_boxes == {"ILSVRC2012_val_00000002.JPEG": [(0.1, 0.2, 0.5, 0.6), (0.3, 0.3, 1.0, 0.9)]}
  xml_boxes = imagenet.read_bounding_boxes(str(tmp_path / "xml"))
  np.testing.assert_allclose(xml_boxes["n01440764_1.JPEG"], [(0.1, 0.1, 0.5, 0.5)])

  out = tmp_path / "records"
  builder.build_from_directories(str(out), train_dir=str(train), validation_dir=str(val),
                                 validation_labels_file=str(labels_file),
                                 bounding_boxes=str(boxes_csv), num_shards=1, progress=False)
  _, val_records = _read_records(out, "validation")
  by_name = {r["filename"]: r for r in val_records}
  for k, synset in enumerate(val_synsets):
    record = by_name[f"ILSVRC2012_val_{k + 1:08d}.JPEG"]
    assert record["synset"] == synset and record["label"] == synsets.index(synset) + 1
  np.testing.assert_allclose(np.array(by_name["ILSVRC2012_val_00000002.JPEG"]["bbox"]).T,
                             [(0.1, 0.2, 0.5, 0.6), (0.3, 0.3, 1.0, 0.9)], atol=1e-6)
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["num_classes"] == 1001  # the full ImageNet label map, slim layout
  assert manifest["classes"][1] == {"label": 1, "synset": "n01440764",
                                    "text": imagenet.imagenet_class_texts()["n01440764"]}
  _, train_records = _read_records(out, "train")
  assert {r["label"] for r in train_records} == {1, 2}
  # 'filename,synset' labels files and XML boxes work too.
  pairs = tmp_path / "pairs.txt"
  pairs.write_text("".join(f"ILSVRC2012_val_{k + 1:08d}.JPEG,{s}\n"
                           for k, s in enumerate(val_synsets)))
  out2 = tmp_path / "records2"
  builder.build_from_directories(str(out2), train_dir=str(train), validation_dir=str(val),
                                 validation_labels_file=str(pairs),
                                 bounding_boxes=str(tmp_path / "xml"), num_shards=1, progress=False)
  _, train2 = _read_records(out2, "train")
  boxed = {r["filename"]: np.array(r["bbox"]).T for r in train2}
  np.testing.assert_allclose(boxed["n01440764_1.JPEG"], [(0.1, 0.1, 0.5, 0.5)], atol=1e-6)
  assert boxed["n01440764_0.JPEG"].size == 0


def test_bad_arguments_are_explained(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    builder.build_from_directories(str(tmp_path / "o"), train_dir=str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="labels_offset"):
    builder.build_tfrecords(str(tmp_path / "o"), {"train": []},
                            class_map=builder.ClassMap(("a",), ("a",)), labels_offset=2)
