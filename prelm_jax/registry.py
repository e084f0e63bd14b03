"""Experiment names: `bert_tiny_pydocs` is experiments/bert_tiny_pydocs.py, nothing else.

No import side effects and no second list to keep in sync: the folder is the registry.

Experiment files import each other as `from experiments import base`. `experiments` is
not an installed top-level package (a wheel ships the folder as prelm_jax/experiments),
so that name is bound only while a config file loads (`sibling_imports`), to the file's
own folder first: an edited checkout's base.py is the one its experiments get, whatever
copy is installed or on sys.path.
"""
import contextlib
import difflib
import importlib.machinery
import importlib.util
import os
import pathlib
import sys
import traceback
import types

PACKAGE = "experiments"


def _experiments_dir():
  """The installed copy (prelm_jax/experiments in a wheel), else the checkout's folder."""
  here = pathlib.Path(__file__).resolve().parent
  installed = here / PACKAGE
  return installed if installed.is_dir() else here.parent / PACKAGE


EXPERIMENTS_DIR = _experiments_dir()


def names():
  return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py")
                if not p.stem.startswith("_"))


def resolve(config_arg):
  """'name[:arg]' or a path 'x.py[:arg]' -> a path config_flags can load."""
  spec, sep, arg = config_arg.partition(":")
  if spec.endswith(".py") or os.sep in spec:
    return config_arg
  if spec not in names():
    close = difflib.get_close_matches(spec, names(), n=3)
    suggestion = " or ".join(filter(None, [", ".join(close[:-1]), close[-1]])) if close else ""
    known = (f"did you mean {suggestion}? (`prelm list` shows every one" if close
             else f"known: {', '.join(names())} (")
    raise ValueError(f"unknown experiment {spec!r}; {known}; or pass a path to a "
                     "config file)")
  return str(EXPERIMENTS_DIR / f"{spec}.py") + sep + arg


def check_exists(path):
  """Refuses a config path (no `:arg`) that is not a file, before anything loads it."""
  if not os.path.isfile(path):
    raise ValueError(f"config file {path} does not exist; pass a path to a .py file or "
                     f"an experiment name ({', '.join(names())})")


def load_error(path, error):
  """One line for `error` when loading config file `path` raised it, else None.

  Covers a syntax error, an exception raised in get_config (or at import time) and a
  file without get_config. The line named is the deepest one in `path` itself, so a
  mistake in a helper module still points at the config line that called it.
  ml_collections and absl wrap some errors (a ValueError becomes a flags error about a
  ValueError whose message is a traceback), so the whole chain is searched.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    line = _line_in_file(path, error)
    if line is not None:
      return f"config file {path}, line {line}: {type(error).__name__}: {_message(error, path)}"
    if (isinstance(error, AttributeError) and error.name == "get_config"
        and isinstance(error.obj, types.ModuleType)
        and _same_file(getattr(error.obj, "__file__", None), path)):
      return (f"config file {path} has no get_config(); it must define "
              "get_config(arg=None) returning a ConfigDict, see experiments/base.py")
    error = error.__cause__ or error.__context__
  return None


def _line_in_file(path, error):
  if isinstance(error, SyntaxError) and _same_file(error.filename, path):
    return error.lineno
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if _same_file(f.filename, path)]
  return frames[-1].lineno if frames else None


def _same_file(a, b):
  return a is not None and os.path.realpath(a) == os.path.realpath(b)


def _message(error, path):
  text = str(error)
  if isinstance(error, SyntaxError):  # str() adds "(file, line n)"; say it only if elsewhere
    text = error.msg
    if not _same_file(error.filename, path):
      text += f" in {error.filename}, line {error.lineno}"
  return " ".join(text.split()) or "(no message)"


def _own_modules(name):
  return [k for k in sys.modules if k == name or k.startswith(name + ".")]


@contextlib.contextmanager
def sibling_imports(path):
  """While config file `path` loads: `experiments.*` is its own folder, then EXPERIMENTS_DIR.

  sys.modules' `experiments` entries (a test's `from experiments import base`, another
  copy on sys.path) are set aside and put back after, so loading one file changes
  nothing for the next. A no-op without a path.
  """
  if not path:
    yield
    return
  folder = str(pathlib.Path(path).resolve().parent)
  saved = {k: sys.modules.pop(k) for k in _own_modules(PACKAGE)}
  spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
  spec.submodule_search_locations = list(dict.fromkeys([folder, str(EXPERIMENTS_DIR)]))
  sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
  try:
    yield
  finally:
    for k in _own_modules(PACKAGE):
      del sys.modules[k]
    sys.modules.update(saved)


def load(config_arg):
  """The ConfigDict of 'name[:arg]' or 'path.py[:arg]', e.g. in a notebook."""
  path, _, arg = resolve(config_arg).partition(":")
  spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  with sibling_imports(path):
    spec.loader.exec_module(module)
    return module.get_config(arg or None)
