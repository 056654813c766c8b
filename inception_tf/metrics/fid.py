"""FID, Inception Score and KID between two sources, from the weights users have.

    from inception_tf import metrics
    model = metrics.load_fid_model("pt_inception-2015-12-05-6726825d.safetensors")
    report = metrics.evaluate("generated/", "reference_stats.npz", model)
    report.fid

A source is a folder of images, an image array, a `tf.data.Dataset` (see `extract`) or the path
of a `.npz` statistics file (TTUR / pytorch-fid format; FID only: the Inception Score and KID need
the images).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from inception_tf import atomic
from inception_tf.checkpoints import inception_graphdef
from inception_tf.checkpoints import torch as torch_checkpoints
from inception_tf.metrics import extract
from inception_tf.metrics import scores
from inception_tf.metrics import statistics as statistics_lib
from inception_tf.models import create_model

MODEL_NAME = "fid_inception_v3"
GRAPHDEF_SUFFIXES = (".pb",)
WEIGHT_SUFFIXES = (GRAPHDEF_SUFFIXES + torch_checkpoints.SAFETENSORS_SUFFIXES
                   + torch_checkpoints.PICKLE_SUFFIXES)


def load_fid_model(weights: str, *, strategy: tf.distribute.Strategy | None = None
                   ) -> keras.Model:
  """`create_model("fid_inception_v3")` with the 2015-12-05 weights from a file.

  Args:
    weights: `classify_image_graph_def.pb` (the TF graph, read by node name), or pytorch-fid's /
      torch-fidelity's state_dict as `.safetensors` (or `.pth` when torch is installed).
    strategy: the model's variables are created under its scope.

  Raises:
    FileNotFoundError: no such file.
    ValueError: an unsupported suffix, or weights that do not fit (the loaders' errors).
  """
  weights = os.fspath(weights)
  if not os.path.exists(weights):
    raise FileNotFoundError(f"No weights file {weights!r}: pass classify_image_graph_def.pb or "
                            "pytorch-fid's pt_inception-2015-12-05 state_dict (.safetensors/.pth).")
  suffix = os.path.splitext(weights)[1].lower()
  if suffix not in WEIGHT_SUFFIXES:
    raise ValueError(f"Unsupported weights file {weights!r}: expected one of "
                     f"{', '.join(WEIGHT_SUFFIXES)} (the .pb graph or a pytorch-fid state_dict).")
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = create_model(MODEL_NAME)
  if suffix in GRAPHDEF_SUFFIXES:
    inception_graphdef.load_inception_graphdef(model, weights)
  else:
    torch_checkpoints.load_torch_checkpoint(model, weights)
  return model


def is_statistics_file(source) -> bool:
  """Whether `source` names a `.npz` statistics file (rather than images)."""
  return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".npz")


@dataclasses.dataclass
class MetricsReport:
  """FID (when two sources were given) and, when asked, Inception Score and KID."""

  fid: float | None = None
  inception_score: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
  kid: tuple[float, float] | None = None  # (mean, std) over subsets
  num_images: dict[str, int] = dataclasses.field(default_factory=dict)
  skipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def evaluate(source_a, source_b=None, model: keras.Model | None = None, *,
             inception_score: bool = False, kid: bool = False,
             batch_size: int = extract.DEFAULT_BATCH_SIZE,
             strategy: tf.distribute.Strategy | None = None,
             save_stats: str | None = None, overwrite: bool = False,
             is_splits: int = scores.IS_SPLITS,
             kid_subsets: int = scores.KID_SUBSETS,
             kid_subset_size: int = scores.KID_SUBSET_SIZE,
             fid_method: str = "sqrtm",
             progress: Callable[[str, int, float], None] | None = None,
             warn: Callable[[str], None] | None = None) -> MetricsReport:
  """FID between `source_a` and `source_b`; Inception Score of each image source; KID.

  Args:
    source_a: images (folder, array, dataset) or a `.npz` statistics file.
    source_b: the same, or None (then only `save_stats` / the Inception Score of A).
    model: the FID network with weights (`load_fid_model`); needed unless both are `.npz`.
    inception_score: compute the Inception Score of every image source (10 splits).
    kid: compute KID between A and B (both must be images).
    batch_size: global batch size of the extraction.
    strategy: a `tf.distribute.Strategy` (default: the current one).
    save_stats: write A's statistics to this `.npz` (A must be images); checked before the
      extraction starts.
    overwrite: replace an existing `save_stats` file.
    is_splits: Inception Score splits.
    kid_subsets: KID subsets.
    kid_subset_size: KID subset size (at most the smaller set).
    fid_method: `frechet_distance`'s method: "sqrtm" (TTUR's / pytorch-fid's) or "eigh" (faster).
    progress: called as progress(name, images so far, seconds) during extraction ("A" / "B").
    warn: called with a line per skipped file.

  Returns:
    A `MetricsReport`.

  Raises:
    ValueError: a metric that needs images given a statistics file, nothing to compute, or
      errors of the extraction / loaders.
    atomic.OutputExistsError: `save_stats` exists and `overwrite` is False.
  """
  sources = {"A": source_a} if source_b is None else {"A": source_a, "B": source_b}
  stats_only = [name for name, s in sources.items() if is_statistics_file(s)]
  if kid and (source_b is None or stats_only):
    raise ValueError("KID needs two image sources (folders or arrays), not statistics files "
                     f"({', '.join(stats_only) or 'B missing'}).")
  if inception_score and len(stats_only) == len(sources):
    raise ValueError("The Inception Score needs images, not statistics files.")
  if save_stats and "A" in stats_only:
    raise ValueError(f"save_stats writes the statistics of A, which is already a statistics "
                     f"file ({source_a!r}).")
  if source_b is None and not (save_stats or inception_score):
    raise ValueError("Nothing to compute: give two sources for FID, or save_stats / "
                     "inception_score for one.")
  if model is None and len(stats_only) < len(sources):
    raise ValueError("Image sources need the FID network: pass model=load_fid_model(weights).")
  if save_stats:
    atomic.check_writable(save_stats, overwrite=overwrite)  # before hours of extraction
  report = MetricsReport()
  moments, features = {}, {}
  for name, source in sources.items():
    if name in stats_only:
      moments[name] = statistics_lib.load_statistics(source)
      continue
    activations = extract.compute_activations(
        source, model, batch_size=batch_size, strategy=strategy, keep_features=kid,
        keep_logits=inception_score, warn=warn,
        progress=None if progress is None else (lambda n, t, name=name: progress(name, n, t)))
    moments[name] = (activations.statistics.mu, activations.statistics.sigma)
    report.num_images[name] = activations.num_images
    report.skipped[name] = activations.skipped
    features[name] = activations.features
    if inception_score:
      report.inception_score[name] = scores.inception_score(activations.logits_unbiased,
                                                            splits=is_splits)
  if save_stats:
    statistics_lib.save_statistics(save_stats, *moments["A"], num_images=report.num_images["A"],
                                   overwrite=overwrite)
  if source_b is not None:
    report.fid = statistics_lib.frechet_distance(*moments["A"], *moments["B"], method=fid_method)
  if kid:
    report.kid = scores.kernel_inception_distance(features["A"], features["B"],
                                                  num_subsets=kid_subsets,
                                                  subset_size=kid_subset_size)
  return report


def fid(source_a, source_b, model: keras.Model | None = None, **kwargs) -> float:
  """FID between two sources (images or `.npz` statistics); see `evaluate` for the options."""
  return evaluate(source_a, source_b, model, **kwargs).fid


def activation_statistics(source, model: keras.Model, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of a source's pool_3 features (float64); options of `compute_activations`."""
  activations = extract.compute_activations(source, model, **kwargs)
  return activations.statistics.mu, activations.statistics.sigma
