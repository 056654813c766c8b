"""`--deterministic`: TF's op determinism and an input order fixed by (seed, step), with a step that
TF can run deterministically. TF refuses to XLA-compile a max-pool gradient under op determinism
(on any device), so a model with max pooling takes its deterministic step without XLA, and says so;
a model without max pooling keeps XLA. Asking for XLA explicitly on such a model is a clear error.

The bit-identical resume after SIGKILL through `tools/train.py --deterministic` (default flags) is
tested in tests/test_fault_injection.py."""

import pytest

from inception_tf import distribute
from inception_tf.train import config as config_lib
from inception_tf.train import loop
from tests.train import tiny


def _trainer(**changes):
  config = config_lib.TrainConfig(model="inception_v1", model_options={"depth_multiplier": 0.1},
                                  image_size=32, train_batch_size=4, **changes)
  return loop.Trainer(config, distribute.get_strategy("default"), num_classes=3,
                      num_train_examples=40, image_size=32)


@pytest.fixture
def xla_by_default(monkeypatch):
  """The default step XLA-compiled, as on one GPU (on a CPU the default is TF's kernels)."""
  monkeypatch.setattr(distribute, "uses_gpu", lambda strategy: True)


def test_default_step_is_xla_on_one_gpu_and_tf_kernels_on_cpu(monkeypatch):
  assert not _trainer().jit_compile  # this machine: a CPU
  monkeypatch.setattr(distribute, "uses_gpu", lambda strategy: True)
  assert _trainer().jit_compile


def test_deterministic_default_step_runs_without_xla_for_max_pooling_models(xla_by_default):
  trainer = _trainer(deterministic=True)
  assert not trainer.jit_compile
  assert "without XLA" in trainer.determinism_note
  assert _trainer().jit_compile  # one device, not deterministic: XLA as usual
  assert _trainer().determinism_note == ""


def test_deterministic_with_explicit_jit_compile_names_both_flags():
  with pytest.raises(ValueError, match=r"--deterministic.*--jit_compile.*MaxPool|max-pool"):
    _trainer(deterministic=True, jit_compile=True)


def test_deterministic_keeps_xla_where_no_max_pool_needs_it(xla_by_default):
  config = tiny.tiny_config(deterministic=True)
  trainer = loop.Trainer(config, distribute.get_strategy("default"), num_classes=tiny.NUM_CLASSES,
                         num_train_examples=40, image_size=tiny.IMAGE_SIZE,
                         model_fn=tiny.tiny_model_fn)
  assert trainer.jit_compile and trainer.determinism_note == ""
