r"""Evaluates checkpoints with the papers' protocols: `python tools/evaluate.py --checkpoint=... [flags]`.

Single crop (TF-slim's central 87.5%), 10, 12 or GoogLeNet's 144 crops, ensembles (softmax
probabilities averaged over models and crops), EMA weights; every example is counted exactly once.

    # A training run: network, options, classes, size and preprocessing come from its config.json:
    python tools/evaluate.py --checkpoint=runs/quickstart --crops=144
    # A TF-slim checkpoint on ImageNet TFRecords, the v3 paper's 48,238-image protocol:
    python tools/evaluate.py --model=inception_v3 --checkpoint=inception_v3.ckpt \
        --data_dir=/data/imagenet --crops=12 --blacklist_file=ILSVRC2015_clsloc_validation_blacklist.txt
    # An ensemble (inception_v4 at 299, inception_v1 at 224):
    python tools/evaluate.py --ensemble=inception_v4=/ckpt/inception_v4.ckpt \
        --ensemble=inception_v1:224=/ckpt/inception_v1.ckpt --data_dir=/data/imagenet
    # Continuous evaluation of a training run's new checkpoints:
    python tools/evaluate.py --checkpoint=runs/v3 --watch --data_dir=/data/imagenet

The geometry of each protocol is documented in `inception_tf/eval/crops.py` and written into the
JSON report (`--output`; with --watch, reports go to `--output_dir`). Each model is fed its own
preprocessing (its run's / registry entry's; `--preprocessing` overrides). Library code reads no
flags: this file maps them onto `inception_tf.eval.evaluate`.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from inception_tf.data.preprocessing import PREPROCESSING_KINDS  # noqa: E402

cli.define_model_flags(ensemble=True)
flags.DEFINE_multi_string("ensemble", None, "Ensemble member <model>[:<image_size>]=<checkpoint>; "
                          "repeatable, combinable with --checkpoint.")
flags.DEFINE_string("data_dir", None, "TFRecords (a directory of <split>-* shards or a glob pattern); "
                    "default: the data the --checkpoint run trained on, else the built-in digits.")
flags.DEFINE_string("tfds_name", None, "A TFDS dataset already on disk, e.g. imagenet2012.")
flags.DEFINE_string("split", "validation", "Split to evaluate.")
flags.DEFINE_integer("crops", 1, "1 (central crop), 10, 12 or 144 (GoogLeNet's protocol).")
flags.DEFINE_float("central_fraction", None, "Central fraction of --crops=1 (default 0.875).")
flags.DEFINE_integer("eval_batch_size", None, "Images per GLOBAL batch; the model sees "
                     "batch x crops inputs (default: 144 / crops per replica).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "tpu"],
                  "tf.distribute strategy (as in training; one host).")
flags.DEFINE_integer("num_gpus", 0, "Local GPUs for --strategy=mirrored (0: all).")
flags.DEFINE_string("tpu", None, "TPU name or 'local' with --strategy=tpu.")
flags.DEFINE_string("blacklist_file", None, "ImageNet's validation blacklist (1,762 ids) to exclude.")
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N examples.")
flags.DEFINE_enum("preprocessing", None, list(PREPROCESSING_KINDS),
                  "Eval preprocessing of every model (default: each model's own).")
flags.DEFINE_string("output", None, "Write the JSON report to this file.")
flags.DEFINE_string("output_dir", None, "--watch: the reports directory (default: "
                    "<checkpoint>/eval_<split>).")
flags.DEFINE_boolean("watch", False, "Evaluate each new checkpoint of the --checkpoint model dir.")
flags.DEFINE_float("watch_poll_seconds", 30.0, "--watch: seconds between looks for a checkpoint.")
flags.DEFINE_float("watch_timeout_seconds", 3600.0, "--watch: stop after this long without a new "
                   "checkpoint (0: never).")
flags.DEFINE_integer("watch_until_step", None, "--watch: stop after a checkpoint at this step.")
flags.DEFINE_boolean("progress", True, "Show a progress bar.")

FLAGS = flags.FLAGS


def model_specs():
  """The ensemble members given by --checkpoint and --ensemble."""
  from inception_tf.eval.evaluate import ModelSpec  # pylint: disable=import-outside-toplevel
  options = cli.model_options()
  specs = [ModelSpec(name=FLAGS.model, checkpoint=c, num_classes=FLAGS.num_classes,
                     options=options) for c in FLAGS.checkpoint or ()]
  for entry in FLAGS.ensemble or ():
    head, sep, checkpoint = entry.partition("=")
    name, _, size = head.partition(":")
    if not sep or not name or not checkpoint or (size and not size.isdigit()):
      raise app.UsageError(f"--ensemble entries are <model>[:<image_size>]=<checkpoint>; got "
                           f"{entry!r}.")
    specs.append(ModelSpec(name=name, checkpoint=checkpoint, image_size=int(size) if size else None))
  if not specs:
    raise app.UsageError("Give --checkpoint (and --model for TF-slim checkpoints) or --ensemble.")
  return specs


def run_data(specs) -> tuple[str | None, str | None]:
  """(source, eval split) the first --checkpoint's run trained with, when it is a run and the data
  flags are not given: `evaluate.py --checkpoint=RUN` needs nothing repeated."""
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  path = specs[0].checkpoint
  if not path:
    return None, None
  if not os.path.isdir(path):  # a run directory may have no checkpoint yet (--watch)
    try:
      fmt, path = checkpoints.sniff(path)
    except (ValueError, FileNotFoundError):
      return None, None  # the evaluator reports it
    if fmt != checkpoints.loading.FORMAT_RUN:
      return None, None
  run = checkpoints.read_run_config(path)
  data = run.get("data") or run  # older runs: results.json's recipe holds the same keys
  source = f"tfds:{data['tfds_name']}" if data.get("tfds_name") else data.get("data_dir")
  return source, data.get("eval_split") or None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from inception_tf import distribute  # pylint: disable=import-outside-toplevel
  from inception_tf.eval import evaluate as evaluation  # pylint: disable=import-outside-toplevel
  specs = model_specs()
  if FLAGS.data_dir and FLAGS.tfds_name:
    raise app.UsageError("Give --data_dir or --tfds_name, not both.")
  source = f"tfds:{FLAGS.tfds_name}" if FLAGS.tfds_name else FLAGS.data_dir
  split = FLAGS.split
  if source is None:
    source, run_split = run_data(specs)
    if run_split and not FLAGS["split"].present:
      split = run_split
    if source:
      print(f"Data: {source}, split {split} (the run's; --data_dir overrides)", flush=True)
  try:
    strategy = distribute.get_strategy(FLAGS.strategy, tpu=FLAGS.tpu, num_gpus=FLAGS.num_gpus)
    kwargs = dict(split=split, crops=FLAGS.crops, image_size=FLAGS.image_size,
                  batch_size=FLAGS.eval_batch_size, strategy=strategy, use_ema=FLAGS.use_ema,
                  blacklist=FLAGS.blacklist_file, central_fraction=FLAGS.central_fraction,
                  max_examples=FLAGS.max_examples, verbose=int(FLAGS.progress),
                  preprocessing=FLAGS.preprocessing)
    if FLAGS.watch:
      if len(specs) != 1 or not specs[0].checkpoint:
        raise app.UsageError("--watch takes exactly one --checkpoint: the training model dir.")
      evaluation.watch(specs[0].checkpoint, specs[0], source,
                       output_dir=FLAGS.output_dir or FLAGS.output,
                       poll_seconds=FLAGS.watch_poll_seconds,
                       timeout_seconds=FLAGS.watch_timeout_seconds or None,
                       until_step=FLAGS.watch_until_step, **kwargs)
      return
    report = evaluation.evaluate(specs, source, output=FLAGS.output, **kwargs)
  except (ValueError, FileNotFoundError) as error:
    sys.exit(f"error: {error}")
  print(evaluation.format_report(report), flush=True)
  if FLAGS.output:
    print(f"Report written to {FLAGS.output}", flush=True)


if __name__ == "__main__":
  app.run(main)
