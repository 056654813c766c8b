"""Weights in every format we read, loaded into zoo models by name.

- `slim`: TF-slim checkpoints (published, or written by `save_slim_checkpoint` / TF1's Saver).
- `torch`: PyTorch state_dicts (`.safetensors`; `.pth` when torch is installed) into models whose
  layer names are module paths.
"""

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

__all__ = ["EMA_SUFFIX", "LoadReport", "SlimCheckpointMismatch", "assign_by_name",
           "load_slim_checkpoint", "logits_scopes", "read_slim_checkpoint",
           "resolve_checkpoint_path", "save_slim_checkpoint", "variable_names",
           "TorchCheckpointMismatch", "compare_with_state_dict", "load_torch_checkpoint",
           "read_torch_state_dict", "torch_state_dict"]
