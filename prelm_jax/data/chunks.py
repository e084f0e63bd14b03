"""Documents -> chunks of consecutive sentences (what becomes one sentence pair).

A chunk depends only on its document's tokens and id (its random target length is
drawn from (_CHUNKING, document id)), not on the training seed or on which process or
shard cut it, so the chunks of a corpus are the same however it was prepared.
"""
import numpy as np

from prelm_jax.data import masking
from prelm_jax.data import records

TOKENIZE_BATCH = 10_000  # lines per tokenizer call
TABLE_COLUMNS = 5  # a chunk: document, first sentence, end sentence, target, tokens
_CHUNKING = 2  # the tag of the chunking stream (data/pretrain.py tags the others)


def tokenize(tokenizer, texts):
  """Each document (one sentence per non-empty line) as a list of int32 arrays.

  Batched tokenizer calls of TOKENIZE_BATCH lines (one per line would take minutes;
  one for everything holds a heavy Encoding object per line at once). Lines without
  any token are dropped; a document may end up with no sentences (it yields no chunk).
  """
  lines, doc_of_line = [], []
  for d, text in enumerate(texts):
    for line in text.split("\n"):
      if line.strip():
        lines.append(line)
        doc_of_line.append(d)
  documents = [[] for _ in texts]
  for start in range(0, len(lines), TOKENIZE_BATCH):
    ids = tokenizer.encode_lines(lines[start:start + TOKENIZE_BATCH])
    for d, sentence in zip(doc_of_line[start:start + TOKENIZE_BATCH], ids):
      if sentence:
        documents[d].append(np.asarray(sentence, np.int32))
  return documents


def cut_chunks(documents, data_cfg, first_id=0):
  """The documents with a sentence, and the table of their chunks.

  Args:
    documents: lists of int32 sentence arrays (tokenize()).
    data_cfg: config.data (max_seq_len, short_seq_prob).
    first_id: the id of documents[0] in its split.

  Returns:
    (kept, ids, table): the documents with >= 1 sentence (one-sentence documents make
    no chunk but serve as NSP's random B, as in BERT), their ids, and an int64
    [chunks, 5] table of (index into kept, first sentence, end sentence, target
    length, tokens), in document order.
  """
  kept, ids, rows = [], [], []
  for offset, sentences in enumerate(documents):
    if not sentences:
      continue
    rng = np.random.default_rng([_CHUNKING, first_id + offset])
    for first, end, target in masking.chunk_document(
        [len(s) for s in sentences], rng, max_num_tokens=data_cfg.max_seq_len - 3,
        short_seq_prob=data_cfg.short_seq_prob):
      rows.append((len(kept), first, end, target, sum(len(s) for s in sentences[first:end])))
    kept.append(sentences)
    ids.append(first_id + offset)
  return kept, ids, np.asarray(rows, np.int64).reshape(-1, TABLE_COLUMNS)


class ChunkStore:
  """Random access to a split's chunks and documents: store[i] -> records.Chunk.

  Subclasses give row(i) (chunk i's table row, its document as an index into the
  store's documents), document(d) -> (id, sentences), __len__ (chunks) and
  num_documents; this builds chunks and draws NSP's random B from them.
  """

  num_documents = 0

  def __len__(self):
    raise NotImplementedError

  def row(self, index):
    raise NotImplementedError

  def document(self, d):
    raise NotImplementedError

  def token_counts(self):
    """int64 [n]: each chunk's number of tokens (packing plans rows by them)."""
    return np.asarray([self.row(i)[4] for i in range(len(self))], np.int64)

  def __getitem__(self, index):
    d, first, end, target, _ = (int(x) for x in self.row(index))
    document, sentences = self.document(d)
    return records.Chunk(document, sentences[first:end], target)

  def other_document(self, index, rng):
    """The sentences of a document other than chunk `index`'s, uniform over them (as
    BERT's random B: any document, one-sentence ones too)."""
    if self.num_documents < 2:
      raise ValueError("A random segment B needs at least 2 documents.")
    own = int(self.row(index)[0])
    other = int(rng.integers(0, self.num_documents - 1))
    return self.document(other + (other >= own))[1]


class InMemoryChunks(ChunkStore):
  """The chunks of a list of texts, built in this process (tests, small eval sets)."""

  def __init__(self, tokenizer, texts, data_cfg):
    self._documents, self._ids, self._table = cut_chunks(tokenize(tokenizer, texts),
                                                         data_cfg)
    self.num_documents = len(self._documents)

  def __len__(self):
    return len(self._table)

  def row(self, index):
    return self._table[index]

  def document(self, d):
    return self._ids[d], self._documents[d]

  def token_counts(self):
    return self._table[:, 4].copy()


class ConcatenatedChunks(ChunkStore):
  """Several stores as one (a mixture's validation sets); their documents stay apart."""

  _SOURCE_SHIFT = 40  # document ids of store s are offset by s << 40

  def __init__(self, stores):
    self._stores = list(stores)
    self._ends = np.cumsum([len(s) for s in self._stores])
    self._doc_ends = np.cumsum([s.num_documents for s in self._stores])
    self.num_documents = int(self._doc_ends[-1]) if len(self._stores) else 0

  def __len__(self):
    return int(self._ends[-1]) if len(self._ends) else 0

  def row(self, index):
    s = int(np.searchsorted(self._ends, index, side="right"))
    row = np.array(self._stores[s].row(int(index) - (int(self._ends[s - 1]) if s else 0)))
    row[0] += int(self._doc_ends[s - 1]) if s else 0
    return row

  def document(self, d):
    s = int(np.searchsorted(self._doc_ends, d, side="right"))
    document, sentences = self._stores[s].document(
        int(d) - (int(self._doc_ends[s - 1]) if s else 0))
    return (s << self._SOURCE_SHIFT) + document, sentences

  def token_counts(self):
    return np.concatenate([s.token_counts() for s in self._stores])
