"""inception_tf.atomic: outputs appear complete or not at all, locally and on non-local storage.

The non-local path is exercised on TensorFlow's in-memory `ram://` filesystem, which goes through
the same `tf.io.gfile` calls as gs:// (no directory rename of ours, no fsync).
"""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import tensorflow as tf

from inception_tf import atomic


def _listing(directory):
  return sorted(tf.io.gfile.listdir(directory))


def _write_tree(directory, files):
  for name, text in files.items():
    path = os.path.join(directory, name)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(text)


def _read_tree(directory):
  out = {}
  for root, _, files in tf.io.gfile.walk(directory):
    for name in files:
      with tf.io.gfile.GFile(os.path.join(root, name)) as f:
        out[os.path.relpath(os.path.join(root, name), directory)] = f.read()
  return out


@pytest.fixture(params=["local", "ram"])
def base(request, tmp_path):
  if request.param == "local":
    return str(tmp_path)
  path = f"ram://atomic_test_{uuid.uuid4().hex}"
  tf.io.gfile.makedirs(path)
  return path


def test_file_appears_complete_and_refuses_to_replace_without_overwrite(base):
  path = os.path.join(base, "out", "model.keras")
  with atomic.output_file(path) as temporary:
    assert temporary.endswith("~model.keras") and os.path.basename(temporary).startswith(".")
    assert not tf.io.gfile.exists(path)
    with tf.io.gfile.GFile(temporary, "w") as f:
      f.write("first")
  assert _listing(os.path.dirname(path)) == ["model.keras"]
  with pytest.raises(atomic.OutputExistsError, match="exists; pass overwrite=True"):
    atomic.write_text(path, "second", overwrite=False)
  assert tf.io.gfile.GFile(path).read() == "first"
  atomic.write_text(path, "second", overwrite=True)
  assert tf.io.gfile.GFile(path).read() == "second"
  assert _listing(os.path.dirname(path)) == ["model.keras"]


def test_failed_write_or_verification_leaves_nothing(base):
  path = os.path.join(base, "report.json")
  with pytest.raises(RuntimeError, match="boom"):
    with atomic.output_file(path) as temporary:
      with tf.io.gfile.GFile(temporary, "w") as f:
        f.write("half")
      raise RuntimeError("boom")

  def reject(temporary):
    assert tf.io.gfile.GFile(temporary).read() == "{}\n"  # verify sees the written file
    raise ValueError("not valid")

  with pytest.raises(ValueError, match="not valid"):
    with atomic.output_file(path, verify=reject) as temporary:
      with tf.io.gfile.GFile(temporary, "w") as f:
        f.write("{}\n")
  assert _listing(base) == []
  # An existing file survives a failed replacement.
  atomic.write_json(path, {"a": 1})
  with pytest.raises(ValueError, match="not valid"):
    with atomic.output_file(path, overwrite=True, verify=reject) as temporary:
      with tf.io.gfile.GFile(temporary, "w") as f:
        f.write("{}\n")
  assert json.loads(tf.io.gfile.GFile(path).read()) == {"a": 1}
  assert _listing(base) == ["report.json"]


def test_directory_is_moved_whole_and_replaced_only_with_overwrite(base):
  path = os.path.join(base, "export")
  files = {"saved_model/saved_model.pb": "pb", "saved_model/variables/v.index": "i",
           "model.keras": "k", "export_info.json": "{}"}
  seen = []
  with atomic.output_directory(path, verify=lambda d: seen.append(_read_tree(d))) as temporary:
    _write_tree(temporary, files)
    assert not tf.io.gfile.exists(path)
  assert seen == [files] and _read_tree(path) == files and atomic.is_complete(path)
  assert _listing(base) == ["export"]
  with pytest.raises(atomic.OutputExistsError, match="--overwrite"):
    with atomic.output_directory(path):
      pass
  with atomic.output_directory(path, overwrite=True) as temporary:
    _write_tree(temporary, {"model.keras": "new"})
  assert _read_tree(path) == {"model.keras": "new"}  # replaced whole, nothing of the old left
  assert _listing(base) == ["export"]
  with pytest.raises(RuntimeError):
    with atomic.output_directory(path, overwrite=True) as temporary:
      _write_tree(temporary, {"model.keras": "newer"})
      raise RuntimeError("interrupted")
  assert _read_tree(path) == {"model.keras": "new"} and _listing(base) == ["export"]


def test_append_line_keeps_every_line(base):
  path = os.path.join(base, "eval", "reports.jsonl")
  for k in range(3):
    atomic.append_line(path, json.dumps({"step": k}))
  lines = tf.io.gfile.GFile(path).read().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]


def test_leftovers_of_dead_writers_are_cleaned_live_ones_kept(tmp_path):
  path = str(tmp_path / "model.keras")
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  dead_pid = int(dead.stdout)
  host = atomic._host()  # pylint: disable=protected-access
  dead_file = tmp_path / f"{atomic.PREFIX}{host}~{dead_pid}~abc~model.keras"
  dead_file.write_text("partial")
  dead_dir = tmp_path / f"{atomic.PREFIX}{host}~{dead_pid}~abd~model.keras"
  dead_dir.mkdir()
  live = tmp_path / f"{atomic.PREFIX}{host}~{os.getppid()}~abe~model.keras"  # pytest's parent
  live.write_text("being written")
  other_output = tmp_path / f"{atomic.PREFIX}{host}~{dead_pid}~abf~other.keras"
  other_output.write_text("another output's leftover")
  atomic.write_text(path, "done", overwrite=False)
  assert sorted(os.listdir(tmp_path)) == sorted([live.name, other_output.name, "model.keras"])


def test_half_moved_remote_directory_is_incomplete_and_removed():
  base = f"ram://atomic_test_{uuid.uuid4().hex}"
  path = os.path.join(base, "export")
  _write_tree(path, {"saved_model/saved_model.pb": "pb", atomic.INCOMPLETE_MARKER: "moving"})
  assert tf.io.gfile.exists(path) and not atomic.is_complete(path)
  atomic.check_writable(path)  # no overwrite needed: the leftover is not an output
  assert not tf.io.gfile.exists(path)


def _killed_replacement(path, moment):
  """Forks; the child replaces directory `path` and SIGKILLs itself at `moment`. Returns the
  child's wait status. (A fork of this process: no second TensorFlow import.)"""
  pid = os.fork()
  if pid:
    return os.waitpid(pid, 0)[1]
  try:
    real_rename = os.rename

    def rename(src, dst):
      if moment == "before_rename":
        os.kill(os.getpid(), signal.SIGKILL)
      real_rename(src, dst)
      if moment == "between_renames":
        os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename
    with atomic.output_directory(path, overwrite=True) as temporary:
      for name in ("a.txt", "b.txt"):
        with open(os.path.join(temporary, name), "w") as f:
          f.write("new " + name)
        if moment == "while_writing":
          os.kill(os.getpid(), signal.SIGKILL)
  finally:
    os._exit(3)  # pylint: disable=protected-access  (never return into pytest in the child)


@pytest.mark.parametrize("moment", ["while_writing", "before_rename", "between_renames"])
def test_sigkill_leaves_old_or_nothing_never_a_mix_and_rerun_cleans(tmp_path, moment):
  path = tmp_path / "out"
  path.mkdir()
  (path / "a.txt").write_text("old a.txt")
  (path / "b.txt").write_text("old b.txt")
  status = _killed_replacement(str(path), moment)
  assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
  if path.exists():
    assert {p.name: p.read_text() for p in path.iterdir()} == {"a.txt": "old a.txt",
                                                              "b.txt": "old b.txt"}
  else:
    assert moment == "between_renames"
  assert any(name.startswith(atomic.PREFIX) for name in os.listdir(tmp_path))
  with atomic.output_directory(str(path), overwrite=True) as temporary:
    (tmp_path / temporary / "a.txt").write_text("rerun")
  assert os.listdir(tmp_path) == ["out"] and os.listdir(path) == ["a.txt"]
