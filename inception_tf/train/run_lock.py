"""One writer per run directory: the trainer's lock object `<model_dir>/run.lock`.

    lock = RunLock(model_dir)
    lock.acquire()          # RunDirectoryLocked at once if a live trainer holds it
    try:
      ...train; lock.check() before every checkpoint write...
    finally:
      lock.release()

The lock is a small JSON file: the holder's host, PID (and the PID's start time and the host's boot
id, so a reused PID or a rebooted machine is not mistaken for the holder), the time it started, its
command line and a heartbeat time that a daemon thread rewrites every `heartbeat_seconds`.

A lock is stale, and the next trainer takes it over without anything done by hand, when
  * its holder ran on this host and that process is gone (SIGKILL, crash, reboot), or
  * its heartbeat is older than `stale_seconds` (a holder on another host: preemption, lost VM).
Otherwise the trainer refuses at once with one message naming the directory, the holder and how to
proceed. Under multi-worker training only the chief takes the lock; evaluators never do (they only
read checkpoints).

Exclusivity. Local files: the lock is created with `link(2)` of a complete temporary file, which
fails if the lock exists, and a stale lock is first renamed aside (only one taker can succeed);
a taker that moved a lock that was not the stale one puts it back. gs:// (via `tf.io.gfile`, which
has no exclusive create): the lock is written, then read back after `settle_seconds`, and only the
writer whose token is still there proceeds; this relies on GCS's read-after-write consistency and
assumes two trainers do not start within `settle_seconds` of each other's write. In both cases the
heartbeat and `check()` read the lock back, so a trainer whose lock was taken over (e.g. it stalled
longer than `stale_seconds`) stops with `RunLockLost` before its next checkpoint write instead of
writing beside the new holder.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid

import tensorflow as tf

from inception_tf import atomic

LOCK_NAME = "run.lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0
SETTLE_SECONDS = 1.0

_HELD_TOKENS: set[str] = set()  # tokens of the locks held by live RunLock objects of this process


class RunDirectoryLocked(RuntimeError):
  """Another live trainer holds the run directory's lock."""


class RunLockLost(RuntimeError):
  """This trainer's lock was taken over or removed; it must not write the run directory."""


def _boot_id() -> str:
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      return f.read().strip()
  except OSError:
    return ""


def _process_start(pid: int) -> str:
  """The start time of process `pid` in clock ticks since boot ("" when unknown)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return ""


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
      "%Y-%m-%d %H:%M:%S UTC")


def _read(path: str) -> dict | None:
  """The lock's content; None when there is no lock; {} when it is unreadable (treated as stale)."""
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      text = f.read()
  except tf.errors.NotFoundError:
    return None
  try:
    content = json.loads(text)
  except ValueError:
    return {}
  return content if isinstance(content, dict) else {}


def stale_reason(holder: dict, *, stale_seconds: float = STALE_SECONDS,
                 now: float | None = None) -> str | None:
  """Why the lock content `holder` no longer protects a live trainer, or None if it may.

  Args:
    holder: the lock's JSON content ({} for an unreadable lock).
    stale_seconds: a heartbeat older than this is stale, whatever the host.
    now: the current time (default `time.time()`).

  Returns:
    A short reason ("its process 123 on this host is gone", ...), or None for a live holder.
  """
  now = time.time() if now is None else now
  if not holder or "token" not in holder:
    return "the lock file is unreadable"
  age = now - float(holder.get("heartbeat", 0.0))
  if age > stale_seconds:
    return f"its last heartbeat was {age:.0f} s ago (more than {stale_seconds:.0f} s)"
  if holder.get("host") != socket.gethostname():
    return None
  pid = int(holder.get("pid", -1))
  if holder.get("boot_id") and holder["boot_id"] != _boot_id():
    return "this host has rebooted since it was taken"
  if pid == os.getpid():
    return None if holder["token"] in _HELD_TOKENS else "this process no longer holds it"
  if not atomic.pid_alive(pid):
    return f"its process {pid} on this host is gone"
  if holder.get("process_start") and holder["process_start"] != _process_start(pid):
    return f"PID {pid} now belongs to another process"
  return None


class RunLock:
  """The exclusive right of one trainer to write `model_dir` (see the module docstring).

  Args:
    model_dir: the run directory (local or gs://); created if missing.
    heartbeat_seconds: how often the lock's heartbeat is refreshed.
    stale_seconds: a lock whose heartbeat is older is taken over (must exceed heartbeat_seconds).
    settle_seconds: gs:// only: wait before reading a written lock back.
  """

  def __init__(self, model_dir: str, *, heartbeat_seconds: float = HEARTBEAT_SECONDS,
               stale_seconds: float = STALE_SECONDS, settle_seconds: float = SETTLE_SECONDS):
    if not stale_seconds > heartbeat_seconds > 0:
      raise ValueError(f"stale_seconds ({stale_seconds}) must exceed heartbeat_seconds "
                       f"({heartbeat_seconds}) > 0.")
    self.model_dir = os.fspath(model_dir)
    self.path = os.path.join(self.model_dir, LOCK_NAME)
    self.heartbeat_seconds = heartbeat_seconds
    self.stale_seconds = stale_seconds
    self.settle_seconds = settle_seconds
    self.token = uuid.uuid4().hex
    self.took_over: str | None = None  # why the previous holder's lock was stale, if there was one
    self._content: dict = {}
    self._lost: str | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  # ------------------------------------------------------------------------ acquiring.

  def _new_content(self) -> dict:
    now = time.time()
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
            "process_start": _process_start(os.getpid()), "started": now, "heartbeat": now,
            "command": " ".join(sys.argv)[:300], "token": self.token}

  def _create(self) -> bool:
    """Creates the lock if there is none; True when this object now holds it."""
    text = json.dumps(self._content)
    if atomic.is_local(self.path):
      temporary = atomic.temporary_name(self.path)
      with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
      try:
        os.link(temporary, self.path)
        return True
      except FileExistsError:
        return False
      finally:
        os.remove(temporary)
    with tf.io.gfile.GFile(self.path, "w") as f:
      f.write(text)
    time.sleep(self.settle_seconds)
    return (_read(self.path) or {}).get("token") == self.token

  def _remove_stale(self, holder: dict) -> None:
    """Removes the stale lock `holder` (and nothing else: a fresh lock that replaced it stays)."""
    if not atomic.is_local(self.path):
      tf.io.gfile.remove(self.path)
      return
    aside = atomic.temporary_name(self.path)
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return  # another taker was first
    moved = _read(aside) or {}
    if moved.get("token") != holder.get("token"):
      try:  # we moved a lock created after the stale one was read: put it back
        os.link(aside, self.path)
      except FileExistsError:
        pass
    os.remove(aside)

  def acquire(self) -> RunLock:
    """Takes the lock (taking over a stale one) and starts the heartbeat.

    Returns:
      self.

    Raises:
      RunDirectoryLocked: a live trainer holds the lock (the message says who and what to do).
    """
    tf.io.gfile.makedirs(self.model_dir)
    self._content = self._new_content()
    _HELD_TOKENS.add(self.token)  # before it is visible: this process's other locks see it live
    try:
      for _ in range(5):
        holder = _read(self.path)
        if holder is not None:
          reason = stale_reason(holder, stale_seconds=self.stale_seconds)
          if reason is None:
            raise RunDirectoryLocked(self._locked_message(holder))
          logging.warning("Taking over the stale lock %s (%s).", self.path, reason)
          self.took_over = reason
          self._remove_stale(holder)
        if self._create():
          break
      else:
        raise RunDirectoryLocked(f"Could not take the lock {self.path}: other trainers keep "
                                 f"taking it. Make sure only one trainer uses --model_dir="
                                 f"{self.model_dir}.")
    except BaseException:
      _HELD_TOKENS.discard(self.token)
      raise
    self._lost = None
    self._stop.clear()
    self._thread = threading.Thread(target=self._heartbeat_loop, name="run-lock-heartbeat",
                                    daemon=True)
    self._thread.start()
    return self

  def _locked_message(self, holder: dict) -> str:
    now = time.time()
    age = now - float(holder.get("heartbeat", now))
    remaining = max(0.0, self.stale_seconds - age)
    return (
        f"Run directory {self.model_dir} is in use by another trainer: PID {holder.get('pid')} on "
        f"host {holder.get('host')}, running since {_utc(float(holder.get('started', now)))}, "
        f"last heartbeat {age:.0f} s ago (command: {holder.get('command', '?')}). Two trainers in "
        "one run directory overwrite each other's checkpoints. Wait for that run to finish or stop "
        "it, or pass another --model_dir. If it is dead, its lock is taken over automatically: "
        f"at once on host {holder.get('host')} once the process is gone, from any host "
        f"{self.stale_seconds:.0f} s after its last heartbeat (in {remaining:.0f} s); or delete "
        f"{self.path} yourself if you are sure no trainer uses it.")

  # ------------------------------------------------------------------------ holding.

  def _heartbeat_loop(self) -> None:
    while not self._stop.wait(self.heartbeat_seconds):
      try:
        self.refresh()
      except RunLockLost as error:
        logging.error("%s", error)
        return
      except (OSError, tf.errors.OpError) as error:  # storage hiccup: retried at the next beat
        logging.warning("Could not refresh the run lock %s: %s", self.path, error)

  def _current_holder(self) -> dict | None:
    holder = _read(self.path)
    if holder is None:  # a racing taker may have moved it aside for an instant
      time.sleep(0.2)
      holder = _read(self.path)
    return holder

  def check(self) -> None:
    """Raises `RunLockLost` unless this object still holds the lock (call before writing)."""
    if self._lost is None:
      holder = self._current_holder()
      if (holder or {}).get("token") != self.token:
        self._lost = ("it was removed" if holder is None else
                      f"PID {holder.get('pid')} on host {holder.get('host')} took it over")
    if self._lost is not None:
      raise RunLockLost(
          f"This trainer no longer holds the lock {self.path} ({self._lost}); it stops rather than "
          "write checkpoints beside another trainer. Rerun it once the other trainer has finished "
          "(it resumes from the newest checkpoint).")

  def refresh(self) -> None:
    """Rewrites the heartbeat (atomically); raises `RunLockLost` if the lock is no longer ours."""
    self.check()
    self._content["heartbeat"] = time.time()
    atomic.write_text(self.path, json.dumps(self._content))

  def release(self) -> None:
    """Stops the heartbeat and removes the lock if it is still ours (safe to call twice)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)
      self._thread = None
    if self.token in _HELD_TOKENS:
      _HELD_TOKENS.discard(self.token)
      holder = _read(self.path)
      if holder is not None and holder.get("token") == self.token:
        tf.io.gfile.remove(self.path)

  def __enter__(self) -> RunLock:
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()
