"""Throughput benchmarks against peers in the same process (a benchmark, not a test).

    python tools/benchmark.py                      # models section, batch 32, float32 + bf16
    python tools/benchmark.py --sections=models,train,eval
    python tools/benchmark.py --sections=models --models=inception_v3 --dtypes=float32
    python tools/benchmark.py --sections=resnet    # resnet50 vs keras ResNet50; resnext50 vs ours
    python tools/benchmark.py --list_sections

Prints images/s of ours and of the peer and the ratio ours/theirs (>= 1.0: we are not slower).
"""

import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.benchmarks import sections as benchmarking  # noqa: E402
from inception_tf.models import fused  # noqa: E402

_DEFAULTS = benchmarking.BenchmarkConfig()
_SECTIONS = flags.DEFINE_list("sections", ["models"],
                              "Sections to run, e.g. models,train,eval (see --list_sections).")
_LIST = flags.DEFINE_bool("list_sections", False, "List the sections and exit.")
_MODELS = flags.DEFINE_list("models", list(_DEFAULTS.models), "Models of the models section.")
_DTYPES = flags.DEFINE_list("dtypes", list(_DEFAULTS.dtypes), "Keras dtype policies.")
_MODES = flags.DEFINE_list("modes", list(_DEFAULTS.modes), "inference and/or train.")
_BATCH = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Batch size.")
_WARMUP = flags.DEFINE_integer("warmup", _DEFAULTS.warmup, "Untimed calls per function.")
_ITERATIONS = flags.DEFINE_integer("iterations", _DEFAULTS.iterations,
                                   "Timed calls per function (median reported).")
_JIT = flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile, "XLA-compile both sides' steps.")
_INSTANCES = flags.DEFINE_integer(
    "instances", _DEFAULTS.instances, "Models section: models built per side (2: in the order "
    "ours, theirs, theirs, ours, as the build order changes speed; 1: ours, theirs).")
_BFLOAT16_CONVOLUTIONS = flags.DEFINE_enum(
    "bfloat16_convolutions", _DEFAULTS.bfloat16_convolutions, list(fused.BFLOAT16_CONVOLUTIONS),
    "Models section, our side: mixed_bfloat16 convolutions on TF's bfloat16 kernels (native), in "
    "float32 arithmetic on bfloat16 operands (float32), or by hardware (auto).")
_JSON = flags.DEFINE_bool("json", False, "Also print the results as JSON.")


def main(argv):
  del argv
  if _LIST.value:
    for name, description in benchmarking.list_sections().items():
      print(f"{name}: {description}")
    return
  config = dataclasses.replace(
      _DEFAULTS, batch_size=_BATCH.value, warmup=_WARMUP.value, iterations=_ITERATIONS.value,
      jit_compile=_JIT.value, dtypes=tuple(_DTYPES.value), models=tuple(_MODELS.value),
      modes=tuple(_MODES.value), instances=_INSTANCES.value,
      bfloat16_convolutions=_BFLOAT16_CONVOLUTIONS.value)
  results = benchmarking.run_sections(_SECTIONS.value, config)
  print()
  print(benchmarking.format_table(results))
  if _JSON.value:
    print(json.dumps([m.as_dict() for m in results], indent=2))


if __name__ == "__main__":
  app.run(main)
