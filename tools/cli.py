"""What every tool shares: quiet TensorFlow, the model-source flags, and errors without tracebacks.

Import this module FIRST in a tool (before anything imports TensorFlow):

    import cli  # tools/ is the script's directory, so this is tools/cli.py
    cli.define_model_flags()
    ...
    def main(argv):
      loaded = cli.load_model_from_flags()

`quiet()` runs on import. TensorFlow's C++ runtime writes INFO lines (oneDNN, CUDA stubs) to stderr
while it is imported, before its logging can be configured, so the import runs with stderr pointed
at a log file (`$INCEPTION_TF_LOG`, default `<tmp>/inception_tf.log`); Python warnings from TF and
Keras (e.g. tf.data's UserWarning) and absl INFO lines (e.g. the checkpoint saver's "Sharding
callback duration") are filtered. Pass `--verbosity=0` (absl) to see INFO lines again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

LOG_ENV = "INCEPTION_TF_LOG"


def log_file() -> str:
  return os.environ.get(LOG_ENV) or os.path.join(tempfile.gettempdir(), "inception_tf.log")


@contextlib.contextmanager
def _stderr_to_log():
  """Points file descriptor 2 at the log file for the block (C++ writes bypass Python's stderr)."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(log_file(), "a") as log:
      os.dup2(log.fileno(), 2)
      try:
        yield
      finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
  finally:
    os.close(saved)


# Optional packages Keras imports when TensorFlow is imported, which no tool needs at that moment:
# scikit-learn for Keras' scikit-learn wrappers (a fifth of the import), matplotlib for
# `keras.visualization`'s plots (~0.7 s). WORKSPACE_NOTES.md, "Tool start-up" and "Session 12".
DEFERRED_IMPORTS = ("sklearn", "matplotlib")


@contextlib.contextmanager
def _without_deferred_imports():
  """For the block, importing a package of `DEFERRED_IMPORTS` fails as if it were not installed
  (Keras then defines its scikit-learn wrappers and plot functions without it); afterwards each
  imports normally (the built-in digits are read with scikit-learn)."""
  blocked = [name for name in DEFERRED_IMPORTS if name not in sys.modules]
  for name in blocked:
    sys.modules[name] = None  # type: ignore[assignment]
  try:
    yield
  finally:
    for name in blocked:
      del sys.modules[name]


def quiet() -> None:
  """Silences TF's C++ and absl INFO/WARNING lines and library warnings (see the module docstring)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  for category, module in ((UserWarning, r"tensorflow.*"), (UserWarning, r"keras.*"),
                           (DeprecationWarning, r".*"), (FutureWarning, r".*")):
    warnings.filterwarnings("ignore", category=category, module=module)
  with _stderr_to_log(), _without_deferred_imports():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.constant(0)  # initialises the runtime (and its logging) while stderr goes to the log
  tf.get_logger().setLevel("ERROR")
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.ERROR)
  logging.set_stderrthreshold("error")


quiet()

from absl import app  # noqa: E402  pylint: disable=wrong-import-position
from absl import flags  # noqa: E402  pylint: disable=wrong-import-position

FLAGS = flags.FLAGS


def define_model_flags(*, ensemble: bool = False) -> None:
  """--checkpoint, --model, --model_options, --num_classes, --image_size, --use_ema and (without
  `ensemble`) --checkpoint_format: the same names and meanings in evaluate, export and predict.

  Args:
    ensemble: --checkpoint may be repeated (evaluate's ensembles of --model networks).
  """
  from inception_tf.checkpoints import loading  # pylint: disable=import-outside-toplevel
  sources = ("A training run directory (everything else is read from its config.json), a "
             "checkpoint prefix of ours, a TF-slim checkpoint (with --model), a .keras file, an "
             "export directory or a torch state_dict (.safetensors / .pth, with --model)")
  if ensemble:
    flags.DEFINE_multi_string("checkpoint", None, sources + "; repeat for an ensemble.")
  else:
    flags.DEFINE_string("checkpoint", None, sources + ".")
  flags.DEFINE_string("model", None, "A name from inception_tf.models.list_models() (default: the "
                      "run's; required for TF-slim and torch checkpoints).")
  flags.DEFINE_list("model_options", None, "Family options as key=value, e.g. "
                    "depth_multiplier=0.5 (default: the run's).")
  flags.DEFINE_integer("num_classes", None, "Logits width (default: the run's, the checkpoint's or "
                       "the network's published one).")
  flags.DEFINE_integer("image_size", None, "Input size (default: the run's / the network's).")
  flags.DEFINE_boolean("use_ema", None, "Moving-average weights (default: on when the checkpoint "
                       "has them).")
  if not ensemble:
    flags.DEFINE_enum("checkpoint_format", "auto", list(loading.CHECKPOINT_FORMATS),
                      "auto: sniffed from --checkpoint.")


def model_options(pieces=None) -> dict:
  """--model_options (or `pieces`, another list flag's value) as a dict; a usage error names the
  flag.

  absl splits a list flag at every comma, so a tuple value arrives in pieces
  (`units=(1,1,1,1),groups=4` -> "units=(1", "1", "1", "1)", "groups=4"); a piece without "="
  continues the entry before it.
  """
  from inception_tf.models import parse_model_options  # pylint: disable=import-outside-toplevel
  entries = []
  for piece in (FLAGS.model_options if pieces is None else pieces) or ():
    if entries and "=" not in piece:
      entries[-1] += "," + piece
    else:
      entries.append(piece)
  try:
    return parse_model_options(entries)
  except ValueError as error:
    raise app.UsageError(f"--model_options: {error}") from error


def load_model_from_flags(*, data_classes: int | None = None):
  """`inception_tf.checkpoints.load` of the model-source flags; exits with one error line."""
  from inception_tf import checkpoints  # pylint: disable=import-outside-toplevel
  if not FLAGS.checkpoint:
    raise app.UsageError("Give --checkpoint: a training run directory, a checkpoint, a .keras "
                         "file or an export directory.")
  with errors_exit():
    return checkpoints.load(FLAGS.checkpoint, model=FLAGS.model, num_classes=FLAGS.num_classes,
                            image_size=FLAGS.image_size, model_options=model_options(),
                            use_ema=FLAGS.use_ema, checkpoint_format=FLAGS.checkpoint_format,
                            data_classes=data_classes)


@contextlib.contextmanager
def errors_exit():
  """Bad input (ValueError, FileNotFoundError, FileExistsError) exits with `error: <message>`."""
  try:
    yield
  except (ValueError, FileNotFoundError, FileExistsError) as error:
    sys.exit(f"error: {error}")
