"""Running a sweep's runs: local subprocesses, a SLURM job array, or TPU commands printed.

Each run is `prelm train --config BASE --workdir ROOT/<run> --config.k=v ...`; rerunning
it resumes from its checkpoint, so a sweep run again continues where it stopped.
"""
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

from prelm_jax.sweeps import layout

REPO = pathlib.Path(__file__).resolve().parents[2]
SWEEP_SBATCH = REPO / "launch" / "slurm" / "sweep.sbatch"
TPU_SH = REPO / "launch" / "tpu" / "tpu.sh"
PREEMPTED = 42
# How a local run starts `prelm`; tests put a stand-in here.
PRELM = [sys.executable, "-m", "prelm_jax.main"]


def prelm_args(sweep, run, root):
  """The `prelm` arguments of one run."""
  from prelm_jax.sweeps import spec  # pylint: disable=g-import-not-at-top
  return (["train", "--config", sweep.base, "--workdir", layout.run_dir(root, run.name)]
          + [f"--config.{k}={spec.format_value(v)}" for k, v in run.overrides.items()])


def run_local(sweep, runs, root, parallel, dry_run, say=print):
  """At most `parallel` runs at a time; {run name: exit code} of those started."""
  python = list(PRELM)
  if dry_run:
    for run in runs:
      say(shlex.join(python + prelm_args(sweep, run, root))
          + f" > {shlex.quote(layout.log_path(root, run.name))} 2>&1")
    return {}
  waiting, running, codes = list(runs), {}, {}
  try:
    while waiting or running:
      while waiting and len(running) < parallel:
        run = waiting.pop(0)
        log = open(layout.log_path(root, run.name), "a")
        say(f"prelm sweep: start {run.name} (log {layout.log_path(root, run.name)})")
        running[run.name] = (subprocess.Popen(python + prelm_args(sweep, run, root),
                                              stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL), log)
      for name, (process, log) in list(running.items()):
        if process.poll() is not None:
          log.close()
          codes[name] = process.returncode
          del running[name]
          say(f"prelm sweep: {name} exited {process.returncode}")
      time.sleep(0.2)
  except KeyboardInterrupt:
    # The terminal sent SIGINT to the runs too: let them save their checkpoints.
    for name, (process, log) in running.items():
      codes[name] = process.wait()
      log.close()
    raise
  return codes


def command_lines(sweep, runs, root):
  """DIR/commands.txt's lines: `LOG PRELM_ARGS...`; the array task i runs line i+1."""
  return [shlex.join([layout.log_path(root, run.name)] + prelm_args(sweep, run, root))
          for run in runs]


def slurm_command(commands, count, parallel, sbatch_args):
  limit = f"%{parallel}" if parallel else ""  # SLURM's cap on tasks running at once
  return (["sbatch", f"--array=0-{count - 1}{limit}", "--parsable", *sbatch_args,
           str(SWEEP_SBATCH), commands])


def run_slurm(sweep, runs, root, parallel, sbatch_args, dry_run, say=print):
  """Submits one job array; returns the job id (None for a dry run)."""
  commands = os.path.join(root, layout.COMMANDS_FILE)
  lines = command_lines(sweep, runs, root)
  cmd = slurm_command(commands, len(runs), parallel, sbatch_args)
  if dry_run:
    say(shlex.join(cmd))
    say(f"{commands} would hold:")
    for line in lines:
      say(f"  {line}")
    return None
  from prelm_jax.sweeps import spec  # pylint: disable=g-import-not-at-top
  if not shutil.which("sbatch"):
    raise spec.SweepError("sbatch not found: this machine has no SLURM client; submit from "
                          "a SLURM login node, or add --dry-run to see the commands")
  with open(commands, "w") as f:
    f.write("".join(line + "\n" for line in lines))
  env = dict(os.environ)
  env.setdefault("PRELM_PYTHON", sys.executable)
  submitted = subprocess.run(cmd, capture_output=True, text=True, env=env)
  if submitted.returncode != 0:
    raise spec.SweepError(f"sbatch failed ({submitted.returncode}): "
                          + " ".join(submitted.stderr.split()))
  job = submitted.stdout.strip().split(";")[0]
  say(f"prelm sweep: submitted job array {job} of {len(runs)} runs; logs {root}/<run>.log; "
      f"then: prelm report {root}")
  return job


def print_tpu(sweep, runs, root, say=print):
  """One tpu.sh command per run, in turn on one pod slice (TPU_NAME, TPU_ZONE)."""
  for run in runs:
    say(shlex.join([str(TPU_SH), "run", "--name", "$TPU_NAME", "--zone", "$TPU_ZONE",
                    "--", *prelm_args(sweep, run, root)]).replace("'$TPU_NAME'", "$TPU_NAME")
        .replace("'$TPU_ZONE'", "$TPU_ZONE"))
