"""Evaluation: crop protocols (1/10/12/144), ensembles, EMA weights, every example counted once.

    from inception_tf.eval.evaluate import ModelSpec, evaluate
    report = evaluate(ModelSpec("inception_v3", checkpoint="/tmp/run"), "/data/imagenet", crops=144)

Modules: `crops` (the geometry and the op cutting it), `metrics` (masked top-k, per-class),
`evaluate` (the evaluator, `--watch`, `benchmark_multicrop`).
"""
