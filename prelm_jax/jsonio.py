"""JSON files of a run written atomically: a reader (or a crash) never sees half of one.

Its own module so that workdir.py, metrics.py and the checkpoint code can all write
JSON without importing each other.
"""
import json
import os


def write_json(path, obj):
  """Writes `obj` to `path` as indented JSON with sorted keys, through a rename."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)
