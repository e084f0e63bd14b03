"""Tagged sentences for token tagging: CoNLL column files and CoNLL-U -> TaggedSentence.

CoNLL (e.g. CoNLL-2003 NER, "word POS chunk NER"): one token a line, columns split on
whitespace, a blank line between sentences, `-DOCSTART-` lines between documents.
CoNLL-U (Universal Dependencies): ten tab-separated fields, `#` comments; multi-word
token lines (ID `3-4`) and empty nodes (ID `5.1`) are not words of the sentence and are
skipped, as UD's POS evaluation does.
"""
import dataclasses

from prelm_jax import errors
from prelm_jax.data import finetune_sources
from prelm_jax.data import local_files

# CoNLL-U's ten fields, in file order (universaldependencies.org/format.html).
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps",
                 "misc")


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
  """One sentence of a column file.

  Attributes:
    words: the words (CoNLL's first column, CoNLL-U's FORM).
    tags: one tag per word, from the chosen column.
    line: the 1-based line of the sentence's first word.
  """
  words: list[str]
  tags: list[str]
  line: int


def read_conll(path, *, column=-1):
  """Reads a whitespace-separated CoNLL file.

  Args:
    path: the file.
    column: which column holds the tags (Python indexing: -1 is the last, CoNLL-2003's
      NER; 1 its POS tags). Column 0 is the word.

  Returns:
    A list of TaggedSentence, in file order; `-DOCSTART-` lines are dropped.

  Raises:
    errors.DataError: an empty file, a token line with fewer than 2 columns or with
      another number of columns than the first token line (file:line).
    errors.ConfigError: `column` is not one of the file's columns.
  """
  sentences = _sentences(_conll_tokens(path, local_files.read_text(path), column))
  if not sentences:
    raise errors.DataError(f"{path} has no sentences, only -DOCSTART- lines: point to a "
                           "file with tokens in it")
  return sentences


def _conll_tokens(path, text, column):
  """(line, word, tag) of each token line of a CoNLL file; None between sentences."""
  width = first_line = None
  for line, raw in enumerate(text.split("\n"), 1):
    fields = raw.split()
    if not fields or fields[0] == "-DOCSTART-":
      yield None
      continue
    if width is None:
      width, first_line = len(fields), line
      if width < 2:
        raise errors.DataError(f"{path}:{line}: one column ({raw.strip()!r}); a CoNLL "
                               "file needs the word and at least one tag column")
      if not -width <= column < width:
        raise errors.ConfigError(f"{path}: tag column {column} does not exist: token "
                                 f"lines have {width} columns (line {line}: "
                                 f"{raw.strip()!r}); pick one of 1..{width - 1} or -1")
    elif len(fields) != width:
      raise errors.DataError(
          f"{path}:{line}: {len(fields)} columns ({raw.strip()!r}), but the first token "
          f"line ({first_line}) has {width}; a word with a space, or a missing tag? give "
          f"every token line {width} columns")
    yield line, fields[0], fields[column]


def read_conllu(path, *, column="upos"):
  """Reads a CoNLL-U file, keeping the words (integer IDs) and one field as tags.

  Args:
    path: the file.
    column: the field to use as tags, by CoNLL-U name: one of CONLLU_FIELDS
      ("upos" for universal POS tags, "xpos", "deprel", ...).

  Returns:
    A list of TaggedSentence, in file order. Comment lines, multi-word token lines
    (ID "3-4") and empty nodes (ID "5.1") are skipped.

  Raises:
    errors.DataError: an empty file, a line without 10 tab-separated fields or with an
      ID that is not n, n-m or n.k (file:line).
    errors.ConfigError: `column` is not a CoNLL-U field name.
  """
  if column not in CONLLU_FIELDS:
    raise errors.ConfigError(f"CoNLL-U column {column!r} does not exist: use one of "
                             f"{list(CONLLU_FIELDS)}")
  tokens = _conllu_tokens(path, local_files.read_text(path), CONLLU_FIELDS.index(column))
  sentences = _sentences(tokens)
  if not sentences:
    raise errors.DataError(f"{path} has no sentences, only comments: point to a CoNLL-U "
                           "file with tokens in it")
  return sentences


def _conllu_tokens(path, text, index):
  """(line, FORM, field `index`) of each word line of a CoNLL-U file; None between
  sentences."""
  for line, raw in enumerate(text.split("\n"), 1):
    raw = raw.rstrip("\r")
    if not raw.strip():
      yield None
      continue
    if raw.startswith("#"):
      continue
    fields = raw.split("\t")
    if len(fields) != len(CONLLU_FIELDS):
      raise errors.DataError(
          f"{path}:{line}: {len(fields)} tab-separated fields, CoNLL-U needs 10 (ID FORM "
          "LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); fix the line (spaces instead of "
          "tabs?)")
    word_id = fields[0]
    if not word_id.isdigit():
      if _is_range_or_empty_node(word_id):
        continue  # a multi-word token's surface form or an empty node: not a word
      raise errors.DataError(f"{path}:{line}: ID {word_id!r} is not a word index (3), "
                             "a multi-word range (3-4) or an empty node (5.1); fix the "
                             "line")
    yield line, fields[1], fields[index]


def _sentences(tokens):
  """TaggedSentences of (line, word, tag) tokens, split where a token is None."""
  sentences, words, tags, start = [], [], [], None
  for token in [*tokens, None]:
    if token is None:
      if words:
        sentences.append(TaggedSentence(words, tags, start))
      words, tags = [], []
      continue
    line, word, tag = token
    if not words:
      start = line
    words.append(word)
    tags.append(tag)
  return sentences


def _is_range_or_empty_node(word_id):
  for sep in "-.":
    first, found, second = word_id.partition(sep)
    if found and first.isdigit() and second.isdigit():
      return True
  return False


def iob1_to_iob2(tags):
  """Converts IOB1 tags (an entity starts with I-X; B-X only between two adjacent
  entities of type X, as in the original CoNLL-2003 files) to IOB2 (every entity
  starts with B-X). IOB2 input comes back unchanged.

  Args:
    tags: a sentence's tags: "O", "B-X" or "I-X".

  Returns:
    A new list of tags.

  Raises:
    ValueError: a tag that is not O, B-X or I-X (see iob1_sentences_to_iob2 for the
      file:line error).
  """
  out = []
  previous_type = None  # entity type of the previous tag; None after O
  for i, tag in enumerate(tags):
    if tag == "O":
      out.append(tag)
      previous_type = None
      continue
    if not _is_iob(tag):
      raise ValueError(f"tag {i} ({tag!r}) is not O, B-X or I-X")
    prefix, entity_type = tag[:2], tag[2:]
    if prefix == "I-" and entity_type != previous_type:
      tag = "B-" + entity_type  # an entity's first token
    out.append(tag)
    previous_type = entity_type
  return out


def _is_iob(tag):
  return tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def iob1_sentences_to_iob2(sentences, *, path):
  """iob1_to_iob2 on every sentence's tags.

  Args:
    sentences: TaggedSentence list (from read_conll or finetune_tfds.read_tagged).
    path: the file (or tfds:NAME:SPLIT) they came from, for the error message.

  Returns:
    A new TaggedSentence list with IOB2 tags.

  Raises:
    errors.DataError: a tag that is not O, B-X or I-X (file, sentence line and word).
  """
  converted = []
  for s in sentences:
    try:
      tags = iob1_to_iob2(s.tags)
    except ValueError:
      i, bad = next((i, t) for i, t in enumerate(s.tags) if not _is_iob(t))
      place = finetune_sources.place(path, s.line)
      sentence = place if finetune_sources.is_tfds(path) else f"sentence at {place}"
      raise errors.DataError(
          f"{path}: {sentence}, word {i + 1} ({s.words[i]!r}): tag "
          f"{bad!r} is not O, B-X or I-X; fix the file or choose the NER column"
      ) from None
    converted.append(dataclasses.replace(s, tags=tags))
  return converted
