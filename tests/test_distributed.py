"""When `prelm train` calls jax.distributed.initialize, its flag errors, and a coordinator
that never answers."""
import os
import socket
import subprocess
import sys
import time

import pytest

from prelm_jax import distributed

EXPLICIT = dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1)


def test_single_process_by_default():
  assert distributed.plan("auto", environ={}) is None
  assert distributed.plan("off", environ={"SLURM_STEP_ID": "0",
                                          "SLURM_STEP_NUM_TASKS": "4"}) is None


def test_explicit_flags_are_passed_through():
  assert distributed.plan("auto", **EXPLICIT, environ={}) == EXPLICIT
  assert distributed.plan("on", **EXPLICIT, environ={}) == EXPLICIT


@pytest.mark.parametrize("environ, expected", [
    # An srun step of 2 tasks: jax reads SLURM's variables itself.
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}, {}),
    # The batch script itself is one process even in a 2-task allocation.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, None),
    ({"TPU_WORKER_HOSTNAMES": "t1k-w-0,t1k-w-1"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "t1k-w-0"}, None),
    ({"MEGASCALE_NUM_SLICES": "2"}, {}),
])
def test_auto_detects_multi_process_clusters(environ, expected):
  assert distributed.plan("auto", environ=environ) == expected


def test_on_always_initialises():
  assert distributed.plan("on", environ={}) == {}


@pytest.mark.parametrize("mode, flags, message", [
    ("auto", dict(coordinator_address="127.0.0.1:1234"),
     "given without --num_processes, --process_id"),
    ("auto", dict(EXPLICIT, process_id=2), "--process_id=2 with --num_processes=2"),
    ("auto", dict(EXPLICIT, coordinator_address="127.0.0.1"), "is not host:port"),
    ("off", EXPLICIT, "--distributed=off contradicts"),
    ("maybe", {}, "is not one of auto, on, off"),
])
def test_bad_flags_are_refused(mode, flags, message):
  with pytest.raises(distributed.DistributedError, match=message):
    distributed.plan(mode, **flags, environ={})


def test_cli_reports_incomplete_flags_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "prelm_jax.main", "train", "--config", "bert_micro_test",
       f"--workdir={tmp_path}/w", "--num_processes=2"],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines == ["prelm: error: --num_processes given without --coordinator_address, "
                   "--process_id; a multi-process run needs all three, e.g. "
                   "--coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0"]


def test_unreachable_coordinator_fails_within_the_init_timeout(tmp_path):
  with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  start = time.monotonic()
  proc = subprocess.run(
      [sys.executable, "-m", "prelm_jax.main", "train", "--config", "bert_micro_test",
       f"--workdir={tmp_path}/w", f"--coordinator_address=127.0.0.1:{port}",
       "--num_processes=2", "--process_id=1"],
      capture_output=True, text=True, timeout=120,
      env={**os.environ, "PRELM_INIT_TIMEOUT": "5", "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 2, proc.stderr
  assert time.monotonic() - start < 60
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"prelm: error: the coordinator 127.0.0.1:{port} did not accept "
                         "a connection within 5 s"), last
  assert "$PRELM_INIT_TIMEOUT" in last
  assert not (tmp_path / "w" / "checkpoints").exists()


def test_timeouts_from_the_environment():
  assert distributed.init_timeout({}) == 300
  assert distributed.init_timeout({"PRELM_INIT_TIMEOUT": "20"}) == 20
  assert distributed.heartbeat_timeout({}) == 60
  with pytest.raises(distributed.DistributedError, match="PRELM_INIT_TIMEOUT='soon'"):
    distributed.init_timeout({"PRELM_INIT_TIMEOUT": "soon"})
