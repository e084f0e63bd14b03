"""<workdir>/provenance.json: what started each run of a workdir, so results can be traced.

One record per start of `prelm train` (a list, appended on every start and resume):
when, the command line and its working directory, the step it resumed from, the git
commit of the code with a dirty flag, and the versions of Python and the libraries that
decide the numbers. Process 0 appends it once the state is created or restored
(train.run): a start refused at the door or by the restore leaves the workdir as it was.

git: the repository holding this prelm_jax, if its files are tracked there (an installed
copy is not: null). dirty: tracked files differ from the commit, as `git describe
--dirty` says; untracked files do not count.
"""
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys

from prelm_jax import jsonio

PROVENANCE_FILE = "provenance.json"
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections")
_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


def _git(*args):
  """git's stdout in prelm_jax's folder, or None (no git, not a repository, a timeout)."""
  try:
    proc = subprocess.run(["git", "-C", str(_PACKAGE_DIR), *args], capture_output=True,
                          text=True, timeout=10, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return proc.stdout if proc.returncode == 0 else None


def git_state():
  """{"commit": sha, "dirty": bool}, or None when this code is not in a git checkout."""
  if _git("ls-files", "--error-unmatch", pathlib.Path(__file__).name) is None:
    return None  # e.g. installed into site-packages (inside some other repository)
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--untracked-files=no")
  if commit is None or status is None:
    return None
  return {"commit": commit.strip(), "dirty": bool(status.strip())}


def versions():
  """Python's and each library's version (None: not installed)."""
  found = {"python": platform.python_version()}
  for name in LIBRARIES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = None
  return found


def record(resumed_from_step):
  """This start's record. resumed_from_step: the checkpoint it continues, None if new."""
  import jax  # pylint: disable=g-import-not-at-top
  return {
      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "argv": list(sys.argv),
      "cwd": os.getcwd(),
      "host": socket.gethostname(),
      "processes": jax.process_count(),
      "devices": f"{jax.device_count()} {jax.devices()[0].platform}",
      "resumed_from_step": resumed_from_step,
      "git": git_state(),
      "versions": versions(),
  }


def read(path):
  """The records in provenance file `path`: [] if there is none, None if unreadable."""
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      records = json.load(f)
  except (OSError, ValueError):
    return None
  return records if isinstance(records, list) else None


def append(path, resumed_from_step):
  """Adds this start's record to provenance file `path` (created if missing).

  A file that is not a list of records (edited by hand, cut short) is kept as
  `path`.unreadable, and a new list starts: provenance never stops a run.
  """
  records = read(path)
  if records is None:
    os.replace(path, f"{path}.unreadable")
    records = []
  jsonio.write_json(path, records + [record(resumed_from_step)])
