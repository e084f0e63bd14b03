"""JSON files of a run written atomically: a reader (or a crash) never sees half of one.

Its own module so that workdir.py, metrics.py and the checkpoint code can all write
JSON without importing each other.
"""
import json
import os


def text(obj):
  """`obj` as a run's JSON files hold it: indented, keys sorted, a final newline."""
  return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path, obj):
  """Writes text(obj) to `path` through a rename."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text(obj))
  os.replace(tmp, path)
