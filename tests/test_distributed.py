"""When `prelm train` calls jax.distributed.initialize, and its flag errors (no jax start)."""
import subprocess
import sys

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
