"""Suite-wide isolation of process-global TF switches that a test may flip."""

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
