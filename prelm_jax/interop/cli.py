"""The command line of `prelm import-hf HF_DIR WORKDIR` and `prelm export-hf WORKDIR
HF_DIR` (main.py hands them over here; usage.py holds their help)."""
from prelm_jax import errors

# command -> its two positional arguments
COMMANDS = {"import-hf": "HF_DIR WORKDIR", "export-hf": "WORKDIR HF_DIR"}
DEFAULT_IMPORT_CONFIG = "base"


def with_default_config(argv):
  """argv (program name first) with `--config base` put before the flags of an import-hf
  that names no --config: absl knows the --config.a.b override flags only from there."""
  named = any(a == "--config" or a.startswith("--config=") for a in argv)
  if argv[1:2] == ["import-hf"] and not named:
    return list(argv[:2]) + ["--config", DEFAULT_IMPORT_CONFIG] + list(argv[2:])
  return argv


def main(args, config, fail):
  """Runs one command.

  Args:
    args: the command line after `prelm`: [command, directory, directory].
    config: --config's ConfigDict, or None when not given.
    fail: prints one line and exits 2 (main.fail).
  """
  command, paths = args[0], args[1:]
  if len(paths) != 2:
    fail(f"prelm {command} takes two directories, {COMMANDS[command]}; got "
         f"{' '.join(paths) or 'none'} (see prelm {command} --help)")
  # Imported here: jax, orbax and friends load only for these commands.
  from prelm_jax.interop import hf_export  # pylint: disable=g-import-not-at-top
  from prelm_jax.interop import hf_import  # pylint: disable=g-import-not-at-top
  try:
    if command == "import-hf":
      hf_import.import_checkpoint(*paths, config)
    elif config is not None:
      fail("prelm export-hf reads the run's own config.json; drop --config")
    else:
      hf_export.export_run(*paths)
  except errors.PrelmError as e:
    fail(e)
