"""`tools/fid.py` end to end on folders of real photos with the FID network's weights.

One run of the tool (each FID costs 2048 x 2048 eigendecompositions, ~20 s on one loaded core);
FID's symmetry and statistics-file sources are tested in test_extract.py.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "fid.py")
sys.path.insert(0, "/work/shared/torch_references")
from make_state_dict import make_state_dict  # noqa: E402


def _run(*args, timeout=900):
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the tool keeps TensorFlow quiet by itself
  # One BLAS thread: on this shared 2-core machine the 2048 x 2048 eigendecompositions took 18 s
  # with one OpenBLAS thread and 100 s with two spinning against the other processes.
  env["OPENBLAS_NUM_THREADS"] = "1"
  return subprocess.run([sys.executable, TOOL, *args], env=env, capture_output=True, text=True,
                        timeout=timeout, check=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("fid_cli")
  weights = str(root / "pt_inception-2015-12-05.safetensors")
  safetensors.numpy.save_file(make_state_dict("fid_inception_v3"), weights)
  a, b = root / "A", root / "B"
  (a / "sub").mkdir(parents=True)
  b.mkdir()
  astronaut, coffee = skimage.data.astronaut(), skimage.data.coffee()
  Image.fromarray(astronaut[:300, :240]).save(a / "a0.png")
  Image.fromarray(astronaut[100:400, 200:500]).save(a / "sub" / "a1.jpg", quality=95)
  Image.fromarray(skimage.data.chelsea()).save(a / "a2.jpeg", quality=90)
  (a / "sub" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
  for i, (y, x) in enumerate(((0, 0), (100, 250), (150, 40))):
    Image.fromarray(coffee[y:y + 250, x:x + 320]).save(b / f"b{i}.jpg", quality=90)
  return {"weights": weights, "A": str(a), "B": str(b), "stats": str(root / "a_stats.npz")}


def _fid(stdout):
  last = stdout.strip().splitlines()[-1]
  match = re.fullmatch(r"FID: (-?[0-9.]+(?:e[-+][0-9]+)?)", last)
  assert match, f"last line is not 'FID: <value>': {last!r}"
  return float(match.group(1))


@pytest.mark.slow
def test_two_folders_end_to_end_and_the_statistics_file_round_trips(setup):
  first = _run(setup["A"], setup["B"], f"--weights={setup['weights']}", "--batch_size=4",
               f"--save_stats={setup['stats']}", "--inception_score", "--is_splits=1", "--kid",
               "--kid_subsets=3", "--kid_subset_size=3", "--fid_method=eigh")
  assert first.returncode == 0, first.stderr[-3000:]
  fid = _fid(first.stdout)
  assert fid > 0
  assert "A: 3 images (1 unreadable skipped)" in first.stdout
  assert re.search(r"Inception Score \(B\): [0-9.]+ \+- ", first.stdout)
  assert re.search(r"^KID: -?[0-9.]+ \+- [0-9.]+$", first.stdout, re.M)
  assert "images/s" in first.stderr and "truncated.jpg" in first.stderr
  assert "I0000" not in first.stderr and "oneDNN" not in first.stderr  # no TF start-up log lines
  # The statistics file round-trips: it holds A's statistics, as the library computes them.
  from inception_tf import metrics  # pylint: disable=import-outside-toplevel
  mu, sigma = metrics.load_statistics(setup["stats"])
  assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
  model = metrics.load_fid_model(setup["weights"])
  activations = metrics.compute_activations(setup["A"], model, batch_size=2)
  np.testing.assert_allclose(mu, activations.statistics.mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sigma, activations.statistics.sigma, rtol=1e-4,
                             atol=1e-6 * np.abs(sigma).max())


def test_clear_errors(setup, tmp_path):
  missing_weights = _run(setup["A"], setup["B"])
  assert missing_weights.returncode != 0 and "--weights is required" in missing_weights.stderr
  nothing = _run(setup["A"], f"--weights={setup['weights']}")
  assert nothing.returncode != 0 and "computes nothing" in nothing.stderr
  missing_folder = _run(str(tmp_path / "nope"), setup["B"], f"--weights={setup['weights']}")
  assert missing_folder.returncode != 0 and "does not exist" in missing_folder.stderr
  from inception_tf.metrics import save_statistics  # pylint: disable=import-outside-toplevel
  stats = save_statistics(str(tmp_path / "s.npz"), np.zeros(4), np.eye(4))
  stats_only_kid = _run(stats, stats, "--kid")
  assert stats_only_kid.returncode != 0 and "--kid needs two image folders" in stats_only_kid.stderr
