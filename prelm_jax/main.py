"""The `prelm` command.

  prelm train --config experiments/bert_tiny_pydocs.py --workdir runs/tiny \
      [--config.train.num_steps=2000 ...] [--allow_config_change]

  prelm plan --config bert_large --mesh data=1,fsdp=32,tensor=1 [--devices 32] \
      [--device-memory 16GiB]     # compile only: memory and FLOPs per device

  prelm import-hf HF_DIR WORKDIR [--config NAME|PATH]   # HuggingFace/Google BERT -> a run
  prelm export-hf WORKDIR HF_DIR                        # a run -> HF BertForPreTraining
  prelm list                                            # the experiments, one line each
  prelm show NAME [--config.a.b=v ...]                  # its resolved config and params

  prelm sweep NAME --root DIR [--executor local|slurm|tpu] [--parallel N] [--dry-run]
  prelm report DIR                     # experiments/sweeps/NAME.py; see sweeps/cli.py

`--config` takes a path (config_flags conventions, `path.py:arg`) or an experiment name.
`prelm --help` (or `prelm <command> --help`) lists each command's flags; see usage.py.

Exit codes: 0 done; 2 a one-line error (bad input, non-finite loss, unusable
checkpoint); 42 preempted (SIGTERM/SIGINT: a checkpoint was saved, run the same command
again to resume; see prelm_jax/preemption.py).
"""
import contextlib
import io
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from prelm_jax import errors
from prelm_jax import info_commands
from prelm_jax import library_logs
from prelm_jax import plan as plan_lib  # defines --mesh, --devices, --device-memory
from prelm_jax import preemption
from prelm_jax.interop import cli as interop_cli
from prelm_jax.sweeps import cli as sweeps_cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment: experiments/<name>.py[:arg] or just <name>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumed if it has checkpoints).")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir whose model/data config differs.")
# Multi-process runs (see prelm_jax/distributed.py); launch/ scripts set these.
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "Call jax.distributed.initialize: auto = when the flags below, an srun step of >1 "
    "tasks or a multi-host TPU environment say so; on = always (jax detects the cluster).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")

_INPUT = flags.DEFINE_string("input", None, "predict: the file to label (the format the "
                             "run was trained on).")
_OUTPUT = flags.DEFINE_string("output", None, "predict: where to write the labelled file.")

_WORKERS = flags.DEFINE_integer("workers", None, "prepare: worker processes (default "
                                "config.data.prepare_workers).")

COMMANDS = (("train", "predict", "plan", "prepare") + info_commands.COMMANDS
            + tuple(interop_cli.COMMANDS) + tuple(sweeps_cli.COMMANDS))


def fail(message):
  """One line on stderr, exit 2. os._exit: the run has closed its files by now, and
  orbax's background threads must not print a traceback while Python shuts down."""
  print(f"prelm: error: {message}", file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(2)


def parse_flags(argv):
  """absl parsing, with help and config mistakes answered by us (exit 0; one line, exit 2)."""
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  from prelm_jax import usage  # pylint: disable=g-import-not-at-top
  if usage.requested(argv[1:]):  # before absl, whose --help lists flags without commands
    usage.show(argv[1:], flags.FLAGS)
    sys.exit(0)
  argv = info_commands.with_config_flag(interop_cli.with_default_config(argv))
  argv, config_path = resolve_config(argv)
  try:
    with registry.sibling_imports(config_path):  # `from experiments import` its own folder
      remaining = flags.FLAGS(argv)
    # ml_collections keeps an OSError raised while loading the file in a placeholder
    # config that raises it on first use, mid-run; raise it now, where it is explained.
    deferred = getattr(_CONFIG.value, "_error", None)
    if isinstance(deferred, OSError):
      raise deferred
    return remaining
  except Exception as e:  # pylint: disable=broad-except
    message = explain_parse_error(e, config_path)
    if message is None:
      raise  # not a mistake in the command line or the config file: a bug
    fail(message)


def explain_parse_error(error, config_path):
  """One line for a config file that does not load, a bad flag or override; else None."""
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  if config_path and (message := registry.load_error(config_path, error)):
    return message
  if isinstance(error, flags.Error):
    return str(error)
  if not isinstance(error, (AttributeError, KeyError, TypeError, ValueError)):
    return None
  # ml_collections raises these for an override of a key the config does not have.
  text = error
  while isinstance(text, Exception) and text.args:  # AttributeError(KeyError('...'))
    text = text.args[0]
  detail = " ".join(str(text).replace("\\n", " ").replace("\n", " ").split())
  return f"bad --config override ({detail}); every key is listed in experiments/base.py"


def resolve_config(argv):
  """(argv with `--config NAME` made a path, that file's path or None); a missing file fails."""
  from prelm_jax import registry  # pylint: disable=g-import-not-at-top
  argv, path = list(argv), None
  for i, arg in enumerate(argv):
    if arg == "--config" and i + 1 < len(argv):
      at, prefix = i + 1, ""
    elif arg.startswith("--config="):
      at, prefix = i, "--config="
    else:
      continue
    try:
      resolved = registry.resolve(argv[at].removeprefix(prefix))
      path = resolved.partition(":")[0]
      registry.check_exists(path)
    except ValueError as e:
      fail(e)
    argv[at] = prefix + resolved
  return argv, path


def main(argv):
  command = argv[1:]
  interop = bool(command) and command[0] in interop_cli.COMMANDS  # + two directories
  if not interop and (len(command) != 1 or command[0] not in COMMANDS):
    fail(f"expected one command from {COMMANDS}, got {command or 'none'}; "
         "e.g. prelm train --config bert_tiny_pydocs --workdir runs/tiny (see prelm --help)")
  if command in (["train"], ["plan"], ["prepare"]) and _CONFIG.value is None:
    fail("--config is required, e.g. --config experiments/bert_tiny_pydocs.py")
  if not flags.FLAGS["verbosity"].present:  # -v 0 shows everything
    # WARNING, not ERROR: absl sets it on the root logger, where jax warns about things a
    # user must see (no CUDA jaxlib: falling back to CPU). orbax's and TFDS's routine
    # warnings and INFO reprs are dropped by a filter instead; see library_logs.py.
    logging.set_verbosity(logging.WARNING)
    library_logs.quiet_from_now_on()
  if command != ["train"]:  # nothing to save: a signal acts as usual
    preemption.uninstall()
    if preemption.requested():
      sys.exit(f"prelm: {preemption.requested()}: stopped")
  if command == ["predict"]:
    run_predict()
    return
  if command[0] in info_commands.COMMANDS:
    info_commands.main(command, _CONFIG.value, fail)
    return
  if interop:
    interop_cli.main(command, _CONFIG.value, fail)
    return
  if command == ["prepare"]:
    from prelm_jax import prepare_command  # pylint: disable=g-import-not-at-top
    prepare_command.main(_CONFIG.value, fail, workers=_WORKERS.value,
                         process_index=_PROCESS_ID.value or 0,
                         process_count=_NUM_PROCESSES.value or 1)
    return
  if command == ["plan"]:  # compile-only: no workdir, no corpus, no distributed set-up
    plan_lib.main(_CONFIG.value, fail)
    return
  from prelm_jax import distributed  # pylint: disable=g-import-not-at-top
  try:
    # Before anything touches a device. Several processes: jax's preemption sync
    # manager takes SIGTERM over from the handlers `cli` installed.
    if distributed.plan(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                        _PROCESS_ID.value) is not None:
      preemption.stop_if_requested("loading the config")
      preemption.uninstall()
    joined = distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value,
                                    _NUM_PROCESSES.value, _PROCESS_ID.value)
    if joined:
      print(f"prelm: {joined}", file=sys.stderr)
    from prelm_jax import train  # pylint: disable=g-import-not-at-top
    result = train.run(_CONFIG.value, _WORKDIR.value,
                       allow_config_change=_ALLOW_CONFIG_CHANGE.value,
                       experiment=_experiment_name())
  except errors.PrelmError as e:
    fail(e)
  except preemption.Preempted as e:
    print(f"prelm: {e}", file=sys.stderr)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  # Every process computes the summary (fill_mask runs on the global params); one prints it.
  with contextlib.redirect_stdout(sys.stdout if distributed.is_main_process() else io.StringIO()):
    print_summary(result)


def run_predict():
  """`prelm predict`: a fine-tuned run labels a file."""
  for flag in (_WORKDIR, _INPUT, _OUTPUT):
    if not flag.value:
      fail(f"--{flag.name} is required, e.g. prelm predict --workdir runs/sst2 "
           "--input new.tsv --output labelled.tsv")
  from prelm_jax import predict  # pylint: disable=g-import-not-at-top
  try:
    count = predict.predict_file(_WORKDIR.value, _INPUT.value, _OUTPUT.value)
  except errors.PrelmError as e:
    fail(e)
  print(f"Labelled {count} examples of {_INPUT.value} -> {_OUTPUT.value}")


def print_summary(result):
  """What a researcher wants after a run: the task's results, then where things are."""
  print()
  for line in result.task.summary_lines(result):
    print(line)
  print(f"Checkpoints: {result.workdir}/checkpoints")
  print(f"TensorBoard: tensorboard --logdir {result.workdir}/tensorboard")
  print(f"Metrics:     {result.workdir}/metrics.jsonl, {result.workdir}/final_metrics.json")


def _experiment_name():
  """The --config argument's name: experiments/bert_tiny_pydocs.py:arg -> bert_tiny_pydocs."""
  path, _, arg = (flags.FLAGS["config"].config_filename or "").partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return f"{name}:{arg}" if arg else name


def cli():
  # First thing: a SIGTERM during the imports, corpus, vocabulary or compile is recorded
  # and acted on at the next safe point (exit 42), never raised into arbitrary code.
  preemption.install()
  if sys.argv[1:2] and sys.argv[1] in sweeps_cli.COMMANDS and not usage_requested():
    preemption.uninstall()  # the sweep's runs handle their own signals
    sys.exit(sweeps_cli.main(sys.argv[1:]))
  app.run(main, flags_parser=parse_flags)


def usage_requested():
  from prelm_jax import usage  # pylint: disable=g-import-not-at-top
  return usage.requested(sys.argv[1:])


if __name__ == "__main__":
  cli()
