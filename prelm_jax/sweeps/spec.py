"""A sweep file and its runs: experiments/sweeps/<name>.py -> named override sets.

A sweep file defines get_sweep() returning a dict:
  base       the experiment every run starts from (a name or a path)
  grid       {key: [values]}: every combination (a product)
  zip        {key: [values]} of equal lengths: the i-th values go together
  cases      {label: {key: value}}: named alternatives (e.g. model sizes)
  seeds      [seeds]: each run once per seed, as --config.seed=
  overrides  {key: value}: the same for every run
grid, zip, cases and seeds multiply. A run's name comes from what varies, so it is
readable and the same on every expansion: `encoder-lstm_seed-1`.
"""
import dataclasses
import difflib
import importlib.util
import itertools
import os
import pathlib
import re

from prelm_jax import errors
from prelm_jax import registry

SWEEPS_DIR = registry.EXPERIMENTS_DIR / "sweeps"
FIELDS = ("base", "grid", "zip", "cases", "seeds", "overrides")


class SweepError(errors.PrelmError):
  """A sweep that cannot be expanded or run as asked."""


@dataclasses.dataclass(frozen=True)
class Run:
  name: str          # also its workdir under the sweep root
  overrides: dict    # key -> value: every --config. override of this run, in order


@dataclasses.dataclass(frozen=True)
class Sweep:
  name: str
  base: str
  runs: tuple


def names():
  return sorted(p.stem for p in SWEEPS_DIR.glob("*.py") if not p.stem.startswith("_"))


def path_of(name):
  """experiments/sweeps/<name>.py, or `name` itself when it is a .py path."""
  if name.endswith(".py") or os.sep in name:
    if not os.path.isfile(name):
      raise SweepError(f"sweep file {name} does not exist")
    return pathlib.Path(name)
  if name not in names():
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise SweepError(f"unknown sweep {name!r}; {hint}known: {', '.join(names())} "
                     f"(experiments/sweeps/<name>.py, or pass a path)")
  return SWEEPS_DIR / f"{name}.py"


def read_file(name):
  """The dict get_sweep() returns, checked for its fields."""
  path = path_of(name)
  spec = importlib.util.spec_from_file_location(f"sweep_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise SweepError(f"sweep file {path} has no get_sweep(); see experiments/sweeps/")
  fields = module.get_sweep()
  unknown = sorted(set(fields) - set(FIELDS))
  if unknown or "base" not in fields:
    raise SweepError(f"sweep file {path}: get_sweep() must return base and any of "
                     f"{', '.join(FIELDS[1:])}; got {', '.join(sorted(fields))}")
  return fields


def expand(name, extra_overrides=None, *, check=True):
  """The Sweep of file `name`; extra_overrides ({key: value}) apply to every run.

  check=False skips loading the base experiment to check the override keys.
  """
  fields = read_file(name)
  grid, zipped = fields.get("grid") or {}, fields.get("zip") or {}
  cases, seeds = fields.get("cases") or {}, list(fields.get("seeds") or [])
  fixed = dict(fields.get("overrides") or {}, **(extra_overrides or {}))
  lengths = {len(v) for v in zipped.values()}
  if len(lengths) > 1:
    raise SweepError(f"sweep {name}: the zip lists differ in length "
                     f"({', '.join(f'{k}: {len(v)}' for k, v in zipped.items())})")
  zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
  case_rows = list(cases.items()) or [(None, {})]
  grid_rows = [dict(zip(grid, row)) for row in itertools.product(*grid.values())]
  seed_rows = [{"seed": s} for s in seeds] or [{}]
  varying = list(grid) + list(zipped) + (["seed"] if seeds else [])
  runs = []
  for (label, case), zip_row, grid_row, seed_row in itertools.product(
      case_rows, zip_rows, grid_rows, seed_rows):
    chosen = {**zip_row, **grid_row, **seed_row}
    overrides = {**fixed, **case, **chosen}
    runs.append(Run(run_name(label, chosen, varying), overrides))
  if not runs:
    empty = [k for k, v in {**grid, **zipped}.items() if not v]
    raise SweepError(f"sweep {name} expands to no runs"
                     + (f": empty list for {', '.join(empty)}" if empty else ""))
  if check:
    check_keys(fields["base"], {k for r in runs for k in r.overrides}, name)
  taken = [r.name for r in runs]
  if len(set(taken)) != len(taken):
    raise SweepError(f"sweep {name}: two runs would share a name "
                     f"({next(n for n in taken if taken.count(n) > 1)}); vary fewer keys")
  return Sweep(path_of(name).stem, fields["base"], tuple(runs))


def run_name(label, chosen, varying):
  """`encoder-lstm_seed-1`: the case label, then key-value of each varied key.

  A key is shortened to its last part unless two varied keys share that part.
  """
  last = [k.rsplit(".", 1)[-1] for k in varying]
  parts = [label] if label is not None else []
  for key, short in zip(varying, last):
    if key in chosen:
      shown = short if last.count(short) == 1 else key
      parts.append(f"{shown}-{format_value(chosen[key])}")
  return safe("_".join(parts) or "run")


def safe(text):
  """Letters, digits, '.', '-' and '_' only: a directory name on every filesystem."""
  return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


def format_value(value):
  """The value as `--config.k=` takes it (and as a name shows it)."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (tuple, list)):
    return ",".join(map(str, value))
  return str(value)


def check_keys(base, keys, sweep_name):
  """Each override key exists in the base experiment's config."""
  try:
    config = registry.load(base)
  except ValueError as e:
    raise SweepError(f"sweep {sweep_name}: base experiment: {e}") from e
  for key in sorted(keys):
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
      if not hasattr(node, "keys") or part not in node.keys():
        there = list(node.keys()) if hasattr(node, "keys") else []
        close = difflib.get_close_matches(part, there, n=1)
        hint = f" (did you mean {'.'.join(parts[:i] + close)}?)" if close else ""
        raise SweepError(f"sweep {sweep_name}: override key {key} does not exist in "
                         f"experiment {base}{hint}; experiments/base.py lists every key")
      node = node[part]
