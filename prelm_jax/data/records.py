"""One prepared record: a document's sentences (or a chunk of them), as bytes.

Stored as int32s: the document id (two words), the target length (0 for a whole
document), the sentence count n, the n sentence lengths, then the tokens, so reading
one back is a single np.frombuffer with no parsing.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Chunk:
  document: int         # the document's id within its split (distinct per document)
  sentences: list       # int32 arrays, >= 2 of them
  target_length: int    # chunk_document's target (B's share when drawn from elsewhere)

  @property
  def num_tokens(self):
    return sum(len(s) for s in self.sentences)


def encode(chunk):
  lengths = [len(s) for s in chunk.sentences]
  header = np.asarray([chunk.document >> 31, chunk.document & 0x7FFFFFFF,
                       chunk.target_length, len(lengths), *lengths], np.int32)
  return np.concatenate([header, *chunk.sentences]).astype(np.int32).tobytes()


def decode(data):
  words = np.frombuffer(data, np.int32)
  document = (int(words[0]) << 31) | int(words[1])
  target, n = int(words[2]), int(words[3])
  ends = np.cumsum(words[4:4 + n])
  tokens = words[4 + n:]
  sentences = np.split(tokens, ends[:-1])
  return Chunk(document, sentences, target)
