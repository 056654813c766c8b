"""Makes the repository root importable for the test helpers (`from tests.train import tiny`).

pytest loads this file for any test under the repository (it is the rootdir: setup.cfg has
[tool:pytest]), so `pytest` and `python -m pytest` work from any directory, e.g.
`cd /tmp && python -m pytest -q /work/main/tests`, not only from the repository root.
"""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
