"""The run directory: inspected before anything is written, guarded against mix-ups.

A workdir belongs to one model and one data set-up. Starting again with the same
workdir resumes; starting with a different model or data config would silently continue
someone else's run, so it is refused unless asked for. Step budgets, logging cadence,
optimiser settings and paths may change between restarts.

The life of a workdir, as train.run drives it:
  inspect()     read-only: what is there (checkpoints, config.json, vocab.txt)
  check_config  the saved config against the new one (only checkpoints make it binding)
  create()      after every check passed: the directory, then config.json for a new run
  replace_config_after_first_save()  a resumed run with another config: config.json
                keeps describing the old checkpoints until the new run saved one
So a run that fails at the door leaves the filesystem as it was, and a failed first
start (no checkpoints) never blocks the corrected command.
"""
import dataclasses
import functools
import json
import os
import socket

from prelm_jax import errors
from prelm_jax import jsonio

# The file names of a workdir, defined once.
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
CHECKPOINTS_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
FINAL_METRICS_FILE = "final_metrics.json"
TENSORBOARD_DIR = "tensorboard"
# Fine-tuning runs also keep:
LABELS_FILE = "labels.txt"  # the label list, one per line: a label's line is its id
PREDICTIONS_FILE = "predictions_dev.tsv"  # the final dev predictions, for a person
TEST_PREDICTIONS_FILE = "predictions_test.tsv"  # data.test_path's, by the best params
BEST_DIR = "best"  # the params of the best evaluation by the task's metric
# Sections whose change makes a checkpoint mean something else.
GUARDED_SECTIONS = ("task", "model", "data")
# ... except these keys, which only say where things are or how fast they are made
# (the batches are the same whatever their values).
UNGUARDED_KEYS = ("data.tfds_data_dir", "data.prepared_dir", "data.prepare_workers",
                  "data.prepare_unit_docs", "data.prepare_unit_bytes",
                  "data.input_threads", "data.vocab_sample_bytes")
# What a config saved before a key existed meant by leaving it out, where that is not
# the key's default in experiments/base.py (a missing key otherwise means the default).
IMPLIED_WHEN_ABSENT = {"model.vocab_pad_multiple": 1}


class WorkdirError(errors.PrelmError):
  """A workdir that cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class Workdir:
  """What a workdir held when the run started (see inspect)."""
  path: str
  exists: bool
  checkpoint_steps: tuple    # complete checkpoints (orbax renames them when done)
  saved_config: dict | None  # config.json, if there is one

  def file(self, name):
    return os.path.join(self.path, name)

  @property
  def has_checkpoints(self):
    return bool(self.checkpoint_steps)


def _first_existing_parent(path):
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return path


def checkpoint_steps(path):
  """The complete checkpoints' steps in workdir `path`, sorted; () if none."""
  checkpoints = os.path.join(path, CHECKPOINTS_DIR)
  if not os.path.isdir(checkpoints):
    return ()
  return tuple(sorted(int(n) for n in os.listdir(checkpoints) if n.isdigit()))


def inspect(workdir):
  """Looks at `workdir` without changing anything.

  Raises:
    WorkdirError: an empty path, a path that is a file, a directory that cannot be
      written or created, or an unreadable config.json.
  """
  if not workdir or not str(workdir).strip():
    raise WorkdirError("--workdir is empty; pass a directory, e.g. --workdir runs/my_run")
  path = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"--workdir {path} is an existing file, not a directory; pass a "
                       "directory path (a new one is created)")
  parent = _first_existing_parent(path)
  if not os.path.isdir(parent):
    raise WorkdirError(f"workdir {path} is not writable: {parent} is a file, not a "
                       "directory; choose another --workdir")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise WorkdirError(f"workdir {path} is not writable (no write permission on "
                       f"{parent}); choose a directory you can write to")
  exists = os.path.isdir(path)
  steps = checkpoint_steps(path)
  saved = None
  config_path = os.path.join(path, CONFIG_FILE)
  if os.path.exists(config_path):
    try:
      with open(config_path) as f:
        saved = json.load(f)
    except (OSError, ValueError) as e:
      raise WorkdirError(f"{config_path} is unreadable ({e}); move it away or use a new "
                         "--workdir") from None
  return Workdir(path, exists, steps, saved)


def create(wd):
  """Creates the directory (if needed) and checks that this process can write there."""
  try:
    os.makedirs(wd.path, exist_ok=True)
    # One probe per process: the processes of a multi-host run share the workdir.
    probe = wd.file(f".write_test.{socket.gethostname()}.{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"workdir {wd.path} is not writable ({e.strerror or e}); "
                       "choose a directory you can write to") from None


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_differences(saved, new, sections=GUARDED_SECTIONS):
  """['model.hidden_size: 128 -> 256', ...] over `sections` (all of them if None)."""
  def keep(key):
    return (sections is None or key.split(".")[0] in sections) and key not in UNGUARDED_KEYS
  implied = {**_base_defaults(), **IMPLIED_WHEN_ABSENT}
  old = {k: v for k, v in {**implied, **_flatten(saved)}.items() if keep(k)}
  cur = {k: v for k, v in {**implied, **_flatten(new)}.items() if keep(k)}
  missing = "<unset>"
  return [f"{key}: {old.get(key, missing)!r} -> {cur.get(key, missing)!r}"
          for key in sorted(set(old) | set(cur))
          if old.get(key, missing) != cur.get(key, missing)]


@functools.cache
def _base_defaults():
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  return _flatten(_json_roundtrip(registry.load("base").to_dict()))


def check_config(wd, config_dict, *, allow_config_change=False):
  """Refuses a workdir whose checkpoints were trained with other model/data settings.

  A config.json without checkpoints (a start that failed before its first save)
  describes nothing and is replaced by the new run.
  """
  if not wd.has_checkpoints or wd.saved_config is None:
    return
  diffs = config_differences(wd.saved_config, _json_roundtrip(config_dict))
  if diffs and not allow_config_change:
    raise WorkdirError(
        f"workdir {wd.path} holds a run with other model/data settings ("
        + "; ".join(diffs) + "); use a new --workdir, or pass --allow_config_change "
        "to resume it anyway")


def _json_roundtrip(config_dict):
  """The config as config.json holds it (tuples become lists)."""
  return json.loads(json.dumps(config_dict))


def vocab_belongs_to_run(wd, config_dict):
  """Whether an existing vocab.txt is this run's and must be reused.

  It is when checkpoints were trained with it, when no config.json says otherwise (a
  vocabulary put there by hand), or when config.json has the same data settings (a
  start that failed after writing it). A vocab.txt of a failed start with other data
  settings is not: the run trains and writes its own.
  """
  if not os.path.exists(wd.file(VOCAB_FILE)):
    return False
  saved = _read_config(wd)
  if wd.has_checkpoints or saved is None:
    return True
  return not config_differences(saved, _json_roundtrip(config_dict), sections=("data",))


def _read_config(wd):
  """config.json as it is now (another process may have written it since inspect)."""
  try:
    with open(wd.file(CONFIG_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def save_config_if_new(wd, config_dict):
  """Writes config.json for a run without checkpoints; a resumed run keeps the old one
  until replace_config_after_first_save."""
  if not wd.has_checkpoints or wd.saved_config is None:
    jsonio.write_json(wd.file(CONFIG_FILE), config_dict)


def replace_config_after_first_save(wd, config_dict, restored_step):
  """After the resumed run's first checkpoint is complete: config.json describes it.

  If the saved config differs in any key, it is kept as config.until_step_<r>.json
  (r: the step the run resumed from), so the older checkpoints stay described too.

  Returns:
    The name the old config was kept under, or None if nothing changed.
  """
  if not wd.has_checkpoints or wd.saved_config is None:
    return None
  new = _json_roundtrip(config_dict)
  if not config_differences(wd.saved_config, new, sections=None):
    return None
  kept = f"config.until_step_{restored_step}.json"
  jsonio.write_json(wd.file(kept), wd.saved_config)
  jsonio.write_json(wd.file(CONFIG_FILE), new)
  return kept
