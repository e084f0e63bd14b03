"""Keeps orbax's and TFDS's routine log records, and the object reprs in them, from the user.

Both libraries log through absl. At WARNING they report what is routine for prelm: a
read-only CheckpointManager is read-only (every `analysis.load_run`), each process
"reached preemption sync point" (a multi-process SIGTERM), a dataset folder has no
dataset_info.json yet (a first prepare). At INFO they format internals, e.g. orbax's
"Using barrier_sync_fn: <function ...>" and handler objects "at 0x...". prelm says what
matters in its own one-line messages (printed, never logged), so the records of these
two libraries below ERROR are dropped; their errors still show.

Why a filter and not absl's verbosity at ERROR: absl sets that level on the root logger,
for every library at once, and jax warns there about things a user must see (e.g. "a
CUDA-enabled jaxlib is not installed. Falling back to cpu"). `prelm -v 0` asks for
everything, so the command installs the filter only without -v.
"""
import contextlib
import logging
import os
import sys

from absl import logging as absl_logging

_PACKAGES = ("orbax", "tensorflow_datasets")


class _DropRoutineRecords(logging.Filter):
  """Drops records below ERROR that orbax or TFDS code logged."""

  def filter(self, record):
    if record.levelno >= logging.ERROR:
      return True
    folders = os.path.normpath(record.pathname).split(os.sep)
    return not any(package in folders for package in _PACKAGES)


@contextlib.contextmanager
def quiet():
  """Within this block (or a function it decorates) orbax and TFDS log errors only.

  Each use adds its own filter instance and removes only that one, so nested uses and
  `quiet_from_now_on` do not undo each other.
  """
  dropper = _DropRoutineRecords()
  absl_logging.get_absl_logger().addFilter(dropper)
  try:
    yield
  finally:
    absl_logging.get_absl_logger().removeFilter(dropper)


def quiet_from_now_on():
  """`quiet` for the rest of the process: the `prelm` command's setting."""
  absl_logging.get_absl_logger().addFilter(_DropRoutineRecords())


class _Hold(logging.Filter):
  """Keeps every record back; `held_back` decides what becomes of them."""

  def __init__(self):
    super().__init__()
    self.records = []

  def filter(self, record):
    self.records.append(record)
    return False


# orbax logs through absl; the reads it abandons report through asyncio when collected.
_HELD_LOGGERS = (absl_logging.get_absl_logger(), logging.getLogger("asyncio"))


@contextlib.contextmanager
def held_back():
  """Keeps the library records logged within the block from the user until it ends.

  Yields a list: clear it to drop the records, e.g. when prelm explains the failure
  they report (a corrupt checkpoint: orbax logs each failed array read with its
  traceback). Whatever is left in it is logged when the block ends, in order.
  """
  hold = _Hold()
  for logger in _HELD_LOGGERS:
    logger.addFilter(hold)
  try:
    yield hold.records
  finally:
    for logger in _HELD_LOGGERS:
      logger.removeFilter(hold)
    for record in hold.records:
      logging.getLogger(record.name).handle(record)


def drop_closed_loop_reports():
  """From now on, drops the "Event loop is closed" RuntimeErrors that tensorstore's
  callbacks raise into an asyncio loop orbax has closed after a failed restore: Python
  reports them as unraisable, on stderr, while prelm prints its one-line error and
  exits. Every other unraisable exception is reported as before."""
  previous = sys.unraisablehook

  def hook(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    previous(unraisable)
  sys.unraisablehook = hook
