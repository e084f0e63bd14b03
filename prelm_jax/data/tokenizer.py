"""BERT WordPiece tokenizer (HF `tokenizers`), stored as a BERT-format vocab.txt."""
import os
import tempfile

from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import trainers

from prelm_jax import errors

# BERT's special tokens; their order fixes ids 0..4 (PAD must be 0: padding is zeros).
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


class WordPiece:
  """A WordPiece vocabulary and the tokenizer that uses it.

  Attributes:
    vocab_size: number of tokens (may be below the requested size on a small corpus).
    pad_id, unk_id, cls_id, sep_id, mask_id: 0, 1, 2, 3, 4.
    lowercase: whether text is lowercased (and accents stripped) before splitting.
  """

  def __init__(self, tokens, lowercase=True):
    """Args: tokens: the vocab in id order; lowercase: see the class docstring."""
    self._tokens = list(tokens)
    self.lowercase = lowercase
    self._tok = _build({t: i for i, t in enumerate(self._tokens)}, lowercase)
    self.vocab_size = len(self._tokens)
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)

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
    texts: documents (strings); newlines are fine.
    vocab_size: the target vocab size, special tokens included. The result is
      smaller when the corpus has fewer useful pieces, and never smaller than the
      specials plus every character c and "##c" seen.
    lowercase: lowercase (and strip accents) before training and encoding.

  Returns:
    A WordPiece whose ids 0..4 are SPECIAL_TOKENS.
  """
  texts = list(texts)  # read twice
  if vocab_size <= len(SPECIAL_TOKENS):
    raise ValueError(f"vocab_size={vocab_size} leaves no room besides the "
                     f"{len(SPECIAL_TOKENS)} special tokens: use a larger vocab_size.")
  tok = _build({}, lowercase)
  # The trainer is not deterministic (huggingface/tokenizers#1794): it numbers the
  # "##c" continuation tokens in hash-map order, and those ids break ties between
  # equally frequent merges. Declaring every "##c" up front, in sorted order, fixes
  # their ids, so every process (and every rerun) trains the same vocab.
  chars = set()
  for text in texts:
    chars.update(tok.normalizer.normalize_str(text))
  continuations = [_PREFIX + c for c in sorted(chars) if not c.isspace()]
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, min_frequency=2,
      special_tokens=list(SPECIAL_TOKENS) + continuations,
      continuing_subword_prefix=_PREFIX, show_progress=False)
  tok.train_from_iterator(texts, trainer=trainer)
  vocab = tok.get_vocab(with_added_tokens=False)
  tokens = sorted(vocab, key=vocab.get)
  if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
    raise RuntimeError(f"WordPieceTrainer put {tokens[:5]} first, not {SPECIAL_TOKENS}.")
  # Rebuilt from the token list, so a trained tokenizer behaves exactly like one
  # loaded from its vocab.txt.
  return WordPiece(tokens, lowercase)


def load_wordpiece(vocab_path, lowercase=True, *, fix="fix it, or delete it to train a new one"):
  """Loads a BERT-format vocab.txt.

  Args:
    vocab_path: the file; one token per line, the first five SPECIAL_TOKENS.
    lowercase: must match how the vocab was trained (vocab.txt does not record it).
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
  # characters such as \x1c or \u2028.
  tokens = text.split("\n")
  if tokens and not tokens[-1]:
    tokens.pop()
  problem = None
  if not tokens:
    problem = "it is empty"
  elif tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
    problem = f"its first lines are {tokens[:5]}, not {list(SPECIAL_TOKENS)}"
  elif any(not t or t != t.strip() or " " in t for t in tokens):
    problem = "it has an empty line or a token with whitespace"
  elif len(set(tokens)) != len(tokens):
    problem = "it has duplicate tokens"
  if problem:
    raise errors.DataError(f"vocab file {vocab_path} is malformed: {problem}; {fix}")
  return WordPiece(tokens, lowercase)
