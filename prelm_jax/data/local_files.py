"""Reading a user's local data file as text, with one-line errors a user can act on."""
import os

from prelm_jax import errors

_BOM = "\ufeff"
_ENCODED_REPLACEMENT = "\ufffd".encode("utf-8")


def read_text(path):
  """Returns the whole file as a string (UTF-8; a leading byte-order mark is dropped).

  Args:
    path: the file.

  Returns:
    Its text, line endings untouched (readers split on "\\n" and strip "\\r").

  Raises:
    errors.DataError: the file is missing, a directory, not UTF-8, or blank.
  """
  if not os.path.isfile(path):
    what = "is a directory" if os.path.isdir(path) else "does not exist"
    raise errors.DataError(f"{path} {what}: point to a data file")
  with open(path, "rb") as f:
    raw = f.read()
  # The BOM goes: a spreadsheet export's would otherwise glue itself to the first
  # column name, which then looks missing.
  text, _ = decode_utf8(raw, lambda byte, line, reason: (
      f"{path}:{line}: not UTF-8 text (byte {byte}: {reason}); re-save the file as UTF-8"))
  if not text.strip():
    raise errors.DataError(f"{path} is empty: point to a file with data in it")
  return text


def decode_utf8(data, bad_bytes_message, *, replace=False):
  """Decodes a file's bytes as UTF-8 and drops a leading byte-order mark.

  Args:
    data: the bytes.
    bad_bytes_message: (byte offset, line, reason) -> the DataError's message for
      bytes that are not UTF-8; the offset and line are the file's (BOM included).
    replace: read each bad byte sequence as U+FFFD instead, and count them.

  Returns:
    (text, replaced): line ends untouched; `replaced` is the number of bad sequences
    replaced (0 unless `replace`).

  Raises:
    errors.DataError: bytes that are not UTF-8, unless `replace`.
  """
  try:
    text, replaced = data.decode("utf-8"), 0
  except UnicodeDecodeError as e:
    if not replace:
      line = data.count(b"\n", 0, e.start) + 1
      raise errors.DataError(bad_bytes_message(e.start, line, e.reason)) from None
    text = data.decode("utf-8", "replace")
    # Each bad sequence becomes one U+FFFD; a U+FFFD the file spelled out itself
    # (bytes EF BF BD, which are always decoded as a whole) is not counted.
    replaced = text.count("\ufffd") - data.count(_ENCODED_REPLACEMENT)
  # The BOM is decoded as U+FEFF rather than skipped as utf-8-sig would, so that error
  # offsets are offsets in the file.
  return text.removeprefix(_BOM), replaced
