"""Benchmarks of `tools/benchmark.py` and `tools/benchmark_input.py`: ours against a peer, timed in
one process. The library never imports this package (tests/test_import_graph.py checks it), so
benchmark helpers stay out of training, evaluation and export.

Modules: `sections` (the section registry, timing helpers, the models / train / eval / kernels
sections), `steps` (the trainer's step and the multi-crop evaluation on synthetic data), `serving`
(the SavedModel section), `input` (the input pipeline against slim's).
"""
