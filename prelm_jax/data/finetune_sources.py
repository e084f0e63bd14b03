"""Where fine-tuning records come from: a local file, or a prepared TFDS dataset named
`tfds:NAME:SPLIT` (read by finetune_tfds.py).

Kept apart from the readers so that the config check, the label check and the CoNLL
reader can tell the two forms apart (and name a record's place) without importing TFDS.
"""
from prelm_jax import errors

PREFIX = "tfds:"
EXAMPLE = "tfds:glue/sst2:train"


def is_tfds(path):
  """Whether a configured path names a TFDS dataset ("tfds:...") rather than a file."""
  return isinstance(path, str) and path.startswith(PREFIX)


def parse(path, *, key=None):
  """(NAME, SPLIT) of "tfds:NAME:SPLIT".

  Args:
    path: the configured value, starting with "tfds:".
    key: the config key it came from (e.g. "train_path"), for the message.

  Returns:
    (name, split): a TFDS name with its config ("glue/sst2", "conll2003") and a split,
    possibly sliced ("train", "validation", "train[:1000]").

  Raises:
    errors.ConfigError: NAME or SPLIT is missing or holds spaces.
  """
  name, _, split = path[len(PREFIX):].partition(":")
  if not name or not split or any(c.isspace() for c in name + split):
    where = f"config.data.{key}={path!r}" if key else repr(path)
    flag = f"--config.data.{key}=" if key else ""
    raise errors.ConfigError(
        f"{where} is not a TFDS dataset of the form tfds:NAME:SPLIT (NAME as the TFDS "
        f"catalogue spells it, with its config; SPLIT one of its splits): pass e.g. "
        f"{flag}{EXAMPLE}")
  return name, split


def place(path, line):
  """How messages name a record: "line N" of a file, "example N" of a TFDS split."""
  return f"example {line}" if is_tfds(path) else f"line {line}"
