"""The one private Keras API this package uses, in one place, with a fallback.

`fused_call` (models/fused.py) runs a functional model as `Functional.call` does but chooses how
each layer is called. Keras 3 has no public hook for that; its `Functional` class walks the graph in
the private `_standardize_inputs` + `_run_through_graph(inputs, operation_fn=...)`. pyproject.toml
pins keras below its next minor release (3.16), and `is_functional` checks that both methods are
there: when a Keras version lacks them, callers fall back to `model(inputs)` (plain Keras layers,
same results, without the fused kernels).
"""

from __future__ import annotations

from typing import Callable


def is_functional(model) -> bool:
  """Whether `model` is a Keras functional model whose graph `run_through_graph` can walk."""
  return all(hasattr(model, name) for name in
             ("_run_through_graph", "_standardize_inputs", "_nodes_by_depth"))


def run_through_graph(model, inputs, operation_fn: Callable):
  """`model(inputs)` with each layer called through `operation_fn(layer) -> callable`.

  Args:
    model: a functional model (`is_functional(model)`).
    inputs: what `model(...)` takes.
    operation_fn: maps each layer of the graph to the function called in its place.

  Returns:
    The model's outputs, with the structure `model(...)` returns.
  """
  flat = model._standardize_inputs(inputs)  # pylint: disable=protected-access
  outputs = model._run_through_graph(flat, operation_fn=operation_fn)  # pylint: disable=protected-access
  if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
    return outputs[0]
  return outputs
