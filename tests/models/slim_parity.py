"""Shared checks of our models against the real TF-slim networks (tf-slim pip package).

Used by test_inception_v1.py, test_inception_v2.py and test_resnet_v1.py: inputs (a real photo and
a random image), running slim into a TF1 checkpoint, loading that checkpoint into our model, and
comparing endpoints with an honest tolerance.

`python tests/models/slim_parity.py inception_v1 inception_v2 resnet_v1_50` re-measures the endpoint
shape tables tests/golden/<model>.endpoints.json from the slim networks.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from typing import Callable

import numpy as np
import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_DIR = TESTS_DIR / "golden"
if str(TESTS_DIR) not in sys.path:
  sys.path.insert(0, str(TESTS_DIR))

import slim_reference  # noqa: E402  (tests/slim_reference.py)

# slim's vgg_preprocessing subtracts these RGB means (0..255 scale).
VGG_MEANS = np.array([123.68, 116.78, 103.94], np.float32)


def make_images(size: int, *, preprocessing: str, seed: int = 0) -> np.ndarray:
  """[2, size, size, 3] float32: scikit-image's astronaut photo and a uniform random image.

  Args:
    size: square side.
    preprocessing: "inception" ([-1, 1]) or "vgg" (0..255 minus the RGB means).
    seed: of the random image.
  """
  import skimage.data
  import skimage.transform
  photo = skimage.transform.resize(skimage.data.astronaut(), (size, size), anti_aliasing=True)
  noise = np.random.default_rng(seed).uniform(0.0, 1.0, (size, size, 3))
  images = np.stack([photo, noise]).astype(np.float32)  # [0, 1]
  if preprocessing == "inception":
    return images * 2.0 - 1.0
  if preprocessing == "vgg":
    return images * 255.0 - VGG_MEANS
  raise ValueError(f"preprocessing must be 'inception' or 'vgg', got {preprocessing!r}.")


def run_slim(net_fn, arg_scope_fn, images: np.ndarray, checkpoint_prefix: str, **net_kwargs):
  """The real slim network on `images`: (logits, end_points, variable shapes); saves a checkpoint."""
  return slim_reference.run_slim_network(net_fn, arg_scope_fn, images, checkpoint_prefix,
                                         net_kwargs=net_kwargs)


def import_tf_slim():
  """tf_slim under TF 2.21 (see tests/slim_reference.py)."""
  return slim_reference.import_tf_slim()


def assert_close(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
  """Equal within 1e-4 relative, with an absolute floor of 1e-4 x max|reference|."""
  ours = np.asarray(ours)
  reference = np.asarray(reference)
  assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs slim {reference.shape}"
  scale = float(np.max(np.abs(reference)))
  assert scale > 0, f"{what}: the slim reference is all zeros (the comparison would be vacuous)"
  np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


def published_variables(model_name: str) -> dict[str, tuple[int, ...]]:
  """Name -> shape of the published TF-slim checkpoint (tests/golden/<model>.vars.json)."""
  with open(GOLDEN_DIR / f"{model_name}.vars.json") as f:
    data = json.load(f)
  return {v["name"]: tuple(v["shape"]) for v in data["variables"]}


def published_layout(model_name: str) -> dict[str, tuple[int, ...]]:
  """`published_variables` with the logits' class axis at the model's `ModelInfo.num_classes`.

  The variable lists give every network 1001-way logits; the published resnet_v1 checkpoints have
  1000 (the lists' note), which their `ModelInfo.num_classes` records.
  """
  from inception_tf.models import model_info
  info = model_info(model_name)
  logits = f"{info.slim_scope}/logits/"
  return {name: shape[:-1] + (info.num_classes,) if name.startswith(logits) else shape
          for name, shape in published_variables(model_name).items()}


def parameter_counts(variables: dict[str, tuple[int, ...]]) -> tuple[int, int]:
  """(total, trainable) element counts; batch-norm moving statistics are not trainable."""
  total = sum(int(np.prod(s)) for s in variables.values())
  frozen = sum(int(np.prod(s)) for n, s in variables.items()
               if n.endswith(("/moving_mean", "/moving_variance")))
  return total, total - frozen


def reference_weights(model_name: str, seed: int) -> dict[str, np.ndarray]:
  """The weights behind tests/golden/<model>.slim_outputs.npz: every published variable, seeded.

  The rule is the one ../shared/slim_references/README.md documents for those outputs: each value
  is a function of (seed, slim name, shape) alone, so the order of the variables does not matter.
  A PCG64 stream seeded with SeedSequence([seed, crc32(name)]); uniforms in (0, 1) from the top 53
  bits of each raw 64-bit draw; normals by Box-Muller (first half of the draws the radii, second
  half the angles; cosines then sines). Weights He normal on fan-in (all axes but the last), biases
  N(0, 0.01), beta and moving_mean N(0, 0.1), moving_variance U(0.5, 1.5), gamma U(0.75, 1.25).

  Args:
    model_name: "inception_v4" or "inception_resnet_v2" (a tests/golden/<model>.vars.json).
    seed: the `seed` of the outputs' `meta`.

  Returns:
    {slim variable name: float32 array of the published shape}.
  """
  import zlib

  def uniform(stream, n):
    raw = stream.random_raw(n).astype(np.uint64) >> np.uint64(11)
    return (raw.astype(np.float64) + 0.5) / 2.0 ** 53

  def normal(stream, n):
    half = (n + 1) // 2
    radius = np.sqrt(-2.0 * np.log(uniform(stream, half)))
    angle = 2.0 * np.pi * uniform(stream, half)
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:n]

  weights = {}
  for name, shape in published_variables(model_name).items():
    stream = np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode()) & 0xFFFFFFFF]))
    size = int(np.prod(shape))
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "weights":
      value = normal(stream, size) * np.sqrt(2.0 / int(np.prod(shape[:-1])))
    elif leaf == "biases":
      value = normal(stream, size) * 0.01
    elif leaf in ("beta", "moving_mean"):
      value = normal(stream, size) * 0.1
    elif leaf == "moving_variance":
      value = 0.5 + uniform(stream, size)
    elif leaf == "gamma":
      value = 0.75 + 0.5 * uniform(stream, size)
    else:
      raise ValueError(f"{model_name}: no value rule for variable {name!r}.")
    weights[name] = value.astype(np.float32).reshape(shape)
  return weights


def _conv_bn_params(kh: int, kw: int, cin: int, cout: int) -> int:
  return kh * kw * cin * cout + 3 * cout  # weights + beta, moving mean, moving variance


def inception_resnet_v1_paper_count(num_classes: int) -> int:
  """Inception-ResNet-v1 parameters added up from the paper's Figures 10-14 (by hand)."""
  c = _conv_bn_params
  stem = (c(3, 3, 3, 32) + c(3, 3, 32, 32) + c(3, 3, 32, 64) + c(1, 1, 64, 80)
          + c(3, 3, 80, 192) + c(3, 3, 192, 256))                                 # Figure 14
  block_a = (c(1, 1, 256, 32) + c(1, 1, 256, 32) + c(3, 3, 32, 32) + c(1, 1, 256, 32)
             + c(3, 3, 32, 32) + c(3, 3, 32, 32) + 96 * 256 + 256)                # Figure 10
  reduction_a = (c(3, 3, 256, 384) + c(1, 1, 256, 192) + c(3, 3, 192, 192)
                 + c(3, 3, 192, 256))                                              # Figure 7
  block_b = (c(1, 1, 896, 128) + c(1, 1, 896, 128) + c(1, 7, 128, 128) + c(7, 1, 128, 128)
             + 256 * 896 + 896)                                                    # Figure 11
  reduction_b = (c(1, 1, 896, 256) + c(3, 3, 256, 384) + c(1, 1, 896, 256) + c(3, 3, 256, 256)
                 + c(1, 1, 896, 256) + c(3, 3, 256, 256) + c(3, 3, 256, 256))      # Figure 12
  block_c = (c(1, 1, 1792, 192) + c(1, 1, 1792, 192) + c(1, 3, 192, 192) + c(3, 1, 192, 192)
             + 384 * 1792 + 1792)                                                  # Figure 13
  logits = 1792 * num_classes + num_classes
  return stem + 5 * block_a + reduction_a + 10 * block_b + reduction_b + 5 * block_c + logits


def formula_conv_bn(model, name, x, *, strides=1, padding="SAME", dilations=1, relu=True):
  """slim's conv2d + batch norm (no scale, epsilon 1e-3) + ReLU, written out with tf.nn ops from
  the weights of `model`'s layer `name`: a hand-written reference for block formula tests."""
  import tensorflow as tf
  kernel = model.get_layer(name).kernel.numpy()
  bn = model.get_layer(f"{name}.BatchNorm")
  y = tf.nn.conv2d(x, kernel, strides=strides, padding=padding, dilations=dilations)
  y = (y - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-3) + bn.beta.numpy()
  return tf.nn.relu(y) if relu else y


def formula_conv_bias(model, name, x, *, padding="SAME"):
  """A linear convolution with bias (slim's `normalizer_fn=None, activation_fn=None`)."""
  import tensorflow as tf
  layer = model.get_layer(name)
  return tf.nn.conv2d(x, layer.kernel.numpy(), strides=1, padding=padding) + layer.bias.numpy()


def randomize_plainly(model, seed: int) -> None:
  """Every weight random: He-like kernels, N(0, 0.2) offsets and means, U(0.5, 1.5) variances."""
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    shape = tuple(variable.shape)
    leaf = variable.path.rsplit("/", 1)[-1]
    if leaf == "moving_variance":
      value = rng.uniform(0.5, 1.5, shape)
    elif leaf in ("moving_mean", "beta", "bias"):
      value = rng.normal(0.0, 0.2, shape)
    else:
      value = rng.normal(0.0, np.sqrt(1.0 / int(np.prod(shape[:-1]))), shape)
    variable.assign(value.astype(np.float32))


def endpoint_shapes(model_name: str) -> dict[str, dict[str, list[int]]]:
  """tests/golden/<model>.endpoints.json: {image size: {endpoint: [H, W, C]}} measured with slim."""
  with open(GOLDEN_DIR / f"{model_name}.endpoints.json") as f:
    return json.load(f)["shapes"]


def our_endpoints(model, endpoints, images: np.ndarray) -> dict[str, np.ndarray]:
  """Our model's endpoints (feature_extractor names) on `images`, inference mode, as numpy."""
  from inception_tf.models import feature_extractor
  outputs = feature_extractor(model, list(endpoints))(images, training=False)
  return {name: np.asarray(value) for name, value in outputs.items()}


def compare_with_slim(model_name: str, model, images: np.ndarray, slim_logits: np.ndarray,
                      slim_endpoints: dict[str, np.ndarray], slim_key) -> list[str]:
  """Asserts our logits and every endpoint slim also has equal slim's; returns the endpoints compared.

  Args:
    model_name: registry name, e.g. "inception_v1".
    model: our model with the slim checkpoint loaded.
    images: the inputs both networks saw.
    slim_logits: slim's logits ([N, C] or [N, 1, 1, C]).
    slim_endpoints: slim's end_points as numpy.
    slim_key: maps one of our endpoint names to slim's end_points key.
  """
  import keras
  from inception_tf.models import feature_extractor, model_info
  info = model_info(model_name)
  common = [e for e in info.endpoints if slim_key(e) in slim_endpoints]
  # One forward pass gives the endpoints and the logits (under a key that is no endpoint's name).
  outputs = {**feature_extractor(model, common).output, " logits": model.output["logits"]}
  ours = {k: np.asarray(v) for k, v in keras.Model(model.input, outputs)(images, training=False).items()}
  for name in common:
    assert_close(ours[name], slim_endpoints[slim_key(name)], f"endpoint {name}")
  logits = ours[" logits"]
  assert_close(logits, np.reshape(slim_logits, logits.shape), "logits")
  return common


def slim_inception_v1_global_pool(inputs, is_training, num_classes):
  """slim's Inception-v1 base (pip package) with the `global_pool=True` head of later TF-slim.

  tf-slim 1.1.0's `inception_v1` ends in a fixed 7x7 'VALID' pool, so it only builds for inputs
  whose Mixed_5c is at least 7x7 (>= 193 px). Later TF-slim (models/research/slim) takes the global
  mean instead (`global_pool=True`, endpoint `global_pool`); this is that head, over the package's
  own base, with the package's scopes (Logits/Dropout_0b, Logits/Conv2d_0c_1x1).
  """
  import tensorflow as tf
  import tf_slim
  from tf_slim.nets import inception
  with tf.compat.v1.variable_scope("InceptionV1", values=[inputs]) as scope:
    with tf_slim.arg_scope([tf_slim.batch_norm, tf_slim.dropout], is_training=is_training):
      net, end_points = inception.inception_v1_base(inputs, scope=scope)
      with tf.compat.v1.variable_scope("Logits"):
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
        end_points["AvgPool_0a_7x7"] = net
        net = tf_slim.dropout(net, 0.8, scope="Dropout_0b")
        logits = tf_slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                                scope="Conv2d_0c_1x1")
        logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
  end_points["Logits"] = logits
  return logits, end_points


def slim_network(model_name: str, size: int):
  """(net_fn, arg_scope_fn, slim end_points key of one of our endpoints, preprocessing)."""
  import_tf_slim()
  from tf_slim.nets import inception
  from tf_slim.nets import resnet_v1
  from tf_slim.nets import resnet_v2
  if model_name == "inception_v1":
    net_fn = inception.inception_v1 if size == 224 else slim_inception_v1_global_pool
    return net_fn, inception.inception_v1_arg_scope, lambda e: e, "inception"
  if model_name == "inception_v2":
    return inception.inception_v2, inception.inception_v2_arg_scope, lambda e: e, "inception"
  if model_name.startswith(("resnet_v1_", "resnet_v2_")):
    from inception_tf.models import model_info
    module = resnet_v1 if model_name.startswith("resnet_v1_") else resnet_v2
    return (getattr(module, model_name), module.resnet_arg_scope,
            lambda e: f"{model_name}/" + e.replace(".", "/"), model_info(model_name).preprocessing)
  raise ValueError(f"No slim reference for {model_name!r}.")


def write_endpoint_golden(model_name: str, sizes=(224, 150)) -> str:
  """Measures slim's endpoint shapes and writes tests/golden/<model>.endpoints.json."""
  import tempfile
  from inception_tf.models import model_info
  shapes = {}
  for size in sizes:
    with tempfile.TemporaryDirectory() as tmp:
      run = run_reference(model_name, size, tmp)
    shapes[str(size)] = {e: list(run.end_points[run.slim_key(e)].shape[1:])
                         for e in model_info(model_name).endpoints
                         if run.slim_key(e) in run.end_points}
  note = ("Endpoint -> [height, width, channels] of the real TF-slim network (tf-slim 1.1.0 pip "
          "package, is_training=False, num_classes="
          f"{model_info(model_name).num_classes}) per input size, under our endpoint names "
          "(slim's end_points keys" +
          (f" without the '{model_name}/' prefix, '.' for '/')" if model_name.startswith("resnet")
           else ")") +
          (". At 150 the package's fixed 7x7 head cannot build; the base then runs under "
           "TF-slim's later global_pool=True head (slim_inception_v1_global_pool)"
           if model_name == "inception_v1" else "") +
          ". Written by `python tests/models/slim_parity.py " + model_name + "`.")
  path = GOLDEN_DIR / f"{model_name}.endpoints.json"
  with open(path, "w") as f:
    f.write(format_endpoint_golden(model_name, note, shapes))
  return str(path)


def format_endpoint_golden(model_name: str, note: str, shapes: dict) -> str:
  """JSON with one `"endpoint": [h, w, c]` line per endpoint, readable as a table."""
  sizes = []
  for size, table in shapes.items():
    rows = ",\n".join(f"   {json.dumps(e)}: {json.dumps(s)}" for e, s in table.items())
    sizes.append(f'  "{size}": {{\n{rows}\n  }}')
  sizes_text = ",\n".join(sizes)
  return (f'{{\n "model": {json.dumps(model_name)},\n "note": {json.dumps(note)},\n'
          f' "shapes": {{\n{sizes_text}\n }}\n}}\n')


@dataclasses.dataclass
class SlimRun:
  """One run of the real slim network: its inputs, outputs, variables and saved checkpoint."""

  images: np.ndarray
  logits: np.ndarray
  end_points: dict[str, np.ndarray]
  variable_shapes: dict[str, tuple[int, ...]]
  checkpoint: str
  slim_key: Callable[[str], str]


def run_reference(model_name: str, size: int, directory: str, **net_kwargs) -> SlimRun:
  """Runs slim's `model_name` at `size` on `make_images` and saves its checkpoint in `directory`."""
  net_fn, arg_scope_fn, slim_key, preprocessing = slim_network(model_name, size)
  images = make_images(size, preprocessing=preprocessing)
  prefix = f"{directory}/model.ckpt"
  from inception_tf.models import model_info
  logits, end_points, shapes = run_slim(
      net_fn, arg_scope_fn, images, prefix,
      **{"num_classes": model_info(model_name).num_classes, **net_kwargs})
  return SlimRun(images, logits, end_points, shapes, prefix, slim_key)


def reference_runs(model_name: str, sizes, tmp_path_factory) -> dict[int, SlimRun]:
  """{size: SlimRun} of the real slim network at each size (for a module-scoped fixture)."""
  return {size: run_reference(model_name, size, str(tmp_path_factory.mktemp(f"slim{size}")))
          for size in sizes}


def loaded_models(model_name: str, runs: dict[int, SlimRun]) -> dict:
  """{size: our model at that size with that run's slim checkpoint loaded}."""
  from inception_tf import checkpoints
  from inception_tf.models import create_model
  models = {}
  for size, run in runs.items():
    models[size] = create_model(model_name, image_size=size)
    checkpoints.load_slim_checkpoint(models[size], run.checkpoint)
  return models


def assert_published_layout(model_name: str, model, runs: dict[int, SlimRun], *, total: int,
                            trainable: int) -> None:
  """Variable names/shapes equal the published list (and slim's graph); counts equal its sums."""
  from inception_tf.models import naming
  published = published_layout(model_name)
  ours = {name: tuple(v.shape) for name, v in naming.slim_variables(model).items()}
  assert ours == published
  for run in runs.values():
    assert run.variable_shapes == published
  assert parameter_counts(published) == (total, trainable)
  assert model.count_params() == total
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable


def assert_endpoint_shapes(model_name: str, model, run: SlimRun, size: int,
                           extra: dict[str, tuple[int, ...]] | None = None) -> None:
  """Our endpoint shapes equal the golden table, which equals what slim's run measured.

  Args:
    model_name: registry name.
    model: our model at `size`.
    run: slim's run at `size`.
    size: the input size (a key of the golden table).
    extra: our endpoints slim does not record, with their expected [H, W, C].
  """
  from inception_tf.models import feature_extractor
  golden = endpoint_shapes(model_name)[str(size)]
  extra = {name: list(shape) for name, shape in (extra or {}).items()}
  extractor = feature_extractor(model, list(golden) + list(extra))
  ours = {name: list(t.shape[1:]) for name, t in extractor.output.items()}
  assert ours == {**golden, **extra}
  assert {e: list(run.end_points[run.slim_key(e)].shape[1:]) for e in golden} == golden


def assert_minimum_size(model_name: str, last_endpoint: str, **options) -> None:
  """Below the minimum a clear ValueError; at it, a 1x1 last feature map and finite logits."""
  from inception_tf.models import create_model, feature_extractor, model_info
  minimum = model_info(model_name).min_image_size
  assert minimum == 32
  with pytest.raises(ValueError, match=f"minimum input size {minimum}"):
    create_model(model_name, image_size=minimum - 1)
  model = create_model(model_name, image_size=minimum, **options)
  assert feature_extractor(model, [last_endpoint]).output[last_endpoint].shape[1:3] == (1, 1)
  logits = model(np.zeros((1, minimum, minimum, 3), np.float32), training=False)["logits"]
  assert logits.shape == (1, model_info(model_name).num_classes) and np.all(np.isfinite(logits))


def assert_pooled_features(model_name: str, run: SlimRun, size: int, last_endpoint: str) -> None:
  """include_top=False, pooling="avg" gives the spatial mean of slim's last feature map."""
  from inception_tf import checkpoints
  from inception_tf.models import create_model
  model = create_model(model_name, image_size=size, include_top=False, pooling="avg")
  report = checkpoints.load_slim_checkpoint(model, run.checkpoint, skip_logits=True)
  assert report.skipped == [] and len(report.loaded) == len(published_variables(model_name)) - 2
  slim_features = run.end_points[run.slim_key(last_endpoint)].mean(axis=(1, 2))
  assert_close(np.asarray(model(run.images, training=False)), slim_features,
               f"avg-pooled {last_endpoint}")


if __name__ == "__main__":
  for name in sys.argv[1:]:
    print(write_endpoint_golden(name))
