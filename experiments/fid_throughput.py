r"""FID feature extraction vs our inception_v3 inference, same batch, same process (a benchmark).

    python experiments/fid_throughput.py [--batch_size=16] [--iterations=5] [--warmup=2]

"ours" is one step of `inception_tf.metrics`' extraction: `fid_inception_v3` under `strategy.run`
with `fused_call`, pool_3 and the bias-free logits gathered to the host with the mask and index
(`extract.extraction_step` on a padded 299 x 299 batch, as `compute_activations` runs it).
"theirs" is our inception_v3 inference (1001 classes, aux head off) as the benchmark's "ours" side
runs it: `benchmarks.sections.inference_step(..., call=fused_call)`. Both networks have the same
multiply-adds (5.7 G at 299; the FID net's 1008 classes and unpadded pools change nothing that
matters), so the ratio should be about 1. Calls alternate (ABBA rounds, `time_interleaved`); the
median of each side is reported, with the range of the per-round ratios. The issue's target is a
ratio >= 0.9. Results go to WORKSPACE_NOTES.md with the date and the CPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_BATCH = flags.DEFINE_integer("batch_size", 16, "Images per call.")
_ITERATIONS = flags.DEFINE_integer("iterations", 5, "Timed calls per side.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls per side.")


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from inception_tf.benchmarks import sections  # pylint: disable=import-outside-toplevel
  from inception_tf.metrics import extract  # pylint: disable=import-outside-toplevel
  from inception_tf.models import create_model  # pylint: disable=import-outside-toplevel
  from inception_tf.models import fused  # pylint: disable=import-outside-toplevel

  batch_size = _BATCH.value
  images = np.random.default_rng(0).uniform(-1, 1, (batch_size, 299, 299, 3)).astype(np.float32)
  batch = {"images": tf.constant(images), "mask": tf.ones([batch_size], tf.bool),
           "index": tf.range(batch_size, dtype=tf.int64)}
  v3 = create_model("inception_v3", aux_logits=False)
  fid_model = create_model("fid_inception_v3")
  strategy = tf.distribute.get_strategy()
  fid_step = extract.extraction_step(fid_model, strategy, ("pool_3", "logits_unbiased"))
  v3_step = sections.inference_step(v3, jit_compile=False, call=fused.fused_call)
  timings = sections.time_interleaved(
      {"ours": lambda: fid_step(batch), "theirs": lambda: v3_step(batch["images"])},
      warmup=_WARMUP.value, iterations=_ITERATIONS.value)
  measurement = sections.Measurement.from_timings(
      "fid", f"fid_inception_v3 extraction, batch {batch_size}", timings, items=batch_size,
      peer="our inception_v3 inference (fused_call)")
  print(sections.format_measurement(measurement))
  print(f"ratio (FID extraction / inception_v3 inference): {measurement.ratio:.3f}")


if __name__ == "__main__":
  app.run(main)
