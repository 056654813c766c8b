"""Benchmark sections and a timing helper shared by `tools/benchmark.py`.

A benchmark compares us with a peer in the same process (no absolute numbers in tests). A section is
a function `section(config) -> Iterable[Measurement]` (a generator shows results as they come) registered with `@register_section("name")`; the
tool runs the sections named by `--sections`. Other parts of the package add their sections in
their own modules (e.g. `inception_tf/train/...`) and list the module in `SECTION_MODULES` so it is
imported (for its `@register_section` side effect) when the registry is read.

Timing: `time_interleaved({"ours": f, "theirs": g}, ...)` warms every function up, then runs them
alternately (ours, theirs, ours, theirs, ...) so that load from other processes on a shared machine
hits both alike, and reports the median of each.

Example:

    @benchmarking.register_section("eval", description="multi-crop eval vs single crop")
    def eval_section(config):
      timings = benchmarking.time_interleaved({"ours": f, "theirs": g}, warmup=config.warmup,
                                              iterations=config.iterations)
      return [benchmarking.Measurement.from_timings("eval", "10-crop", timings,
                                                    items=config.batch_size)]
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import statistics
import time
from typing import Callable, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

# Modules that register further sections; imported by `list_sections`/`run_sections`.
SECTION_MODULES: tuple[str, ...] = ("inception_tf.benchmarks.serving",
                                     "inception_tf.benchmarks.steps")


@dataclasses.dataclass(frozen=True)
class Timing:
  """Seconds of every timed call of one function, and their median."""

  times: tuple[float, ...]

  @property
  def median(self) -> float:
    return statistics.median(self.times)


def _block(result) -> None:
  """Waits for `result` (tensors possibly nested in dicts/lists) to be computed."""
  for leaf in tf.nest.flatten(result):
    if hasattr(leaf, "numpy"):
      leaf.numpy()


def time_interleaved(functions: dict[str, Callable[[], object]], *, warmup: int = 2,
                     iterations: int = 5) -> dict[str, Timing]:
  """Times zero-argument functions alternately; returns {name: Timing}.

  Args:
    functions: name -> function; each call's result is waited for (`.numpy()`) inside the timing.
    warmup: untimed calls of each function first (tracing, compilation, allocator warm-up).
    iterations: timed calls of each function, interleaved round-robin, the order reversed in
      every other round (ABBA), so that an order effect does not favour one function.

  Raises:
    ValueError: warmup < 0 or iterations < 1.
  """
  if warmup < 0 or iterations < 1:
    raise ValueError(f"need warmup >= 0 and iterations >= 1, got {warmup} and {iterations}.")
  for fn in functions.values():
    for _ in range(warmup):
      _block(fn())
  times: dict[str, list[float]] = {name: [] for name in functions}
  order = list(functions.items())
  for round_index in range(iterations):
    # A, B, B, A, A, B, ...: whoever runs first in a round (a cold cache, the previous
    # function's allocations still being returned) is not always the same function.
    for name, fn in (order if round_index % 2 == 0 else order[::-1]):
      start = time.perf_counter()
      _block(fn())
      times[name].append(time.perf_counter() - start)
  return {name: Timing(tuple(t)) for name, t in times.items()}


def time_function(fn: Callable[[], object], *, warmup: int = 2, iterations: int = 5) -> Timing:
  """`time_interleaved` for one function."""
  return time_interleaved({"fn": fn}, warmup=warmup, iterations=iterations)["fn"]


@dataclasses.dataclass(frozen=True)
class Measurement:
  """One cell: our throughput, the peer's, and their ratio (>= 1.0 means we are not slower)."""

  section: str
  case: str
  ours: float  # items per second
  theirs: float | None
  unit: str = "images/s"
  peer: str = ""
  # min and max of the per-round ratios (round k: theirs' k-th call time / ours' k-th call
  # time): how far single rounds scatter around the median ratio.
  ratio_range: tuple[float, float] | None = None

  @property
  def ratio(self) -> float | None:
    return None if not self.theirs else self.ours / self.theirs

  @classmethod
  def from_timings(cls, section: str, case: str, timings: dict[str, Timing], *, items: int,
                   peer: str = "", unit: str = "images/s") -> "Measurement":
    """From {"ours": Timing, "theirs": Timing} of calls processing `items` each."""
    theirs = timings.get("theirs")
    ratio_range = None
    if theirs is not None:
      rounds = [t / o for o, t in zip(timings["ours"].times, theirs.times)]
      ratio_range = (min(rounds), max(rounds)) if rounds else None
    return cls(section=section, case=case, ours=items / timings["ours"].median,
               theirs=None if theirs is None else items / theirs.median, unit=unit, peer=peer,
               ratio_range=ratio_range)

  def as_dict(self) -> dict:
    return dict(dataclasses.asdict(self), ratio=self.ratio)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """Options every section receives (a section ignores what it does not need)."""

  batch_size: int = 32
  warmup: int = 2
  iterations: int = 5
  jit_compile: bool = False
  dtypes: tuple[str, ...] = ("float32", "mixed_bfloat16")
  models: tuple[str, ...] = ("inception_v3", "inception_resnet_v2")
  modes: tuple[str, ...] = ("inference", "train")
  # Models section: models built per side, in the order ours, theirs, theirs, ours (2) or ours,
  # theirs (1); each round's call time of a side is the mean over its instances.
  instances: int = 2
  # Models section, our side: how mixed_bfloat16 convolutions are computed (`fused_call`'s
  # `bfloat16_convolutions`: auto, native or float32).
  bfloat16_convolutions: str = "auto"


@dataclasses.dataclass(frozen=True)
class Section:
  name: str
  run: Callable[[BenchmarkConfig], Iterable[Measurement]]
  description: str


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, *, description: str) -> Callable:
  """Decorator registering `fn(config) -> Iterable[Measurement]` as benchmark section `name`."""

  def decorator(fn):
    if name in _SECTIONS:
      raise ValueError(f"Benchmark section {name!r} is registered twice.")
    _SECTIONS[name] = Section(name=name, run=fn, description=description)
    return fn

  return decorator


def _import_section_modules() -> None:
  for module in SECTION_MODULES:
    importlib.import_module(module)


def list_sections() -> dict[str, str]:
  """{section name: description}."""
  _import_section_modules()
  return {name: s.description for name, s in sorted(_SECTIONS.items())}


def _print_now(line: str) -> None:
  print(line, flush=True)  # a cell can take many minutes: show it as soon as it is measured


def run_sections(names: Sequence[str], config: BenchmarkConfig,
                 *, log: Callable[[str], None] = _print_now) -> list[Measurement]:
  """Runs the named sections in order; unknown names raise a ValueError listing the valid ones."""
  _import_section_modules()
  unknown = [n for n in names if n not in _SECTIONS]
  if unknown:
    raise ValueError(f"Unknown benchmark section(s) {unknown}; valid: {sorted(_SECTIONS)}.")
  results = []
  for name in names:
    log(f"[{name}] {_SECTIONS[name].description}")
    for measurement in _SECTIONS[name].run(config):
      log("  " + format_measurement(measurement))
      results.append(measurement)
  return results


def format_measurement(m: Measurement) -> str:
  theirs = "-" if m.theirs is None else f"{m.theirs:8.2f}"
  ratio = "-" if m.ratio is None else f"{m.ratio:.3f}{_range(m)}"
  peer = f" vs {m.peer}" if m.peer else ""
  return f"{m.case:<48} ours {m.ours:8.2f}  theirs {theirs} {m.unit}  ratio {ratio}{peer}"


def _range(m: Measurement) -> str:
  if m.ratio_range is None:
    return ""
  return f" (rounds {m.ratio_range[0]:.3f}-{m.ratio_range[1]:.3f})"


def format_table(measurements: Sequence[Measurement]) -> str:
  """Markdown table of measurements (for WORKSPACE_NOTES.md)."""
  lines = ["| section | case | ours | theirs | unit | ours/theirs | peer |",
           "|---|---|---:|---:|---|---:|---|"]
  for m in measurements:
    theirs = "-" if m.theirs is None else f"{m.theirs:.2f}"
    ratio = "-" if m.ratio is None else f"{m.ratio:.3f}{_range(m)}"
    lines.append(f"| {m.section} | {m.case} | {m.ours:.2f} | {theirs} | {m.unit} | {ratio} | "
                 f"{m.peer} |")
  return "\n".join(lines)


# --- The "models" section: our networks against keras.applications' ports of slim's. ---

_PEERS = {
    "inception_v3": ("InceptionV3", 299),
    "inception_resnet_v2": ("InceptionResNetV2", 299),
    "resnet50": ("ResNet50", 224),  # original v1 (stride in the 1x1); ours is torchvision's v1.5
}


def _peer_model(name: str, num_classes: int, dtype: str) -> keras.Model:
  application, size = _PEERS[name]
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(dtype)
  try:
    return getattr(keras.applications, application)(
        weights=None, classes=num_classes, input_shape=(size, size, 3),
        classifier_activation=None)
  finally:
    keras.config.set_dtype_policy(previous)


def _logits(outputs):
  return outputs["logits"] if isinstance(outputs, dict) else outputs


def keras_call(model: keras.Model, images, *, training: bool):
  """How a keras.applications user runs a model: `model(images, training=...)`."""
  return model(images, training=training)


def inference_step(model: keras.Model, *, jit_compile: bool, call: Callable = keras_call
                   ) -> Callable:
  """A `tf.function` computing `call(model, images, training=False)` logits."""

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def step(images):
    return _logits(call(model, images, training=False))

  return step


def train_step(model: keras.Model, *, jit_compile: bool, call: Callable = keras_call
               ) -> Callable:
  """A `tf.function` SGD-momentum step on softmax cross-entropy of the main logits of
  `call(model, images, training=True)`."""
  optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
  optimizer.build(model.trainable_variables)

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def step(images, labels):
    with tf.GradientTape() as tape:
      logits = tf.cast(_logits(call(model, images, training=True)), tf.float32)
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss

  return step


def compare_with_keras_applications(name: str, dtype: str, config: BenchmarkConfig,
                                    num_classes: int = 1000) -> list[Measurement]:
  """Inference and training-step throughput of `name` vs its keras.applications peer.

  Each side runs as its library runs it: ours through `fused_call` (batch norm on TF's fused
  kernel and, in train steps on CPUs without bfloat16 instructions, mixed_bfloat16 convolutions
  with float32 sums, as our trainer, evaluator and serving signatures call models), theirs as
  `model(images, training=...)`. Same network, weights layout and maths on both sides; the train
  step's case name says when our bfloat16 convolutions summed in float32."""
  from inception_tf.models import create_model  # the registry imports every family
  from inception_tf.models import fused
  _, size = _PEERS[name]
  if config.instances not in (1, 2):
    raise ValueError(f"instances must be 1 or 2; got {config.instances}.")
  build = {  # no aux head: keras.applications has none, so both compute the same network
      "ours": lambda: create_model(name, num_classes=num_classes, image_size=size,
                                   aux_logits=False, dtype=dtype),
      "theirs": lambda: _peer_model(name, num_classes, dtype),
  }
  # The order of construction matters: on this machine the same IRv2 pair measured 1.052 with the
  # peer built first and 1.003 with ours built first (WORKSPACE_NOTES, session 3). Building
  # ours, theirs, theirs, ours gives each side one early and one late instance.
  labels = ("ours", "theirs", "theirs", "ours")[:2 * config.instances]
  models = {f"{label}.{i}": build[label]() for i, label in enumerate(labels)}
  convolutions = fused.resolve_bfloat16_convolutions(config.bfloat16_convolutions)
  calls = {"ours": functools.partial(fused.fused_call, bfloat16_convolutions=convolutions,
                                     jit_compile=config.jit_compile),
           "theirs": keras_call}
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(-1, 1, (config.batch_size, size, size, 3)), tf.float32)
  labels = tf.constant(rng.integers(0, num_classes, (config.batch_size,)), tf.int32)
  peer = f"keras.applications.{_PEERS[name][0]}"
  jit = " xla" if config.jit_compile else ""
  # Only training steps take the float32-summed convolutions (fused_call: inference runs Keras').
  float32_sums = (" (our bf16 convs: float32 sums)"
                  if dtype == "mixed_bfloat16" and convolutions == "float32" else "")
  results = []
  if "inference" in config.modes:
    fns = {key: inference_step(model, jit_compile=config.jit_compile,
                               call=calls[key.split(".")[0]])
           for key, model in models.items()}
    timings = time_interleaved({k: (lambda f=f: f(images)) for k, f in fns.items()},
                               warmup=config.warmup, iterations=config.iterations)
    results.append(Measurement.from_timings(
        "models", f"{name} inference {dtype} b{config.batch_size}{jit}",
        merge_instances(timings), items=config.batch_size, peer=peer))
  if "train" in config.modes:
    fns = {key: train_step(model, jit_compile=config.jit_compile,
                           call=calls[key.split(".")[0]])
           for key, model in models.items()}
    timings = time_interleaved({k: (lambda f=f: f(images, labels)) for k, f in fns.items()},
                               warmup=config.warmup, iterations=config.iterations)
    results.append(Measurement.from_timings(
        "models", f"{name} train step {dtype} b{config.batch_size}{jit}{float32_sums}",
        merge_instances(timings), items=config.batch_size, peer=peer))
  del models, fns
  keras.backend.clear_session()
  return results


def merge_instances(timings: dict[str, Timing]) -> dict[str, Timing]:
  """{"ours.0": t0, "theirs.1": t1, ...} -> {"ours": ..., "theirs": ...}: per round, the mean
  call time over the instances of a side (instances must have as many calls)."""
  sides: dict[str, list[Timing]] = {}
  for key, timing in timings.items():
    sides.setdefault(key.split(".")[0], []).append(timing)
  return {side: Timing(tuple(float(np.mean(calls)) for calls in zip(*(t.times for t in group))))
          for side, group in sides.items()}


@register_section("models", description="our inception_v3 / inception_resnet_v2 (run by "
                  "fused_call, as our trainer/evaluator/serving run them) vs keras.applications "
                  "(model(...)); same classes, no aux head; inference and SGD train step")
def models_section(config: BenchmarkConfig) -> Iterable[Measurement]:
  unknown = [m for m in config.models if m not in _PEERS]
  if unknown:
    raise ValueError(f"No keras.applications peer for {unknown}; benchmarkable: {sorted(_PEERS)}.")
  for name in config.models:
    for dtype in config.dtypes:
      yield from compare_with_keras_applications(name, dtype, config)


# --- The "resnet" section (issue 16 §4): torchvision-layout ResNet-50 vs keras.applications',
# ResNeXt-50 32x4d vs our ResNet-50. ---

RESNET_PAIRS = (  # (ours, theirs, peer label): theirs is a key of `_resnet_models`
    ("resnet50", "ResNet50", "keras.applications.ResNet50"),
    ("resnext50_32x4d", "resnet50", "our resnet50"),
)


_SKIPPED_NOTE = ("Keras 3 runs Conv2D(groups>1) in a nested XLA function: ResNeXt-50 trained 90x "
                 "slower than by fused_call on an AMX Xeon (WORKSPACE_NOTES, 'Grouped convolutions')")


def _resnet_models(dtype: str, instances: int) -> dict[str, keras.Model]:
  """{"resnet50.0", "ResNet50.1", "resnext50_32x4d.2", ...}: 1000 classes, include_top, 224 x 224,
  random weights, built in the order resnet50, ResNet50, resnext50 and (instances=2) back, so each
  network has an early and a late instance (build order changes speed, see the models section)."""
  from inception_tf.models import create_model  # the registry imports every family
  if instances not in (1, 2):
    raise ValueError(f"instances must be 1 or 2; got {instances}.")
  build = {"resnet50": lambda: create_model("resnet50", num_classes=1000, dtype=dtype),
           "ResNet50": lambda: _peer_model("resnet50", 1000, dtype),
           "resnext50_32x4d": lambda: create_model("resnext50_32x4d", num_classes=1000,
                                                   dtype=dtype)}
  order = list(build) + (list(build)[::-1] if instances == 2 else [])
  return {f"{name}.{i}": build[name]() for i, name in enumerate(order)}


@register_section("resnet", description="torchvision-layout resnet50 vs keras.applications "
                  "ResNet50, and resnext50_32x4d vs our resnet50 (1000 classes, include_top, "
                  "224, random weights); inference and SGD train step, each side by model(...) "
                  "and ours also by fused_call (the trainer's, evaluator's and serving's path)")
def resnet_section(config: BenchmarkConfig) -> Iterable[Measurement]:
  """Per dtype and mode, all five functions (resnet50 and resnext50 by model(...) and by
  fused_call, keras.applications' ResNet50 by model(...)) are timed in one interleaved run; every
  cell's ratio is then between two of them, so both sides of a ratio met the same machine load."""
  from inception_tf.models import fused  # pylint: disable=import-outside-toplevel
  from inception_tf.models import stats  # pylint: disable=import-outside-toplevel
  convolutions = fused.resolve_bfloat16_convolutions(config.bfloat16_convolutions)
  calls = {"model(x)": keras_call,
           "fused_call": functools.partial(fused.fused_call, bfloat16_convolutions=convolutions,
                                           jit_compile=config.jit_compile)}
  jit = " xla" if config.jit_compile else ""
  rng = np.random.default_rng(0)
  batch = config.batch_size
  for dtype in config.dtypes:
    models = _resnet_models(dtype, config.instances)
    size = int(next(iter(models.values())).input_shape[1])
    images = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 1000, (batch,)), tf.int32)
    macs = {key.split(".")[0]: stats.count_multiply_adds(model) / 1e9
            for key, model in models.items()}
    float32_sums = (" (our bf16 convs: float32 sums)"
                    if dtype == "mixed_bfloat16" and convolutions == "float32" else "")
    for mode in ("inference", "train"):
      if mode not in config.modes:
        continue
      fns = {}
      for key, model in models.items():
        name, index = key.split(".")
        for call_name, call in calls.items():
          if name == "ResNet50" and call_name == "fused_call":
            continue  # a keras.applications user calls the model
          if (name, call_name) == ("resnext50_32x4d", "model(x)"):
            continue  # Keras' nested-XLA grouped convolutions: minutes per step (_SKIPPED_NOTE)
          step = (inference_step if mode == "inference" else train_step)(
              model, jit_compile=config.jit_compile, call=call)
          args = (images,) if mode == "inference" else (images, labels)
          fns[f"{name}:{call_name}.{index}"] = lambda step=step, args=args: step(*args)
      timings = merge_instances(time_interleaved(fns, warmup=config.warmup,
                                                 iterations=config.iterations))
      label = "inference" if mode == "inference" else f"train step{float32_sums}"
      for ours, theirs, peer in RESNET_PAIRS:
        for call_name in calls:
          if f"{ours}:{call_name}" not in timings:
            print(f"[resnet] {ours} {call_name} {label} {dtype}: not timed; {_SKIPPED_NOTE}")
            continue
          their_call = "model(x)" if theirs == "ResNet50" else call_name
          yield Measurement.from_timings(
              "resnet", f"{ours} {call_name} {label} {dtype} b{batch}{jit}",
              {"ours": timings[f"{ours}:{call_name}"], "theirs": timings[f"{theirs}:{their_call}"]},
              items=batch, peer=f"{peer} {their_call} ({macs[ours]:.2f} vs {macs[theirs]:.2f}G "
              "multiply-adds)")
    del models, fns
    keras.backend.clear_session()


def _one_layer_model(layer: keras.layers.Layer, shape: tuple[int, ...]) -> keras.Model:
  inputs = keras.Input(shape)
  return keras.Model(inputs, layer(inputs))


def _forward_backward_step(model: keras.Model, call: Callable) -> Callable:
  """A tf.function: the layer's training-mode output and its gradients (input and weights)."""
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.cast(call(model, x, training=True), tf.float32) ** 2)
    return tape.gradient(loss, [x] + model.trainable_variables)
  return step


@register_section("kernels", description="single layers, forward + backward in a tf.function: "
                  "batch norm by fused_call (FusedBatchNormV3) vs the Keras layer; a "
                  "mixed_bfloat16 3x3 convolution by fused_call (bfloat16_convolutions=float32) "
                  "vs the Keras layer")
def kernels_section(config: BenchmarkConfig) -> Iterable[Measurement]:
  """The two kernels behind the models section's ratios, at Inception-v3's 35x35 grid."""
  from inception_tf.models import fused  # pylint: disable=import-outside-toplevel
  batch = config.batch_size
  cases = [(f"batch norm {dtype} {batch}x35x35x192 fwd+bwd", (35, 35, 192),
            keras.layers.BatchNormalization(scale=False, epsilon=1e-3, dtype=dtype), "auto")
           for dtype in config.dtypes]
  cases.append((f"conv 3x3 288->96 mixed_bfloat16 {batch}x35x35 fwd+bwd (ours: float32 sums)",
                (35, 35, 288),
                keras.layers.Conv2D(96, 3, padding="same", use_bias=False, dtype="mixed_bfloat16"),
                "float32"))
  rng = np.random.default_rng(0)
  for case, shape, layer, convolutions in cases:
    model = _one_layer_model(layer, shape)
    x = tf.constant(rng.normal(size=(batch, *shape)), tf.float32)
    ours = functools.partial(fused.fused_call, bfloat16_convolutions=convolutions)
    fns = {"ours": _forward_backward_step(model, ours),
           "theirs": _forward_backward_step(model, keras_call)}
    timings = time_interleaved({k: (lambda f=f: f(x)) for k, f in fns.items()},
                               warmup=config.warmup, iterations=config.iterations)
    yield Measurement.from_timings("kernels", case, timings, items=batch,
                                   peer="Keras layer, model(...)")




def keras_fit_images_per_second(name: str, dtype: str, config: BenchmarkConfig) -> float:
  """Training images/s of the keras.applications peer under `model.fit` (label-smoothed
  cross-entropy, RMSprop), synthetic data, after `config.warmup` untimed steps."""
  model = _peer_model(name, 1000, dtype)
  model.compile(
      optimizer=keras.optimizers.RMSprop(0.045, rho=0.9, momentum=0.9, epsilon=1.0),
      loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
      jit_compile=config.jit_compile)
  size = _PEERS[name][1]
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (config.batch_size, size, size, 3)).astype(np.float32)
  labels = np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, (config.batch_size,))]
  dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
  model.fit(dataset, steps_per_epoch=max(config.warmup, 1), epochs=1, verbose=0)
  start = time.perf_counter()
  model.fit(dataset, steps_per_epoch=config.iterations, epochs=1, verbose=0)
  seconds = time.perf_counter() - start
  del model
  keras.backend.clear_session()
  return config.iterations * config.batch_size / seconds
