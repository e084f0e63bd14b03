"""A user's text files: which files a glob names, and each one's text as a str.

No TFDS here, so config validation can expand globs without importing it.
"""
import glob
import gzip
import os
import pathlib
import zlib

from prelm_jax import errors
from prelm_jax.data import local_files

BAD_UTF8_POLICIES = ("error", "replace")


def patterns(paths):
  """The globs of a `config.data.paths` value: comma-separated, `~` expanded."""
  return [os.path.expanduser(p.strip()) for p in paths.split(",") if p.strip()]


def find_files(paths):
  """The files that `paths` names, as sorted absolute paths without repeats.

  Args:
    paths: one glob or several separated by commas (`**` matches folders
      recursively); relative globs are relative to the working directory. Any
      extension is read; names ending in `.gz` are decompressed.

  Returns:
    A sorted list of pathlib.Path; folders that a glob matches are left out.
  """
  found = set()
  for pattern in patterns(paths):
    for match in glob.glob(pattern, recursive=True):
      if os.path.isfile(match):
        found.add(pathlib.Path(match).resolve())
  return sorted(found)


def _read_bytes(path):
  if path.name.endswith(".gz"):
    try:
      with gzip.open(path, "rb") as f:
        return f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
      raise errors.DataError(
          f"{path}: cannot be decompressed ({e}); re-compress it with gzip, or drop "
          "the .gz from its name if it is plain text") from None
  return path.read_bytes()


def read_text(path, bad_utf8="error"):
  """Returns a file's text with "\\n" line ends and no byte-order mark.

  Args:
    path: a pathlib.Path; `.gz` files are decompressed first.
    bad_utf8: "error" refuses bytes that are not UTF-8; "replace" turns each bad
      sequence into U+FFFD and counts it.

  Returns:
    (text, replaced): CRLF and lone CR become "\\n"; `replaced` is the number of bad
    sequences replaced (0 with "error").

  Raises:
    errors.DataError: bytes that are not UTF-8 (with "error"), or a broken .gz.
  """
  data = _read_bytes(path)
  where = "of the decompressed text " if path.name.endswith(".gz") else ""
  text, replaced = local_files.decode_utf8(data, lambda byte, line, reason: (
      f"{path}: not UTF-8 at byte {byte} {where}(line {line}: {reason}); re-save it as "
      "UTF-8, or pass --config.data.bad_utf8=replace to read each bad byte sequence as "
      "U+FFFD"), replace=bad_utf8 == "replace")
  return text.replace("\r\n", "\n").replace("\r", "\n"), replaced
