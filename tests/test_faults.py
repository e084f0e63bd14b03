"""Fault injection on real `prelm train` processes: SIGKILL at random times, SIGTERM.

`pytest -m faults` runs these; CI runs the short version (PRELM_FAULT_KILLS unset: 3
kills) and `make test-faults` the long one (PRELM_FAULT_KILLS=20). Each process pays the
jax import and compile (~10-30 s on 2 cores), which is what makes the long one long.
The two-process tests (a dead process; SIGTERM to one of two) are also marked slow.
"""
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import base
from prelm_jax import metrics
from prelm_jax import preemption
from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parent.parent


def start(argv, log_path):
  env = dict(os.environ, PYTHONUNBUFFERED="1")  # a killed process keeps its last lines
  log = open(log_path, "w")
  return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def complete_steps(workdir):
  """Checkpoint steps on disk as finished directories (orbax renames them when done)."""
  path = pathlib.Path(workdir, "checkpoints")
  return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.exists() else []


def partial_dirs(workdir):
  path = pathlib.Path(workdir, "checkpoints")
  return [p.name for p in path.iterdir() if not p.name.isdigit()] if path.exists() else []


def resumed_from(log_path):
  text = pathlib.Path(log_path).read_text()
  marker = "Resuming from the checkpoint at step "
  return int(text.split(marker)[1].split()[0]) if marker in text else None


def load_state(workdir, step):
  return ocp.StandardCheckpointer().restore(
      pathlib.Path(workdir, "checkpoints", str(step), "state").resolve())


def train_records(workdir):
  lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
  return [metrics.untimed(r) for r in map(json.loads, lines)]


def metric_lines(workdir):
  path = pathlib.Path(workdir, "metrics.jsonl")
  return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.faults
def test_sigkill_at_random_times_then_resume_matches_uninterrupted(pydocs_data_dir,
                                                                   tmp_path,
                                                                   prelm_train_argv,
                                                                   tiny_cli_overrides):
  kills_wanted = int(os.environ.get("PRELM_FAULT_KILLS", "3"))
  num_steps = 40 if kills_wanted <= 5 else 10 * kills_wanted
  argv = lambda workdir: prelm_train_argv(pydocs_data_dir, workdir,
                                          **{"train.num_steps": num_steps})
  rng = random.Random(int(os.environ.get("PRELM_FAULT_SEED", "0")))

  # The uninterrupted reference runs in this process (one start-up less); the same
  # config through the command line, as the killed runs get it.
  straight = tmp_path / "straight"
  config = base.get_config()
  for key, value in dict(tiny_cli_overrides, **{"data.tfds_data_dir": pydocs_data_dir,
                                                "train.num_steps": num_steps}).items():
    section, name = key.split(".")
    config[section][name] = value
  train.run(config, str(straight))

  work = tmp_path / "killed"
  kills = resumes = 0
  partial_seen = 0
  attempt = 0
  while kills < kills_wanted:
    attempt += 1
    assert attempt <= 3 * kills_wanted, "the run finished too early: raise num_steps"
    before = complete_steps(work)
    log_path = tmp_path / f"attempt{attempt}.log"
    proc = start(argv(work), log_path)
    # Kills land either at a random moment of start-up (restore, compile) or while
    # training, a random 0-1.5 s after this attempt completed a checkpoint: during
    # steps and async checkpoint writes. Start-up kills need a checkpoint to matter.
    during_training = not before or attempt % 2 == 1 or rng.random() < 0.6
    deadline = time.time() + 240
    if during_training:
      while complete_steps(work) == before and proc.poll() is None:
        assert time.time() < deadline, "no training progress"
        time.sleep(0.05)
      time.sleep(rng.uniform(0.0, 1.5))
    else:
      time.sleep(rng.uniform(0.0, 12.0))
    if proc.poll() is not None:  # it finished before the kill: that one ran through
      assert proc.returncode == 0, log_path.read_text()[-3000:]
      break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
    start_step = resumed_from(log_path)
    if before:
      if start_step is not None:  # it got far enough to restore: from the latest one
        resumes += 1
        assert start_step == before[-1], (start_step, before, log_path.read_text()[-2000:])
    else:
      assert start_step is None
    partial = partial_dirs(work)
    partial_seen += bool(partial)
    print(f"kill {kills}: {'training' if during_training else 'start-up'}, resumed from "
          f"{start_step}, complete {complete_steps(work)}, partial {partial}")

  # The last resume runs to the end.
  before = complete_steps(work)
  final_log = tmp_path / "final.log"
  proc = start(argv(work), final_log)
  assert proc.wait(timeout=600) == 0, final_log.read_text()[-3000:]
  if before:
    resumes += 1
    assert resumed_from(final_log) == before[-1]
  assert complete_steps(work)[-1] == num_steps

  got, want = load_state(work, num_steps), load_state(straight, num_steps)
  jax.tree.map(np.testing.assert_array_equal, got, want)  # params, optimizer, step, rng
  # metrics.jsonl: records past a restored step were dropped and written again once.
  assert train_records(work) == train_records(straight)
  summary = (f"fault injection: {kills} SIGKILLs ({partial_seen} left a partial "
             f"checkpoint dir), {resumes} resumes from the latest complete checkpoint, "
             f"final params/optimizer state bit-identical to the uninterrupted run: 1/1")
  print("\n" + summary)
  assert kills == kills_wanted


@pytest.mark.faults
def test_sigterm_saves_a_checkpoint_and_exits_with_the_preemption_code(pydocs_data_dir,
                                                                       tmp_path,
                                                                       prelm_train_argv):
  argv = prelm_train_argv(pydocs_data_dir, tmp_path, **{"train.num_steps": 100000,
                                                        "train.checkpoint_every": 1000})
  log_path = tmp_path / "run.log"
  proc = start(argv, log_path)
  deadline = time.time() + 240
  while metric_lines(tmp_path) < 3:
    assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == preemption.PREEMPTED_EXIT_CODE, log_path.read_text()
  log = log_path.read_text()
  steps = complete_steps(tmp_path)
  assert len(steps) == 1 and steps[0] >= 3, steps   # not on the every-1000 schedule
  assert f"preempted: checkpoint saved at step {steps[0]}" in log
  assert not partial_dirs(tmp_path)                  # durable before exiting
  # Resuming continues from exactly that step.
  argv = prelm_train_argv(pydocs_data_dir, tmp_path, **{"train.num_steps": steps[0] + 2,
                                                        "train.checkpoint_every": 1000})
  done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"Resuming from the checkpoint at step {steps[0]}" in done.stdout
  assert complete_steps(tmp_path)[-1] == steps[0] + 2


def catches_sigterm(pid):
  """Whether process `pid` has a handler for SIGTERM (Linux: SigCgt in its status)."""
  status = pathlib.Path(f"/proc/{pid}/status").read_text()
  caught = int(status.split("SigCgt:")[1].split()[0], 16)
  return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.faults
def test_sigterm_at_any_point_of_start_up_exits_42_with_nothing_to_trip_over(
    pydocs_data_dir, tmp_path, prelm_train_argv):
  """SIGTERM at 10 moments from the imports to the compile: always exit 42, never a
  crash (139) or a run that trains on; what was written lets the run start again."""
  argv = lambda w: prelm_train_argv(pydocs_data_dir, w, **{"train.num_steps": 100000,
                                                           "train.checkpoint_every": 1000})
  # How long start-up takes on this machine: until the first progress line (the
  # shorter of two tries: the first one also warms the disk caches).
  def time_to_first_step(name):
    log_path = tmp_path / f"{name}.log"
    began = time.monotonic()
    proc = start(argv(tmp_path / name), log_path)
    while "train: step 1/" not in log_path.read_text():
      assert proc.poll() is None and time.monotonic() - began < 240, log_path.read_text()
      time.sleep(0.02)
    seconds = time.monotonic() - began
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == preemption.PREEMPTED_EXIT_CODE
    return seconds
  startup = min(time_to_first_step("calibration1"), time_to_first_step("calibration2"))

  # From the moment `prelm` has its handler (before that, Python's own start-up, SIGTERM
  # simply kills) to the first step.
  offsets = [i * startup / 10 for i in range(10)]
  stages = []
  for i, offset in enumerate(offsets):
    workdir, log_path = tmp_path / f"w{i}", tmp_path / f"w{i}.log"
    proc = start(argv(workdir), log_path)
    while not catches_sigterm(proc.pid):
      assert proc.poll() is None, log_path.read_text()
      time.sleep(0.005)
    time.sleep(offset)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    log = log_path.read_text()
    assert code == preemption.PREEMPTED_EXIT_CODE, (offset, code, log[-3000:])
    if "during start-up" in log:  # nothing trained, nothing saved
      stages.append(log.split("during start-up (after ")[1].split(")")[0])
      assert metric_lines(workdir) == 0 and not complete_steps(workdir), log[-2000:]
      assert not partial_dirs(workdir)
    else:  # the signal came as the steps ran: stopped there, with a checkpoint at it
      steps = complete_steps(workdir)
      stages.append(f"training, stopped after step {steps}")
      trained = [r["step"] for r in train_records(workdir) if r["split"] == "train"]
      assert steps == trained[-1:] == [len(trained)], log[-2000:]
    print(f"SIGTERM at {offset:.2f} s of {startup:.2f} s: exit {code}, {stages[-1]}")
  assert len({s for s in stages if not s.startswith("training")}) >= 3, stages

  # Whatever those starts left behind, the same command runs (and the one that got
  # furthest resumes: on a loaded machine its signal may have come after some steps),
  # and a corrected command with another model starts cleanly.
  for i, overrides in ((9, {}), (5, {"model.hidden_size": 64})):
    reached = complete_steps(tmp_path / f"w{i}")
    num_steps = (reached[-1] if reached else 0) + 3
    command = prelm_train_argv(pydocs_data_dir, tmp_path / f"w{i}",
                               **{"train.num_steps": num_steps, **overrides})
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert complete_steps(tmp_path / f"w{i}")[-1] == num_steps


def free_port():
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_two_processes(prelm_train_argv, data_dir, tmp_path, **env):
  """Two `prelm train` processes (4 CPU devices each) meeting on 127.0.0.1, started
  directly: launch/local.sh would itself stop the survivor when one fails."""
  argv = prelm_train_argv(data_dir, tmp_path / "w", **{
      "train.num_steps": 100000, "train.checkpoint_every": 100000,
      "train.eval_every": 100000})
  port = free_port()
  procs = []
  for i in range(2):
    proc_env = dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu",
                    XLA_FLAGS="--xla_force_host_platform_device_count=4", **env)
    log = open(tmp_path / f"p{i}.log", "w")
    procs.append(subprocess.Popen(
        argv + [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                f"--process_id={i}"], cwd=REPO, env=proc_env, stdout=log,
        stderr=subprocess.STDOUT))
  deadline = time.time() + 300
  while metric_lines(tmp_path / "w") < 2:  # both are inside the training loop
    if not all(p.poll() is None for p in procs) or time.time() > deadline:
      for p in procs:
        p.kill()
      pytest.fail((tmp_path / "p0.log").read_text()[-3000:])
    time.sleep(0.1)
  return procs


@pytest.mark.faults
@pytest.mark.slow
def test_when_one_process_dies_the_other_exits_within_the_heartbeat_timeout(
    pydocs_data_dir, tmp_path, prelm_train_argv):
  heartbeat = 10
  procs = start_two_processes(prelm_train_argv, pydocs_data_dir, tmp_path,
                              PRELM_HEARTBEAT_TIMEOUT=str(heartbeat))
  try:
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    rc = procs[0].wait(timeout=heartbeat + 60)
    waited = time.time() - killed_at
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  print(f"\nprocess 0 exited with {rc} {waited:.1f} s after process 1 was killed "
        f"(heartbeat timeout {heartbeat} s)")
  assert rc != 0
  assert waited < heartbeat + 30
  log = (tmp_path / "p0.log").read_text()
  # The coordination service reports the missing heartbeats, unless the dead peer's
  # closed socket makes a Gloo collective abort the survivor first (seen on a loaded
  # machine): either way it ends promptly and not with success.
  assert "stopped sending heartbeats" in log or "gloo::EnforceNotMet" in log, log[-3000:]


@pytest.mark.faults
@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step(pydocs_data_dir, tmp_path,
                                                            prelm_train_argv):
  procs = start_two_processes(prelm_train_argv, pydocs_data_dir, tmp_path)
  try:
    procs[1].send_signal(signal.SIGTERM)  # the other one hears it through jax
    codes = [p.wait(timeout=120) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert codes == [preemption.PREEMPTED_EXIT_CODE] * 2, codes
  steps = complete_steps(tmp_path / "w")
  assert len(steps) == 1, steps
  for i in range(2):
    assert (f"preempted: checkpoint saved at step {steps[0]}"
            in (tmp_path / f"p{i}.log").read_text())
  assert not partial_dirs(tmp_path / "w")


@pytest.mark.faults
def test_sigterm_before_the_first_step_exits_with_the_preemption_code(pydocs_data_dir,
                                                                      tmp_path,
                                                                      prelm_train_argv):
  # The signal arrives while the corpus is loaded (deterministically: load_data sends it).
  argv = prelm_train_argv(pydocs_data_dir, tmp_path)
  script = ("import os, signal, sys\n"
            "from prelm_jax import main, train\n"
            "load = train.load_data\n"
            "def load_after_sigterm(*a, **k):\n"
            "  os.kill(os.getpid(), signal.SIGTERM)\n"
            "  return load(*a, **k)\n"
            "train.load_data = load_after_sigterm\n"
            "sys.argv = ['prelm'] + sys.argv[1:]\n"
            "main.cli()\n")
  proc = subprocess.run([sys.executable, "-c", script] + argv[argv.index("train"):],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == preemption.PREEMPTED_EXIT_CODE, proc.stderr[-3000:]
  assert "SIGTERM during start-up (after reading the data and vocabulary): nothing to save" in proc.stderr
  assert not complete_steps(tmp_path) and not partial_dirs(tmp_path)
