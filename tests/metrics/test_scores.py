"""frechet_distance, streaming statistics, statistics files, Inception Score and KID."""

import os

import numpy as np
import pytest

from inception_tf.metrics import scores
from inception_tf.metrics import statistics


def _orthogonal(d, rng):
  q, r = np.linalg.qr(rng.normal(size=(d, d)))
  return q * np.sign(np.diag(r))


def _closed_form(mu1, a, mu2, b):
  """d^2 between N(mu1, Q diag(a) Q^T) and N(mu2, Q diag(b) Q^T).

  = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2 (the covariances commute).
  """
  return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


@pytest.mark.parametrize("method", statistics.FRECHET_METHODS)
@pytest.mark.parametrize("rotated", [False, True], ids=["diagonal", "commuting"])
def test_frechet_distance_equals_the_closed_form(rotated, method):
  rng = np.random.default_rng(0)
  d = 64
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d) + 0.5
  a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
  q = _orthogonal(d, rng) if rotated else np.eye(d)
  sigma1, sigma2 = (q * a) @ q.T, (q * b) @ q.T
  expected = _closed_form(mu1, a, mu2, b)
  assert statistics.frechet_distance(mu1, sigma1, mu2, sigma2, method=method) == pytest.approx(
      expected, rel=1e-6)


@pytest.mark.parametrize("method", statistics.FRECHET_METHODS)
def test_frechet_distance_is_symmetric_and_zero_on_itself(method):
  rng = np.random.default_rng(1)
  x, y = rng.gamma(2.0, size=(600, 32)), rng.gamma(2.5, size=(500, 32))
  mu_x, sigma_x = x.mean(0), np.cov(x, rowvar=False)
  mu_y, sigma_y = y.mean(0), np.cov(y, rowvar=False)
  d_xy = statistics.frechet_distance(mu_x, sigma_x, mu_y, sigma_y, method=method)
  assert d_xy > 1.0
  assert statistics.frechet_distance(mu_y, sigma_y, mu_x, sigma_x,
                                     method=method) == pytest.approx(d_xy, rel=1e-9)
  assert abs(statistics.frechet_distance(mu_x, sigma_x, mu_x, sigma_x,
                                         method=method)) < 1e-9 * np.trace(sigma_x)


def test_frechet_methods_agree_on_sample_statistics():
  rng = np.random.default_rng(6)
  x, y = rng.gamma(2.0, size=(300, 128)), rng.gamma(2.1, size=(250, 128)) + 0.05
  stats = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
  assert statistics.frechet_distance(*stats, method="eigh") == pytest.approx(
      statistics.frechet_distance(*stats, method="sqrtm"), rel=1e-9)
  with pytest.raises(ValueError, match="method must be one of"):
    statistics.frechet_distance(*stats, method="svd")


def test_frechet_distance_retries_with_eps_when_the_root_is_not_finite(monkeypatch):
  calls = []
  real_sqrtm = statistics._sqrtm

  def flaky_sqrtm(matrix):
    calls.append(matrix.copy())
    return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

  monkeypatch.setattr(statistics, "_sqrtm", flaky_sqrtm)
  sigma = np.diag([1.0, 0.0, 4.0])  # singular
  mu = np.zeros(3)
  value = statistics.frechet_distance(mu, sigma, mu, sigma, eps=1e-6)
  assert len(calls) == 2
  np.testing.assert_allclose(calls[1], (sigma + 1e-6 * np.eye(3)) @ (sigma + 1e-6 * np.eye(3)))
  assert abs(value) < 1e-5


def test_frechet_distance_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="different sizes"):
    statistics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_streaming_statistics_equal_numpy_in_float64_despite_a_large_offset():
  rng = np.random.default_rng(2)
  x = 1e4 + rng.normal(size=(1003, 16)).astype(np.float32)  # mean far larger than the spread
  stats = statistics.ActivationStatistics()
  for start, stop in ((0, 1), (1, 50), (50, 50), (50, 700), (700, 1003)):
    stats.update(x[start:stop])
  reference = x.astype(np.float64)
  assert stats.count == 1003
  np.testing.assert_allclose(stats.mu, reference.mean(0), rtol=1e-13)
  np.testing.assert_allclose(stats.sigma, np.cov(reference, rowvar=False), rtol=1e-9, atol=1e-12)
  with pytest.raises(ValueError, match="at least 2"):
    one = statistics.ActivationStatistics()
    one.update(x[:1])
    _ = one.sigma


def test_statistics_files_round_trip_in_the_ttur_format(tmp_path):
  rng = np.random.default_rng(3)
  mu, sigma = rng.normal(size=8), np.cov(rng.normal(size=(20, 8)), rowvar=False)
  path = str(tmp_path / "stats.npz")
  (tmp_path / "stats.npz").write_bytes(b"old contents")
  with pytest.raises(FileExistsError, match="--overwrite"):
    statistics.save_statistics(path, mu, sigma)
  assert statistics.save_statistics(path, mu, sigma, num_images=20, overwrite=True) == path
  assert sorted(os.listdir(tmp_path)) == ["stats.npz"]  # no temporary file left behind
  with np.load(path) as data:  # what TTUR's / pytorch-fid's readers do
    np.testing.assert_array_equal(data["mu"], mu)
    np.testing.assert_array_equal(data["sigma"], sigma)
    assert int(data["num_images"]) == 20
  loaded_mu, loaded_sigma = statistics.load_statistics(path)
  np.testing.assert_array_equal(loaded_mu, mu)
  np.testing.assert_array_equal(loaded_sigma, sigma)
  np.savez(tmp_path / "other.npz", mean=mu)
  with pytest.raises(ValueError, match="no 'mu' and 'sigma'"):
    statistics.load_statistics(str(tmp_path / "other.npz"))
  (tmp_path / "broken.npz").write_bytes(b"PK not a zip")
  with pytest.raises(ValueError, match="not a readable .npz"):
    statistics.load_statistics(str(tmp_path / "broken.npz"))
  with pytest.raises(ValueError, match=r"end in \.npz"):
    statistics.save_statistics(str(tmp_path / "stats.txt"), mu, sigma)


def test_inception_score_of_uniform_predictions_is_one():
  mean, std = scores.inception_score(np.zeros((50, 1008)))
  assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 7, 100])
def test_inception_score_of_confident_predictions_over_k_classes_is_k(k):
  # Every split of 10 holds each of the k classes equally often, predicted with certainty.
  labels = np.tile(np.arange(k), 10 * 2)
  logits = np.full((labels.size, 1008), -60.0)
  logits[np.arange(labels.size), labels] = 60.0
  mean, std = scores.inception_score(logits, splits=10)
  assert mean == pytest.approx(k, rel=1e-9) and std < 1e-9 * k


def test_inception_score_needs_as_many_images_as_splits():
  with pytest.raises(ValueError, match="at least `splits` images"):
    scores.inception_score(np.zeros((5, 10)), splits=10)


def test_mmd2_unbiased_equals_its_definition():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)) + 0.3

  def k(a, b):
    return (a @ b / 5 + 1.0) ** 3

  m = 7
  within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  expected = within / (m * (m - 1)) - 2 * cross / m ** 2
  assert scores.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)


def test_kid_of_a_set_with_itself_is_about_zero_and_positive_between_sets():
  rng = np.random.default_rng(5)
  a, a2 = rng.gamma(2.0, size=(400, 64)), rng.gamma(2.0, size=(400, 64))
  b = rng.gamma(2.0, size=(400, 64)) * 1.2
  other_mean, _ = scores.kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
  assert other_mean > 0.1
  # The set with itself (whole-set subsets): the unbiased estimator is off by O(1/m) only.
  same_mean, same_std = scores.kernel_inception_distance(a, a, num_subsets=3, subset_size=400)
  assert abs(same_mean) < 0.05 * other_mean and same_std < 1e-9 * other_mean
  # Two samples of one distribution: unbiased, so zero within the subsets' scatter.
  mean, std = scores.kernel_inception_distance(a, a2, num_subsets=20, subset_size=200)
  assert abs(mean) < 3 * std / np.sqrt(20) + 0.01 * other_mean
  again = scores.kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
  assert again[0] == other_mean  # seeded
  with pytest.raises(ValueError, match="subset_size=500"):
    scores.kernel_inception_distance(a, b, subset_size=500)
