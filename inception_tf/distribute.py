"""Picks the tf.distribute strategy: the only module of inception_tf that knows about TPUs.

    strategy = get_strategy("default")                 # one device (the first GPU, else the CPU)
    strategy = get_strategy("mirrored", num_gpus=8)    # all-reduce over the local GPUs
    strategy = get_strategy("multi_worker")            # MultiWorkerMirroredStrategy from TF_CONFIG
    strategy = get_strategy("tpu", tpu="local")        # a TPU VM / Colab TPU; or a TPU name

Everything else (models, optimizers, metrics, EMA) is created under `strategy.scope()` by the caller.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def get_strategy(name: str = "default", *, tpu: str | None = None,
                 num_gpus: int = 0) -> tf.distribute.Strategy:
  """Creates the distribution strategy `name`.

  Args:
    name: "default" (OneDeviceStrategy on the first GPU, else the CPU), "mirrored" (synchronous
      all-reduce over `num_gpus` local GPUs, or over every visible local device when `num_gpus` is 0),
      "multi_worker" (MultiWorkerMirroredStrategy; the cluster comes from the `TF_CONFIG`
      environment variable) or "tpu" (TPUStrategy through `TPUClusterResolver`).
    tpu: with "tpu": the TPU name or grpc address, or "local" for a TPU VM or a Colab TPU runtime.
      None lets `TPUClusterResolver` look it up from the environment.
    num_gpus: with "mirrored": how many local GPUs to use (0 = every visible GPU, else every
      logical CPU device). "default" takes the first GPU when there is one.

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    ValueError: an unknown name, a negative or unavailable `num_gpus`, `tpu` given with a non-TPU
      strategy, or "multi_worker" with a malformed TF_CONFIG.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}.")
  if num_gpus < 0:
    raise ValueError(f"num_gpus must be >= 0, got {num_gpus}.")
  if tpu and name != "tpu":
    raise ValueError(f"--tpu={tpu!r} was given with strategy {name!r}; use --strategy=tpu.")
  # Collective ops must be configured before anything initialises the TF runtime (even listing
  # devices), so the multi-worker strategy is created first.
  if name == "multi_worker":
    config = os.environ.get("TF_CONFIG")
    if config:
      try:
        parsed = json.loads(config)
        parsed["cluster"]["worker"]  # pylint: disable=pointless-statement
      except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            "TF_CONFIG must be JSON like {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
            f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}; got {config!r} ({error}).") from error
    return tf.distribute.MultiWorkerMirroredStrategy()

  if name == "tpu":
    # TPU: a TPU VM / Colab runtime ("local"), a named TPU, or whatever the environment says.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    if tpu != "local":
      tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)

  gpus = tf.config.list_logical_devices("GPU")
  if num_gpus > len(gpus):
    raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible "
                     f"({[d.name for d in gpus]}).")

  if name == "default":
    device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)

  if name == "mirrored":
    if num_gpus:
      devices = [d.name for d in gpus[:num_gpus]]
    else:
      devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    # Every MirroredStrategy numbers its collectives from the same keys and TF caches a collective's
    # shape by key: a second strategy in one process whose all-reduces have other shapes (another
    # model) fails with "Shape mismatch in the collective instance". TF's own tests give each
    # strategy a fresh key range the same way (TF 2.21's `_collective_key_base`). It stays private
    # because no public API sets the range: `MirroredStrategy(cross_device_ops=...)` does not avoid
    # the keys (under XLA on GPUs TF ignores it and uses its own CollectiveAllReduce, keyed from
    # this base; `MirroredExtended._get_cross_device_ops`), and `CommunicationOptions` has no key
    # (WORKSPACE_NOTES.md, Session 8).
    # pylint: disable-next=protected-access
    tf.distribute.MirroredStrategy._collective_key_base += 100_000
    return tf.distribute.MirroredStrategy(devices=devices)
  raise AssertionError(name)  # unreachable: the name was validated above


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints and summaries (task 0, or the only worker)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                  "chief" not in resolver.cluster_spec().as_dict())


def worker_index(strategy: tf.distribute.Strategy) -> int:
  """This worker's index (0 for single-worker strategies)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_id is None or isinstance(strategy,
                                                                tf.distribute.TPUStrategy):
    return 0
  return int(resolver.task_id)


def uses_gpu(strategy: tf.distribute.Strategy) -> bool:
  """Whether `strategy`'s replicas run on GPUs."""
  return any("GPU" in device.upper() for device in strategy.extended.worker_devices)


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
  """True for TPUStrategy (XLA everywhere, `gs://` paths required)."""
  return isinstance(strategy, (tf.distribute.TPUStrategy,))
