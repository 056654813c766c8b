"""The evaluator: every example counted once, ensembles, crops, blacklist, class layouts, errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import eval_fixtures
from inception_tf.data import preprocessing
from inception_tf.eval import crops as crops_lib
from inception_tf.eval import evaluate as ev

NUM = 13  # not divisible by the batch sizes used below
IDS = [7, 3, 12, 1, 9, 5, 13, 2, 11, 4, 8, 10, 6]  # shuffled: ids come from the file names


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return eval_fixtures.write_records(str(tmp_path_factory.mktemp("records")), IDS)


@pytest.fixture(scope="module")
def model():
  return eval_fixtures.tiny_model(32, 14, seed=0)


@pytest.fixture(scope="module")
def other_model():
  return eval_fixtures.tiny_model(32, 14, seed=1)


def _run(models, records, crops, **kwargs):
  kwargs.setdefault("batch_size", 4)
  return ev.evaluate(models, records, crops=crops, verbose=0, **kwargs)


@pytest.mark.parametrize("crops", [1, 10, 12, 144])
def test_every_example_counted_once(records, model, crops):
  report = _run(model, records, crops, return_probabilities=True)
  assert report["num_examples"] == NUM
  assert sorted(int(k) for k in report["per_class_accuracy"]) == sorted(IDS)
  assert report["probabilities"].shape == (NUM, 14)
  np.testing.assert_array_equal(report["labels"], IDS)  # data order
  np.testing.assert_allclose(report["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
  assert report["crops"] == crops and report["batch_size"] == 4
  assert report["geometry"]["32"]["crops"] == crops
  # The accuracies are those of the returned probabilities against the true labels.
  ranked = np.argsort(-report["probabilities"], axis=1)
  correct = ranked[:, 0] == np.asarray(IDS)
  assert report["top1_correct"] == int(correct.sum())
  assert report["top1_accuracy"] == pytest.approx(correct.mean())
  k = report["top5_k"]
  assert report["top5_accuracy"] == pytest.approx(
      np.mean([label in row[:k] for label, row in zip(IDS, ranked)]))


def _run_with_probabilities(models, records, crops, **kwargs):
  evaluator = ev.Evaluator(models, records, crops=crops, batch_size=kwargs.pop("batch_size", 5),
                           verbose=0, **kwargs)
  return evaluator.run(return_probabilities=True)


def test_multi_crop_probabilities_are_the_mean_over_the_crops(records, model):
  report = _run_with_probabilities(model, records, 12)
  dataset = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(os.path.join(records, "validation-*"))))
  from inception_tf.data import tfrecord
  expected = []
  for serialized in dataset:
    image = preprocessing.decode_image_rgb(tfrecord.parse_example(serialized)["image_bytes"])
    logits = model(crops_lib.make_crops(image, 32, 12), training=False)["logits"]
    expected.append(tf.nn.softmax(logits).numpy().mean(axis=0))
  np.testing.assert_allclose(report["probabilities"], np.stack(expected), rtol=1e-5, atol=1e-6)


def test_ensemble_of_one_model_equals_the_model(records, model):
  single = _run_with_probabilities(model, records, 10)
  ensemble = _run_with_probabilities([model], records, 10)
  np.testing.assert_array_equal(single["probabilities"], ensemble["probabilities"])
  assert single["top1_accuracy"] == ensemble["top1_accuracy"]


def test_ensemble_averages_probabilities(records, model, other_model):
  first = _run_with_probabilities(model, records, 1)
  second = _run_with_probabilities(other_model, records, 1)
  both = _run_with_probabilities([model, other_model], records, 1)
  np.testing.assert_allclose(both["probabilities"],
                             (first["probabilities"] + second["probabilities"]) / 2, rtol=1e-5)
  assert [m["name"] for m in both["models"]] == ["Tiny", "Tiny"]


def test_ensemble_averages_probabilities_not_logits():
  # A is confident in class 0; B prefers class 1 with moderate confidence but has a very low
  # logit for class 0. Mean logits pick class 1, mean probabilities pick class 0 (the label).
  logits_a, logits_b = [4.0, 0.0, 0.0], [-10.0, 1.0, 0.0]
  assert np.argmax(np.add(logits_a, logits_b)) == 1
  images = np.zeros((5, 40, 40, 3), np.uint8)
  raw = tf.data.Dataset.from_tensor_slices(
      {"image": images, "label": np.zeros(5, np.int32), "filename": [""] * 5})
  results = {}
  for name, members in (("a", [logits_a]), ("b", [logits_b]), ("ab", [logits_a, logits_b]),
                        ("ba", [logits_b, logits_a])):
    models = [eval_fixtures.constant_model(m, 32) for m in members]
    results[name] = ev.evaluate(models, raw_dataset=raw, crops=1, batch_size=2, verbose=0,
                                num_classes=3)["top1_accuracy"]
  assert results == {"a": 1.0, "b": 0.0, "ab": 1.0, "ba": 1.0}


def test_keras_file_equals_the_in_memory_model(records, model, tmp_path):
  path = str(tmp_path / "tiny.keras")
  model.save(path)
  loaded = _run_with_probabilities(ev.ModelSpec(checkpoint=path), records, 1)
  direct = _run_with_probabilities(model, records, 1)
  np.testing.assert_allclose(loaded["probabilities"], direct["probabilities"], rtol=1e-6)
  assert loaded["models"][0]["format"] == "keras"


def test_blacklist_excludes_the_listed_validation_images(records, model, tmp_path):
  path = tmp_path / "blacklist.txt"
  path.write_text("2\n5\n\n# a comment\n11\n")
  assert ev.read_blacklist(str(path)) == [2, 5, 11]
  for crops in (1, 144):
    report = _run(model, records, crops, blacklist=str(path), batch_size=3)
    assert report["num_examples"] == NUM - 3
    assert sorted(int(k) for k in report["per_class_accuracy"]) == sorted(set(IDS) - {2, 5, 11})
    assert report["data"]["blacklisted_ids"] == 3


def test_blacklist_by_position_when_records_have_no_file_name(model):
  raw = tf.data.Dataset.from_tensor_slices({
      "image": np.zeros((6, 40, 40, 3), np.uint8), "label": np.arange(1, 7, dtype=np.int32),
      "filename": [""] * 6})
  report = ev.evaluate(model, raw_dataset=raw, crops=1, batch_size=4, blacklist=[1, 6],
                       verbose=0, num_classes=14)
  assert sorted(int(k) for k in report["per_class_accuracy"]) == [2, 3, 4, 5]


def test_bad_blacklist_line_is_named(tmp_path):
  path = tmp_path / "blacklist.txt"
  path.write_text("12\nILSVRC2012_val_00000013\n")
  with pytest.raises(ev.EvaluationError, match=r"blacklist.txt:2"):
    ev.read_blacklist(str(path))


def test_class_layouts_are_mapped_explicitly():
  assert ev.class_mapping(1001, 1001, 1) == "identity"
  assert ev.class_mapping(1001, 1000, 0) == "drop_background_logit"
  assert ev.class_mapping(1000, 1001, 1) == "add_background_column"
  with pytest.raises(ev.EvaluationError, match="1000/1001"):
    ev.class_mapping(1000, 1001, 0)
  with pytest.raises(ev.EvaluationError, match="10 classes but the data has 1001"):
    ev.class_mapping(10, 1001, 1)
  logits = tf.constant([[5.0, 1.0, 2.0]])
  np.testing.assert_allclose(ev.probabilities_in_data_space(logits, "drop_background_logit"),
                             tf.nn.softmax([[1.0, 2.0]]), rtol=1e-6)
  np.testing.assert_allclose(ev.probabilities_in_data_space(logits, "add_background_column"),
                             np.concatenate([[[0.0]], tf.nn.softmax(logits)], axis=1), rtol=1e-6)


def test_1001_class_model_on_1000_class_data(records):
  # Data labels 1..13 of 14 classes; a 15-class model has one extra (background) logit.
  wide = eval_fixtures.tiny_model(32, 15, seed=2)
  report = _run_with_probabilities(wide, records, 1, num_classes=14, labels_offset=0)
  assert report["models"][0]["class_mapping"] == "drop_background_logit"
  assert report["probabilities"].shape == (NUM, 14)
  _assert_loss_is_the_cross_entropy_of_the_probabilities(report)


def _assert_loss_is_the_cross_entropy_of_the_probabilities(report):
  label_probabilities = report["probabilities"][np.arange(NUM), report["labels"]]
  assert report["loss"] == pytest.approx(-np.mean(np.log(label_probabilities)), rel=1e-5)


def test_1000_class_model_on_1001_class_data_pads_with_background_labels(records):
  # Data labels 1..13 of 14 classes (0 = background); a 13-class model has no background logit.
  # Batches of 5 pad the last one with label 0, whose added probability column is 0 (log -inf):
  # the padding must not reach the loss.
  narrow = eval_fixtures.tiny_model(32, 13, seed=3)
  report = _run_with_probabilities(narrow, records, 1, num_classes=14, labels_offset=1)
  assert report["models"][0]["class_mapping"] == "add_background_column"
  assert report["num_examples"] == NUM and NUM % 5
  np.testing.assert_array_equal(report["probabilities"][:, 0], 0.0)
  _assert_loss_is_the_cross_entropy_of_the_probabilities(report)


def test_masked_totals_count_only_real_rows():
  """The trainer's reduction of the step: padding rows (mask 0) add nothing, even an inf loss."""
  outputs = {"top1": tf.constant([True, False, True]), "top5": tf.constant([True, True, True]),
             "loss": tf.constant([1.5, 0.25, np.inf]), "mask": tf.constant([1.0, 1.0, 0.0])}
  totals = tf.function(ev.masked_totals, jit_compile=True)(outputs)
  assert {k: float(v) for k, v in totals.items()} == {"top1": 1.0, "top5": 2.0, "loss": 1.75,
                                                      "count": 2.0}


def test_unknown_crops_value(records, model):
  with pytest.raises(ValueError, match="valid values: 1, 10, 12, 144"):
    _run(model, records, 7)


def test_empty_data_pattern(model, tmp_path):
  with pytest.raises(FileNotFoundError, match="No TFRecord files match"):
    _run(model, str(tmp_path / "nothing-*"), 1)


def test_split_without_examples(model, tmp_path):
  directory = eval_fixtures.write_records(str(tmp_path / "empty"), [], num_shards=1)
  with pytest.raises(ev.EvaluationError, match="no examples"):
    _run(model, directory, 1)


def test_image_size_below_the_minimum(records):
  with pytest.raises(ev.EvaluationError, match="below the minimum input size 75 of inception_v3"):
    _run(ev.ModelSpec("inception_v3", checkpoint="/nonexistent"), records, 1, image_size=50)


def test_checkpoint_of_another_network(records, tmp_path):
  prefix = str(tmp_path / "v1.ckpt")
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["InceptionV1/Conv2d_1a_7x7/weights"],
                    shape_and_slices=[""], tensors=[tf.zeros([7, 7, 3, 64])])
  with pytest.raises(ev.EvaluationError, match="not an inception_v3 checkpoint"):
    _run(ev.ModelSpec("inception_v3", checkpoint=prefix), records, 1)


def test_missing_checkpoint(records):
  with pytest.raises(FileNotFoundError):
    _run(ev.ModelSpec("inception_v3", checkpoint="/nonexistent/model.ckpt"), records, 1)


def test_batch_size_must_split_over_replicas(records, model):
  with pytest.raises(ev.EvaluationError, match="multiple of the 1 replicas"):
    _run(model, records, 1, batch_size=0)


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")  # two logical CPUs, even on a machine with GPUs
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[2])
    import eval_fixtures
    from inception_tf import distribute
    from inception_tf.eval import evaluate as ev
    strategy = distribute.get_strategy("mirrored")
    with strategy.scope():
      model = eval_fixtures.tiny_model(32, 14, seed=0)
    out = {"replicas": strategy.num_replicas_in_sync}
    for crops in (1, 10, 12, 144):
      report = ev.Evaluator(model, sys.argv[1], crops=crops, batch_size=4, strategy=strategy,
                            verbose=0).run(return_probabilities=True)
      out[crops] = {"num_examples": report["num_examples"], "strategy": report["strategy"],
                    "probabilities": report["probabilities"].tolist(),
                    "labels": report["labels"].tolist()}
    print("RESULT" + json.dumps(out))
""")


def test_mirrored_strategy_on_two_cpu_devices_counts_every_example_once(records, model):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, records,
                         os.path.dirname(eval_fixtures.__file__)],
                        capture_output=True, text=True, env=env, timeout=600, check=False)
  lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT")]
  assert lines, done.stderr[-3000:]
  result = json.loads(lines[-1][len("RESULT"):])
  assert result["replicas"] == 2
  for crops in (1, 10, 12, 144):
    mirrored = result[str(crops)]
    assert mirrored["num_examples"] == NUM
    assert mirrored["strategy"] == "MirroredStrategy"
    assert mirrored["labels"] == IDS
    single = _run_with_probabilities(model, records, crops, batch_size=4)
    np.testing.assert_allclose(np.array(mirrored["probabilities"]), single["probabilities"],
                               rtol=1e-4, atol=1e-6)


def test_undecodable_images_are_skipped_and_reported(model, tmp_path):
  """A corrupt record in the validation set does not stop the evaluation: it is left out of the
  accuracy and reported (in the report and in its one-line summary)."""
  directory = eval_fixtures.write_records(str(tmp_path), IDS, num_shards=1)
  path = os.path.join(directory, "validation-00000-of-00001")
  records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
  with tf.io.TFRecordWriter(path) as writer:
    for position, raw in enumerate(records):
      if position in (2, 7):
        example = tf.train.Example.FromString(raw)
        example.features.feature["image/encoded"].bytes_list.value[:] = [b"truncated \xff\xd8"]
        raw = example.SerializeToString()
      writer.write(raw)
  report = _run(model, directory, 10, return_probabilities=True)
  assert report["num_examples"] == NUM - 2 and report["undecodable_skipped"] == 2
  expected = [image_id for position, image_id in enumerate(IDS) if position not in (2, 7)]
  np.testing.assert_array_equal(report["labels"], expected)  # the others, in data order
  assert f"{NUM - 2} examples (2 undecodable skipped)" in ev.format_report(report)
  clean = eval_fixtures.write_records(str(tmp_path / "clean"), IDS)
  assert _run(model, clean, 1)["undecodable_skipped"] == 0
