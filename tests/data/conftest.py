"""Shared fixtures of the data tests."""

import pytest

from inception_tf.data import default_dataset


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  """The built-in digits TFRecords, built once per test session in a temporary directory."""
  return default_dataset.digits_data_dir(str(tmp_path_factory.mktemp("data") / "digits"))
