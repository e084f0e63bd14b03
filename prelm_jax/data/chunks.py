"""Documents -> chunks of consecutive sentences: what a prepared shard holds.

A chunk depends only on its document's tokens and id (its random target length is
drawn from (_CHUNKING, document id)), not on the training seed or on which process or
shard cut it, so the chunks of a corpus are the same however it was prepared.
"""
import numpy as np

from prelm_jax.data import masking
from prelm_jax.data import records

TOKENIZE_BATCH = 10_000  # lines per tokenizer call
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


def chunk_documents(documents, data_cfg, first_id=0):
  """The chunks of tokenised documents numbered first_id, first_id + 1, ...

  Args:
    documents: lists of int32 sentence arrays (tokenize()).
    data_cfg: config.data (max_seq_len, short_seq_prob).
    first_id: the id of documents[0] in its split.

  Returns:
    A list of records.Chunk, in document order.
  """
  out = []
  for offset, sentences in enumerate(documents):
    document = first_id + offset
    rng = np.random.default_rng([_CHUNKING, document])
    for first, end, target in masking.chunk_document(
        [len(s) for s in sentences], rng, max_num_tokens=data_cfg.max_seq_len - 3,
        short_seq_prob=data_cfg.short_seq_prob):
      out.append(records.Chunk(document, sentences[first:end], target))
  return out


class ChunkStore:
  """Random access to a split's chunks: store[i] -> records.Chunk.

  Subclasses give __len__, __getitem__ and num_documents (the documents that have a
  chunk); this adds the pick of a random B from another document.
  """

  num_documents = 0

  def __len__(self):
    raise NotImplementedError

  def __getitem__(self, index):
    raise NotImplementedError

  def token_counts(self):
    """int64 [n]: each chunk's number of tokens (packing plans rows by them)."""
    return np.asarray([self[i].num_tokens for i in range(len(self))], np.int64)

  def other_document(self, index, rng):
    """The sentences of a chunk of another document than chunk `index`'s.

    Uniform over the other chunks, redrawn while it hits the same document (a few
    times; then the next chunk of another document, so it always ends).
    """
    n, document = len(self), self[index].document
    for _ in range(16):
      other = int(rng.integers(0, n - 1))
      chunk = self[other + (other >= index)]
      if chunk.document != document:
        return chunk.sentences
    for step in range(1, n):
      chunk = self[(index + step) % n]
      if chunk.document != document:
        return chunk.sentences
    raise ValueError("A random segment B needs at least 2 documents.")


class InMemoryChunks(ChunkStore):
  """The chunks of a list of texts, built in this process (tests, small eval sets)."""

  def __init__(self, tokenizer, texts, data_cfg):
    documents = tokenize(tokenizer, texts)
    self._chunks = chunk_documents(documents, data_cfg)
    self.num_documents = len({chunk.document for chunk in self._chunks})

  def __len__(self):
    return len(self._chunks)

  def __getitem__(self, index):
    return self._chunks[index]


class ConcatenatedChunks(ChunkStore):
  """Several stores as one (a mixture's validation sets); their documents stay apart."""

  _SOURCE_SHIFT = 40  # document ids of store s are offset by s << 40

  def __init__(self, stores):
    self._stores = list(stores)
    self._ends = np.cumsum([len(s) for s in self._stores])
    self.num_documents = sum(s.num_documents for s in self._stores)

  def __len__(self):
    return int(self._ends[-1]) if len(self._ends) else 0

  def __getitem__(self, index):
    s = int(np.searchsorted(self._ends, index, side="right"))
    chunk = self._stores[s][int(index) - (int(self._ends[s - 1]) if s else 0)]
    return records.Chunk((s << self._SOURCE_SHIFT) + chunk.document, chunk.sentences,
                         chunk.target_length)

  def token_counts(self):
    return np.concatenate([s.token_counts() for s in self._stores])
