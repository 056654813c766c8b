"""slim's ResNet v1 and v2 (50/101/152/200) against the real tf-slim networks and published layouts.

For every depth and version: the published variable list (tests/golden/<model>.vars.json, every
name and shape, the logits at `ModelInfo.num_classes`), then the real `tf_slim.nets.resnet_v1` /
`resnet_v2` network (tf-slim 1.1.0 pip) with random weights and batch-norm statistics saved as a
TF1 checkpoint, loaded with `load_slim_checkpoint`, and every endpoint slim records plus the logits
compared within 1e-4 relative on a real photo and noise, at output_stride None (32) and 16 for
every depth (50 also at 8 with `global_pool=False`, logits as a map; `_variants`). Inputs are SIZE
px: 64 -> 32 -> 16 -> 8 -> 4 -> 2, even at every stride-2 step, where slim's conv2d_same pads
differently from 'SAME'; at output_stride 16 block3 and block4 stay at 4 x 4, so block4's 3x3
convolutions at rate 2 reach real neighbours (a rate-2 3x3 on a 2 x 2 map would only see its
centre tap). The variants of one network share one TF1 graph's variables (`run_slim_variants`),
so slim's variables are created once per network; one test per network, so that pytest-xdist
builds each network in one worker.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import slim_parity
from slim_reference import run_slim_variants
from inception_tf import checkpoints
from inception_tf.models import create_model, model_info, naming, resnet_utils
from inception_tf.models.registry import endpoint_layer_name

SIZE = 64
NETWORKS = [f"resnet_v{version}_{depth}" for version in (1, 2) for depth in (50, 101, 152, 200)]
# Published parameter counts (sum of the variable lists at ModelInfo.num_classes): total, trainable.
# v1's trainable counts at 50/101/152 are torchvision's ResNet-50/101/152 (25,557,032 / 44,549,160 /
# 60,192,808): the same convolutions and 1000-way fc, slim's BN gamma/beta as torchvision's
# weight/bias; only the place of the stride differs.
PARAMETERS = {
    "resnet_v1_50": (25_610_152, 25_557_032),
    "resnet_v1_101": (44_654_504, 44_549_160),
    "resnet_v1_152": (60_344_232, 60_192_808),
    "resnet_v1_200": (64_849_832, 64_673_832),
    "resnet_v2_50": (25_615_849, 25_570_409),
    "resnet_v2_101": (44_677_609, 44_579_945),
    "resnet_v2_152": (60_382_697, 60_238_953),
    "resnet_v2_200": (64_896_489, 64_728_169),
}


def _variants(name):
  """{label: net kwargs} run on slim and on ours (the first one's model is checked for the layout:
  output_stride and global_pool change no variable): the default (output_stride 32) and
  output_stride 16 for every depth; for 50 layers also output_stride 8 with the logits as a map.
  """
  variants = {"default": {}, "os16": {"output_stride": 16}}
  if name.endswith("_50"):
    variants["os8_map"] = {"output_stride": 8, "global_pool": False}
  return variants


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_layout_and_outputs_equal_slim(name, tmp_path):
  info = model_info(name)
  net_fn, arg_scope_fn, slim_key, preprocessing = slim_parity.slim_network(name, SIZE)
  images = slim_parity.make_images(SIZE, preprocessing=preprocessing)
  variants = _variants(name)
  prefix = str(tmp_path / "model.ckpt")
  outputs, slim_shapes = run_slim_variants(
      net_fn, arg_scope_fn, images, prefix,
      variants=[{"num_classes": info.num_classes, **kwargs} for kwargs in variants.values()])

  published = slim_parity.published_layout(name)
  assert slim_shapes == published  # the real slim network holds the published layout
  assert slim_parity.parameter_counts(published) == PARAMETERS[name]
  for index, (label, kwargs) in enumerate(variants.items()):
    slim_logits, slim_end_points = outputs[index]
    model = create_model(name, image_size=SIZE, **kwargs)
    if index == 0:
      ours = {n: tuple(v.shape) for n, v in naming.slim_variables(model).items()}
      assert ours == published
      assert model.count_params() == PARAMETERS[name][0]
    report = checkpoints.load_slim_checkpoint(model, prefix)
    assert len(report.loaded) == len(published) and not report.unused
    if index == 0 and name.endswith("_50"):
      # save_slim_checkpoint writes slim's own checkpoint back: every name, shape and value.
      saved = checkpoints.save_slim_checkpoint(model, str(tmp_path / "ours.ckpt"))
      assert checkpoints.read_slim_checkpoint(saved) == published
      ours_reader, slim_reader = tf.train.load_checkpoint(saved), tf.train.load_checkpoint(prefix)
      for variable in published:
        np.testing.assert_array_equal(ours_reader.get_tensor(variable),
                                      slim_reader.get_tensor(variable), err_msg=variable)
    compared = slim_parity.compare_with_slim(name, model, images, slim_logits, slim_end_points,
                                             slim_key)
    # slim records every unit and block, conv1 and the logits; not pool1, postnorm, the mean.
    unrecorded = {"pool1", "postnorm", "global_pool"}
    assert set(compared) == set(info.endpoints) - unrecorded, label
    # The photo and the noise give different logits (the comparison is not of constants); slim's
    # logits, which ours equal (compare_with_slim), so no third forward pass of ours is needed.
    spread = np.max(np.abs(slim_logits[0] - slim_logits[1]))
    assert spread > 1e-2 * np.max(np.abs(slim_logits)), (label, spread)
    ours_shape = tuple(model.output["logits"].shape[1:])
    if label == "os8_map":
      assert ours_shape == (SIZE // 8, SIZE // 8, info.num_classes)
    else:
      assert ours_shape == (info.num_classes,)


@pytest.mark.parametrize("version", [1, 2])
def test_output_stride_builds_atrous_units(version):
  """Past the target stride, units run at stride 1 and their 3x3 at the accumulated rate."""
  name = f"resnet_v{version}_50"
  unit = f"bottleneck_v{version}"
  model = create_model(name, image_size=32, include_top=False, output_stride=8)
  # output_stride 8 = conv1 + pool1 (4) x block1's stride 2. From block2 on every unit has stride 1;
  # the stride a unit gives up multiplies the rate of the units AFTER it, so block2 runs at rate 1
  # (its unit_4 gives up 2), block3 at rate 2, block4 at rate 4 (slim's stack_blocks_dense).
  rates = {f"block{b}.unit_{u}.{unit}.conv2": model.get_layer(f"block{b}.unit_{u}.{unit}.conv2")
           for b, u in ((1, 3), (2, 1), (2, 4), (3, 1), (3, 6), (4, 3))}
  assert {n: (l.strides, l.dilation_rate) for n, l in rates.items()} == {
      f"block1.unit_3.{unit}.conv2": ((2, 2), (1, 1)),
      f"block2.unit_1.{unit}.conv2": ((1, 1), (1, 1)),
      f"block2.unit_4.{unit}.conv2": ((1, 1), (1, 1)),
      f"block3.unit_1.{unit}.conv2": ((1, 1), (2, 2)),
      f"block3.unit_6.{unit}.conv2": ((1, 1), (2, 2)),
      f"block4.unit_3.{unit}.conv2": ((1, 1), (4, 4)),
  }
  # block2.unit_4's shortcut subsamples no more (stride 1: the identity, no pool layer).
  assert f"block2.unit_4.{unit}.shortcut" not in {layer.name for layer in model.layers}
  assert model.output.shape[1:] == (4, 4, 2048)
  for bad in (12, 2, 64):
    with pytest.raises(ValueError, match=r"output_stride must be None or one of \(4, 8, 16, 32\)"):
      create_model(name, image_size=32, output_stride=bad)
  with pytest.raises(ValueError, match="global_pool must be True or False"):
    create_model(name, image_size=32, global_pool="avg")


def test_stage_table_and_registry_facts():
  assert [(b.scope, b.base_depth, b.num_units, b.stride) for b in resnet_utils.blocks(152)] == [
      ("block1", 64, 3, 2), ("block2", 128, 8, 2), ("block3", 256, 36, 2), ("block4", 512, 3, 1)]
  assert resnet_utils.blocks(200)[1].unit_strides() == (1,) * 23 + (2,)
  with pytest.raises(ValueError, match="valid depths: \\[50, 101, 152, 200\\]"):
    resnet_utils.blocks(34)
  for name in NETWORKS:
    info = model_info(name)
    v1 = name.startswith("resnet_v1")
    # Published checkpoints: v1 (MSRA's Caffe models) 1000 classes, VGG preprocessing at 224;
    # v2 1001 classes, Inception preprocessing at 299.
    assert (info.num_classes, info.preprocessing, info.default_image_size) == (
        (1000, "vgg", 224) if v1 else (1001, "inception", 299))
    assert (info.batch_norm_scale, info.batch_norm_epsilon, info.batch_norm_momentum) == (
        True, 1e-5, 0.997)
    assert (info.slim_scope, info.min_image_size, info.has_aux_logits) == (name, 32, False)
    depth = int(name.rsplit("_", 1)[1])
    assert len(info.endpoints) == 2 + sum(resnet_utils.STAGES[depth]) + 4 + 2 + (0 if v1 else 1)


def test_v2_pre_activation_layout():
  features = create_model("resnet_v2_50", image_size=32, include_top=False)
  assert features.output.shape[1:] == (1, 1, 2048)
  assert features.layers[-1].name == "postnorm.Relu"  # features come after postnorm
  model = create_model("resnet_v2_50", image_size=32)
  # conv1 has a bias and no batch norm or ReLU (slim's root block of v2); a unit ends in an Add
  # without ReLU; the endpoints resolve to those layers.
  assert model.get_layer("conv1").use_bias and "conv1.BatchNorm" not in {
      layer.name for layer in model.layers}
  assert [endpoint_layer_name(model, e) for e in ("conv1", "block1.unit_1.bottleneck_v2",
                                                  "postnorm")] == [
      "conv1", "block1.unit_1.bottleneck_v2", "postnorm.Relu"]
  assert isinstance(model.get_layer("block1.unit_1.bottleneck_v2"), keras.layers.Add)
  # Identity shortcut of unit_2 and the subsampled one of block1's strided unit_3 take the unit's
  # input, not preact: a max pool on the previous unit's output.
  pool = model.get_layer("block1.unit_3.bottleneck_v2.shortcut")
  assert isinstance(pool, keras.layers.MaxPooling2D) and pool.strides == (2, 2)
  assert pool.input.name == model.get_layer("block1.unit_2.bottleneck_v2").output.name
