"""`tools/benchmark.py` runs one timed section as the README types it, with the smallest settings.

Only the shape of the output is asserted (a speed is a fact of one machine): each case prints our
throughput, the peer's and their ratio, and the ratio is ours / theirs, finite and positive.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# "  <case>  ours <x>  theirs <y> images/s  ratio <r> (rounds <a>-<b>) vs <peer>"
LINE = re.compile(r"^  (?P<case>.+?)\s+ours\s+(?P<ours>\S+)\s+theirs\s+(?P<theirs>\S+) images/s"
                  r"\s+ratio (?P<ratio>\S+) \(rounds (?P<low>\S+)-(?P<high>\S+)\) vs (?P<peer>.+)$")


def test_kernels_section_prints_a_finite_positive_ratio_against_the_keras_layer():
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--sections=kernels",
       "--batch_size=1", "--dtypes=float32", "--warmup=1", "--iterations=2", "--json"],
      capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT))
  assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
  text = process.stdout
  printed = {m["case"]: m for m in map(LINE.match, text.splitlines()) if m}
  # The section's cases at float32: the batch-norm kernel and the mixed_bfloat16 convolution.
  assert sorted(printed) == ["batch norm float32 1x35x35x192 fwd+bwd",
                             "conv 3x3 288->96 mixed_bfloat16 1x35x35 fwd+bwd (ours: float32 sums)"]
  measured = {m["case"]: m for m in json.loads(text[text.index("\n[\n") + 1:])}
  assert sorted(measured) == sorted(printed)
  for case, line in printed.items():
    assert line["peer"] == "Keras layer, model(...)", case
    ratio = float(line["ratio"])
    assert math.isfinite(ratio) and ratio > 0, (case, line["ratio"])
    # Two rounds: the ratio of the median (mean) times lies between the two rounds' ratios.
    assert float(line["low"]) <= ratio <= float(line["high"]), case
    cell = measured[case]
    assert cell["ratio"] == pytest.approx(cell["ours"] / cell["theirs"], rel=1e-12)
    assert line["ratio"] == f"{cell['ratio']:.3f}" and line["ours"] == f"{cell['ours']:.2f}"
    assert f"| kernels | {case} |" in text  # and a row of the summary table
