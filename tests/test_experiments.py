"""Every experiment config parses with the real flags of tools/train.py / tools/evaluate.py, its
recipe validates, its model builds (shrunk), and one paper row trains a step on the built-in digits.

The flag files are parsed in subprocesses because tools/train.py and tools/evaluate.py both define
flags such as --model in absl's global FLAGS and cannot be imported into one process.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
TRAIN_CONFIGS = sorted(
    p for p in glob.glob(os.path.join(EXPERIMENTS, "*", "*.cfg")) if "_eval_" not in p)
EVAL_CONFIGS = sorted(glob.glob(os.path.join(EXPERIMENTS, "*", "*_eval_*.cfg")))
TPU_OVERRIDES = os.path.join(EXPERIMENTS, "tpu_v3_8.cfg")
HEADER_FIELDS = ("# Paper:", "Protocol:", "TPU v3-8 command", "Expected time on a TPU v3-8",
                 "ESTIMATE", "Status: not run on ImageNet")

# The rows the issue lists, by file.
EXPECTED_ROWS = {
    "v3_paper/table3_row1_inception_v2.cfg", "v3_paper/table3_row2_rmsprop.cfg",
    "v3_paper/table3_row3_label_smoothing.cfg", "v3_paper/table3_row4_factorized_7x7.cfg",
    "v3_paper/table3_row5_bn_auxiliary_inception_v3.cfg",
    "v3_paper/table2_receptive_field_79.cfg", "v3_paper/table2_receptive_field_151.cfg",
    "v3_paper/table2_receptive_field_299.cfg",
    "v3_paper/table4_eval_12_crops.cfg", "v3_paper/table4_eval_144_crops.cfg",
    "v3_paper/table5_eval_ensemble_144_crops.cfg",
    "v4_paper/inception_v3.cfg", "v4_paper/inception_resnet_v1.cfg", "v4_paper/inception_v4.cfg",
    "v4_paper/inception_resnet_v2.cfg",
    "baselines/googlenet_inception_v1.cfg", "baselines/bn_inception_v2.cfg",
}

_PARSE_TRAIN = textwrap.dedent("""
    import dataclasses, importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("train_tool", sys.argv[1])
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    out = {}
    for path in sys.argv[2:]:
      for extra in ([], ["--flagfile=" + %r]):
        tool.FLAGS.unparse_flags()
        tool.FLAGS(["train.py", "--flagfile=" + path] + extra)
        preset, config = tool.config_from_flags()
        config.validate()
        out[path + ("+tpu" if extra else "")] = dict(preset=preset, **dataclasses.asdict(config))
    print("JSON" + json.dumps(out, default=str))
""") % TPU_OVERRIDES

_PARSE_EVAL = textwrap.dedent("""
    import dataclasses, importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("eval_tool", sys.argv[1])
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    out = {}
    for path in sys.argv[2:]:
      tool.FLAGS.unparse_flags()
      # The checkpoints are given on the command line, as the headers say.
      tool.FLAGS(["evaluate.py", "--flagfile=" + path, "--checkpoint=/ckpt/a", "--checkpoint=/ckpt/b"])
      specs = tool.model_specs()
      out[path] = dict(crops=tool.FLAGS.crops, split=tool.FLAGS.split,
                       blacklist=tool.FLAGS.blacklist_file, strategy=tool.FLAGS.strategy,
                       specs=[dict(name=s.name, checkpoint=s.checkpoint) for s in specs])
    print("JSON" + json.dumps(out))
""")


def _run_parser(script: str, tool: str, paths) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-c", script, os.path.join(ROOT, "tools", tool), *paths],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("JSON")][-1]
  return json.loads(line[4:])


@pytest.fixture(scope="module")
def train_configs() -> dict:
  return _run_parser(_PARSE_TRAIN, "train.py", TRAIN_CONFIGS)


@pytest.fixture(scope="module")
def eval_configs() -> dict:
  return _run_parser(_PARSE_EVAL, "evaluate.py", EVAL_CONFIGS)


def _rel(path: str) -> str:
  return os.path.relpath(path, EXPERIMENTS)


def test_every_listed_row_has_a_config():
  present = {_rel(p) for p in TRAIN_CONFIGS + EVAL_CONFIGS}
  assert EXPECTED_ROWS <= present, sorted(EXPECTED_ROWS - present)


@pytest.mark.parametrize("path", TRAIN_CONFIGS + EVAL_CONFIGS, ids=_rel)
def test_header_documents_the_row(path):
  with open(path) as f:
    text = f.read()
  header = "\n".join(l for l in text.splitlines() if l.startswith("#"))
  for field in HEADER_FIELDS:
    assert field in header, f"{_rel(path)} header lacks {field!r}"
  # The command in the header names this very file.
  assert f"--flagfile=experiments/{_rel(path)}" in header
  # Every non-comment line is a flag.
  for line in text.splitlines():
    assert not line.strip() or line.startswith("#") or line.startswith("--"), line


def test_readme_table_lists_every_config():
  with open(os.path.join(EXPERIMENTS, "README.md")) as f:
    readme = f.read()
  for path in TRAIN_CONFIGS + EVAL_CONFIGS:
    assert f"experiments/{_rel(path)}" in readme, _rel(path)


def test_train_configs_parse_with_the_tool_flags(train_configs):
  assert len(train_configs) == 2 * len(TRAIN_CONFIGS)
  for path in TRAIN_CONFIGS:
    config = train_configs[path]
    assert config["preset"] == "paper_v3"
    assert config["image_size"] in (79, 151, 224, 299)
    assert config["train_epochs"] == 100 and config["train_steps"] is None
    tpu = train_configs[path + "+tpu"]
    assert tpu["strategy"] == "tpu" and tpu["tpu"] == "local"
    assert tpu["train_batch_size"] == 1024 and tpu["precision"] == "mixed_bfloat16"
    # The TPU overrides change the batch and schedule only, never the network or the loss.
    for key in ("model", "model_options", "image_size", "label_smoothing", "optimizer",
                "aux_logits", "weight_decay"):
      assert tpu[key] == config[key], (path, key)


def test_table3_rows_add_one_change_each(train_configs):
  rows = [train_configs[os.path.join(EXPERIMENTS, "v3_paper", name)] for name in (
      "table3_row1_inception_v2.cfg", "table3_row2_rmsprop.cfg",
      "table3_row3_label_smoothing.cfg", "table3_row4_factorized_7x7.cfg",
      "table3_row5_bn_auxiliary_inception_v3.cfg")]

  def switches(c):
    return dict(optimizer=c["optimizer"], label_smoothing=c["label_smoothing"],
                factorized_7x7=c["model_options"]["factorized_7x7"],
                aux_batch_norm=c["model_options"]["aux_batch_norm"])

  changed = []
  for before, after in zip(rows, rows[1:]):
    a, b = switches(before), switches(after)
    changed.append([k for k in a if a[k] != b[k]])
  assert changed == [["optimizer"], ["label_smoothing"], ["factorized_7x7"], ["aux_batch_norm"]]
  assert switches(rows[-1]) == dict(optimizer="rmsprop", label_smoothing=0.1, factorized_7x7=True,
                                    aux_batch_norm=True)
  assert switches(rows[0]) == dict(optimizer="momentum", label_smoothing=0.0,
                                   factorized_7x7=False, aux_batch_norm=False)


def test_v4_recipe(train_configs):
  for path in TRAIN_CONFIGS:
    if "/v4_paper/" not in path:
      continue
    c = train_configs[path]
    assert (c["optimizer"], c["rmsprop_decay"], c["epsilon"]) == ("rmsprop", 0.9, 1.0), path
    assert (c["learning_rate"], c["learning_rate_decay"], c["epochs_per_decay"]) == (
        0.045, 0.94, 2.0), path
    assert c["ema_decay"], path


def test_eval_configs_parse_with_the_tool_flags(eval_configs):
  crops = {_rel(p): c["crops"] for p, c in eval_configs.items()}
  assert crops == {"v3_paper/table4_eval_12_crops.cfg": 12,
                   "v3_paper/table4_eval_144_crops.cfg": 144,
                   "v3_paper/table5_eval_ensemble_144_crops.cfg": 144}
  for config in eval_configs.values():
    assert config["blacklist"], "the v3 paper evaluates on the non-blacklisted images"
    assert [s["name"] for s in config["specs"]] == ["inception_v3", "inception_v3"]


# Shrunk builds: the network, its options and the row's image size; narrow where the family has a
# depth multiplier, the real width otherwise (building is cheap; nothing runs at 299).
_SHRINK = {"inception_v1": 0.1, "inception_v2": 0.1, "inception_v3": 0.1}


def _build(config: dict):
  from inception_tf import models  # pylint: disable=import-outside-toplevel
  options = dict(config["model_options"])
  if config["model"] in _SHRINK:
    options.update(depth_multiplier=_SHRINK[config["model"]], min_depth=8)
  size = config["image_size"]
  if config["model"] not in _SHRINK:  # full width (no depth multiplier): a small input
    size = max(models.model_info(config["model"]).min_image_size, 107)
  return models.create_model(config["model"], 11, image_size=size, aux_logits=config["aux_logits"],
                             dropout_keep_prob=config["dropout_keep_prob"], **options)


def _architecture(config: dict) -> str:
  """What fixes a config's network: model, options, input size, aux head."""
  return json.dumps([config["model"], config["model_options"], config["image_size"],
                     config["aux_logits"]], sort_keys=True)


def test_every_config_builds_its_model(train_configs):
  import numpy as np  # pylint: disable=import-outside-toplevel
  built = {}
  for path in TRAIN_CONFIGS:
    config = train_configs[path]
    key = _architecture(config)
    if key in built:
      continue
    model = _build(config)
    built[key] = model.name
    size = model.input_shape[1]
    outputs = model(np.zeros((1, size, size, 3), np.float32), training=False)
    assert outputs["logits"].shape == (1, 11), path
    names = {layer.name for layer in model.layers}
    options = config["model_options"]
    if options.get("factorized_7x7") is False:
      assert "Conv2d_1a_7x7" in names, path
    if options.get("aux_batch_norm") is False:
      assert not any(n.startswith("AuxLogits.Conv2d_2a") and n.endswith("BatchNorm")
                     for n in names), path
  # Table 3 of the v3 paper: rows 1-3 change only the optimizer and the loss (one network);
  # row 4 factorizes the 7x7 stem and row 5 adds batch norm to the aux head (two more networks).
  rows = [_architecture(train_configs[os.path.join(EXPERIMENTS, "v3_paper", name)])
          for name in ("table3_row1_inception_v2.cfg", "table3_row2_rmsprop.cfg",
                       "table3_row3_label_smoothing.cfg", "table3_row4_factorized_7x7.cfg",
                       "table3_row5_bn_auxiliary_inception_v3.cfg")]
  assert rows[0] == rows[1] == rows[2]
  assert len({rows[0], rows[3], rows[4]}) == 3
  assert set(rows) <= set(built)


def test_a_paper_row_trains_one_step_on_the_digits(train_configs, tmp_path):
  """Table 3 row 1 (momentum, 7x7 stem, plain aux head), shrunk: one real step and an eval."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from inception_tf import train  # pylint: disable=import-outside-toplevel
  raw = dict(train_configs[os.path.join(EXPERIMENTS, "v3_paper", "table3_row1_inception_v2.cfg")])
  raw.pop("preset")
  raw["checkpoint_exclude_scopes"] = tuple(raw["checkpoint_exclude_scopes"])
  raw["trainable_scopes"] = tuple(raw["trainable_scopes"])
  config = train.TrainConfig(**raw).replace(
      train_steps=1, train_epochs=None, image_size=75, train_batch_size=8, eval_batch_size=120,
      model_options=dict(raw["model_options"], depth_multiplier=0.1, min_depth=8),
      jit_compile=False, summary_images=0, cache_data=True, fast_preprocessing=True)
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert result["step"] == 1
  assert result["eval"]["num_examples"] == 360
  # Every one of the 360 examples counted once, as a whole: top-1 is k / 360 for an integer k.
  correct = result["eval"]["top1"] * 360
  assert abs(correct - round(correct)) < 1e-6, result["eval"]
  assert np.isfinite(result["train_loss"]), result
  with open(tmp_path / "run" / "results.json") as f:
    recorded = json.load(f)["config"]
  assert recorded["optimizer"] == "momentum"
  assert recorded["model_options"]["factorized_7x7"] is False


def test_reproduction_results_are_recorded():
  """The committed small-scale results hold measured runs and their plots."""
  results = os.path.join(EXPERIMENTS, "reproductions", "results")
  for study in ("residual", "scaling", "smoothing", "resolution"):
    path = os.path.join(results, f"{study}.json")
    assert os.path.isfile(path), path
    with open(path) as f:
      record = json.load(f)
    assert record["runs"] and record["summary"], study
    for name, run in record["runs"].items():
      assert run["diverged"] or run["history"], (study, name)
    assert os.path.isfile(os.path.join(results, f"{study}.png")), study
    assert re.search(r"python experiments/reproductions/run\.py", record["command"])
