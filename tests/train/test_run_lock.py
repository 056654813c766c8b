"""inception_tf.train.run_lock: one trainer per run directory; stale locks are taken over.

The live-trainer and SIGKILL cases through `tools/train.py` are in tests/test_fault_injection.py.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import tensorflow as tf

from inception_tf.train import run_lock


def _dead_pid():
  return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True).stdout)


def _write_lock(directory, **fields):
  content = {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time() - 60,
             "heartbeat": time.time() - 5, "command": "tools/train.py --model_dir=x",
             "token": uuid.uuid4().hex}
  content.update(fields)
  path = os.path.join(str(directory), run_lock.LOCK_NAME)
  tf.io.gfile.makedirs(str(directory))
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(content))
  return content


def _holder(directory):
  with tf.io.gfile.GFile(os.path.join(str(directory), run_lock.LOCK_NAME)) as f:
    return json.loads(f.read())


def test_second_lock_refused_with_holder_and_way_out_then_released(tmp_path):
  first = run_lock.RunLock(str(tmp_path)).acquire()
  holder = _holder(tmp_path)
  assert (holder["host"], holder["pid"], holder["token"]) == (socket.gethostname(), os.getpid(),
                                                              first.token)
  assert holder["started"] <= holder["heartbeat"] <= time.time()
  with pytest.raises(run_lock.RunDirectoryLocked) as error:
    run_lock.RunLock(str(tmp_path)).acquire()
  message = str(error.value)
  for part in (str(tmp_path), f"PID {os.getpid()}", socket.gethostname(), "--model_dir",
               os.path.join(str(tmp_path), run_lock.LOCK_NAME)):
    assert part in message
  first.check()
  first.release()
  assert not (tmp_path / run_lock.LOCK_NAME).exists()
  with run_lock.RunLock(str(tmp_path)) as again:
    again.check()
  assert not (tmp_path / run_lock.LOCK_NAME).exists()


def test_live_process_on_this_host_holds_the_lock(tmp_path):
  parent = os.getppid()
  with open(f"/proc/{parent}/stat") as f:
    start = f.read().rsplit(")", 1)[1].split()[19]
  _write_lock(tmp_path, pid=parent, process_start=start)
  with pytest.raises(run_lock.RunDirectoryLocked, match=f"PID {parent} on host"):
    run_lock.RunLock(str(tmp_path)).acquire()


@pytest.mark.parametrize("case", ["dead_pid", "reused_pid", "rebooted", "old_heartbeat",
                                  "unreadable"])
def test_stale_locks_are_taken_over(tmp_path, case):
  if case == "unreadable":
    (tmp_path / run_lock.LOCK_NAME).write_text('{"host": "a", "pi')
  else:
    fields = {"dead_pid": {"pid": _dead_pid()},
              "reused_pid": {"pid": os.getppid(), "process_start": "1"},
              "rebooted": {"boot_id": "another-boot"},
              "old_heartbeat": {"host": "other-host", "heartbeat": time.time() - 301}}[case]
    _write_lock(tmp_path, **fields)
  lock = run_lock.RunLock(str(tmp_path)).acquire()
  try:
    assert lock.took_over
    assert _holder(tmp_path)["token"] == lock.token
    lock.check()
  finally:
    lock.release()


def test_other_host_with_fresh_heartbeat_is_live(tmp_path):
  _write_lock(tmp_path, host="other-host", heartbeat=time.time() - 100, pid=1234)
  with pytest.raises(run_lock.RunDirectoryLocked, match=r"other-host.*\(in 20\d s\)"):
    run_lock.RunLock(str(tmp_path)).acquire()


def test_heartbeat_refreshes_and_a_taken_over_lock_is_lost(tmp_path):
  lock = run_lock.RunLock(str(tmp_path), heartbeat_seconds=0.1, stale_seconds=5).acquire()
  try:
    first = _holder(tmp_path)["heartbeat"]
    deadline = time.time() + 20
    while _holder(tmp_path)["heartbeat"] == first and time.time() < deadline:
      time.sleep(0.05)
    assert _holder(tmp_path)["heartbeat"] > first
    assert not [n for n in os.listdir(tmp_path) if n != run_lock.LOCK_NAME]  # no temporaries
    _write_lock(tmp_path, pid=4321, host="other-host", heartbeat=time.time())
    with pytest.raises(run_lock.RunLockLost, match="PID 4321 on host other-host took it over"):
      lock.check()
    time.sleep(0.3)  # the heartbeat has stopped: it does not overwrite the new holder
    assert _holder(tmp_path)["pid"] == 4321
  finally:
    lock.release()
  assert _holder(tmp_path)["pid"] == 4321  # release leaves another holder's lock alone


def test_concurrent_takers_of_a_stale_lock_leave_one_holder(tmp_path):
  _write_lock(tmp_path, pid=_dead_pid())
  locks = [run_lock.RunLock(str(tmp_path)) for _ in range(6)]
  outcome = [None] * len(locks)
  barrier = threading.Barrier(len(locks))

  def take(k):
    barrier.wait()
    try:
      locks[k].acquire()
      outcome[k] = "acquired"
    except run_lock.RunDirectoryLocked:
      outcome[k] = "refused"

  threads = [threading.Thread(target=take, args=(k,)) for k in range(len(locks))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  holders = []
  for lock, result in zip(locks, outcome):
    if result == "acquired":
      try:
        lock.check()
        holders.append(lock)
      except run_lock.RunLockLost:
        pass
  try:
    assert len(holders) == 1, outcome
    assert _holder(tmp_path)["token"] == holders[0].token
  finally:
    for lock in locks:
      lock.release()


def test_lock_on_a_non_local_filesystem():
  directory = f"ram://run_lock_{uuid.uuid4().hex}/run"
  lock = run_lock.RunLock(directory, settle_seconds=0.0).acquire()
  try:
    with pytest.raises(run_lock.RunDirectoryLocked):
      run_lock.RunLock(directory, settle_seconds=0.0).acquire()
    lock.refresh()
    lock.check()
  finally:
    lock.release()
  assert not tf.io.gfile.exists(os.path.join(directory, run_lock.LOCK_NAME))
  _write_lock(directory, host="other-host", heartbeat=time.time() - 1000)
  with run_lock.RunLock(directory, settle_seconds=0.0) as taken:
    assert "heartbeat" in taken.took_over
