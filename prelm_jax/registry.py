"""Experiment names: `bert_tiny_pydocs` is experiments/bert_tiny_pydocs.py, nothing else.

No import side effects and no second list to keep in sync: the folder is the registry.
"""
import importlib.util
import os
import pathlib

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def names():
  return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py")
                if not p.stem.startswith("_"))


def resolve(config_arg):
  """'name[:arg]' or a path 'x.py[:arg]' -> a path config_flags can load."""
  spec, sep, arg = config_arg.partition(":")
  if spec.endswith(".py") or os.sep in spec:
    return config_arg
  if spec not in names():
    raise ValueError(f"unknown experiment {spec!r}; known: {', '.join(names())} "
                     f"(or pass a path to a config file)")
  return str(EXPERIMENTS_DIR / f"{spec}.py") + sep + arg


def load(config_arg):
  """The ConfigDict of 'name[:arg]' or 'path.py[:arg]', e.g. in a notebook."""
  path, _, arg = resolve(config_arg).partition(":")
  spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg or None)
