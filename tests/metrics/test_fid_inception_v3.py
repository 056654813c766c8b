"""The FID Inception network against the real pytorch-fid network's outputs.

References: `/work/shared/torch_references/fid_inception_v3.{keys.json,npz}` (logits and pool
features of pytorch-fid's module for the state_dict `make_state_dict.py` rebuilds). The weights
reach the Keras model two ways: a `.safetensors` state_dict through the generic torch loader, and a
GraphDef written here with the 2015-12-05 graph's node names through the GraphDef loader.
"""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from inception_tf.checkpoints import inception_graphdef
from inception_tf.checkpoints import load_torch_checkpoint
from inception_tf.models import create_model
from inception_tf.models import fused

# One xdist worker runs all of this module's tests, so its module fixtures are built once,
# not once on each worker that gets a share of the tests.
pytestmark = pytest.mark.xdist_group("fid_inception_v3")

REFERENCES = "/work/shared/torch_references"
sys.path.insert(0, REFERENCES)
from make_state_dict import make_state_dict  # noqa: E402

# The graph's convolution scopes in the order the graph concatenates its towers, block by block
# (stem; mixed..mixed_2; mixed_3; mixed_4..mixed_7; mixed_8; mixed_9, mixed_10). torchvision creates
# its modules in the same order, so zipping with the reference's key order pairs them; this is
# derived independently of the loader's own table.
_A = ["conv", "tower/conv", "tower/conv_1", "tower_1/conv", "tower_1/conv_1", "tower_1/conv_2",
      "tower_2/conv"]
_B = ["conv", "tower/conv", "tower/conv_1", "tower/conv_2"]
_C = ["conv", "tower/conv", "tower/conv_1", "tower/conv_2", "tower_1/conv", "tower_1/conv_1",
      "tower_1/conv_2", "tower_1/conv_3", "tower_1/conv_4", "tower_2/conv"]
_D = ["tower/conv", "tower/conv_1", "tower_1/conv", "tower_1/conv_1", "tower_1/conv_2",
      "tower_1/conv_3"]
_E = ["conv", "tower/conv", "tower/mixed/conv", "tower/mixed/conv_1", "tower_1/conv",
      "tower_1/conv_1", "tower_1/mixed/conv", "tower_1/mixed/conv_1", "tower_2/conv"]
GRAPH_CONV_SCOPES = (
    ["conv", "conv_1", "conv_2", "conv_3", "conv_4"]
    + [f"{m}/{s}" for m in ("mixed", "mixed_1", "mixed_2") for s in _A]
    + [f"mixed_3/{s}" for s in _B]
    + [f"{m}/{s}" for m in ("mixed_4", "mixed_5", "mixed_6", "mixed_7") for s in _C]
    + [f"mixed_8/{s}" for s in _D]
    + [f"{m}/{s}" for m in ("mixed_9", "mixed_10") for s in _E])


def _const(name, value):
  node = tf.compat.v1.NodeDef(name=name, op="Const")
  node.attr["dtype"].type = tf.float32.as_datatype_enum
  node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))
  return node


def write_graphdef(path, state, *, scale_after_normalization=True, drop=()):
  """A GraphDef holding `state` (a pytorch-fid state_dict) under the real graph's node names."""
  with open(os.path.join(REFERENCES, "fid_inception_v3.keys.json")) as f:
    keys = [k["name"] for k in json.load(f)["keys"]]
  modules = [k[:-len(".conv.weight")] for k in keys if k.endswith(".conv.weight")]
  assert len(modules) == len(GRAPH_CONV_SCOPES) == 94
  graph = tf.compat.v1.GraphDef()
  nodes = []
  for module, scope in zip(modules, GRAPH_CONV_SCOPES):
    nodes.append(_const(f"{scope}/conv2d_params",
                        state[f"{module}.conv.weight"].transpose(2, 3, 1, 0)))  # HWIO
    for leaf, torch_leaf in (("beta", "bias"), ("gamma", "weight"), ("moving_mean", "running_mean"),
                             ("moving_variance", "running_var")):
      nodes.append(_const(f"{scope}/batchnorm/{leaf}", state[f"{module}.bn.{torch_leaf}"]))
    op = tf.compat.v1.NodeDef(name=f"{scope}/batchnorm", op="BatchNormWithGlobalNormalization")
    op.input.extend([f"{scope}/Conv2D"] + [f"{scope}/batchnorm/{leaf}" for leaf in (
        "moving_mean", "moving_variance", "beta", "gamma")])
    op.attr["variance_epsilon"].f = 0.001
    op.attr["scale_after_normalization"].b = scale_after_normalization
    nodes.append(op)
  nodes.append(_const("softmax/weights", state["fc.weight"].T))
  nodes.append(_const("softmax/biases", state["fc.bias"]))
  matmul = tf.compat.v1.NodeDef(name="softmax/logits/MatMul", op="MatMul")
  matmul.input.extend(["pool_3/_reshape", "softmax/weights"])
  nodes.append(matmul)
  graph.node.extend(n for n in nodes if n.name not in drop)
  with open(path, "wb") as f:
    f.write(graph.SerializeToString())
  return path


@pytest.fixture(scope="module")
def model():
  return create_model("fid_inception_v3")


@pytest.fixture(scope="module")
def reference():
  return dict(np.load(os.path.join(REFERENCES, "fid_inception_v3.npz")))


@pytest.fixture(scope="module")
def state():
  return make_state_dict("fid_inception_v3")


def _relative(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def _check_against_reference(model, reference):
  outputs = fused.fused_call(model, tf.constant(reference["input"]), training=False)
  assert _relative(outputs["logits"], reference["logits"]) < 1e-4
  assert _relative(outputs["pool_3"], reference["features"]) < 1e-4
  kernel = model.get_layer("fc").kernel.numpy().astype(np.float64)
  exact_unbiased = outputs["pool_3"].numpy().astype(np.float64) @ kernel
  assert _relative(outputs["logits_unbiased"], exact_unbiased) < 1e-6
  # The bias-free logits are the logits minus fc's bias, not the logits.
  bias = model.get_layer("fc").bias.numpy()
  np.testing.assert_allclose(outputs["logits"] - outputs["logits_unbiased"],
                             np.broadcast_to(bias, outputs["logits"].shape), atol=1e-5)
  assert np.abs(bias).max() > 1e-3


def test_layout_and_parameter_count(model):
  assert model.name == "FIDInceptionV3"
  assert sorted(model.output) == ["logits", "logits_unbiased", "pool_3"]
  assert model.output["logits"].shape[-1] == 1008 and model.output["pool_3"].shape[-1] == 2048
  # pytorch-fid's module: 23,850,960 parameters without BN statistics (README of the references).
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 23_850_960
  assert model.get_layer("Mixed_5b.branch1x1.bn").epsilon == pytest.approx(1e-3)
  assert model.get_layer("Mixed_7c.max_pool").get_config()["padding"] == "same"
  assert model.get_layer("Mixed_7b.avg_pool").get_config()["padding"] == "same"


def test_safetensors_state_dict_reproduces_pytorch_fid(model, reference, state, tmp_path):
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  path = str(tmp_path / "pt_inception.safetensors")
  safetensors.numpy.save_file(state, path)
  report = load_torch_checkpoint(model, path)
  assert not report.unused
  _check_against_reference(model, reference)


def test_graphdef_reproduces_pytorch_fid(model, reference, state, tmp_path):
  # Scramble the model first so that nothing of the previous test's load survives.
  for weight in model.weights:
    weight.assign(np.full(weight.shape, 0.5, np.float32))
  path = write_graphdef(str(tmp_path / "classify_image_graph_def.pb"), state)
  report = inception_graphdef.load_inception_graphdef(model, path)
  assert report.loaded == len(model.weights) and report.gamma_ignored == 0
  _check_against_reference(model, reference)


def test_graphdef_without_scale_after_normalization_ignores_gamma(model, state, tmp_path):
  path = write_graphdef(str(tmp_path / "g.pb"), state, scale_after_normalization=False)
  report = inception_graphdef.load_inception_graphdef(model, path)
  assert report.gamma_ignored == 94
  np.testing.assert_array_equal(model.get_layer("Mixed_6b.branch7x7_2.bn").gamma.numpy(), 1.0)
  np.testing.assert_array_equal(model.get_layer("Mixed_6b.branch7x7_2.bn").beta.numpy(),
                                state["Mixed_6b.branch7x7_2.bn.bias"])


def test_graphdef_errors_name_the_missing_nodes(model, state, tmp_path):
  path = write_graphdef(str(tmp_path / "g.pb"), state,
                        drop=("mixed_9/tower/mixed/conv_1/conv2d_params", "softmax/biases"))
  with pytest.raises(inception_graphdef.GraphDefMismatch,
                     match=r"2 weight nodes missing.*mixed_9/tower/mixed/conv_1/conv2d_params"):
    inception_graphdef.load_inception_graphdef(model, path)
  bad = tmp_path / "not_a_graph.pb"
  bad.write_bytes(b"\xff\xfe not a protocol buffer")
  with pytest.raises(inception_graphdef.GraphDefMismatch, match="not a binary GraphDef"):
    inception_graphdef.load_inception_graphdef(model, str(bad))
  with pytest.raises(FileNotFoundError, match="classify_image_graph_def.pb"):
    inception_graphdef.load_inception_graphdef(model, str(tmp_path / "missing.pb"))
