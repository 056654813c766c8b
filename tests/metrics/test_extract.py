"""Sources -> padded batches -> model -> float64 statistics, and `evaluate` (FID / IS / KID).

The plumbing is checked with a small stand-in network that has the FID network's outputs (the real
network's numbers are checked in test_fid_inception_v3.py; the CLI test runs it end to end). The
expected features come from PIL-decoded images, TF1's `resize_bilinear` and the model called
directly, outside `inception_tf.metrics`.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from inception_tf import metrics
from inception_tf.metrics import extract

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("extract")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stand_in_model(seed=0):
  """299 x 299 inputs -> {"pool_3": [N, 8], "logits": [N, 5], "logits_unbiased": [N, 5]}."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((299, 299, 3))
  x = keras.layers.AveragePooling2D(23)(inputs)  # 13 x 13 x 3
  x = keras.layers.Conv2D(8, 3, name="conv")(x)  # 11 x 11 x 8
  x = keras.layers.BatchNormalization(name="bn")(x)
  pool_3 = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)  # 8
  unbiased = keras.layers.Dense(5, use_bias=False, name="fc")(pool_3)
  return keras.Model(inputs, {"pool_3": pool_3, "logits": unbiased, "logits_unbiased": unbiased})


def _crops(photo, count, seed):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    h, w = rng.integers(80, 260, 2)
    y, x = rng.integers(0, photo.shape[0] - h), rng.integers(0, photo.shape[1] - w)
    out.append(photo[y:y + h, x:x + w])
  return out


@pytest.fixture(scope="module")
def model():
  return stand_in_model()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  """A: 5 PNG crops of astronaut (one in a subfolder, one named .PNG), a broken PNG and a text
  file; B: 6 PNG crops of coffee."""
  root = tmp_path_factory.mktemp("images")
  a, b = root / "A", root / "B"
  (a / "nested").mkdir(parents=True)
  b.mkdir()
  images_a = _crops(skimage.data.astronaut(), 5, seed=0)
  names_a = ["a0.png", "a1.png", "nested/a2.png", "nested/a3.PNG", "z4.png"]
  for name, image in zip(names_a, images_a):
    Image.fromarray(image).save(a / name, format="PNG")
  (a / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
  (a / "readme.txt").write_text("not an image")
  images_b = _crops(skimage.data.coffee(), 6, seed=1)
  for i, image in enumerate(images_b):
    Image.fromarray(image).save(b / f"b{i}.png")
  order_a = sorted(range(5), key=lambda i: str(a / names_a[i]))  # the folder's sorted order
  return {"A": str(a), "B": str(b), "images_A": [images_a[i] for i in order_a],
          "images_B": images_b, "broken": str(a / "broken.png")}


def _reference_features(model, images):
  """pool_3 of PIL-decoded images resized by TF1's resize_bilinear, the model called directly."""
  batch = [tf.compat.v1.image.resize_bilinear(tf.cast(i[np.newaxis], tf.float32), [299, 299],
                                              align_corners=False) for i in images]
  return model((tf.concat(batch, 0) - 128.0) / 128.0, training=False)["pool_3"].numpy()


def test_folder_statistics_equal_the_reference_and_skip_broken_files(model, folders):
  warnings = []
  activations = metrics.compute_activations(folders["A"], model, batch_size=2,
                                            keep_features=True, keep_logits=True,
                                            warn=warnings.append)
  assert activations.num_images == 5
  assert activations.skipped == [folders["broken"]]
  assert len(warnings) == 1 and folders["broken"] in warnings[0]
  expected = _reference_features(model, folders["images_A"])
  np.testing.assert_allclose(activations.features, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(activations.statistics.mu, expected.astype(np.float64).mean(0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(activations.statistics.sigma,
                             np.cov(expected.astype(np.float64), rowvar=False),
                             rtol=1e-4, atol=1e-7)
  assert activations.logits_unbiased.shape == (5, 5)
  # One element per file, so the batch count is known and padded for 4 replicas: 6 files in 3
  # batches of 2, plus one empty batch; the broken file (third in sorted order) is masked out.
  batches = list(extract.image_batches(folders["A"], batch_size=2,
                                       num_replicas=4)[0].as_numpy_iterator())
  assert [b["mask"].tolist() for b in batches] == [[True, True], [False, True], [True, True],
                                                   [False, False]]
  assert batches[1]["index"].tolist() == [2, 3] and batches[3]["index"].tolist() == [-1, -1]


def test_arrays_datasets_and_batch_sizes_agree(model, folders):
  images = np.stack([np.asarray(Image.fromarray(i).resize((120, 100))) for i in
                     folders["images_B"]])  # 6 x 100 x 120 x 3
  reference = metrics.compute_activations(images, model, batch_size=6, keep_features=True)
  for source, batch_size in ((images, 4), (images.astype(np.float32), 5),
                             (tf.data.Dataset.from_tensor_slices(images), 4),
                             (tf.data.Dataset.from_tensor_slices(images).batch(4), 3)):
    got = metrics.compute_activations(source, model, batch_size=batch_size, keep_features=True)
    assert got.num_images == 6
    np.testing.assert_allclose(got.features, reference.features, rtol=1e-6, atol=1e-7)
  batches = list(extract.image_batches(images, batch_size=4)[0].as_numpy_iterator())
  assert [b["mask"].tolist() for b in batches] == [[True] * 4, [True, True, False, False]]
  assert batches[1]["index"].tolist() == [4, 5, -1, -1]


def test_bad_sources_raise_clear_errors(model, tmp_path):
  with pytest.raises(ValueError, match="multiply"):
    metrics.compute_activations(np.full((2, 50, 50, 3), 0.5, np.float32), model)
  with pytest.raises(FileNotFoundError, match="No PNG or JPEG"):
    metrics.compute_activations(str(tmp_path), model)
  with pytest.raises(FileNotFoundError, match="not a directory"):
    metrics.compute_activations(str(tmp_path / "missing"), model)
  inputs = keras.Input((299, 299, 3))
  plain = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
  with pytest.raises(ValueError, match="fid_inception_v3"):
    metrics.compute_activations(np.zeros((2, 50, 50, 3), np.uint8), plain)
  with pytest.raises(ValueError, match="Unsupported weights"):
    (tmp_path / "weights.h5").write_bytes(b"")
    metrics.load_fid_model(str(tmp_path / "weights.h5"))
  with pytest.raises(FileNotFoundError, match="classify_image_graph_def.pb"):
    metrics.load_fid_model(str(tmp_path / "none.pb"))


def test_evaluate_fid_is_symmetric_zero_on_itself_and_takes_statistics_files(model, folders,
                                                                             tmp_path):
  both = metrics.evaluate(folders["A"], folders["B"], model, batch_size=4, inception_score=True,
                          is_splits=2, kid=True, kid_subsets=5, kid_subset_size=4,
                          save_stats=str(tmp_path / "a.npz"))
  assert both.fid > 0 and both.num_images == {"A": 5, "B": 6}
  assert set(both.inception_score) == {"A", "B"} and both.inception_score["A"][0] >= 1.0
  assert both.kid is not None
  reversed_ = metrics.evaluate(folders["B"], str(tmp_path / "a.npz"), model, batch_size=4)
  assert reversed_.fid == pytest.approx(both.fid, rel=1e-6)  # singular covariances: sqrtm rounding
  mu, sigma = metrics.load_statistics(str(tmp_path / "a.npz"))
  assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
  assert metrics.fid(str(tmp_path / "a.npz"), str(tmp_path / "a.npz")) == pytest.approx(0.0,
                                                                                       abs=1e-9)
  with pytest.raises(ValueError, match="KID needs two image sources"):
    metrics.evaluate(folders["A"], str(tmp_path / "a.npz"), model, kid=True)


_MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from test_extract import stand_in_model
    from inception_tf import metrics
    images = (np.random.default_rng(0).uniform(0, 255, (7, 90, 110, 3))).astype(np.uint8)
    default = metrics.compute_activations(images, stand_in_model(seed=3), batch_size=4,
                                          keep_features=True)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
      model = stand_in_model(seed=3)
    mirrored = metrics.compute_activations(images, model, batch_size=4, strategy=strategy,
                                           keep_features=True)
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync, "count": mirrored.num_images,
        "features": float(np.abs(mirrored.features - default.features).max()),
        "mu": float(np.abs(mirrored.statistics.mu - default.statistics.mu).max()),
        "sigma": float(np.abs(mirrored.statistics.sigma - default.statistics.sigma).max())}))
""")


def test_mirrored_strategy_on_two_devices_equals_one_device():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
  process = subprocess.run([sys.executable, "-c", _MIRRORED, os.path.dirname(__file__)], env=env,
                           capture_output=True, text=True, timeout=600, check=False)
  assert process.returncode == 0, process.stderr[-4000:]
  line = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")][-1]
  result = json.loads(line[len("RESULT "):])
  assert result["replicas"] == 2 and result["count"] == 7
  assert result["features"] < 1e-6 and result["mu"] < 1e-6 and result["sigma"] < 1e-6
