r"""FID (and Inception Score, KID) between two image folders or statistics files.

    python tools/fid.py generated/ real/ --weights=pt_inception-2015-12-05-6726825d.safetensors
    python tools/fid.py generated/ fid_stats_cifar10_train.npz --weights=classify_image_graph_def.pb
    python tools/fid.py real/ --save_stats=real_stats.npz --weights=classify_image_graph_def.pb
    python tools/fid.py generated/ real/ --weights=... --inception_score --kid --batch_size=100

A and B are folders of PNG / JPEG images (searched recursively) or `.npz` statistics files
(`mu`, `sigma`, as TTUR and pytorch-fid write them). `--weights` is the 2015-12-05 Inception graph
`classify_image_graph_def.pb` or pytorch-fid's / torch-fidelity's state_dict (`.safetensors`;
`.pth` when torch is installed). `--save_stats` writes A's statistics. Progress (images/s) goes to
stderr; the results go to stdout, the last line being `FID: <value>`. Unreadable images are
skipped with a warning line. The metrics are those of `inception_tf.metrics` (this file maps the
flags onto `metrics.evaluate`).
"""

from __future__ import annotations

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/cli.py
import cli  # noqa: E402,F401  (first: quiets TensorFlow before it is imported)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_WEIGHTS = flags.DEFINE_string("weights", None, "classify_image_graph_def.pb, or pytorch-fid's "
                               "pt_inception-2015-12-05 state_dict (.safetensors / .pth).")
_SAVE_STATS = flags.DEFINE_string("save_stats", None, "Write A's statistics to this .npz file.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --save_stats file.")
_IS = flags.DEFINE_bool("inception_score", False, "Also print the Inception Score of each folder.")
_KID = flags.DEFINE_bool("kid", False, "Also print KID between the two folders.")
_BATCH = flags.DEFINE_integer("batch_size", 50, "Images per global batch.")
_IS_SPLITS = flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
_KID_SUBSETS = flags.DEFINE_integer("kid_subsets", 100, "KID: number of subsets.")
_KID_SUBSET_SIZE = flags.DEFINE_integer("kid_subset_size", 1000,
                                        "KID: images per subset (at most the smaller folder).")
_FID_METHOD = flags.DEFINE_enum("fid_method", "sqrtm", ["sqrtm", "eigh"],
                                "Matrix square root of the FID: scipy's sqrtm (TTUR, pytorch-fid) "
                                "or symmetric eigendecompositions (same value, faster).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "tpu"],
                              "tf.distribute strategy of the feature extraction.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name or address with --strategy=tpu.")


@contextlib.contextmanager
def _quiet_stderr():
  """Silences file descriptor 2 (TensorFlow's C++ start-up lines) for the block."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_LAST_PROGRESS: dict[str, float] = {}


def _progress(name: str, images: int, seconds: float) -> None:
  """One stderr line per second at most: images so far and images/s."""
  if seconds - _LAST_PROGRESS.get(name, -1.0) >= 1.0:
    _LAST_PROGRESS[name] = seconds
    rate = images / seconds if seconds > 0 else 0.0
    print(f"{name}: {images} images, {rate:.1f} images/s", file=sys.stderr, flush=True)


def _warn(line: str) -> None:
  print(f"WARNING: {line}", file=sys.stderr, flush=True)


def main(argv):
  sources = argv[1:]
  if not sources or len(sources) > 2:
    raise app.UsageError("Give A [B]: two folders or .npz statistics files (one with "
                         "--save_stats / --inception_score).")
  if len(sources) == 1 and not (_SAVE_STATS.value or _IS.value):
    raise app.UsageError("One source computes nothing: give B for FID, or --save_stats / "
                         "--inception_score.")
  if _KID.value and (len(sources) < 2 or any(s.lower().endswith(".npz") for s in sources)):
    raise app.UsageError("--kid needs two image folders (KID compares features, which .npz "
                         "statistics do not hold).")
  needs_model = any(not s.lower().endswith(".npz") for s in sources)
  if needs_model and not _WEIGHTS.value:
    raise app.UsageError("--weights is required for image folders: classify_image_graph_def.pb or "
                         "pytorch-fid's pt_inception-2015-12-05 state_dict (.safetensors/.pth).")
  for source in sources:
    if not os.path.exists(source):
      sys.exit(f"error: {source!r} does not exist (expected a folder of images or a .npz "
               "statistics file).")
  with _quiet_stderr():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.get_logger().setLevel("ERROR")
    tf.config.list_logical_devices()  # device start-up messages, silenced too
    from inception_tf import distribute  # pylint: disable=import-outside-toplevel
    from inception_tf import metrics  # pylint: disable=import-outside-toplevel
  try:
    strategy = distribute.get_strategy(_STRATEGY.value, tpu=_TPU.value)
    model = metrics.load_fid_model(_WEIGHTS.value, strategy=strategy) if needs_model else None
    report = metrics.evaluate(
        sources[0], sources[1] if len(sources) > 1 else None, model,
        inception_score=_IS.value, kid=_KID.value, batch_size=_BATCH.value, strategy=strategy,
        save_stats=_SAVE_STATS.value, overwrite=_OVERWRITE.value, is_splits=_IS_SPLITS.value,
        kid_subsets=_KID_SUBSETS.value,
        kid_subset_size=_KID_SUBSET_SIZE.value, fid_method=_FID_METHOD.value,
        progress=_progress, warn=_warn)
  except (ValueError, FileNotFoundError, ImportError) as error:
    sys.exit(f"error: {error}")
  for name, count in report.num_images.items():
    skipped = len(report.skipped.get(name, ()))
    print(f"{name}: {count} images" + (f" ({skipped} unreadable skipped)" if skipped else ""))
  if _SAVE_STATS.value:
    print(f"Statistics of A written to {_SAVE_STATS.value}")
  for name, (mean, std) in report.inception_score.items():
    print(f"Inception Score ({name}): {mean:.6f} +- {std:.6f}")
  if report.kid is not None:
    print(f"KID: {report.kid[0]:.8f} +- {report.kid[1]:.8f}")
  if report.fid is not None:
    print(f"FID: {report.fid:.6f}", flush=True)


if __name__ == "__main__":
  app.run(main)
