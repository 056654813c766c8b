"""make_dataset under MirroredStrategy on 2 logical CPU devices (run in a fresh process, since
logical devices must be configured before TensorFlow initialises)."""

import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from inception_tf import data

    source = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}

    def run(split, is_training, global_batch, steps, options=None):
      contexts = []
      def dataset_fn(context):
        contexts.append([context.num_input_pipelines, context.input_pipeline_id,
                         context.num_replicas_in_sync])
        return data.make_dataset(source, split=split, is_training=is_training,
                                 batch_size=context.get_per_replica_batch_size(global_batch),
                                 image_size=32, input_context=context, with_filenames=True,
                                 seed=0)
      dist = strategy.distribute_datasets_from_function(dataset_fn, options)
      per_replica = [[] for _ in range(strategy.num_replicas_in_sync)]
      for step, batch in enumerate(dist):
        if steps is not None and step >= steps:
          break
        names = strategy.experimental_local_results(batch["filenames"])
        masks = (strategy.experimental_local_results(batch["mask"]) if "mask" in batch
                 else [None] * len(names))
        for replica, (n, m) in enumerate(zip(names, masks)):
          assert n.shape[0] == global_batch // 2
          per_replica[replica] += [x.decode() for i, x in enumerate(n.numpy())
                                   if m is None or m.numpy()[i] == 1]
      return {"contexts": contexts, "names": per_replica}

    result["eval"] = run("validation", False, 16, None)
    result["train"] = run("train", True, 16, 20)
    per_replica = tf.distribute.InputOptions(
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA)
    result["eval_per_replica"] = run("validation", False, 16, None, per_replica)
    result["train_per_replica"] = run("train", True, 16, 20, per_replica)
    print("RESULT" + json.dumps(result))
""")


def _shard_names(directory, split):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inception_tf import data  # pylint: disable=g-import-not-at-top
  from inception_tf.data import tfrecord  # pylint: disable=g-import-not-at-top
  files, _ = data.list_files(directory, split)
  shards = []
  for path in files:
    ds = tf.data.TFRecordDataset(path).map(lambda r: tfrecord.parse_example(r)["filename"])
    shards.append({n.decode() for batch in ds.batch(1000) for n in batch.numpy()})
  return shards


def test_each_replica_gets_its_own_shard(digits_dir):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, digits_dir], env=env, capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert result["replicas"] == 2
  val_shards = _shard_names(digits_dir, "validation")
  all_val = set().union(*val_shards)

  # One input pipeline feeding both replicas: each replica gets different examples; the eval pass
  # sees each of the 360 exactly once across replicas.
  assert result["eval"]["contexts"] == [[1, 0, 2]]
  a, b = result["eval"]["names"]
  assert not set(a) & set(b)
  assert sorted(a + b) == sorted(all_val)
  a, b = result["train"]["names"]
  assert len(a) == len(b) == 160 and not set(a) & set(b)

  # One pipeline per replica (how multi-host / TPU input works): replica i reads file shard i.
  assert sorted(result["eval_per_replica"]["contexts"]) == [[2, 0, 2], [2, 1, 2]]
  a, b = result["eval_per_replica"]["names"]
  assert set(a) == val_shards[0] and set(b) == val_shards[1]
  assert len(a) == len(set(a)) == 180 and len(b) == len(set(b)) == 180
  train_shards = _shard_names(digits_dir, "train")
  a, b = result["train_per_replica"]["names"]
  assert set(a) <= train_shards[0] | train_shards[2]  # files 0, 2 -> pipeline 0
  assert set(b) <= train_shards[1] | train_shards[3]  # files 1, 3 -> pipeline 1
  assert len(a) == len(b) == 160
