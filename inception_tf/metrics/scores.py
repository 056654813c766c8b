"""Inception Score (Salimans et al. 2016) and Kernel Inception Distance (Binkowski et al. 2018).

* Inception Score: the images are cut into `splits` (10) consecutive parts; in each, the score is
  exp(mean over images of KL(p(y|x) || p(y))) with p(y) the part's mean prediction; the result is
  the mean and standard deviation over the parts. p(y|x) is the softmax of the network's bias-free
  logits (`pool_3 @ softmax weights`, 1008 classes), as the reference code computes it.
* KID: the unbiased estimator of the squared MMD between the two sets of pool_3 features under the
  cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets of
  `subset_size` features drawn without replacement from each set; the result is the mean and the
  standard deviation over the subsets.

Everything is computed in float64.
"""

from __future__ import annotations

import numpy as np

IS_SPLITS = 10
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(axis=1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def inception_score(logits, *, splits: int = IS_SPLITS) -> tuple[float, float]:
  """Inception Score of [n, classes] bias-free logits: (mean, std) over `splits` parts.

  Raises:
    ValueError: fewer images than splits, or logits that are not [n, classes].
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f"logits must be [n, classes], got shape {logits.shape}.")
  n = logits.shape[0]
  if splits < 1 or n < splits:
    raise ValueError(f"The Inception Score needs at least `splits` images; got {n} images and "
                     f"splits={splits}: pass fewer splits (--is_splits) or more images.")
  log_p = _log_softmax(logits)
  p = np.exp(log_p)
  scores = []
  for k in range(splits):
    part = slice(k * n // splits, (k + 1) * n // splits)  # the reference's split boundaries
    part_p, part_log_p = p[part], log_p[part]
    marginal = part_p.mean(axis=0)
    with np.errstate(divide="ignore"):
      log_marginal = np.log(marginal)
    # p * (log p - log p(y)), with 0 where p underflowed to 0.
    kl = np.where(part_p > 0, part_p * (part_log_p - log_marginal), 0.0).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """(x y^T / d + 1)^3 for [n, d] and [m, d] features."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased squared MMD of two equally large [m, d] samples under `polynomial_kernel`."""
  m = x.shape[0]
  k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  within = ((k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))) / (m * (m - 1))
  return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features_a, features_b, *, num_subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0
                              ) -> tuple[float, float]:
  """KID between two [n, d] feature sets: (mean, std) of the unbiased MMD^2 over subsets.

  Args:
    features_a: [n_a, d] pool_3 features.
    features_b: [n_b, d] pool_3 features.
    num_subsets: number of subset pairs (torch-fidelity's default 100).
    subset_size: features per subset (default 1000); must be at most min(n_a, n_b).
    seed: seed of the subset draws.

  Raises:
    ValueError: feature sets of different widths, or fewer features than `subset_size`.
  """
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"Features must be [n, d] of equal d; got {a.shape} and {b.shape}.")
  if subset_size < 2 or subset_size > min(len(a), len(b)):
    raise ValueError(f"KID subset_size={subset_size} needs 2 <= subset_size <= the smaller set "
                     f"({len(a)} and {len(b)} images); pass a smaller subset size "
                     "(--kid_subset_size) or more images.")
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(a[rng.choice(len(a), subset_size, replace=False)],
                          b[rng.choice(len(b), subset_size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))
