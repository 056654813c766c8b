"""Training: the papers' recipe (TF1 RMSProp, staircase decay, label smoothing, aux loss, EMA) on
any tf.distribute strategy, with exact resume. Entry point: `train_and_evaluate(config, model_dir)`.
"""

from inception_tf.train.config import TrainConfig
from inception_tf.train.config import paper_v3
from inception_tf.train.config import quickstart
from inception_tf.train.config import tpu

__all__ = ["TrainConfig", "paper_v3", "quickstart", "tpu", "train_and_evaluate"]


def train_and_evaluate(config, model_dir, **kwargs):
  """See `inception_tf.train.loop.train_and_evaluate` (imported lazily: it pulls in the models)."""
  from inception_tf.train import loop  # pylint: disable=import-outside-toplevel
  return loop.train_and_evaluate(config, model_dir, **kwargs)
