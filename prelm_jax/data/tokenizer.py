"""BERT WordPiece tokenizer (HF `tokenizers`), stored as a BERT-format vocab.txt.

Reads our own vocabularies (SPECIAL_TOKENS at ids 0..4) and released ones (Google's
and HuggingFace's: [PAD]=0, [unused0..98], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103).
"""
import os
import tempfile

import numpy as np

from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import trainers

from prelm_jax import errors

# BERT's special tokens. A trained vocab puts them at ids 0..4 in this order; a loaded
# one may put them anywhere, except [PAD], which must be 0: padding is zeros everywhere.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PREFIX = "##"  # marks a word-continuation piece


def _build(vocab, lowercase):
  """A `tokenizers.Tokenizer` for a {token: id} vocab, with BERT's text pipeline.

  The special tokens stay plain vocab entries, not "added tokens", so a literal
  "[MASK]" in the text is split like any other text and never becomes id 4.
  """
  tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]",
                                   continuing_subword_prefix=_PREFIX))
  # strip_accents=None follows `lowercase`, as in BERT's uncased/cased models.
  tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece(prefix=_PREFIX)
  return tok


def is_control_token(token):
  """Whether `token` is bracketed like [PAD] or [unused7]: a control token.

  Text never yields one (BertPreTokenizer splits "[" off as its own word), so the model
  must not see one as a random replacement either. A lone "[" or "]" is text.
  """
  return len(token) > 2 and token[0] == "[" and token[-1] == "]"


class WordPiece:
  """A WordPiece vocabulary and the tokenizer that uses it.

  Attributes:
    vocab_size: number of tokens (may be below the requested size on a small corpus).
    pad_id, unk_id, cls_id, sep_id, mask_id: the ids of SPECIAL_TOKENS in the vocab
      (0..4 in a trained one; 0, 100, 101, 102, 103 in Google's BERT vocabularies).
    lowercase: whether text is lowercased (and accents stripped) before splitting.
  """

  def __init__(self, tokens, lowercase=True):
    """Args: tokens: the vocab in id order, holding SPECIAL_TOKENS with [PAD] first;
    lowercase: see the class docstring."""
    self._tokens = list(tokens)
    self.lowercase = lowercase
    self._tok = _build({t: i for i, t in enumerate(self._tokens)}, lowercase)
    self.vocab_size = len(self._tokens)
    problem = _special_tokens_problem(self._tokens)
    if problem:
      raise ValueError(f"Not a BERT vocabulary: {problem}.")
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
        self.token_to_id(t) for t in SPECIAL_TOKENS)
    # Computed once: masking indexes it for every example.
    self._replacement_ids = np.asarray(
        [i for i, t in enumerate(self._tokens) if not is_control_token(t)], np.int32)
    self._replacement_ids.flags.writeable = False
    self._is_continuation = np.asarray([t.startswith("##") for t in self._tokens], bool)
    self._is_continuation.flags.writeable = False

  @property
  def replacement_ids(self):
    """Sorted int32 ids that masking may draw as a random replacement: every token
    but the control tokens ([PAD], [MASK], [unused0], ...). A trained vocab: 5..V-1."""
    return self._replacement_ids

  @property
  def is_continuation(self):
    """bool [V]: True at "##" pieces, which continue the word before them (whole-word
    masking indexes it with token ids)."""
    return self._is_continuation

  def encode_lines(self, lines):
    """Tokenises lines without special tokens.

    Args:
      lines: a list of strings.

    Returns:
      A list of token-id lists, one per line.
    """
    encodings = self._tok.encode_batch(list(lines), add_special_tokens=False)
    return [e.ids for e in encodings]

  def decode(self, ids):
    """Joins ids back into text ("##" pieces merged); special tokens are kept."""
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

  def id_to_token(self, i):
    return self._tokens[i]

  def token_to_id(self, token):
    """Returns the id of `token`, or None if it is not in the vocab."""
    return self._tok.token_to_id(token)

  @property
  def tokens(self):
    return list(self._tokens)

  def save(self, path):
    """Writes vocab.txt (one token per line, line number == id) atomically.

    Args:
      path: the file to write; its directory is created if needed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Temp file + rename: a crash mid-write must not leave a truncated vocab that a
    # resumed run would then load.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".vocab-", suffix=".tmp")
    try:
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in self._tokens))
      os.chmod(tmp, 0o644)  # mkstemp creates 0600; a vocab is meant to be shared
      os.replace(tmp, path)
    except BaseException:
      os.unlink(tmp)
      raise


def train_wordpiece(texts, vocab_size, lowercase=True):
  """Trains a WordPiece vocab on `texts`.

  Args:
    texts: documents (strings; newlines are fine), or a function returning a fresh
      iterator over them (read twice, never held: memory stays flat on big corpora).
    vocab_size: the target vocab size, special tokens included. The result is
      smaller when the corpus has fewer useful pieces, and never smaller than the
      specials plus every character c and "##c" seen.
    lowercase: lowercase (and strip accents) before training and encoding.

  Returns:
    A WordPiece whose ids 0..4 are SPECIAL_TOKENS.
  """
  read = texts if callable(texts) else (lambda held=list(texts): held)  # read twice
  if vocab_size <= len(SPECIAL_TOKENS):
    raise ValueError(f"vocab_size={vocab_size} leaves no room besides the "
                     f"{len(SPECIAL_TOKENS)} special tokens: use a larger vocab_size.")
  tok = _build({}, lowercase)
  # The trainer is not deterministic (huggingface/tokenizers#1794): it numbers the
  # "##c" continuation tokens in hash-map order, and those ids break ties between
  # equally frequent merges. Declaring every "##c" up front, in sorted order, fixes
  # their ids, so every process (and every rerun) trains the same vocab.
  chars = set()
  for text in read():
    chars.update(tok.normalizer.normalize_str(text))
  continuations = [_PREFIX + c for c in sorted(chars) if not c.isspace()]
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, min_frequency=2,
      special_tokens=list(SPECIAL_TOKENS) + continuations,
      continuing_subword_prefix=_PREFIX, show_progress=False)
  tok.train_from_iterator(read(), trainer=trainer)
  vocab = tok.get_vocab(with_added_tokens=False)
  tokens = sorted(vocab, key=vocab.get)
  if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
    raise RuntimeError(f"WordPieceTrainer put {tokens[:5]} first, not {SPECIAL_TOKENS}.")
  # Rebuilt from the token list, so a trained tokenizer behaves exactly like one
  # loaded from its vocab.txt.
  return WordPiece(tokens, lowercase)


def _special_tokens_problem(tokens):
  """Why `tokens` cannot be a BERT vocab (a missing special token, [PAD] not first),
  or None."""
  ids = {t: i for i, t in enumerate(tokens)}
  for token in SPECIAL_TOKENS:
    if token not in ids:
      return f"it has no {token} token"
  if ids["[PAD]"] != 0:
    return (f"[PAD] is id {ids['[PAD]']}, not 0 (padding is zeros everywhere, so "
            "[PAD] must be the first line)")
  return None


def load_wordpiece(vocab_path, lowercase=True, *, fix="fix it, or delete it to train a new one"):
  """Loads a BERT-format vocab.txt: ours, or a released one (Google's, HuggingFace's).

  Args:
    vocab_path: the file; one token per line (line number == id), Unix or Windows
      line endings, with or without a final newline. It must hold SPECIAL_TOKENS
      anywhere, [PAD] on the first line.
    lowercase: must match how the vocab was trained (vocab.txt does not record it):
      True for BERT's uncased models, False for the cased ones.
    fix: what the error message tells the user to do with a bad file.

  Returns:
    A WordPiece.

  Raises:
    errors.DataError: the file is missing, not UTF-8, or not a vocabulary.
  """
  if not os.path.isfile(vocab_path):
    raise errors.DataError(f"no vocab file at {vocab_path}: train one with "
                           "train_wordpiece or point to an existing vocab.txt")
  with open(vocab_path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise errors.DataError(f"vocab file {vocab_path} is not UTF-8 text (byte {e.start}: "
                           f"{e.reason}); {fix}") from None
  # Split on "\n" only, like BERT's loader: splitlines() would also split on
  # characters such as \x1c or \u2028. A "\r" before it is a Windows line ending,
  # which BERT's and HuggingFace's loaders both drop (they strip each line).
  tokens = [t[:-1] if t.endswith("\r") else t for t in text.split("\n")]
  if tokens and not tokens[-1]:
    tokens.pop()
  problem = None
  if not tokens:
    problem = "it is empty"
  elif any(not t or t != t.strip() or " " in t for t in tokens):
    problem = "it has an empty line or a token with whitespace"
  elif len(set(tokens)) != len(tokens):
    problem = "it has duplicate tokens"
  else:
    problem = _special_tokens_problem(tokens)
  if problem:
    raise errors.DataError(f"vocab file {vocab_path} is malformed: {problem}; {fix}")
  return WordPiece(tokens, lowercase)
