"""What keeps the tools' start short (WORKSPACE_NOTES.md, "Tool start-up"), and that it changes no
result.

- `tools/cli.py` imports TensorFlow without scikit-learn and matplotlib (Keras would import them
  for its scikit-learn wrappers and plots), and both still import normally afterwards.
- `pipeline.plain_map` maps without AutoGraph: a function branching on a tensor fails loudly at
  trace time instead of being converted, so skipping the conversion cannot change a result.
"""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from inception_tf.data import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_imports_tensorflow_without_sklearn_and_matplotlib_which_then_import_normally():
  script = ("import sys\n"
            f"sys.path.insert(0, {os.path.join(ROOT, 'tools')!r})\n"
            "import cli\n"
            "assert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in cli.DEFERRED_IMPORTS]\n"
            "assert cli.DEFERRED_IMPORTS == ('sklearn', 'matplotlib') and not loaded, loaded\n"
            "from sklearn.datasets import load_digits\n"
            "assert load_digits().images.shape == (1797, 8, 8)\n"
            "import matplotlib\n"
            "matplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\n"
            "plt.plot([0, 1], [1, 0])\n"
            "print('ok')\n")
  process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
  assert process.returncode == 0 and process.stdout.strip() == "ok", process.stderr[-2000:]


def test_plain_map_runs_python_control_flow_and_refuses_tensor_branches():
  def by_rank(x):  # branches on a Python value (the static rank): runs unconverted
    return x * 2 if x.shape.rank == 0 else x

  assert list(pipeline.plain_map(tf.data.Dataset.range(3), by_rank).as_numpy_iterator()) == [
      0, 2, 4]

  def by_value(x):  # branches on a tensor: needs AutoGraph, so plain_map refuses it when traced
    if x > 1:
      return x
    return -x

  with pytest.raises(TypeError, match="Python `bool`|graph execution"):
    pipeline.plain_map(tf.data.Dataset.range(3), by_value)
  # The same function under ds.map (AutoGraph) would work: the refusal is plain_map's doing.
  assert list(tf.data.Dataset.range(3).map(by_value).as_numpy_iterator()) == [0, -1, 2]
