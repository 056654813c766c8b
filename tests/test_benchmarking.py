"""Tests of the benchmark helpers (inception_tf.benchmarks.sections); the benchmarks run in tools/."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from inception_tf.benchmarks import sections as benchmarking


def test_time_interleaved_warms_up_then_alternates():
  calls = []
  timings = benchmarking.time_interleaved(
      {"ours": lambda: calls.append("a"), "theirs": lambda: calls.append("b")},
      warmup=2, iterations=3)
  assert calls == ["a", "a", "b", "b"] + ["a", "b", "b", "a", "a", "b"]  # ABBA rounds
  assert len(timings["ours"].times) == 3 and len(timings["theirs"].times) == 3
  assert all(t >= 0 for t in timings["ours"].times)


def test_time_interleaved_waits_for_tensors():
  blocked = []

  class Result:
    def numpy(self):
      blocked.append(True)

  benchmarking.time_function(lambda: {"x": [Result(), Result()]}, warmup=0, iterations=1)
  assert blocked == [True, True]


def test_timing_median_and_measurement_ratio():
  timing = benchmarking.Timing((3.0, 1.0, 2.0))
  assert timing.median == 2.0
  m = benchmarking.Measurement.from_timings(
      "s", "case", {"ours": benchmarking.Timing((0.5,)), "theirs": benchmarking.Timing((1.0,))},
      items=32)
  assert (m.ours, m.theirs, m.ratio) == (64.0, 32.0, 2.0)
  assert m.as_dict()["ratio"] == 2.0
  assert m.ratio_range == (2.0, 2.0)
  assert "| s | case | 64.00 | 32.00 | images/s | 2.000 (rounds 2.000-2.000) |" in (
      benchmarking.format_table([m]))
  paired = benchmarking.Measurement.from_timings(
      "s", "c", {"ours": benchmarking.Timing((1.0, 2.0, 1.0)),
                 "theirs": benchmarking.Timing((1.1, 1.0, 1.0))}, items=1)
  assert paired.ratio_range == (0.5, 1.1)
  alone = benchmarking.Measurement("s", "c", ours=1.0, theirs=None)
  assert alone.ratio is None and "ratio -" in benchmarking.format_measurement(alone)


def test_bad_arguments():
  with pytest.raises(ValueError, match="iterations >= 1"):
    benchmarking.time_function(lambda: None, iterations=0)
  with pytest.raises(ValueError, match="Unknown benchmark section.*'models'"):
    benchmarking.run_sections(["nope"], benchmarking.BenchmarkConfig())
  with pytest.raises(ValueError, match="No keras.applications peer for \\['inception_v1'\\]"):
    list(benchmarking.models_section(benchmarking.BenchmarkConfig(models=("inception_v1",))))


def test_registered_section_runs_and_logs(monkeypatch):
  monkeypatch.setattr(benchmarking, "_SECTIONS", dict(benchmarking._SECTIONS))

  @benchmarking.register_section("fake", description="a generator section")
  def fake(config):
    yield benchmarking.Measurement("fake", f"b{config.batch_size}", ours=2.0, theirs=1.0)

  with pytest.raises(ValueError, match="registered twice"):
    benchmarking.register_section("fake", description="again")(fake)
  assert benchmarking.list_sections()["fake"] == "a generator section"
  lines = []
  results = benchmarking.run_sections(["fake"], benchmarking.BenchmarkConfig(batch_size=8),
                                      log=lines.append)
  assert [r.case for r in results] == ["b8"]
  assert lines[0] == "[fake] a generator section" and "ratio 2.000" in lines[1]


def test_steps_on_a_tiny_model():
  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  model = keras.Model(inputs, {"logits": keras.layers.Dense(5, name="dense")(x)})
  images = tf.constant(np.random.default_rng(0).uniform(size=(2, 8, 8, 3)), tf.float32)
  labels = tf.constant([1, 3])
  logits = benchmarking.inference_step(model, jit_compile=False)(images)
  assert logits.shape == (2, 5)
  before = model.get_layer("dense").kernel.numpy().copy()
  loss = benchmarking.train_step(model, jit_compile=False)(images, labels)
  assert np.isfinite(float(loss))
  assert not np.array_equal(model.get_layer("dense").kernel.numpy(), before)


def test_merge_instances_averages_each_round_over_a_sides_instances():
  merged = benchmarking.merge_instances({
      "ours.0": benchmarking.Timing((1.0, 3.0)), "theirs.1": benchmarking.Timing((2.0, 2.0)),
      "theirs.2": benchmarking.Timing((4.0, 2.0)), "ours.3": benchmarking.Timing((3.0, 1.0))})
  assert merged == {"ours": benchmarking.Timing((2.0, 2.0)),
                    "theirs": benchmarking.Timing((3.0, 2.0))}


@pytest.mark.parametrize("instances,order", [(2, ["ours", "theirs", "theirs", "ours"]),
                                             (1, ["ours", "theirs"])])
def test_models_section_builds_both_sides_early_and_late(monkeypatch, instances, order):
  built = []

  def tiny(side):
    def build(*args, **kwargs):
      built.append(side)
      inputs = keras.Input((299, 299, 3))
      x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, strides=8)(inputs))
      return keras.Model(inputs, keras.layers.Dense(1000)(x))  # the peers' 1000 classes
    return build

  import inception_tf.models  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(inception_tf.models, "create_model", tiny("ours"))
  monkeypatch.setattr(benchmarking, "_peer_model", tiny("theirs"))
  config = benchmarking.BenchmarkConfig(batch_size=2, warmup=1, iterations=2, dtypes=("float32",),
                                        models=("inception_v3",), instances=instances)
  results = list(benchmarking.models_section(config))
  assert built == order
  assert [m.case.split()[1] for m in results] == ["inference", "train"]
  assert all(m.ours > 0 and m.theirs > 0 for m in results)
  with pytest.raises(ValueError, match="instances must be 1 or 2"):
    list(benchmarking.models_section(dataclasses.replace(config, instances=3)))


def test_kernels_section_measures_each_kernel_against_the_keras_layer():
  config = benchmarking.BenchmarkConfig(batch_size=1, warmup=0, iterations=1)
  results = list(benchmarking.kernels_section(config))
  assert [m.case for m in results] == [
      "batch norm float32 1x35x35x192 fwd+bwd", "batch norm mixed_bfloat16 1x35x35x192 fwd+bwd",
      "conv 3x3 288->96 mixed_bfloat16 1x35x35 fwd+bwd (ours: float32 sums)"]
  assert all(m.ours > 0 and m.theirs > 0 for m in results)


def test_kernels_section_layers_compute_in_the_policy_named(monkeypatch):
  built = []
  one_layer_model = benchmarking._one_layer_model  # pylint: disable=protected-access
  monkeypatch.setattr(benchmarking, "_one_layer_model",
                      lambda layer, shape: built.append(layer) or one_layer_model(layer, shape))
  list(benchmarking.kernels_section(benchmarking.BenchmarkConfig(batch_size=1, warmup=0,
                                                                 iterations=1)))
  assert [layer.compute_dtype for layer in built] == ["float32", "bfloat16", "bfloat16"]


def test_resnet_section_pairs_each_cell_with_its_peer(monkeypatch, capsys):
  """Tiny stand-ins for the three networks: every step (both modes, model(...) and fused_call) runs
  once, and each cell's ratio is taken between the two functions it names."""
  built = []

  def tiny(side):
    def build(name, *args, **kwargs):
      built.append((side, name, kwargs.get("dtype", args[-1] if args else None)))
      inputs = keras.Input((32, 32, 3))
      x = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3, strides=8)(inputs))
      outputs = keras.layers.Dense(1000)(keras.layers.GlobalAveragePooling2D()(x))
      return keras.Model(inputs, {"logits": outputs} if side == "ours" else outputs)
    return build

  seconds = {"resnet50:model(x)": 1.0, "resnet50:fused_call": 2.0, "ResNet50:model(x)": 4.0,
             "resnext50_32x4d:model(x)": 8.0, "resnext50_32x4d:fused_call": 16.0}
  timed = []

  def fake_time_interleaved(functions, *, warmup, iterations):
    timed.append(sorted(functions))
    for fn in functions.values():
      assert np.all(np.isfinite(fn().numpy()))
    return {k: benchmarking.Timing((seconds[k.split(".")[0]],) * iterations) for k in functions}

  import inception_tf.models  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(inception_tf.models, "create_model", tiny("ours"))
  monkeypatch.setattr(benchmarking, "_peer_model", tiny("theirs"))
  monkeypatch.setattr(benchmarking, "time_interleaved", fake_time_interleaved)
  config = benchmarking.BenchmarkConfig(batch_size=2, warmup=0, iterations=1,
                                        dtypes=("mixed_bfloat16",), instances=2,
                                        bfloat16_convolutions="native")
  results = list(benchmarking.resnet_section(config))
  assert "resnext50_32x4d model(x) inference mixed_bfloat16: not timed" in capsys.readouterr().out
  order = [("ours", "resnet50"), ("theirs", "resnet50"), ("ours", "resnext50_32x4d")]
  assert built == [(side, name, "mixed_bfloat16") for side, name in order + order[::-1]]
  # 4 functions x 2 instances: resnext50 by model(x) (Keras' nested-XLA grouped convolutions) is
  # not timed, and the section says so instead of printing a cell.
  assert len(timed) == 2 and all(len(keys) == 8 for keys in timed)
  assert not any(key.startswith("resnext50_32x4d:model(x)") for keys in timed for key in keys)
  expected = []
  for mode in ("inference", "train step"):
    for ours, theirs in (("resnet50:model(x)", "ResNet50:model(x)"),
                         ("resnet50:fused_call", "ResNet50:model(x)"),
                         ("resnext50_32x4d:fused_call", "resnet50:fused_call")):
      name, call = ours.split(":")
      expected.append((f"{name} {call} {mode} mixed_bfloat16 b2", 2 / seconds[ours],
                       2 / seconds[theirs]))
  assert [(m.case, m.ours, m.theirs) for m in results] == expected
  assert results[0].peer.startswith("keras.applications.ResNet50 model(x)")
  assert results[2].peer.startswith("our resnet50 fused_call")
