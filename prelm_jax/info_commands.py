"""`prelm list` and `prelm show NAME`: what experiments there are, and what one becomes.

  prelm list                                   # every experiment (and sweep): its summary
  prelm show bert_mini [--config.a.b=v ...]    # the config a run would save, its params

`list` reads each file's docstring without running it (ast), so a broken experiment
still shows up. `show` loads the config as `prelm train` does (same override parsing,
main.py), adopts a fine-tuning run's init_from architecture and validates every value
as train.run does before anything is written, except what depends on the devices of the
run (the mesh: `prelm plan` checks that for a device count); then it prints the JSON a
workdir's config.json would hold and, last, `params: N`, counted from shapes alone.
"""
import ast
import pathlib

from prelm_jax import errors
from prelm_jax import registry

COMMANDS = ("list", "show")
# Where `prelm sweep` definitions live, once there are any: listed after the experiments.
SWEEPS_DIR = registry.EXPERIMENTS_DIR / "sweeps"


def with_config_flag(argv):
  """argv (program name first) with `show NAME` made `show --config NAME`: absl knows the
  --config.a.b override flags only from a --config flag."""
  argv = list(argv)
  named = any(a == "--config" or a.startswith("--config=") for a in argv)
  if argv[1:2] == ["show"] and len(argv) > 2 and not argv[2].startswith("-") and not named:
    return argv[:2] + ["--config", argv[2]] + argv[3:]
  return argv


def summary(path):
  """The first line of a Python file's docstring ("" if it has none or does not parse)."""
  try:
    doc = ast.get_docstring(ast.parse(pathlib.Path(path).read_text(encoding="utf-8")))
  except (OSError, SyntaxError, ValueError):
    return ""
  return (doc or "").strip().split("\n", 1)[0].strip()


def _aligned(rows):
  width = max(len(name) for name, _ in rows) + 2
  return [f"  {name:<{width}}{text}".rstrip() for name, text in rows]


def list_lines():
  """Every registered experiment with its summary, then the sweeps (if the folder exists)."""
  lines = ["experiments (prelm train --config NAME; prelm show NAME):"]
  lines += _aligned([(name, summary(registry.EXPERIMENTS_DIR / f"{name}.py"))
                     for name in registry.names()])
  if SWEEPS_DIR.is_dir():
    sweeps = sorted(p for p in SWEEPS_DIR.glob("*.py") if not p.stem.startswith("_"))
    lines += ["", f"sweeps ({SWEEPS_DIR}):"]
    lines += _aligned([(p.stem, summary(p)) for p in sweeps]) if sweeps else ["  (none)"]
  return lines


def resolved(config):
  """The task of `config` after what train.run does to it before writing config.json:
  a fine-tuning run's architecture adopted from init_from, every value validated.

  Raises:
    errors.PrelmError: the one line train would fail with.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from prelm_jax import sharding, tasks, validation  # pylint: disable=g-import-not-at-top
  task = tasks.get(config, adopt_init_from=True)
  # One device per axis: the rules must name real axes; sizes wait for the run's devices.
  validation.check(config, jax.sharding.AbstractMesh((1,) * len(sharding.MESH_AXES),
                                                     sharding.MESH_AXES))
  return task


def params_line(config, task):
  """`params: N (...)`: the task model's count, and what its head assumes."""
  from prelm_jax import param_count  # pylint: disable=g-import-not-at-top
  from prelm_jax.tasks import finetune  # pylint: disable=g-import-not-at-top
  n = param_count.count(config, task=task)
  parts = ", ".join(f"{name} {size:,}" for name, size in sorted(n.by_part.items()))
  line = f"params: {n.total} ({n.total / 1e6:.2f}M: {parts}"
  regression = config.get("task") == "classify" and config.data.regression
  if isinstance(task, finetune.FinetuneTask) and not regression and not task.labels:
    line += ("; the head has 2 outputs here: config.data.labels is empty, so the "
             "training file's labels decide")
  return line + ")"


def main(args, config, fail):
  """Runs `prelm list` or `prelm show`.

  Args:
    args: the command line after `prelm` (the command alone; show's NAME became --config).
    config: --config's ConfigDict, or None.
    fail: prints one line and exits 2 (main.fail).
  """
  from prelm_jax import jsonio  # pylint: disable=g-import-not-at-top
  if args == ["list"]:
    if config is not None:
      fail("prelm list takes no --config; prelm show NAME shows one experiment")
    print("\n".join(list_lines()))
    return
  if config is None:
    fail("prelm show takes an experiment name or config path, e.g. prelm show bert_mini "
         "--config.train.num_steps=10 (prelm list shows the names)")
  try:
    task = resolved(config)
    text = jsonio.text(config.to_dict())
    line = params_line(config, task)
  except errors.PrelmError as e:
    fail(e)
  print(text + line)
