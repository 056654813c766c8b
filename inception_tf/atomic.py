"""Atomic outputs: a file or directory appears under its final name only when complete and verified.

    with atomic.output_file("exports/v3.keras") as temporary:    # `temporary` ends in `v3.keras`
      model.save(temporary)
    with atomic.output_directory("exports/v3", verify=check) as temporary:
      ...write the whole export into `temporary`...
    atomic.write_json("runs/r/results.json", results)           # small files: replaced in one step

How. The output is written under a hidden temporary sibling, `.partial~<host>~<pid>~<token>~<name>`
(a sibling, so the final rename never crosses filesystems; its name keeps the output's extension,
e.g. for `model.save`). When the caller's block ends without an exception, every file is flushed to
disk (`fsync`, local files), `verify(temporary)` runs, and the temporary is renamed to `path`. An
exception (or a failing `verify`) removes the temporary and leaves `path` as it was.

Existing outputs. A complete output is replaced only with `overwrite=True`; otherwise
`OutputExistsError` (both a `FileExistsError` and a `ValueError`) names the path and `--overwrite`.
The check is made when the block starts and again at the rename, so of two concurrent writers
without `overwrite` only one succeeds.

Leftovers. A process killed while writing leaves its temporary sibling behind. The next writer of
the same output removes the leftovers whose writer is gone: same host and its PID no longer runs,
or another host and the leftover is older than `STALE_SECONDS`. Leftovers are hidden files, and no
pattern of this package (`train-*`, `ckpt-*`, `*.keras`) matches them.

What survives a SIGKILL at any moment, on a local (POSIX) filesystem: `path` is absent, or the
previous complete output, or the new complete output; never a part of one (`rename(2)` replaces a
file atomically; a new directory is renamed into place in one step). Replacing a directory with
`overwrite=True` takes two renames (old -> leftover name, new -> `path`): a kill between them leaves
no output, never a mix, and the old one is removed as a leftover by the next writer.

Other filesystems (gs://, through `tf.io.gfile`). Files keep the guarantee: a GCS object exists only
once its upload has completed and `rename` is a server-side copy then delete, so `path` is absent or
complete. Directories do not: GCS has no directory rename, so the files are moved one by one. The
marker `path/.incomplete` (`INCOMPLETE_MARKER`) is written before the first file is moved and
deleted after the last; `is_complete(path)` is False while it exists and the next writer removes
such a directory. A reader that does not check the marker can see a partial directory during the
move or after a kill in it. There is no `fsync` on GCS (an uploaded object is durable).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from typing import Any, Callable, Iterator

import tensorflow as tf

PREFIX = ".partial~"
INCOMPLETE_MARKER = ".incomplete"
STALE_SECONDS = 6 * 3600.0  # leftovers of another host are removed after this long

Verify = Callable[[str], Any]


class OutputExistsError(FileExistsError, ValueError):
  """A complete output already exists and `overwrite` was not given."""


def is_local(path: str) -> bool:
  """True for paths of the local filesystem (no `scheme://`)."""
  return "://" not in os.fspath(path)


def _host() -> str:
  return socket.gethostname().replace("~", "-") or "localhost"


def temporary_name(path: str) -> str:
  """A fresh hidden sibling of `path` owned by this process (see the module docstring)."""
  directory, name = os.path.split(os.fspath(path).rstrip("/"))
  token = uuid.uuid4().hex[:10]
  return os.path.join(directory, f"{PREFIX}{_host()}~{os.getpid()}~{token}~{name}")


def pid_alive(pid: int) -> bool:
  """True if a process with this PID runs on this host (a zombie counts as gone)."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # it exists, owned by another user
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except (OSError, IndexError):
    return True


def _writer_gone(directory: str, entry: str) -> bool:
  """Whether the process that named the temporary `entry` can no longer be writing it."""
  try:
    _, host, pid, _, _ = entry.split("~", 4)
    pid = int(pid)
  except ValueError:
    return False
  if host == _host():
    return pid != os.getpid() and not pid_alive(pid)
  try:
    modified = tf.io.gfile.stat(os.path.join(directory, entry)).mtime_nsec / 1e9
  except tf.errors.OpError:
    return False
  return time.time() - modified > STALE_SECONDS


def _remove(path: str) -> None:
  if tf.io.gfile.isdir(path):
    tf.io.gfile.rmtree(path)
  elif tf.io.gfile.exists(path):
    tf.io.gfile.remove(path)


def clean_leftovers(path: str) -> list[str]:
  """Removes what killed writers of `path` left: their temporaries and a half-moved directory.

  Returns:
    The paths removed.
  """
  path = os.fspath(path).rstrip("/")
  directory, name = os.path.split(path)
  removed = []
  if tf.io.gfile.isdir(directory or "."):
    for entry in tf.io.gfile.listdir(directory or "."):
      entry = entry.rstrip("/")
      if (entry.startswith(PREFIX) and entry.endswith("~" + name)
          and _writer_gone(directory, entry)):
        _remove(os.path.join(directory, entry))
        removed.append(os.path.join(directory, entry))
  if tf.io.gfile.exists(os.path.join(path, INCOMPLETE_MARKER)):
    _remove(path)
    removed.append(path)
  if removed:
    logging.info("Removed incomplete leftovers of an interrupted write: %s", removed)
  return removed


def is_complete(path: str) -> bool:
  """True when `path` exists and is not a directory whose move was interrupted (gs://)."""
  return (tf.io.gfile.exists(path)
          and not tf.io.gfile.exists(os.path.join(path, INCOMPLETE_MARKER)))


def _exists_error(path: str) -> OutputExistsError:
  return OutputExistsError(f"{path!r} exists; pass overwrite=True (--overwrite) to replace it, or "
                           "choose another output path.")


def check_writable(path: str, *, overwrite: bool = False) -> None:
  """Raises `OutputExistsError` early (e.g. before a long computation) when `path` is taken.

  Cleans the leftovers of interrupted writers of `path` first.
  """
  clean_leftovers(path)
  if not overwrite and tf.io.gfile.exists(path):
    raise _exists_error(path)


def _fsync_tree(path: str) -> None:
  """Flushes a local file, or every file and directory of a local tree, to disk."""
  def sync(target, flags):
    descriptor = os.open(target, flags)
    try:
      os.fsync(descriptor)
    finally:
      os.close(descriptor)

  if os.path.isdir(path):
    for root, _, files in os.walk(path):
      for name in files:
        sync(os.path.join(root, name), os.O_RDONLY)
      sync(root, os.O_RDONLY | os.O_DIRECTORY)
  else:
    sync(path, os.O_RDONLY)


def _sync_parent(path: str) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
  try:
    os.fsync(descriptor)
  finally:
    os.close(descriptor)


def _commit_local(temporary: str, path: str, *, overwrite: bool) -> None:
  if not os.path.isdir(temporary):
    if overwrite:
      os.replace(temporary, path)
    else:
      try:
        os.link(temporary, path)  # fails if `path` appeared meanwhile: never clobbers
      except FileExistsError:
        raise _exists_error(path) from None
      os.remove(temporary)
    return
  old = None
  if os.path.lexists(path):
    if not overwrite:
      raise _exists_error(path)
    old = temporary_name(path)
    os.rename(path, old)
  try:
    os.rename(temporary, path)
  except OSError as error:  # another writer's directory appeared between the two renames
    raise _exists_error(path) from error
  if old is not None:
    _remove(old)


def _commit_remote(temporary: str, path: str, *, overwrite: bool) -> None:
  if not tf.io.gfile.isdir(temporary):
    if not overwrite and tf.io.gfile.exists(path):
      raise _exists_error(path)
    tf.io.gfile.rename(temporary, path, overwrite=overwrite)
    return
  if tf.io.gfile.exists(path):
    if not overwrite:
      raise _exists_error(path)
    tf.io.gfile.makedirs(path)
    with tf.io.gfile.GFile(os.path.join(path, INCOMPLETE_MARKER), "w") as f:
      f.write("replacing")
    for entry in tf.io.gfile.listdir(path):
      if entry.rstrip("/") != INCOMPLETE_MARKER:
        _remove(os.path.join(path, entry.rstrip("/")))
  tf.io.gfile.makedirs(path)
  with tf.io.gfile.GFile(os.path.join(path, INCOMPLETE_MARKER), "w") as f:
    f.write("moving")
  for root, _, files in tf.io.gfile.walk(temporary):
    relative = os.path.relpath(root, temporary)
    target = path if relative == "." else os.path.join(path, relative)
    tf.io.gfile.makedirs(target)
    for name in files:
      tf.io.gfile.rename(os.path.join(root, name), os.path.join(target, name), overwrite=True)
  tf.io.gfile.remove(os.path.join(path, INCOMPLETE_MARKER))
  tf.io.gfile.rmtree(temporary)


def _commit(temporary: str, path: str, *, overwrite: bool, verify: Verify | None) -> None:
  if is_local(path):
    _fsync_tree(temporary)
  if verify is not None:
    verify(temporary)
  if is_local(path):
    _commit_local(temporary, path, overwrite=overwrite)
    _sync_parent(path)
  else:
    _commit_remote(temporary, path, overwrite=overwrite)


@contextlib.contextmanager
def _output(path, *, overwrite: bool, verify: Verify | None, directory: bool) -> Iterator[str]:
  path = os.fspath(path).rstrip("/")
  parent = os.path.dirname(path)
  if parent:
    tf.io.gfile.makedirs(parent)
  check_writable(path, overwrite=overwrite)
  temporary = temporary_name(path)
  if directory:
    tf.io.gfile.makedirs(temporary)
  try:
    yield temporary
    _commit(temporary, path, overwrite=overwrite, verify=verify)
  finally:
    _remove(temporary)


def output_file(path: str, *, overwrite: bool = False,
                verify: Verify | None = None) -> contextlib.AbstractContextManager[str]:
  """Context manager: yields a temporary sibling to write; renames it to `path` when complete.

  Args:
    path: the final file (local or gs://); its parent directory is created.
    overwrite: replace an existing `path`.
    verify: called with the temporary path before the rename; raising aborts the write.

  Returns:
    A context manager yielding the temporary path (it ends with `path`'s basename).

  Raises:
    OutputExistsError: `path` exists and `overwrite` is False (at the start, or at the rename when
      another writer finished first).
  """
  return _output(path, overwrite=overwrite, verify=verify, directory=False)


def output_directory(path: str, *, overwrite: bool = False,
                     verify: Verify | None = None) -> contextlib.AbstractContextManager[str]:
  """Context manager: yields an empty temporary directory; moves it to `path` when complete.

  Args:
    path: the final directory (local or gs://; see the module docstring for gs://).
    overwrite: replace an existing `path` and everything in it.
    verify: called with the temporary directory before the move; raising aborts the write.

  Returns:
    A context manager yielding the temporary directory.

  Raises:
    OutputExistsError: `path` exists and `overwrite` is False.
  """
  return _output(path, overwrite=overwrite, verify=verify, directory=True)


def write_bytes(path: str, data: bytes, *, overwrite: bool = True) -> None:
  """Writes `data` to `path` atomically (readers see the old or the new file, never a part)."""
  with output_file(path, overwrite=overwrite) as temporary:
    with tf.io.gfile.GFile(temporary, "wb") as f:
      f.write(data)


def write_text(path: str, text: str, *, overwrite: bool = True) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def write_json(path: str, value: Any, *, overwrite: bool = True, indent: int | None = 2,
               default: Callable[[Any], Any] | None = str) -> None:
  """Writes `value` as JSON (with a final newline) to `path` atomically."""
  write_text(path, json.dumps(value, indent=indent, default=default) + "\n", overwrite=overwrite)


def append_line(path: str, line: str) -> None:
  """Appends one line to a text file by rewriting it atomically (no torn last line after a kill;
  also works where appending is not supported, e.g. GCS). For small logs such as `reports.jsonl`."""
  text = ""
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "r") as f:
      text = f.read()
  if text and not text.endswith("\n"):
    text += "\n"
  write_text(path, text + line.rstrip("\n") + "\n", overwrite=True)
