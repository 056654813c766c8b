"""The package's import graph, read from the source with `ast` (no module is imported).

Every `import` counts, at module level or inside a function: a lazy import still ties two modules
together. Checked: no cycles among the package's modules; evaluation and export do not depend on the
trainer; the library never imports the benchmarks; the private Keras API is used in one module.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inception_tf")
PACKAGE = "inception_tf"


def _module_files() -> dict[str, str]:
  modules = {}
  for directory, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        modules[".".join(parts)] = path
  return modules


MODULES = _module_files()


def _imports(module: str, path: str) -> set[str]:
  """The package modules `module` imports (`from a import b` counts as a.b when that is a module)."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  is_package = path.endswith("__init__.py")
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
      names = []
      for alias in node.names:
        candidate = f"{base}.{alias.name}"
        names.append(candidate if candidate in MODULES else base)
    else:
      continue
    for name in names:
      while name and name not in MODULES:  # `import a.b.c` of a non-module attribute path
        name = name.rpartition(".")[0]
      if name and name.startswith(PACKAGE) and name != module:
        found.add(name)
  return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _reachable(start: str) -> set[str]:
  seen, stack = set(), [start]
  while stack:
    for target in GRAPH[stack.pop()]:
      if target not in seen:
        seen.add(target)
        stack.append(target)
  return seen


def test_the_graph_is_read():
  """The reader finds known edges (so the checks below could fail)."""
  assert "inception_tf.checkpoints" in GRAPH["inception_tf.eval.evaluate"]
  assert "inception_tf.checkpoints.slim" in GRAPH["inception_tf.checkpoints.loading"]
  assert "inception_tf.models.registry" in GRAPH["inception_tf.models"]
  assert "inception_tf.train.checkpointing" in GRAPH["inception_tf.train.loop"]


def test_no_import_cycles():
  cycles = sorted(module for module in GRAPH if module in _reachable(module))
  assert not cycles, f"modules on an import cycle: {cycles}"


def test_the_cycle_check_sees_a_cycle(monkeypatch):
  """A back-import from vgg_preprocessing to preprocessing (the cycle removed in session 8) is seen."""
  edges = GRAPH["inception_tf.data.vgg_preprocessing"] | {"inception_tf.data.preprocessing"}
  monkeypatch.setitem(GRAPH, "inception_tf.data.vgg_preprocessing", edges)
  assert "inception_tf.data.preprocessing" in _reachable("inception_tf.data.preprocessing")


def test_shared_image_helpers_are_a_leaf():
  assert GRAPH["inception_tf.data.image_ops"] == set()
  for kind in ("inception_tf.data.vgg_preprocessing", "inception_tf.data.torchvision_preprocessing"):
    assert "inception_tf.data.preprocessing" not in _reachable(kind), kind


@pytest.mark.parametrize("package", ["inception_tf.eval", "inception_tf.export",
                                     "inception_tf.checkpoints"])
def test_evaluation_and_export_do_not_depend_on_the_trainer(package):
  offenders = {module: sorted(t for t in _reachable(module) if t.startswith("inception_tf.train"))
               for module in GRAPH if module == package or module.startswith(package + ".")}
  assert not {m: t for m, t in offenders.items() if t}


def test_the_library_never_imports_the_benchmarks():
  library = [m for m in GRAPH if not m.startswith("inception_tf.benchmarks")]
  offenders = {m: sorted(t for t in GRAPH[m] if t.startswith("inception_tf.benchmarks"))
               for m in library}
  assert not {m: t for m, t in offenders.items() if t}


def test_one_module_uses_the_private_keras_api():
  users = []
  for module, path in MODULES.items():
    with open(path) as f:
      if "_run_through_graph" in f.read():
        users.append(module)
  assert users == ["inception_tf.models.keras_internals"], users
