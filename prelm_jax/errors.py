"""One base class for every problem a user can fix: `prelm` prints it in one line, exit 2.

Each module defines its own subclass (ConfigError here; WorkdirError, MeshError,
CheckpointError, ...) so tests can tell them apart, and `prelm_jax.main` catches the
base class alone. Anything else that escapes is a bug and keeps its traceback.
"""


class PrelmError(ValueError):
  """A problem with the user's input or files; the message names it and the fix."""


class ConfigError(PrelmError):
  """A config value that cannot run, found before anything is written."""


class DataError(PrelmError):
  """A corpus, dataset or vocabulary file that cannot be used as it is."""
