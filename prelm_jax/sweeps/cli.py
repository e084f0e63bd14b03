"""`prelm sweep` and `prelm report`: argparse here, so main.py only hands them over.

  prelm sweep NAME --root DIR [--executor local|slurm|tpu] [--parallel N] [--dry-run]
      [--sbatch=OPTION ...] [--config.a.b=v ...]
  prelm report DIR
"""
import argparse

from prelm_jax import errors
from prelm_jax.sweeps import executors
from prelm_jax.sweeps import layout
from prelm_jax.sweeps import spec

COMMANDS = ("sweep", "report")


def parse_overrides(args):
  """['--config.a.b=v', ...] -> {'a.b': 'v'}; anything else is an error."""
  overrides = {}
  for arg in args:
    key, sep, value = arg.removeprefix("--config.").partition("=")
    if not arg.startswith("--config.") or not sep:
      raise spec.SweepError(f"unexpected argument {arg!r}; overrides are --config.a.b=value")
    overrides[key] = value
  return overrides


def sweep_parser():
  parser = argparse.ArgumentParser(prog="prelm sweep", description="Run every run of "
                                   "experiments/sweeps/NAME.py under DIR.")
  parser.add_argument("name", help="a sweep name (experiments/sweeps/<name>.py) or path")
  parser.add_argument("--root", required=True, help="the sweep's directory")
  parser.add_argument("--executor", choices=("local", "slurm", "tpu"), default="local")
  parser.add_argument("--parallel", type=int, default=None,
                      help="runs at a time (local: default 1; slurm: default no limit)")
  parser.add_argument("--dry-run", action="store_true", help="print the commands only")
  parser.add_argument("--sbatch", action="append", default=[],
                      help="slurm: an sbatch option, e.g. --sbatch=--time=2:00:00")
  return parser


def sweep(argv, say=print):
  """Returns the exit code: 0 when every run is complete (or submitted, or printed)."""
  args, rest = sweep_parser().parse_known_args(argv)
  if args.parallel is not None and args.parallel < 1:
    raise spec.SweepError(f"--parallel must be at least 1, got {args.parallel}")
  extra = parse_overrides(rest)
  plan = spec.expand(args.name, extra)
  varied = set(extra) & {k for r in plan.runs for k, v in r.overrides.items()
                         if any(o.overrides.get(k) != v for o in plan.runs)}
  if varied:
    raise spec.SweepError(f"--config.{sorted(varied)[0]} is what sweep {plan.name} varies; "
                          "an override applies to every run")
  root = args.root
  if not args.dry_run:
    layout.write_sweep_file(root, plan, extra)
  elif (saved := layout.read_sweep_file(root)) and saved.get("sweep") != plan.name:
    layout.write_sweep_file(root, plan, extra)  # raises: another sweep's root
  todo = [r for r in plan.runs if not layout.is_complete(root, r.name)]
  done = len(plan.runs) - len(todo)
  say(f"prelm sweep: {plan.name}: {len(plan.runs)} runs of {plan.base} under {root}; "
      f"{done} complete already, {len(todo)} to run")
  if not todo:
    return 0
  if args.executor == "tpu":
    executors.print_tpu(plan, todo, root, say)
    return 0
  if args.executor == "slurm":
    executors.run_slurm(plan, todo, root, args.parallel, args.sbatch, args.dry_run, say)
    return 0
  codes = executors.run_local(plan, todo, root, args.parallel or 1, args.dry_run, say)
  if args.dry_run:
    return 0
  failed = {n: c for n, c in codes.items() if c != 0}
  say(f"prelm sweep: {len(codes) - len(failed)} of {len(codes)} runs finished"
      + (", failed:" if failed else ""))
  for name, code in failed.items():
    why = "preempted: run the sweep again to resume" if code == executors.PREEMPTED else ""
    say(f"  {name}: exit {code}{' (' + why + ')' if why else ''}, "
        f"log {layout.log_path(root, name)}")
  return 1 if failed else 0


def report(argv, say=print):
  parser = argparse.ArgumentParser(prog="prelm report",
                                   description="Table and learning curves of a sweep's runs.")
  parser.add_argument("root")
  args = parser.parse_args(argv)
  from prelm_jax.sweeps import report as report_lib  # pylint: disable=g-import-not-at-top
  say(report_lib.write_report(args.root))
  return 0


def main(argv):
  """argv after the program name; exit code. One-line errors as `prelm: error: ...`."""
  import sys  # pylint: disable=g-import-not-at-top
  command, rest = argv[0], argv[1:]
  try:
    return sweep(rest) if command == "sweep" else report(rest)
  except errors.PrelmError as e:
    print(f"prelm: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("prelm: interrupted: run the same command again to resume", file=sys.stderr)
    return 130
