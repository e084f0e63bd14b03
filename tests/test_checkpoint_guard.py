"""Only a checkpoint whose files do not read is called corrupt; other restore failures
(out of memory, a sharding error, a bug) surface as they are, with their traceback.

The real corrupt checkpoints (truncated arrays, missing metadata) are in
tests/test_bad_inputs.py; here checkpointing.restore raises what orbax and tensorstore
were seen to raise for them, and what they raise for other trouble.
"""
import json
import sys
import types
import logging

import pytest
from absl import logging as absl_logging

from prelm_jax import checkpoint_guard
from prelm_jax import checkpointing


class Manager:
  directory = "/run/checkpoints"

  def all_steps(self):
    return [2, 4]


def orbax_read_error(cause):
  """orbax's wrapper around whatever reading one array raised."""
  try:
    raise cause
  except BaseException as e:  # pylint: disable=broad-except
    try:
      raise Exception("Encountered error while reading array index: (slice(0, 8, 1),). "
                      "See full TensorStore details: ...") from e
    except Exception as wrapped:  # pylint: disable=broad-except
      return wrapped


def restore_raising(monkeypatch, error):
  monkeypatch.setattr(checkpoint_guard, "check_vocab_size", lambda *args: None)
  monkeypatch.setattr(checkpoint_guard, "check_shapes", lambda *args: None)

  def restore(*args):
    # As orbax's reading threads do: each failed read is logged with its traceback.
    try:
      raise error
    except BaseException:  # pylint: disable=broad-except
      absl_logging.exception("Failed to read an array")
      logging.getLogger("asyncio").error("Task exception was never retrieved",
                                         exc_info=True)
    raise error
  monkeypatch.setattr(checkpointing, "restore", restore)
  return checkpoint_guard.restore(Manager(), 4, None, "/run/vocab.txt", 600)


@pytest.mark.parametrize("error, named", [
    (orbax_read_error(ValueError(
        'OUT_OF_RANGE: Error reading "b/0" in OCDBT database at local file "/run/": '
        "Requested byte range [0, 2291) is not valid for value of size 853")),
     "ValueError: OUT_OF_RANGE: Error reading"),
    (ValueError('DATA_LOSS: Error opening "cast" driver: Error decoding manifest'),
     "ValueError: DATA_LOSS"),
    (ValueError('NOT_FOUND: Error opening "zarr" driver: Metadata at "w/.zarray" does '
                "not exist"), "ValueError: NOT_FOUND"),
    (FileNotFoundError("Metadata file (named _METADATA) does not exist"),
     "FileNotFoundError: Metadata file"),
    (json.JSONDecodeError("Expecting value", "", 0), "JSONDecodeError: Expecting value"),
    (KeyError('Item "meta" was not found in the checkpoint.'), "KeyError"),
])
def test_files_that_do_not_read_are_corrupt(monkeypatch, error, named):
  with pytest.raises(checkpoint_guard.CheckpointError,
                     match=r"^the checkpoint at step 4 in /run/checkpoints is corrupt or "
                           r"incomplete \(" + named + r".*restore_step=2 "):
    restore_raising(monkeypatch, error)


def test_a_corrupt_checkpoint_is_one_line_not_the_libraries_tracebacks(monkeypatch, caplog):
  error = orbax_read_error(ValueError("DATA_LOSS: Error reading"))
  with pytest.raises(checkpoint_guard.CheckpointError):
    restore_raising(monkeypatch, error)
  assert not caplog.records
  # The closed asyncio loop's late reports are dropped; other unraisables still show.
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  checkpoint_guard.library_logs.drop_closed_loop_reports()
  for value in (RuntimeError("Event loop is closed"), ValueError("other")):
    sys.unraisablehook(types.SimpleNamespace(exc_value=value))
  assert [type(u.exc_value) for u in seen] == [ValueError]


@pytest.mark.parametrize("error", [
    MemoryError(),
    orbax_read_error(MemoryError()),
    RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.00GiB"),
    orbax_read_error(ValueError("RESOURCE_EXHAUSTED: Failed to allocate")),
    RuntimeError("something else went wrong"),
    ValueError("sharding NamedSharding(mesh=..., spec=P('fsdp',)) implies that the "
               "global size of its dimension 0 should be divisible by 8"),
    KeyError("params"),
    TypeError("a bug"),
], ids=lambda e: f"{type(e).__name__}:{e}"[:40])
def test_other_restore_failures_are_raised_as_they_are(monkeypatch, error):
  with pytest.raises(type(error)) as raised:
    restore_raising(monkeypatch, error)
  assert raised.value is error


def test_the_libraries_records_of_an_unexplained_failure_still_show(monkeypatch, caplog):
  with pytest.raises(RuntimeError):
    restore_raising(monkeypatch, RuntimeError("something else went wrong"))
  assert [r.getMessage() for r in caplog.records] == [
      "Failed to read an array", "Task exception was never retrieved"]
  assert all(r.exc_info for r in caplog.records)
