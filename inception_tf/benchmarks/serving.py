"""The `serving` benchmark section: our exported SavedModel against keras.applications' InceptionV3.

    python tools/benchmark.py --sections=serving --dtypes=float32,mixed_bfloat16 --batch_size=16

Ours: `inception_v3` exported as `export_model` does (BN folded and not, bfloat16 for bf16 policies),
reloaded with `tf.saved_model.load`, timed through its `predict_images` signature (float images in,
logits and probabilities out). Theirs: `keras.applications.InceptionV3` (same architecture, Keras BN)
called directly in a `tf.function` under the same dtype policy, and for a bfloat16 export also the
float32 peer (what a bfloat16 export replaces). The unfolded export is timed as well,
to show what folding buys. Both sides hold random weights (only speed is measured).
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from inception_tf.benchmarks import sections as benchmarking
from inception_tf.export.inference import make_inference_model
from inception_tf.export.serving import ServingModule
from inception_tf.export.serving import export_saved_model
from inception_tf.labels import default_label_map
from inception_tf.models import create_model

MODEL = "inception_v3"
IMAGE_SIZE = 299
# Our export dtype for each Keras policy of the peer.
EXPORT_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "bfloat16": "bfloat16"}


def _exported_signature(model: keras.Model, directory: str, *, dtype: str, fold_batch_norm: bool):
  module = ServingModule(make_inference_model(model, dtype=dtype, fold_batch_norm=fold_batch_norm),
                         label_map=default_label_map(1001), image_size=IMAGE_SIZE)
  export_saved_model(module, directory)
  loaded = tf.saved_model.load(directory)
  return loaded, loaded.signatures["predict_images"]


def serving_throughput(config: benchmarking.BenchmarkConfig) -> Iterator[benchmarking.Measurement]:
  """Yields one measurement per (dtype, BN folded or not): ours images/s, theirs, ratio.

  For each dtype the folded export, the unfolded export and the peer are timed interleaved.
  """
  unknown = [d for d in config.dtypes if d not in EXPORT_DTYPES]
  if unknown:
    raise ValueError(f"serving benchmark dtypes must be in {sorted(EXPORT_DTYPES)}, got {unknown}.")
  images = tf.constant(np.random.default_rng(0).uniform(
      -1, 1, (config.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32))
  model = create_model(MODEL, 1001, image_size=IMAGE_SIZE)
  float32_peer = None
  with tempfile.TemporaryDirectory() as root:
    for policy in config.dtypes:
      export_dtype = EXPORT_DTYPES[policy]
      peers = {policy: benchmarking._peer_model(MODEL, 1000, policy)}  # pylint: disable=protected-access
      if policy != "float32":
        # The float32 peer too: a bfloat16 export replaces a float32 model in production, and
        # the bf16 target is relative to it.
        float32_peer = float32_peer or benchmarking._peer_model(MODEL, 1000, "float32")  # pylint: disable=protected-access
        peers["float32"] = float32_peer
      functions, keep = {}, []
      for fold in (True, False):
        loaded, signature = _exported_signature(
            model, os.path.join(root, f"{export_dtype}_{fold}"), dtype=export_dtype,
            fold_batch_norm=fold)
        keep.append(loaded)
        functions["folded" if fold else "unfolded"] = (
            lambda s=signature: s(images=images)["logits"])
      for peer_policy, peer in peers.items():
        step = benchmarking.inference_step(peer, jit_compile=False)
        functions[f"theirs {peer_policy}"] = lambda f=step: f(images)
      # All interleaved, so load from other processes hits each alike.
      timings = benchmarking.time_interleaved(functions, warmup=config.warmup,
                                              iterations=config.iterations)
      for peer_policy in peers:
        for key in ("folded", "unfolded"):
          case = (f"{MODEL} {export_dtype} SavedModel predict_images, BN "
                  f"{'folded' if key == 'folded' else 'not folded'}, batch {config.batch_size}")
          yield benchmarking.Measurement.from_timings(
              "serving", case, {"ours": timings[key], "theirs": timings[f"theirs {peer_policy}"]},
              items=config.batch_size,
              peer=f"keras.applications.InceptionV3 ({peer_policy}) in tf.function")


benchmarking.register_section(
    "serving", description="exported SavedModel (predict_images) vs keras.applications InceptionV3")(
        serving_throughput)
