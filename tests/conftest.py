"""Suite-wide isolation of process-global TF state that a test may change."""

import pytest


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
