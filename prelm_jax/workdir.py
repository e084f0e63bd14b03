"""The run directory: checked before any expensive work, and guarded against mix-ups.

A workdir belongs to one model and one data set-up. Starting again with the same
workdir resumes; starting with a different model or data config would silently continue
someone else's run, so it is refused unless asked for. Step budgets, logging cadence,
optimiser settings and paths may change between restarts.
"""
import json
import os
import socket

from prelm_jax import errors

from prelm_jax import metrics

CONFIG_FILE = "config.json"
# Sections whose change makes a checkpoint mean something else.
GUARDED_SECTIONS = ("model", "data")
# ... except these keys, which only say where things are.
UNGUARDED_KEYS = ("data.tfds_data_dir",)


class WorkdirError(errors.PrelmError):
  """A workdir that cannot be used as asked."""


def prepare(workdir):
  """Creates `workdir` and checks it is writable; returns its absolute path."""
  if not workdir or not str(workdir).strip():
    raise WorkdirError("--workdir is empty; pass a directory, e.g. --workdir runs/my_run")
  path = os.path.abspath(os.path.expanduser(workdir))
  try:
    os.makedirs(path, exist_ok=True)
    # One probe per process: the processes of a multi-host run share the workdir.
    probe = os.path.join(path, f".write_test.{socket.gethostname()}.{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"workdir {path} is not writable ({e.strerror or e}); "
                       "choose a directory you can write to") from None
  return path


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_differences(saved, new):
  """['model.hidden_size: 128 -> 256', ...] over the guarded sections."""
  old = {k: v for k, v in _flatten(saved).items() if k.split(".")[0] in GUARDED_SECTIONS}
  cur = {k: v for k, v in _flatten(new).items() if k.split(".")[0] in GUARDED_SECTIONS}
  diffs = []
  for key in sorted(set(old) | set(cur)):
    if key in UNGUARDED_KEYS:
      continue
    missing = "<unset>"
    if old.get(key, missing) != cur.get(key, missing):
      diffs.append(f"{key}: {old.get(key, missing)!r} -> {cur.get(key, missing)!r}")
  return diffs


def check_and_save_config(workdir, config_dict, *, allow_config_change=False, write=True):
  """Refuses a workdir written with other model/data settings, then saves the config."""
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    try:
      with open(path) as f:
        saved = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise WorkdirError(f"{path} is unreadable ({e}); move it away or use a new --workdir") from None
    diffs = config_differences(saved, config_dict)
    if diffs and not allow_config_change:
      raise WorkdirError(
          f"workdir {workdir} holds a run with other model/data settings ("
          + "; ".join(diffs) + "); use a new --workdir, or pass --allow_config_change "
          "to resume it anyway")
  if write:
    metrics.write_json(path, config_dict)
