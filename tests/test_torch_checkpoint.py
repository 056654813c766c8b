"""`load_torch_checkpoint` on a small model with module-path layer names, against numpy's reading of
PyTorch's conventions (NCHW, weight [out, in/groups, kh, kw], linear weight [out, in]).

The eight torchvision nets are tested against the real networks' outputs in
tests/models/test_resnet.py; this file covers the generic rule, every error and the converter.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from inception_tf import checkpoints
from inception_tf.checkpoints import torch as torch_checkpoints

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("torch_checkpoint")


IMAGE, CHANNELS, CLASSES = 9, 4, 5
BN_EPSILON = 1e-3


def _tiny_model() -> keras.Model:
  """Conv (grouped, strided, symmetric padding) + BN + ReLU, depthwise conv with bias, GAP, fc."""
  inputs = keras.Input((IMAGE, IMAGE, CHANNELS))
  x = keras.layers.ZeroPadding2D(1)(inputs)
  x = keras.layers.Conv2D(6, 3, strides=2, groups=2, use_bias=False, name="Conv2d_1a_3x3.conv")(x)
  x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="Conv2d_1a_3x3.bn")(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  return keras.Model(inputs, keras.layers.Dense(CLASSES, name="fc")(x))


def _state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)

  def normal(*shape):
    return rng.normal(size=shape).astype(np.float32)

  return {
      "Conv2d_1a_3x3.conv.weight": normal(6, 2, 3, 3),
      "Conv2d_1a_3x3.bn.weight": rng.uniform(0.5, 1.5, 6).astype(np.float32),
      "Conv2d_1a_3x3.bn.bias": normal(6),
      "Conv2d_1a_3x3.bn.running_mean": normal(6),
      "Conv2d_1a_3x3.bn.running_var": rng.uniform(0.5, 1.5, 6).astype(np.float32),
      "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(7, np.int64),
      "dw.weight": normal(12, 1, 3, 3),
      "dw.bias": normal(12),
      "fc.weight": normal(CLASSES, 12),
      "fc.bias": normal(CLASSES),
  }


def _torch_conv(x, weight, *, stride=1, padding=0, groups=1, bias=None):
  """torch.nn.functional.conv2d in numpy: x [N, C, H, W], weight [O, C/groups, kh, kw]."""
  n, c, h, w = x.shape
  out, per_group, kh, kw = weight.shape
  x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
  y = np.zeros((n, out, oh, ow), np.float64)
  out_per_group = out // groups
  for o in range(out):
    g = o // out_per_group
    inputs = x[:, g * per_group:(g + 1) * per_group]
    for i in range(oh):
      for j in range(ow):
        patch = inputs[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
        y[:, o, i, j] = np.sum(patch * weight[o], axis=(1, 2, 3))
  if bias is not None:
    y += bias[None, :, None, None]
  return y


def _torch_forward(state, images_nhwc):
  """The tiny network as PyTorch computes it (eval mode), from the state_dict."""
  x = np.transpose(images_nhwc, (0, 3, 1, 2)).astype(np.float64)
  x = _torch_conv(x, state["Conv2d_1a_3x3.conv.weight"], stride=2, padding=1, groups=2)
  p = "Conv2d_1a_3x3.bn."
  scale = state[p + "weight"] / np.sqrt(state[p + "running_var"] + BN_EPSILON)
  x = (x - state[p + "running_mean"][None, :, None, None]) * scale[None, :, None, None]
  x = np.maximum(x + state[p + "bias"][None, :, None, None], 0.0)
  x = _torch_conv(x, state["dw.weight"], padding=1, groups=6, bias=state["dw.bias"])
  x = x.mean(axis=(2, 3))
  return x @ state["fc.weight"].T + state["fc.bias"]


@pytest.fixture(scope="module")
def model():
  return _tiny_model()


@pytest.fixture()
def safetensors_file(tmp_path):
  path = tmp_path / "tiny.safetensors"
  save_file(_state_dict(), str(path))
  return path


def test_loaded_model_computes_what_pytorch_computes(model, safetensors_file):
  report = checkpoints.load_torch_checkpoint(model, safetensors_file)
  assert len(report.loaded) == 9 and report.ignored == ["Conv2d_1a_3x3.bn.num_batches_tracked"]
  images = np.random.default_rng(1).normal(size=(2, IMAGE, IMAGE, CHANNELS)).astype(np.float32)
  expected = _torch_forward(_state_dict(), images)
  np.testing.assert_allclose(model(images, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_torch_state_dict_inverts_the_load(model):
  state = _state_dict(seed=3)
  checkpoints.load_torch_checkpoint(model, state)
  exported = checkpoints.torch_state_dict(model)
  assert sorted(exported) == sorted(k for k in state if not k.endswith("num_batches_tracked"))
  for key, value in exported.items():
    np.testing.assert_array_equal(value, state[key])
  assert checkpoints.compare_with_state_dict(model, state) == []
  changed = dict(state, **{"fc.bias": state["fc.bias"] + 1.0})
  assert checkpoints.compare_with_state_dict(model, changed) == [
      "fc.bias: values differ (max abs difference 1)"]


def test_prefix_and_exclude(model):
  state = _state_dict(seed=4)
  wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
  before = model.get_layer("fc").kernel.numpy()
  other_head = {k: v for k, v in wrapped["state_dict"].items() if not k.startswith("module.fc.")}
  other_head["module.fc.weight"] = np.zeros((3, 12), np.float32)  # another num_classes
  report = checkpoints.load_torch_checkpoint(model, {"state_dict": other_head}, prefix="module.",
                                             exclude=("fc",))
  assert report.skipped == ["fc.weight", "fc.bias"]
  np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), before)
  np.testing.assert_array_equal(model.get_layer("dw").bias.numpy(), state["dw.bias"])


def test_mismatches_are_listed_in_one_error_and_nothing_is_assigned(model):
  checkpoints.load_torch_checkpoint(model, _state_dict(seed=5))
  before = checkpoints.torch_state_dict(model)
  state = _state_dict(seed=6)
  del state["dw.bias"]
  state["fc.weight"] = np.zeros((CLASSES + 1, 12), np.float32)
  state["layer1.0.conv1.weight"] = np.zeros((1, 1, 1, 1), np.float32)
  with pytest.raises(checkpoints.TorchCheckpointMismatch) as error:
    checkpoints.load_torch_checkpoint(model, state)
  message = str(error.value)
  assert "1 model weights missing from the state_dict:\n    dw.bias" in message
  assert "1 state_dict entries the model does not have:\n    layer1.0.conv1.weight" in message
  assert "fc.weight: state_dict [6, 12] vs model [5, 12]" in message
  for key, value in checkpoints.torch_state_dict(model).items():
    np.testing.assert_array_equal(value, before[key])
  # Extras alone pass with allow_unused.
  extras = dict(_state_dict(seed=6), **{"aux.weight": np.zeros(3, np.float32)})
  report = checkpoints.load_torch_checkpoint(model, extras, allow_unused=True)
  assert report.unused == ["aux.weight"]


def test_pickle_without_torch_names_the_fix(tmp_path, monkeypatch, model):
  path = tmp_path / "model.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  with pytest.raises(ImportError, match=r"pip install torch.*\.safetensors"):
    checkpoints.load_torch_checkpoint(model, path)


def test_file_errors(tmp_path, model):
  with pytest.raises(FileNotFoundError, match="No PyTorch checkpoint at"):
    checkpoints.load_torch_checkpoint(model, tmp_path / "absent.safetensors")
  other = tmp_path / "weights.npz"
  other.write_bytes(b"")
  with pytest.raises(ValueError, match=r"Unknown PyTorch checkpoint type.*\.safetensors"):
    checkpoints.read_torch_state_dict(other)


def test_unsupported_layer_with_weights_is_named():
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Embedding(3, 2, name="embed")(inputs))
  with pytest.raises(ValueError, match="'embed' \\(Embedding\\) has weights but no PyTorch"):
    torch_checkpoints.torch_parameters(model)


# --- tools/convert_torch_checkpoint.py on a real torchvision network (resnet18) -------------------

REPO = Path(__file__).resolve().parents[1]
TORCH_REFERENCES = REPO / ".." / "shared" / "torch_references"


def _resnet18_state_dict() -> dict[str, np.ndarray]:
  spec = importlib.util.spec_from_file_location("make_state_dict",
                                                TORCH_REFERENCES / "make_state_dict.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.make_state_dict("resnet18", str(TORCH_REFERENCES))


def _convert(*args):
  return subprocess.run([sys.executable, str(REPO / "tools" / "convert_torch_checkpoint.py"),
                         *args], capture_output=True, text=True, timeout=300, check=False)


def test_converter_cli_end_to_end(tmp_path):
  state = _resnet18_state_dict()
  checkpoint, output = tmp_path / "resnet18.safetensors", tmp_path / "resnet18.keras"
  save_file(state, str(checkpoint))
  done = _convert("--model=resnet18", f"--checkpoint={checkpoint}", f"--output={output}")
  assert done.returncode == 0, done.stderr
  assert "1000 classes; its 102 weights equal the state_dict's tensors" in done.stdout
  assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.keras", "resnet18.safetensors"]
  model = keras.saving.load_model(output)
  reference = np.load(TORCH_REFERENCES / "resnet18.npz")
  logits = model(reference["input"], training=False)["logits"].numpy()
  error = np.max(np.abs(logits - reference["logits"])) / np.max(np.abs(reference["logits"]))
  assert error < 1e-4

  written = output.read_bytes()
  refused = _convert("--model=resnet18", f"--checkpoint={checkpoint}", f"--output={output}")
  assert refused.returncode == 1 and "exists; pass overwrite=True (--overwrite)" in refused.stderr
  assert output.read_bytes() == written


def test_conversion_errors(tmp_path, monkeypatch):
  state = _resnet18_state_dict()
  with pytest.raises(FileNotFoundError, match="No PyTorch checkpoint"):
    torch_checkpoints.convert_torch_checkpoint("resnet18", tmp_path / "none.safetensors",
                                               tmp_path / "out.keras")
  pth = tmp_path / "resnet18.pth"
  pth.write_bytes(b"pickle")
  monkeypatch.setitem(sys.modules, "torch", None)
  with pytest.raises(ImportError, match="pip install torch"):
    torch_checkpoints.convert_torch_checkpoint("resnet18", pth, tmp_path / "out.keras")
  existing = tmp_path / "existing.keras"
  existing.write_bytes(b"keep")
  with pytest.raises(ValueError, match="exists; pass overwrite=True"):
    torch_checkpoints.convert_torch_checkpoint("resnet18", pth, existing)
  assert existing.read_bytes() == b"keep"
  with pytest.raises(ValueError, match="Unknown model 'resnet19'"):
    torch_checkpoints.convert_torch_checkpoint("resnet19", pth, tmp_path / "out.keras")
  # Other model options than the file's (one more unit in layer3): nothing is written.
  checkpoint = tmp_path / "resnet18.safetensors"
  save_file(state, str(checkpoint))
  with pytest.raises(checkpoints.TorchCheckpointMismatch, match="missing from the state_dict"):
    torch_checkpoints.convert_torch_checkpoint("resnet18", checkpoint, tmp_path / "o.keras",
                                               model_options={"units": (2, 2, 3, 2)})
  assert not (tmp_path / "o.keras").exists()
