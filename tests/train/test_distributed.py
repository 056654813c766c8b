"""Strategies and resume, each in fresh processes (logical devices and TF_CONFIG must be set before
TF starts): mirrored == single device, two workers on 127.0.0.1, SIGKILL + restart == uninterrupted.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "train", "run_training.py")
TIMEOUT = 600


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _result(output: str) -> dict:
  lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
  assert lines, f"no RESULT line in output:\n{output[-4000:]}"
  return json.loads(lines[-1][len("RESULT "):])


def _run(*args, env=None, timeout=TIMEOUT):
  process = subprocess.run([sys.executable, SCRIPT, *args], env=env or _env(), timeout=timeout,
                           capture_output=True, text=True, check=False)
  assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
  return _result(process.stdout)


def test_mirrored_two_devices_equals_one_device(tmp_path):
  result = _run("mirrored", "--model_dir", str(tmp_path))
  single, mirrored = result["default"], result["mirrored"]
  assert (single["replicas"], mirrored["replicas"]) == (1, 2)
  # Same global batches, gradients all-reduced then clipped at the GLOBAL norm (clipping active).
  assert max(single["gradient_norm"]) > 0.5
  np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(mirrored["gradient_norm"], single["gradient_norm"], rtol=1e-5)
  assert mirrored["eval"]["num_examples"] == single["eval"]["num_examples"] == 20
  assert mirrored["eval"]["top1"] == pytest.approx(single["eval"]["top1"])
  # Batch norm + dropout + EMA of BN statistics train under mirrored and checkpoint.
  assert all(np.isfinite(result["mirrored_bn"]["loss"]))
  assert tf.train.latest_checkpoint(str(tmp_path / "mirrored_bn")).endswith("ckpt-4")
  # A global batch that does not divide over the replicas is refused before training.
  assert "does not divide over the 2 replicas" in result["bad_batch_error"]
  assert not (tmp_path / "bad").exists() or tf.train.latest_checkpoint(str(tmp_path / "bad")) is None


def _checkpoint_tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def test_resume_after_sigkill_is_exact(tmp_path):
  common = ["--steps", "12", "--checkpoint_every", "4", "--log_every", "4",
            "--steps_per_execution", "2"]
  straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
  straight = subprocess.Popen([sys.executable, SCRIPT, "train", "--model_dir", str(straight_dir),
                               *common], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
  # The interrupted run reads slowly (0.4 s per batch) so it is killed between checkpoints.
  victim = subprocess.Popen([sys.executable, SCRIPT, "train", "--model_dir", str(killed_dir),
                             "--sleep", "0.4", *common], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  deadline = time.time() + TIMEOUT
  try:
    while time.time() < deadline:
      latest = tf.train.latest_checkpoint(str(killed_dir)) if killed_dir.exists() else None
      if latest and latest.endswith("ckpt-4"):
        break
      assert victim.poll() is None, "the run ended before it could be killed"
      time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
  finally:
    if victim.poll() is None:
      victim.kill()
  killed_at = tf.train.latest_checkpoint(str(killed_dir))
  assert not killed_at.endswith("ckpt-12"), "killed too late: the run had finished"

  resumed = _run("train", "--model_dir", str(killed_dir), *common)
  output, _ = straight.communicate(timeout=TIMEOUT)
  assert straight.returncode == 0, output[-4000:]
  uninterrupted = _result(output)
  assert resumed["step"] == uninterrupted["step"] == 12

  # Every tensor of the final checkpoints: weights, BN statistics, optimizer slots and step,
  # EMA shadows, dropout RNG state.
  a = _checkpoint_tensors(str(straight_dir / "ckpt-12"))
  b = _checkpoint_tensors(str(killed_dir / "ckpt-12"))
  assert sorted(a) == sorted(b)
  assert any(k.startswith("ema/") for k in a) and any(k.startswith("optimizer/") for k in a)
  for name in a:  # bit for bit: the README promises the same weights
    np.testing.assert_array_equal(b[name], a[name], err_msg=name)
  assert resumed["eval"] == uninterrupted["eval"]


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _run_two_workers(model_dir) -> list[str]:
  """Both workers' outputs. The ports are free when chosen but another process may take one
  before the workers bind it; then the run is repeated on new ports (at most 3 attempts)."""
  for _ in range(3):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
      processes.append(subprocess.Popen(
          [sys.executable, SCRIPT, "train", "--model_dir", str(model_dir), "--strategy",
           "multi_worker", "--steps", "6", "--checkpoint_every", "3", "--log_every", "3",
           "--steps_per_execution", "1"],
          env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
          text=True))
    try:
      outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    finally:
      for process in processes:
        if process.poll() is None:
          process.kill()
    if all(process.returncode == 0 for process in processes):
      return outputs
    if not any("already in use" in output.lower() for output in outputs):
      break
    shutil.rmtree(model_dir, ignore_errors=True)
  raise AssertionError("\n\n".join(output[-5000:] for output in outputs))


def test_two_workers_train_together_and_write_one_checkpoint(tmp_path):
  model_dir = tmp_path / "run"
  outputs = [_result(output) for output in _run_two_workers(model_dir)]
  chief, other = outputs
  assert (chief["chief"], other["chief"]) == (True, False)
  assert chief["step"] == other["step"] == 6
  assert chief["train_loss"] == pytest.approx(other["train_loss"], rel=1e-6)  # one synchronous run
  # One checkpoint series, written by the chief; the other worker's temporary copy is gone.
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
  entries = sorted(os.listdir(model_dir))
  assert not [e for e in entries if e.startswith(".worker")], entries
  assert [e for e in entries if e.endswith(".index")] == ["ckpt-3.index", "ckpt-6.index"]
