"""Generative-model metrics on the 2015-12-05 Inception graph: FID, Inception Score, KID.

- `frontend`: the graph's own input side (TF1 bilinear resize to 299, (x - 128) / 128).
- `extract`: folders / arrays / tf.data datasets through the network under any tf.distribute
  strategy, pool_3 statistics accumulated in float64.
- `statistics`: `ActivationStatistics`, `.npz` statistics files (TTUR / pytorch-fid format),
  `frechet_distance`.
- `scores`: `inception_score`, `kernel_inception_distance`.
- `fid`: `load_fid_model(weights)`, `evaluate(a, b, model, ...)`, `fid(a, b, model)`.
"""

from inception_tf.metrics.extract import Activations
from inception_tf.metrics.extract import compute_activations
from inception_tf.metrics.extract import image_batches
from inception_tf.metrics.extract import list_images
from inception_tf.metrics.fid import MetricsReport
from inception_tf.metrics.fid import activation_statistics
from inception_tf.metrics.fid import evaluate
from inception_tf.metrics.fid import fid
from inception_tf.metrics.fid import load_fid_model
from inception_tf.metrics.frontend import preprocess
from inception_tf.metrics.scores import inception_score
from inception_tf.metrics.scores import kernel_inception_distance
from inception_tf.metrics.statistics import ActivationStatistics
from inception_tf.metrics.statistics import frechet_distance
from inception_tf.metrics.statistics import load_statistics
from inception_tf.metrics.statistics import save_statistics

__all__ = ["Activations", "ActivationStatistics", "MetricsReport", "activation_statistics",
           "compute_activations", "evaluate", "fid", "frechet_distance", "image_batches",
           "inception_score", "kernel_inception_distance", "list_images", "load_fid_model",
           "load_statistics", "preprocess", "save_statistics"]
