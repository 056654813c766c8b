"""Weights in every format we read, loaded into zoo models by name.

- `slim`: TF-slim checkpoints (published, or written by `save_slim_checkpoint` / TF1's Saver).
- `torch`: PyTorch state_dicts (`.safetensors`; `.pth` when torch is installed) into models whose
  layer names are module paths.
"""

from inception_tf.checkpoints.loading import LoadError
from inception_tf.checkpoints.loading import LoadedModel
from inception_tf.checkpoints.loading import load
from inception_tf.checkpoints.loading import load_model
from inception_tf.checkpoints.loading import load_weights
from inception_tf.checkpoints.loading import sniff
from inception_tf.checkpoints.run import read_run_config
from inception_tf.checkpoints.run import write_run_config
from inception_tf.checkpoints.slim import EMA_SUFFIX
from inception_tf.checkpoints.slim import LoadReport
from inception_tf.checkpoints.slim import SlimCheckpointMismatch
from inception_tf.checkpoints.slim import assign_by_name
from inception_tf.checkpoints.slim import load_slim_checkpoint
from inception_tf.checkpoints.slim import logits_scopes
from inception_tf.checkpoints.slim import read_slim_checkpoint
from inception_tf.checkpoints.slim import resolve_checkpoint_path
from inception_tf.checkpoints.slim import save_slim_checkpoint
from inception_tf.checkpoints.slim import variable_names
from inception_tf.checkpoints.torch import TorchCheckpointMismatch
from inception_tf.checkpoints.torch import compare_with_state_dict
from inception_tf.checkpoints.torch import load_torch_checkpoint
from inception_tf.checkpoints.torch import read_torch_state_dict
from inception_tf.checkpoints.torch import torch_state_dict

__all__ = ["LoadError", "LoadedModel", "load", "load_model", "load_weights", "sniff",
           "read_run_config", "write_run_config", "EMA_SUFFIX", "LoadReport", "SlimCheckpointMismatch", "assign_by_name",
           "load_slim_checkpoint", "logits_scopes", "read_slim_checkpoint",
           "resolve_checkpoint_path", "save_slim_checkpoint", "variable_names",
           "TorchCheckpointMismatch", "compare_with_state_dict", "load_torch_checkpoint",
           "read_torch_state_dict", "torch_state_dict"]
