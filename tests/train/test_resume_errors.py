"""Resuming a model_dir with another recipe fails with a message that says what to do, and loses
nothing: the checkpoints of the first run stay as they were."""

import io
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from inception_tf.train import checkpointing  # noqa: E402
from inception_tf.train import loop  # noqa: E402
from tests.train import tiny  # noqa: E402


def _config(**changes):
  return tiny.tiny_config(**{"train_steps": 8, "summary_images": 0, **changes})


@pytest.mark.parametrize("first, changes", [({}, dict(optimizer="adam", epsilon=1e-7)),
                                            (dict(ema_decay=None), dict(ema_decay=0.8))],
                         ids=["other_optimizer", "ema_added"])
def test_resume_with_another_recipe_names_the_problem_and_the_fix(tmp_path, first, changes):
  datasets = tiny.in_memory_datasets(global_batch=8)
  loop.train_and_evaluate(_config(**first), str(tmp_path), datasets=datasets,
                          model_fn=tiny.tiny_model_fn, stream=io.StringIO())
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(ValueError, match=r"Cannot resume from .*ckpt-8.*another recipe.*new "
                                       r"--model_dir"):
    loop.train_and_evaluate(_config(train_steps=16, **changes), str(tmp_path), datasets=datasets,
                            model_fn=tiny.tiny_model_fn, stream=io.StringIO())
  assert sorted(os.listdir(tmp_path)) == before
  assert checkpointing.latest_valid_checkpoint(str(tmp_path)).endswith("ckpt-8")
