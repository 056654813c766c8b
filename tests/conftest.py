"""Suite-wide isolation of process-global TF state that a test may change, XLA's compile level, and
the garbage collector's view of what the imports made."""

import gc
import os

import pytest

# XLA:CPU compiles without LLVM's backend optimizations in the tests (and in the tools they start,
# which inherit the environment): the same HLO graphs and fusions, machine code that is compiled
# ~40 % sooner and runs slower, which no test measures (speed is the benchmarks' business). A thin
# ResNeXt's XLA train + eval steps: 53 vs 91 s (WORKSPACE_NOTES.md, "Tool start-up"). Set before
# any test builds XLA's CPU backend, which reads XLA_FLAGS once.
_XLA_LEVEL = "--xla_backend_optimization_level"
if _XLA_LEVEL not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_LEVEL}=0".strip()


def pytest_collection_finish(session):
  """TensorFlow, Keras and the collected modules make ~460,000 Python objects that live as long as
  the process (`gc.get_freeze_count()` after this hook); frozen, the collector's full passes no longer walk them (a zoo subset: GC 4.1 ->
  2.3 s of 76 s; WORKSPACE_NOTES.md, "Session 12"). Runs in each xdist worker after its collection."""
  del session
  gc.collect()
  gc.freeze()


@pytest.fixture(autouse=True)
def _op_determinism_stays_in_its_test():
  """`--deterministic` runs switch on TF's op determinism for the whole process; under it TF
  refuses to XLA-compile a max-pool gradient, so a later test in the same worker would fail for
  another test's reason. Switch it off again after each test that switched it on."""
  yield
  from tensorflow.python.framework import config  # pylint: disable=import-outside-toplevel
  if config.is_op_determinism_enabled():
    config.disable_op_determinism()


@pytest.fixture(autouse=True)
def _global_seed_stays_in_its_test():
  """`keras.utils.set_random_seed` (used by tests for reproducible builds) also sets TF's global
  seed, which changes what every later unseeded TF random op draws (the input pipeline no longer
  depends on it: tests/data/test_data_pipeline.py). Clear it after each test, so tests do not
  depend on their order."""
  yield
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.random.set_seed(None)
