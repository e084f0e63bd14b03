"""The files of a sweep root: DIR/sweep.json, DIR/<run>/ (a workdir), DIR/<run>.log."""
import json
import os

from prelm_jax import workdir as workdir_lib
from prelm_jax.sweeps import spec

SWEEP_FILE = "sweep.json"
COMMANDS_FILE = "commands.txt"   # the SLURM array's runs, one a line
REPORT_FILE = "report.csv"


def run_dir(root, name):
  return os.path.join(root, name)


def log_path(root, name):
  # Beside the workdir, not in it: a run that fails at the door leaves no workdir behind.
  return os.path.join(root, f"{name}.log")


def is_complete(root, name):
  return os.path.exists(os.path.join(run_dir(root, name), workdir_lib.FINAL_METRICS_FILE))


def read_sweep_file(root):
  path = os.path.join(root, SWEEP_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_sweep_file(root, sweep, extra_overrides):
  """DIR/sweep.json; refuses a root that holds another sweep's runs."""
  saved = read_sweep_file(root)
  if saved is not None and saved.get("sweep") != sweep.name:
    raise spec.SweepError(
        f"{root} holds runs of sweep {saved.get('sweep')!r}, not {sweep.name!r}; "
        "pass another --root")
  os.makedirs(root, exist_ok=True)
  record = {"sweep": sweep.name, "base": sweep.base, "overrides": extra_overrides,
            "runs": [{"name": r.name, "overrides": r.overrides} for r in sweep.runs]}
  tmp = os.path.join(root, SWEEP_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(record, f, indent=2)
  os.replace(tmp, os.path.join(root, SWEEP_FILE))
