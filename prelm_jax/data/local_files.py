"""Reading a user's local data file as text, with one-line errors a user can act on."""
import os

from prelm_jax import errors


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
  try:
    # utf-8-sig: a BOM (spreadsheet exports) would otherwise glue itself to the first
    # column name, which then looks missing.
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise errors.DataError(f"{path}:{line}: not UTF-8 text (byte {e.start}: {e.reason}); "
                           "re-save the file as UTF-8") from None
  if not text.strip():
    raise errors.DataError(f"{path} is empty: point to a file with data in it")
  return text
