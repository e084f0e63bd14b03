"""Labelled text tables for fine-tuning: TSV, CSV and JSONL files -> Example records.

The format follows the extension: .tsv is split on tabs with quoting off (GLUE's TSVs
hold bare double quotes, and GLUE's and HF `datasets`' readers split them the same
way), .csv is read with standard CSV quoting (as pandas writes it), .jsonl holds one
JSON object a line.
Columns are found by the names in the header row (keys in JSONL). Each Example keeps
the line it came from, so every later check can name file:line.
"""
import csv
import dataclasses
import io
import json
import math
import os

from prelm_jax import errors
from prelm_jax.data import local_files

# Extension -> delimiter (None: JSON lines).
DELIMITERS = {".tsv": "\t", ".csv": ",", ".jsonl": None}
# How many text columns each kind of task reads: segment A alone, or A and B.
TEXT_COLUMNS_PER_KIND = {"single": 1, "pair": 2}
# Delimiters tried when the header does not have the columns asked for.
_OTHER_DELIMITERS = ("\t", ",", ";", "|")


@dataclasses.dataclass(frozen=True)
class Example:
  """One row of a table.

  Attributes:
    texts: the text columns' values, in the order of `text_columns` (A, or A and B).
    label: the label as a string (classification), a float (regression), or None
      when the table was read without a label column.
    line: the 1-based line of the file the row starts on.
  """
  texts: tuple[str, ...]
  label: str | float | None
  line: int


def check_text_columns(task_kind, text_columns):
  """Checks that a task gets as many text columns as it reads.

  Args:
    task_kind: "single" (one sentence: SST-2) or "pair" (`[CLS] A [SEP] B [SEP]`:
      RTE, MRPC, STS-B).
    text_columns: the configured column names.

  Raises:
    errors.ConfigError: a string instead of a list, the wrong number of columns, or a
      column named twice.
    ValueError: an unknown task_kind (a programming error).
  """
  if task_kind not in TEXT_COLUMNS_PER_KIND:
    raise ValueError(f"task_kind={task_kind!r}; expected one of "
                     f"{list(TEXT_COLUMNS_PER_KIND)}")
  if isinstance(text_columns, str):
    raise errors.ConfigError(f"config.data.text_columns={text_columns!r} is a string: give "
                             f"a list of column names, e.g. [{text_columns!r}]")
  want = TEXT_COLUMNS_PER_KIND[task_kind]
  columns = list(text_columns)
  if len(columns) != want:
    fix = ("list segment A's column then B's, e.g. ['sentence1', 'sentence2']"
           if task_kind == "pair" else
           "list one column, or set --config.data.sentence_pair=True for two texts")
    raise errors.ConfigError(f"config.data.text_columns: a {task_kind} task reads {want} "
                             f"text column(s), got {len(columns)}: {columns}; {fix}")
  if len(set(columns)) != len(columns):
    raise errors.ConfigError(f"config.data.text_columns={columns} names a column twice: "
                             "name segment A's and B's columns")


def read_table(path, *, text_columns, label_column, delimiter=None, regression=False):
  """Reads a TSV, CSV or JSONL file with a header (keys in JSONL) into Examples.

  Args:
    path: the file; its extension (.tsv, .csv, .jsonl) picks the format.
    text_columns: names of the text columns: one, or two for a sentence pair.
    label_column: name of the label column, or None for unlabelled data.
    delimiter: overrides the extension's delimiter; the file is then read as
      delimited text, with quoting off for a tab (as .tsv) and on otherwise (as .csv).
    regression: parse labels as floats (STS-B's score) instead of keeping strings.

  Returns:
    A list of Example, in file order.

  Raises:
    errors.DataError: unknown format, missing column (the message lists the columns
      found and, if another delimiter would find them, says which), a row with the
      wrong number of fields, a missing or non-numeric label, a file with no rows.
  """
  if isinstance(text_columns, str):
    raise TypeError(f"text_columns={text_columns!r}: pass a list of column names")
  text_columns = tuple(text_columns)
  extension = os.path.splitext(path)[1].lower()
  if delimiter is None and extension not in DELIMITERS:
    raise errors.DataError(f"{path}: cannot tell the format from the extension "
                           f"{extension!r}: name the file .tsv, .csv or .jsonl, or pass "
                           "the delimiter")
  text = local_files.read_text(path)
  if delimiter is None and DELIMITERS[extension] is None:
    rows = _json_rows(path, text, text_columns, label_column)
  else:
    rows = _delimited_rows(path, text, text_columns, label_column,
                           delimiter or DELIMITERS[extension])
  examples = [Example(texts, _parse_label(path, line, label_column, label, regression),
                      line)
              for line, texts, label in rows]
  if not examples:
    raise errors.DataError(f"{path} has a header but no rows: point to a file with "
                           "examples")
  return examples


def _delimited_rows(path, text, text_columns, label_column, delimiter):
  """Yields (line, texts, raw label or None) per non-blank row after the header."""
  # Tab-separated files are GLUE-style: quote characters are text. Other delimiters
  # need quoting, since a comma or semicolon inside a text is common.
  quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
  wanted = list(text_columns) + ([label_column] if label_column is not None else [])
  header = header_line = None
  index = {}
  end = 0  # reader.line_num after the previous record: a row starts on end + 1
  while True:
    start = end + 1
    try:
      row = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      raise errors.DataError(f"{path}:{reader.line_num}: cannot split the row ({e}); "
                             "fix the line or pass the right delimiter") from None
    end = reader.line_num
    if not row or not "".join(row).strip():
      continue  # blank lines (often one at the end)
    if header is None:
      header, header_line = [c.strip() for c in row], start
      index = _column_index(path, header, wanted, text.split("\n")[start - 1],
                            delimiter)
      continue
    if len(row) != len(header):
      raise errors.DataError(
          f"{path}:{start}: {len(row)} fields, but the header (line {header_line}) has "
          f"{len(header)}; a {_delimiter_name(delimiter)} inside a text? fix the line or "
          "pass the right delimiter")
    texts = tuple(row[index[c]] for c in text_columns)
    label = row[index[label_column]] if label_column is not None else None
    yield start, texts, label


def _column_index(path, header, wanted, raw_header, delimiter):
  """{column name: position} of the wanted columns; a one-line error if one is missing."""
  missing = [c for c in wanted if c not in header]
  if not missing:
    return {c: header.index(c) for c in wanted}
  hint = "set the column names to ones in the header"
  for other in _OTHER_DELIMITERS:
    split = [c.strip() for c in raw_header.rstrip("\r").split(other)]
    if other != delimiter and all(c in split for c in wanted):
      hint = (f"the header splits on {_delimiter_name(other)}s into {split}: pass "
              f"delimiter={other!r}")
      break
  raise errors.DataError(f"{path}: no column {missing[0]!r} in the header (columns "
                         f"found, split on {_delimiter_name(delimiter)}s: {header}); "
                         f"{hint}")


def _json_rows(path, text, text_columns, label_column):
  """Yields (line, texts, raw label or None) per non-blank JSONL line."""
  wanted = list(text_columns) + ([label_column] if label_column is not None else [])
  for line, raw in enumerate(text.split("\n"), 1):
    if not raw.strip():
      continue
    try:
      record = json.loads(raw)
    except json.JSONDecodeError as e:
      raise errors.DataError(f"{path}:{line}: not JSON ({e.msg} at column {e.colno}); "
                             "each line must be one JSON object") from None
    if not isinstance(record, dict):
      raise errors.DataError(f"{path}:{line}: a JSON {type(record).__name__}, not an "
                             "object; each line must be one JSON object")
    for key in wanted:
      if key not in record:
        raise errors.DataError(f"{path}:{line}: no key {key!r} (keys found: "
                               f"{list(record)}); set the column names to keys in the "
                               "file")
    for key in text_columns:
      if not isinstance(record[key], str):
        raise errors.DataError(f"{path}:{line}: {key!r} is {record[key]!r}, not a "
                               "string; fix the line")
    label = record[label_column] if label_column is not None else None
    yield line, tuple(record[c] for c in text_columns), label


def _parse_label(path, line, label_column, value, regression):
  """The label of one row: a float for regression, else a string; None if unlabelled."""
  if label_column is None:
    return None
  if isinstance(value, str):
    value = value.strip()
  if value is None or value == "":
    raise errors.DataError(f"{path}:{line}: the label {label_column!r} is empty; fill it "
                           "in or drop the row")
  if not regression:
    # JSON true or 1.0 would silently become a class of its own ("True", "1.0").
    if isinstance(value, bool) or not isinstance(value, (str, int)):
      raise errors.DataError(f"{path}:{line}: label {label_column!r} is "
                             f"{json.dumps(value)}; write class labels as strings or "
                             "integers")
    return str(value)
  try:
    number = math.nan if isinstance(value, bool) else float(value)
  except (TypeError, ValueError):
    number = math.nan
  if not math.isfinite(number):
    raise errors.DataError(f"{path}:{line}: the score {label_column!r} is {value!r}, not "
                           "a finite number; fix the value or the label column")
  return number


def _delimiter_name(delimiter):
  return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "bar", " ": "space"}.get(
      delimiter, repr(delimiter))
