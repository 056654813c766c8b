"""The `eval` section of `tools/benchmark.py`: multi-crop vs single-crop evaluation throughput.

The issue's target: 144-crop evaluation reaches >= 0.9x of (single-crop images/s / 144), i.e. the
crops of an image cost no more than the same number of single-crop images. Each measurement's
`ours` is multi-crop images/s, `theirs` is single-crop images/s / crops, measured alternately in
the same process (`inception_tf.eval.evaluate.benchmark_multicrop`).
"""

from __future__ import annotations

from inception_tf import benchmarking
from inception_tf.eval import evaluate


@benchmarking.register_section(
    "eval", description="144/12-crop evaluation images/s vs single-crop images/s / crops "
                        "(same model, same JPEGs, same model batch); target ratio >= 0.9")
def eval_section(config: benchmarking.BenchmarkConfig):
  """Yields one measurement per (model, crops) over `config.models` and 144 / 12 crops."""
  for model in config.models:
    for crops in (144, 12):
      result = evaluate.benchmark_multicrop(model, multi_crops=crops, num_images=1 if crops == 144
                                            else 12, warmup=max(config.warmup, 1),
                                            iterations=config.iterations)
      yield benchmarking.Measurement(
          section="eval", case=f"{model} {result['image_size']}px {crops}-crop",
          ours=result["multi_crop_images_per_second"], theirs=result["single_crop_over_crops"],
          peer=f"single-crop images/s / {crops}")
