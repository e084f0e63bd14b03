"""Checkpoints that cannot be used as asked: explained in one line, never deleted.

- restore: the saved shapes are compared with the model the config builds before
  anything is read (a changed model, or a vocab.txt that does not match the embedding
  rows); a checkpoint whose files fail to read (truncated array, missing metadata) is
  named with the previous step to fall back to via --config.train.restore_step. Other
  restore failures (out of memory, a sharding error) are raised as they are.
- save: a full disk (ENOSPC) becomes an error saying so; orbax writes each step into a
  temporary directory renamed only when complete, so earlier checkpoints stay intact.
"""
import contextlib
import errno
import gc
import json
import os
import re

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp
from etils import epath

from prelm_jax import checkpointing
from prelm_jax import errors
from prelm_jax import jsonio
from prelm_jax import library_logs
from prelm_jax import workdir as workdir_lib

WORD_EMBEDDINGS = "['params']['encoder']['embeddings']['word_embeddings']['embedding']"


class CheckpointError(errors.PrelmError):
  """A checkpoint that cannot be restored or saved; the message says what to do."""


def _previous_hint(mngr, step):
  earlier = [s for s in mngr.all_steps() if s < step]
  if earlier:
    return (f"resume from the previous checkpoint with --config.train.restore_step="
            f"{max(earlier)} (nothing is deleted), or move {mngr.directory}/{step} away")
  return f"move {mngr.directory}/{step} away to start from scratch"


def _shapes(tree):
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in flat}


def check_shapes(mngr, step, abstract_state, vocab_path):
  """Raises CheckpointError if checkpoint `step` holds other shapes than the model's."""
  try:
    saved_meta = ocp.StandardCheckpointHandler().metadata(
        epath.Path(mngr.directory) / str(step) / "state")
    saved = _shapes(dict(saved_meta))
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
        f"the checkpoint at step {step} in {mngr.directory} has unreadable metadata "
        f"({type(e).__name__}: {_short(e)}); {_previous_hint(mngr, step)}") from None
  wanted = _shapes(abstract_state)
  saved = {_dotted(k): v for k, v in saved.items()}
  wanted = {_dotted(k): v for k, v in wanted.items()}
  # Compare the model's parameters; the optimizer state mirrors them.
  diffs = [f"{k}: saved {saved.get(k)} vs config {v}" for k, v in sorted(wanted.items())
           if k.startswith("params.") and saved.get(k) != v]
  if not diffs:
    return
  emb = _dotted(WORD_EMBEDDINGS)
  if emb in saved and emb in wanted and saved[emb][0] != wanted[emb][0]:
    raise CheckpointError(
        f"{vocab_path} has {wanted[emb][0]} tokens but the checkpoint at step {step} was "
        f"trained with {saved[emb][0]}: {workdir_lib.VOCAB_FILE} was replaced or edited; "
        f"put the run's own {workdir_lib.VOCAB_FILE} back, or start a new --workdir")
  raise CheckpointError(
      f"the checkpoint at step {step} in {mngr.directory} is for a different model ("
      + "; ".join(diffs[:3]) + (f"; {len(diffs) - 3} more" if len(diffs) > 3 else "")
      + "); resume it with the config it was written with (the workdir's "
      f"{workdir_lib.CONFIG_FILE}), "
      "or start a new --workdir")


def _dotted(keystr):
  """"['params']['encoder']" -> "params.encoder"."""
  return keystr.replace("['", ".").replace("']", "").replace(".", "", 1)


def _short(e):
  """The error in one short line, without TensorStore's internal repr (a pybind11 bound
  method that says nothing to a user)."""
  text = " ".join(str(e).split())
  text = re.sub(r"\s*See full TensorStore details: <bound method[^>]*>?.*$", "", text)
  return text[:200]


def check_vocab_size(mngr, step, vocab_size, vocab_path):
  """The embedding rows are padded (model.vocab_pad_multiple), so equal shapes do not
  prove an equal vocabulary; the checkpoint's meta records the tokenizer's size."""
  try:
    saved = checkpointing.restore_meta(mngr, step).get("vocab_size")
  except Exception:  # pylint: disable=broad-except
    return  # unreadable: the restore that follows names the corrupt checkpoint
  if saved is not None and saved != vocab_size:
    raise CheckpointError(
        f"{vocab_path} has {vocab_size} tokens but the checkpoint at step {step} was "
        f"trained with {saved}: {workdir_lib.VOCAB_FILE} was replaced or edited; put the "
        f"run's own {workdir_lib.VOCAB_FILE} back, or start a new --workdir")


# tensorstore's status codes for stored bytes that are missing, cut short or do not
# decode; it raises them as ValueError("DATA_LOSS: Error reading ..."). Which one a
# damaged file gives depends on where the damage falls (a cut chunk may fail to
# decompress: INVALID_ARGUMENT), so every read error orbax wraps counts too.
_UNREADABLE_CODES = ("DATA_LOSS:", "OUT_OF_RANGE:", "NOT_FOUND:", "FAILED_PRECONDITION:",
                     "INVALID_ARGUMENT:", "UNKNOWN:")
_ORBAX_READ_ERROR = "Encountered error while reading"


def _chain(e):
  """`e` and the exceptions it was raised from or while handling, outermost first."""
  seen = []
  while e is not None and not any(e is s for s in seen):
    seen.append(e)
    e = e.__cause__ or e.__context__
  return seen


def _unreadable_file(e):
  if isinstance(e, (FileNotFoundError, NotADirectoryError, EOFError, json.JSONDecodeError,
                    UnicodeDecodeError)):
    return True
  if isinstance(e, KeyError) and "was not found in the checkpoint" in str(e):
    return True  # orbax: an item's folder is missing
  return isinstance(e, ValueError) and str(e).startswith(_UNREADABLE_CODES)


def _orbax_read_error(e):
  return type(e) is Exception and str(e).startswith(_ORBAX_READ_ERROR)  # pylint: disable=unidiomatic-typecheck


def unreadable_cause(e):
  """The exception in `e`'s chain that says the checkpoint's files are missing,
  truncated or garbled, or None: then the restore failed for another reason.

  orbax wraps whatever a read raised (its "Encountered error while reading array
  index" Exception), so the causes decide; running out of memory on the way is never
  the checkpoint's fault.
  """
  links = _chain(e)
  if any(isinstance(l, MemoryError) or "RESOURCE_EXHAUSTED" in str(l) for l in links):
    return None
  # The specific cause names the problem best; orbax's wrapper alone still means a read
  # of the stored bytes failed.
  return next((l for l in links if _unreadable_file(l)),
              next((l for l in links if _orbax_read_error(l)), None))


def restore(mngr, step, abstract_state, vocab_path, vocab_size):
  """checkpointing.restore with the vocabulary and shape checks first, and read
  failures explained."""
  check_vocab_size(mngr, step, vocab_size, vocab_path)
  check_shapes(mngr, step, abstract_state, vocab_path)
  with library_logs.held_back() as library_records:
    try:
      return checkpointing.restore(mngr, step, abstract_state)
    except Exception as e:  # pylint: disable=broad-except
      cause = unreadable_cause(e)
      if cause is None:
        raise  # out of memory, a sharding error, a bug: as it is, with its traceback
      # The message below explains the failed reads, which orbax's threads also log
      # with tracebacks, now or when their abandoned tasks are collected.
      library_logs.drop_closed_loop_reports()
      gc.collect()
      library_records.clear()
    raise CheckpointError(
        f"the checkpoint at step {step} in {mngr.directory} is corrupt or incomplete "
        f"({type(cause).__name__}: {_short(cause)}); {_previous_hint(mngr, step)}") from None


APPLIED_FILE = "restore_step_applied.json"
SET_ASIDE_DIR = "checkpoints_set_aside"


def step_to_resume(workdir, steps, requested):
  """The step to restore: the latest, or `requested` (>= 0) if it exists; None if none.

  A requested step is applied once: a requeued job that repeats the same command (with
  the same --config.train.restore_step) resumes from the checkpoints written since,
  instead of going back again.

  Args:
    workdir: the run directory (where APPLIED_FILE records an applied request).
    steps: the complete checkpoint steps.
    requested: config.train.restore_step (-1: the latest).
  """
  latest = max(steps) if steps else None
  if requested is None or requested < 0:
    return latest
  applied = _read_applied(epath.Path(workdir))
  if applied == requested and latest is not None and latest > requested:
    return latest
  if requested not in steps:
    raise CheckpointError(
        f"config.train.restore_step={requested} is not a checkpoint in "
        f"{os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)} (it has {sorted(steps)}); "
        "pick one of "
        "those, or -1 for the latest")
  return requested


def restore_step(mngr, requested):
  """step_to_resume for the checkpoints of `mngr`."""
  return step_to_resume(str(_workdir(mngr)), mngr.all_steps(), requested)


def _workdir(mngr):
  return epath.Path(mngr.directory).parent


def _read_applied(workdir):
  path = workdir / APPLIED_FILE
  return json.loads(path.read_text())["restore_step"] if path.exists() else None


def set_aside_later_checkpoints(mngr, step):
  """After restoring an earlier `step` on request: moves the checkpoints after it to
  <workdir>/checkpoints_set_aside/ (kept, never deleted), since the new run's own saves
  at those steps would otherwise be skipped and a restart would pick the old ones.

  Returns:
    The steps moved, and records the request in <workdir>/restore_step_applied.json.
  """
  later = [s for s in mngr.all_steps() if s > step]
  if jax.process_index() == 0:
    aside = _workdir(mngr) / SET_ASIDE_DIR
    for s in later:
      aside.mkdir(parents=True, exist_ok=True)
      target, n = aside / str(s), 1
      while target.exists():  # set aside before: keep both
        target, n = aside / f"{s}.{n}", n + 1
      os.rename(epath.Path(mngr.directory) / str(s), target)
    jsonio.write_json(str(_workdir(mngr) / APPLIED_FILE),
                       {"restore_step": step, "set_aside": later,
                        "set_aside_dir": str(aside)})
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("prelm_set_aside_checkpoints")
  mngr.reload()
  return later


def _is_disk_full(e):
  return any(getattr(l, "errno", None) == errno.ENOSPC or "No space left" in str(l)
             for l in _chain(e))


@contextlib.contextmanager
def explain_save_errors(mngr):
  """Turns a full disk during a checkpoint save (or its wait) into a CheckpointError."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    if not _is_disk_full(e):
      raise
    steps = sorted(mngr.all_steps())
    raise CheckpointError(
        f"the disk is full: a checkpoint could not be written to {mngr.directory} "
        f"({_short(e)}); the complete checkpoints {steps} are intact. Free space there "
        "(or raise the quota), then run the same command to resume") from None


def check_vocab_present(workdir):
  """A workdir with checkpoints but no vocab.txt would silently get a new vocabulary."""
  vocab = os.path.join(workdir, workdir_lib.VOCAB_FILE)
  if workdir_lib.checkpoint_steps(workdir) and not os.path.exists(vocab):
    raise CheckpointError(
        f"{workdir} has checkpoints but no {workdir_lib.VOCAB_FILE}; their embeddings "
        "belong to the vocabulary they were trained with: put that "
        f"{workdir_lib.VOCAB_FILE} back at {vocab}, or start a new --workdir")
