"""The launchers in launch/: exact --dry-run commands, and real multi-process runs.

The real runs train experiments/bert_micro_test.py for 4 steps as 2 processes x 4 CPU
devices (through launch/local.sh, and through a one-node SLURM cluster started here) and
compare with the same config in this process on 8 devices: same mesh (data=8), same
global batch, so the same losses and parameters up to the order of the cross-process sums.
"""
import json
import os
import pathlib
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types

import jax
import numpy as np
import pytest

from experiments import bert_micro_test
from prelm_jax import analysis
from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parent.parent
LOCAL_SH = REPO / "launch" / "local.sh"
SUBMIT_SH = REPO / "launch" / "slurm" / "submit.sh"
TPU_SH = REPO / "launch" / "tpu" / "tpu.sh"
SLURM_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")  # .ci/run installs them
SLURM_PROGRAMS = ("sbatch", "slurmctld", "slurmd", "munged")


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def losses(records):
  return [(r["step"], r["split"], r["loss"], r["mlm_loss"], r["nsp_loss"]) for r in records]


def micro_args(data_dir, workdir):
  return ["train", "--config", "bert_micro_test", "--workdir", str(workdir),
          f"--config.data.tfds_data_dir={data_dir}"]


@pytest.fixture(scope="module")
def micro_run_8dev(pydocs_data_dir, tmp_path_factory):
  """bert_micro_test trained in this process on the 8 simulated devices."""
  config = bert_micro_test.get_config()
  config.data.tfds_data_dir = pydocs_data_dir
  workdir = tmp_path_factory.mktemp("micro_8dev")
  return train.run(config, str(workdir))


def assert_same_run(read_metrics, workdir, reference):
  """Losses of every logged step and the restored parameters match `reference`."""
  got, want = losses(read_metrics(workdir)), losses(read_metrics(reference.workdir))
  assert [r[:2] for r in got] == [r[:2] for r in want]
  assert [r[:2] for r in got] == [(1, "train"), (2, "train"), (3, "train"), (4, "train"),
                                  (4, "eval")]
  # Not bit-identical: the gradient all-reduce adds in another order across processes.
  np.testing.assert_allclose([r[2:] for r in got], [r[2:] for r in want], rtol=1e-6)
  # The checkpoint the processes wrote together restores in this one process.
  _, _, params, _ = analysis.load_run(str(workdir))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               jax.device_get(params), jax.device_get(reference.state.params))
  assert (pathlib.Path(workdir) / "vocab.txt").read_text() == (
      pathlib.Path(reference.workdir) / "vocab.txt").read_text()


# --- launch/local.sh ------------------------------------------------------------------

def test_local_dry_run_prints_the_exact_commands():
  proc = subprocess.run(
      [LOCAL_SH, "--processes", "2", "--devices-per-process", "4", "--port", "12355",
       "--dry-run", "--", "train", "--config", "bert_micro_test", "--workdir", "runs/a b"],
      capture_output=True, text=True, check=True, env=dict(os.environ, PRELM_PYTHON="py"))
  common = ("env PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=4 "
            "py -m prelm_jax.main train --config bert_micro_test --workdir 'runs/a b' "
            "--coordinator_address=127.0.0.1:12355 --num_processes=2")
  assert proc.stdout.splitlines() == [f"{common} --process_id=0", f"{common} --process_id=1"]


def test_local_refuses_bad_options():
  proc = subprocess.run([LOCAL_SH, "--processes", "0", "--", "train"],
                        capture_output=True, text=True)
  assert proc.returncode == 2 and "'0' is not a positive integer" in proc.stderr


@pytest.mark.slow  # ~50 s on 2 cores: two jax processes import and compile
def test_local_two_processes_match_one(pydocs_data_dir, micro_run_8dev, tmp_path,
                                       read_metrics):
  workdir = tmp_path / "local_2x4"
  proc = subprocess.run(
      [LOCAL_SH, "--processes", "2", "--devices-per-process", "4", "--",
       *micro_args(pydocs_data_dir, workdir)],
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "[p0] prelm: process 0 of 2, 4 local of 8 devices" in proc.stdout
  assert "[p1] prelm: process 1 of 2, 4 local of 8 devices" in proc.stdout
  # Only process 0 prints the summary (both compute it).
  assert proc.stdout.count("Validation after 4 steps") == 1
  assert "[p0] Validation after 4 steps" in proc.stdout
  assert_same_run(read_metrics, workdir, micro_run_8dev)


def test_local_stops_the_others_when_one_fails(tmp_path):
  """A dead process would leave the others waiting at a collective: they are stopped."""
  fake = tmp_path / "fake_python"
  fake.write_text("#!/usr/bin/env bash\n"
                  'case "$*" in *--process_id=1*) echo "p1 fails"; exit 3 ;; esac\n'
                  'echo "p0 waits"; exec sleep 60\n')
  fake.chmod(0o755)
  start = time.monotonic()
  proc = subprocess.run([LOCAL_SH, "--processes", "2", "--devices-per-process", "1", "--",
                         "train"], capture_output=True, text=True, timeout=50,
                        env=dict(os.environ, PRELM_PYTHON=str(fake)))
  assert proc.returncode == 3, proc.stderr
  assert time.monotonic() - start < 20
  assert "process 1" in proc.stderr and "exited with status 3" in proc.stderr
  assert "[p1] p1 fails" in proc.stdout


# --- launch/slurm -----------------------------------------------------------------------

def test_slurm_dry_run_prints_the_exact_command():
  proc = subprocess.run(
      [SUBMIT_SH, "--dry-run", "--nodes=4", "--gpus-per-node=8", "--", "train", "--config",
       "bert_tiny_pydocs", "--workdir", "/shared/runs/a b", "--config.train.num_steps=10"],
      capture_output=True, text=True, check=True)
  assert proc.stdout == (
      f"sbatch --nodes=4 --gpus-per-node=8 {REPO}/launch/slurm/train.sbatch train "
      "--config bert_tiny_pydocs --workdir '/shared/runs/a b' --config.train.num_steps=10\n")


# --- launch/tpu ---------------------------------------------------------------------------

def tpu_dry_run(*args):
  """The commands `launch/tpu/tpu.sh ... --dry-run` prints, each split back into argv."""
  proc = subprocess.run([TPU_SH, args[0], "--dry-run", *args[1:]], capture_output=True,
                        text=True, check=True)
  return [shlex.split(line) for line in proc.stdout.splitlines()]


def test_tpu_dry_run_single_slice():
  where = ["--name", "pod", "--zone", "us-central2-b", "--project", "proj"]
  scope = ["--zone=us-central2-b", "--project=proj"]
  vm = ["gcloud", "compute", "tpus", "tpu-vm"]
  assert tpu_dry_run("create", *where, "--accelerator-type", "v4-32", "--version",
                     "tpu-ubuntu2204-base") == [
      [*vm, "create", "pod", *scope, "--accelerator-type=v4-32",
       "--version=tpu-ubuntu2204-base"]]
  tar, scp, ssh = tpu_dry_run("setup", *where)
  assert tar == ["tar", "-czf", "/tmp/prelm_jax-pod.tar.gz", "--exclude=./.venv",
                 "--exclude=./.git", "--exclude=./runs", "-C", str(REPO), "."]
  assert scp == [*vm, "scp", "/tmp/prelm_jax-pod.tar.gz", "pod:", *scope, "--worker=all"]
  assert ssh[:-1] == [*vm, "ssh", "pod", *scope, "--worker=all"]
  assert ssh[-1].startswith("--command=(command -v python3.11 || (sudo apt-get update")
  assert ssh[-1].endswith(" && tar -xzf prelm_jax-pod.tar.gz -C prelm_jax && cd prelm_jax"
                          " && python3.11 -m venv .venv && .venv/bin/pip install -q -e . "
                          "'jax[tpu]' -c constraints.txt")
  prelm = ["train", "--config", "bert_tiny_pydocs", "--workdir", "/mnt/shared/runs/a b",
           "--config.train.batch_size=512"]
  [run] = tpu_dry_run("run", *where, "--", *prelm)
  assert run[:-1] == [*vm, "ssh", "pod", *scope, "--worker=all"]
  # The remote shell gets the prelm arguments back unchanged, spaces and all.
  assert shlex.split(run[-1].removeprefix("--command=")) == [
      "cd", "prelm_jax", "&&", ".venv/bin/python", "-m", "prelm_jax.main", *prelm,
      "--distributed=on"]
  assert tpu_dry_run("delete", *where) == [[*vm, "delete", "pod", *scope, "--quiet"]]


def test_tpu_dry_run_multi_slice_uses_a_queued_resource():
  where = ["--name", "ms", "--zone", "us-east5-a", "--num-slices", "2"]
  qr = ["gcloud", "compute", "tpus", "queued-resources"]
  assert tpu_dry_run("create", *where, "--accelerator-type", "v5litepod-16", "--version",
                     "v2-alpha-tpuv5-lite") == [
      [*qr, "create", "ms", "--zone=us-east5-a", "--accelerator-type=v5litepod-16",
       "--runtime-version=v2-alpha-tpuv5-lite", "--node-count=2", "--node-prefix=ms"]]
  [run] = tpu_dry_run("run", *where, "--", "train", "--config", "bert_tiny_pydocs")
  assert run[:-1] == [*qr, "ssh", "ms", "--zone=us-east5-a", "--node=all", "--worker=all"]
  assert tpu_dry_run("delete", *where) == [
      [*qr, "delete", "ms", "--zone=us-east5-a", "--force", "--quiet"]]


def test_tpu_refuses_incomplete_commands():
  proc = subprocess.run([TPU_SH, "create", "--name", "pod", "--zone", "z", "--dry-run"],
                        capture_output=True, text=True)
  assert proc.returncode == 2 and "create needs --accelerator-type" in proc.stderr
  proc = subprocess.run([TPU_SH, "run", "--name", "pod", "--zone", "z", "--dry-run"],
                        capture_output=True, text=True)
  assert proc.returncode == 2 and "run needs the prelm arguments" in proc.stderr


# --- every launcher: --dry-run anywhere runs nothing ---------------------------------------

TPU_WHERE = ["--name", "dryrun", "--zone", "us-central2-b"]
PRELM = ["train", "--config", "bert_tiny_pydocs", "--workdir", "/shared/runs/a b"]
# Each launch: the arguments up to `--`, and those after it.
LAUNCHES = {
    "local": ([LOCAL_SH, "--processes", "2", "--devices-per-process", "4", "--port", "12355"],
              PRELM),
    "submit": ([SUBMIT_SH, "--nodes=2", "--time=1:00:00"], PRELM),
    "tpu_create": ([TPU_SH, "create", *TPU_WHERE, "--accelerator-type", "v4-32", "--version",
                    "tpu-ubuntu2204-base"], []),
    "tpu_setup": ([TPU_SH, "setup", *TPU_WHERE], []),
    "tpu_run": ([TPU_SH, "run", *TPU_WHERE], PRELM),
    "tpu_run_slices": ([TPU_SH, "run", *TPU_WHERE, "--num-slices", "2"], PRELM),
    "tpu_delete": ([TPU_SH, "delete", *TPU_WHERE], []),
}


@pytest.fixture
def fake_tools(tmp_path):
  """An environment whose gcloud, sbatch, tar and PRELM_PYTHON only record their argv.

  The fakes come first on PATH (the real gcloud or SLURM may be installed here).
  calls() is the recorded argv lists, each program by its base name.
  """
  bin_dir, record = tmp_path / "fake_bin", tmp_path / "calls.jsonl"
  bin_dir.mkdir()
  for tool in ("gcloud", "sbatch", "tar", "python"):
    fake = bin_dir / tool
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "  f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n")
    fake.chmod(0o755)

  def calls():
    lines = record.read_text().splitlines() if record.exists() else []
    return [json.loads(line) for line in lines]
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             PRELM_PYTHON=str(bin_dir / "python"))
  return types.SimpleNamespace(env=env, calls=calls)


def run_launcher(argv, env):
  return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_dry_run_before_or_after_the_dashes_runs_nothing(launch, fake_tools):
  """`--dry-run` after `--` is the launcher's (prelm has no such flag): same output."""
  before, after = LAUNCHES[launch]
  places = [[*before, "--dry-run", "--", *after], [*before, "--", *after, "--dry-run"],
            [*before, "--", "--dry-run", *after]]
  if before[0] == TPU_SH:  # also ahead of the command: tpu.sh --dry-run run ...
    places.append([TPU_SH, "--dry-run", *before[1:], "--", *after])
  printed = []
  for argv in places:
    proc = run_launcher(argv, fake_tools.env)
    assert proc.returncode == 0, proc.stderr
    printed.append(proc.stdout)
  assert printed[0].strip() and "--dry-run" not in printed[0]
  assert printed == [printed[0]] * len(places)
  assert fake_tools.calls() == []


@pytest.mark.parametrize("launch", ["submit", "tpu_setup", "tpu_run", "tpu_delete"])
def test_submit_and_tpu_without_dry_run_run_what_the_dry_run_prints(launch, fake_tools):
  """The check that the fakes record: a launcher that ran nothing would fail here."""
  before, after = LAUNCHES[launch]
  dry = run_launcher([*before, "--dry-run", "--", *after], fake_tools.env)
  assert dry.returncode == 0, dry.stderr
  proc = run_launcher([*before, "--", *after], fake_tools.env)
  assert proc.returncode == 0, proc.stderr
  assert fake_tools.calls() == [shlex.split(line) for line in dry.stdout.splitlines()]
  if launch == "submit":
    assert fake_tools.calls() == [["sbatch", "--nodes=2", "--time=1:00:00",
                                   str(REPO / "launch" / "slurm" / "train.sbatch"), *PRELM]]


@pytest.mark.parametrize("argv, option", [
    ([LOCAL_SH, "--dry-run", "--", "train", "--processes", "4"], "--processes"),
    ([LOCAL_SH, "--", "train", "--port=1234"], "--port"),
    ([SUBMIT_SH, "--dry-run", "--", "train", "--nodes=4"], "--nodes"),
    ([SUBMIT_SH, "--", "train", "--time", "1:00:00"], "--time"),
    ([TPU_SH, "run", "--name", "pod", "--dry-run", "--", "train", "--zone", "z"], "--zone"),
    ([TPU_SH, "run", *TPU_WHERE, "--", "train", "--num-slices=2"], "--num-slices"),
], ids=["local", "local_equals", "submit", "submit_no_dry_run", "tpu", "tpu_no_dry_run"])
def test_launcher_options_after_the_dashes_are_refused(argv, option, fake_tools):
  proc = run_launcher(argv, fake_tools.env)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.count("\n") == 1 and f"{option} goes before '--'" in proc.stderr
  assert fake_tools.calls() == []


@pytest.mark.parametrize("argv", [
    [LOCAL_SH, "--", "train", "--help"],
    [SUBMIT_SH, "--nodes=2", "--", "--help"],
    [TPU_SH, "run", *TPU_WHERE, "--", "train", "-h"],
], ids=["local", "submit", "tpu"])
def test_help_after_the_dashes_shows_the_usage_and_runs_nothing(argv, fake_tools):
  usage = run_launcher([argv[0], "--help"], fake_tools.env)
  proc = run_launcher(argv, fake_tools.env)
  assert proc.returncode == usage.returncode == 0 and "--dry-run" in usage.stdout
  assert proc.stdout == usage.stdout
  assert fake_tools.calls() == []


def path_of(tmp_path, tools):
  """A PATH holding only `tools` (links to the real ones): a machine without the rest."""
  bin_dir = tmp_path / "minimal_bin"
  bin_dir.mkdir()
  for tool in tools:
    (bin_dir / tool).symlink_to(shutil.which(tool))
  return str(bin_dir)


@pytest.mark.parametrize("launch, tool, hint", [
    ("submit", "sbatch", "no SLURM client"),
    ("tpu_setup", "gcloud", "Google Cloud SDK"),
    ("tpu_run", "gcloud", "Google Cloud SDK"),
])
def test_submit_and_tpu_without_sbatch_or_gcloud_say_so(launch, tool, hint, tmp_path):
  """One line and exit 2, not `exec: sbatch: not found` (127); a dry run needs neither."""
  before, after = LAUNCHES[launch]
  # What the launchers use besides bash builtins; no tar: setup must stop before it.
  env = dict(os.environ, PATH=path_of(tmp_path, ["bash", "dirname", "basename", "awk"]))
  proc = run_launcher([*before, "--", *after], env)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.count("\n") == 1
  assert f"{tool} not found" in proc.stderr and hint in proc.stderr, proc.stderr
  dry = run_launcher([*before, "--", *after, "--dry-run"], env)
  assert dry.returncode == 0 and dry.stdout.startswith(("sbatch ", "tar ", "gcloud ")), dry


# --- a one-node SLURM cluster -------------------------------------------------------------

def slurm_missing():
  """Why SLURM cannot run here, or None. Installing it is CI's job (.ci/run), not a test's."""
  if os.geteuid() != 0:
    return "the one-node SLURM cluster needs root (it starts munged and slurmd)"
  missing = [b for b in SLURM_PROGRAMS if not shutil.which(b)]
  if missing:
    return (f"SLURM is not installed (no {', '.join(missing)} on PATH); install "
            f"{' '.join(SLURM_PACKAGES)} as .ci/run does")
  return None


def test_slurm_missing_says_what_to_install_and_installs_nothing(monkeypatch):
  monkeypatch.setattr(os, "geteuid", lambda: 0)
  monkeypatch.setattr(shutil, "which", lambda b: None if b in ("slurmd", "munged") else b)
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
  assert slurm_missing() == ("SLURM is not installed (no slurmd, munged on PATH); install "
                             "slurmctld slurmd slurm-client munge as .ci/run does")


def slurm_conf(root, ctld_port, slurmd_port):
  """A one-node cluster on localhost, every path under `root`; ports chosen free."""
  return "\n".join([
      "ClusterName=prelmtest", "SlurmctldHost=localhost", f"SlurmctldPort={ctld_port}",
      f"SlurmdPort={slurmd_port}", "SlurmUser=root", "SlurmdUser=root",
      "AuthType=auth/munge", "CredType=cred/munge", "MpiDefault=none",
      "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
      "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
      "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
      "ReturnToService=2", f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
      f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
      f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
      f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN",
      "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


def munge_works():
  encoded = subprocess.run(["munge", "-n"], capture_output=True)
  return encoded.returncode == 0 and subprocess.run(
      ["unmunge"], input=encoded.stdout, capture_output=True).returncode == 0


@pytest.fixture
def slurm_cluster():
  """The environment for sbatch to reach a one-node SLURM cluster started here.

  Skips (fails under CI=true) when SLURM is not installed or this is not root. Stops
  every daemon it started afterwards.
  """
  reason = slurm_missing()
  if reason:
    if os.environ.get("CI") == "true":
      pytest.fail(f"CI must run the SLURM test: {reason}")
    pytest.skip(reason)
  root = pathlib.Path(tempfile.mkdtemp(prefix="slurm_"))
  daemons, munged_pid = [], None
  try:
    if not munge_works():
      os.makedirs("/run/munge", exist_ok=True)
      shutil.chown("/run/munge", "munge", "munge")
      subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
      munged_pid = int(pathlib.Path("/run/munge/munged.pid").read_text())
      assert munge_works()
    for sub in ("state", "spool"):
      (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, free_port(), free_port()))
    for cmd in (["slurmctld", "-D", "-f", conf], ["slurmd", "-D", "-N", "localhost", "-f", conf]):
      daemons.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    env = dict(os.environ, SLURM_CONF=str(conf))
    deadline = time.monotonic() + 60
    while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                       text=True, env=env).stdout:
      assert time.monotonic() < deadline, (root / "slurmctld.log").read_text()[-2000:]
      time.sleep(0.5)
    yield env
  finally:
    for daemon in daemons:
      daemon.terminate()
    for daemon in daemons:
      try:
        daemon.wait(timeout=20)
      except subprocess.TimeoutExpired:
        daemon.kill()
    if munged_pid:
      os.kill(munged_pid, 15)
    shutil.rmtree(root, ignore_errors=True)


def wait_for_job(job_id, env, timeout):
  """(JobState, ExitCode) once the job ends; polls faster than `sbatch --wait` does."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    show = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                          text=True, env=env, check=True).stdout
    fields = dict(f.split("=", 1) for f in show.split() if "=" in f)
    if fields["JobState"] not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
      return fields["JobState"], fields["ExitCode"]
    time.sleep(0.5)
  subprocess.run(["scancel", job_id], env=env, check=False)
  raise TimeoutError(f"SLURM job {job_id} still running after {timeout} s")


@pytest.mark.slow  # ~60 s on 2 cores: cluster start, two jax processes import and compile
def test_slurm_job_of_two_tasks_matches_one_process(pydocs_data_dir, micro_run_8dev,
                                                    slurm_cluster, tmp_path, read_metrics):
  workdir, log = tmp_path / "slurm_2x4", tmp_path / "job.out"
  env = dict(slurm_cluster, JAX_PLATFORMS="cpu", PRELM_PYTHON=sys.executable,
             XLA_FLAGS="--xla_force_host_platform_device_count=4",
             # Job ids restart at 1 in a fresh cluster: keep the coordinator port unique.
             JAX_COORDINATOR_PORT=str(free_port()))
  submitted = subprocess.run(
      [SUBMIT_SH, "--parsable", "--ntasks=2", "--ntasks-per-node=2", f"--output={log}",
       "--", *micro_args(pydocs_data_dir, workdir)],
      capture_output=True, text=True, env=env, timeout=60, check=True)
  state = wait_for_job(submitted.stdout.strip().split(";")[0], env, timeout=600)
  out = log.read_text() if log.exists() else ""
  assert state == ("COMPLETED", "0:0"), out[-4000:]
  # Both tasks joined through SLURM's environment (srun --label prefixes "<task>: ").
  assert "0: prelm: process 0 of 2, 4 local of 8 devices" in out, out[-4000:]
  assert "1: prelm: process 1 of 2, 4 local of 8 devices" in out, out[-4000:]
  assert_same_run(read_metrics, workdir, micro_run_8dev)
