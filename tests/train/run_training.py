"""Subprocess driver for the trainer tests that need a fresh TF runtime.

    python tests/train/run_training.py mirrored                  # 2 logical CPUs: mirrored vs 1 device
    python tests/train/run_training.py train --model_dir D ...   # one run (resume / multi-worker)

Prints one line `RESULT <json>` at the end.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import tensorflow as tf  # noqa: E402


def _config(**changes):
  from inception_tf.train import config as config_lib
  base = dict(model="tiny", image_size=8, train_batch_size=8, eval_batch_size=10, train_steps=6,
              learning_rate=0.05, learning_rate_batch_size=8, epochs_per_decay=0.25,
              checkpoint_every_steps=1000, log_every_steps=1, steps_per_execution=1,
              summary_images=0, ema_decay=0.9, seed=1, deterministic=True, jit_compile=False)
  base.update(changes)
  return config_lib.TrainConfig(**base)


def mirrored(args):
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  from inception_tf import distribute
  from inception_tf.train import loop
  from tests.train import tiny

  def plain(config, num_classes, image_size):  # no BN / dropout: per-replica statistics would differ
    return tiny.tiny_model_fn(config, num_classes, image_size, batch_norm=False, dropout=False)

  result = {}
  config = _config(gradient_clip_norm=0.5)  # small, so clipping is active: must see the global norm
  for name in ("default", "mirrored"):
    strategy = distribute.get_strategy(name)
    out = loop.train_and_evaluate(config, os.path.join(args.model_dir, name),
                                  datasets=tiny.in_memory_datasets(global_batch=8),
                                  model_fn=plain, strategy=strategy)
    result[name] = {"replicas": strategy.num_replicas_in_sync,
                    "loss": [h["loss"] for h in out["history"]],
                    "gradient_norm": [h["gradient_norm"] for h in out["history"]],
                    "eval": out["eval"]}
  # The full tiny model (batch norm, dropout, EMA of BN statistics) under mirrored.
  strategy = distribute.get_strategy("mirrored")
  out = loop.train_and_evaluate(_config(train_steps=4, checkpoint_every_steps=2),
                                os.path.join(args.model_dir, "mirrored_bn"),
                                datasets=tiny.in_memory_datasets(global_batch=8),
                                model_fn=tiny.tiny_model_fn, strategy=strategy)
  result["mirrored_bn"] = {"loss": [h["loss"] for h in out["history"]], "eval": out["eval"]}
  try:
    loop.train_and_evaluate(_config(train_batch_size=9), os.path.join(args.model_dir, "bad"),
                            datasets=tiny.in_memory_datasets(global_batch=9),
                            model_fn=tiny.tiny_model_fn, strategy=strategy)
    result["bad_batch_error"] = None
  except ValueError as error:
    result["bad_batch_error"] = str(error)
  print("RESULT " + json.dumps(result), flush=True)


def train(args):
  from inception_tf import distribute
  from inception_tf.train import loop
  from tests.train import tiny
  datasets = tiny.in_memory_datasets(global_batch=args.batch)
  if args.sleep:  # slow the input down so the parent can kill the run between checkpoints
    inner = datasets.train_fn

    def slow(context, skip):
      def pause(batch):
        tf.py_function(lambda: time.sleep(args.sleep), [], [])
        return batch
      return inner(context, skip).map(pause)

    datasets.train_fn = slow
  strategy = distribute.get_strategy(args.strategy)
  config = _config(train_steps=args.steps, checkpoint_every_steps=args.checkpoint_every,
                   train_batch_size=args.batch, log_every_steps=args.log_every,
                   steps_per_execution=args.steps_per_execution, strategy=args.strategy,
                   jit_compile=args.jit, dropout_keep_prob=0.7)
  out = loop.train_and_evaluate(config, args.model_dir, datasets=datasets,
                                model_fn=tiny.tiny_model_fn, strategy=strategy)
  print("RESULT " + json.dumps({"step": out["step"], "train_loss": out["train_loss"],
                                "eval": out.get("eval"), "chief": distribute.is_chief(strategy)}),
        flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("mode", choices=["mirrored", "train"])
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--steps", type=int, default=12)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--checkpoint_every", type=int, default=4)
  parser.add_argument("--log_every", type=int, default=4)
  parser.add_argument("--steps_per_execution", type=int, default=2)
  parser.add_argument("--strategy", default="default")
  parser.add_argument("--sleep", type=float, default=0.0)
  parser.add_argument("--jit", action="store_true")
  args = parser.parse_args()
  # CPU devices only, so the replica counts the tests expect (1 device, 2 logical CPUs, one per
  # worker) hold on machines with GPUs too.
  tf.config.set_visible_devices([], "GPU")
  {"mirrored": mirrored, "train": train}[args.mode](args)


if __name__ == "__main__":
  main()
