"""Pre-training input pipeline: documents -> sentence pairs -> masked batches (host numpy).

Every example is a pure function of (seed, step, global row), so `batch(step)` is
random-access: resuming at step s replays exactly what an uninterrupted run would
have seen, and the processes of a multi-host run each build only their own rows.
"""
import sys

import grain
import numpy as np

from prelm_jax import errors
from prelm_jax.data import masking

# Tags that keep the random streams apart (SeedSequence pads short keys with zeros,
# so streams differ by tag, not by key length).
_TRAIN_EXAMPLE, _EVAL_EXAMPLE, _CHUNKING, _EPOCH_ORDER = range(4)
_MIN_SEQ_LEN = 5  # [CLS] a [SEP] b [SEP]: one token each for A and B


def _documents(tokenizer, texts):
  """Tokenises every non-empty line once; a document is its list of sentences.

  Args:
    tokenizer: a WordPiece.
    texts: document strings; each non-empty line is a sentence.

  Returns:
    A list of documents, each a non-empty list of int32 arrays (sentences). Lines
    without any token are dropped, then documents without sentences.
  """
  lines, doc_of_line = [], []
  for d, text in enumerate(texts):
    for line in text.split("\n"):
      if line.strip():
        lines.append(line)
        doc_of_line.append(d)
  ids = tokenizer.encode_lines(lines)  # one batched call: seconds, not minutes
  documents = [[] for _ in texts]
  for d, sentence in zip(doc_of_line, ids):
    if sentence:
      documents[d].append(np.asarray(sentence, np.int32))
  return [doc for doc in documents if doc]


def _chunks(documents, data_cfg, seed):
  """All chunks of all documents: int64 [n, 4] rows of (doc, first, end, target)."""
  rng = np.random.default_rng([seed, _CHUNKING])
  rows = []
  for d, doc in enumerate(documents):
    for first, end, target in masking.chunk_document(
        [len(s) for s in doc], rng, max_num_tokens=data_cfg.max_seq_len - 3,
        short_seq_prob=data_cfg.short_seq_prob):
      rows.append((d, first, end, target))
  return np.asarray(rows, np.int64).reshape(-1, 4)


class _Examples:
  """Turns (chunk, rng) into one masked NSP example, written into batch arrays."""

  def __init__(self, data_cfg, tokenizer, texts, *, seed, what):
    length = data_cfg.max_seq_len
    if length < _MIN_SEQ_LEN:
      raise ValueError(f"max_seq_len={length} is too small: [CLS] A [SEP] B [SEP] "
                       f"needs config.data.max_seq_len >= {_MIN_SEQ_LEN}.")
    if data_cfg.max_predictions_per_seq < 1:
      raise ValueError("config.data.max_predictions_per_seq must be >= 1.")
    if not len(tokenizer.replacement_ids):
      raise ValueError(f"The vocab has {tokenizer.vocab_size} tokens, all of them "
                       "special: no random replacement tokens; train a larger vocab.")
    self.cfg = data_cfg
    self.tok = tokenizer
    self.documents = _documents(tokenizer, texts)
    self.chunks = _chunks(self.documents, data_cfg, seed)
    self.objective = sentence_objective(data_cfg)
    # Only NSP draws B from another document.
    min_documents = 2 if self.objective == "nsp" else 1
    if not len(self.chunks) or len(self.documents) < min_documents:
      raise errors.DataError(
          f"The {what} texts give {len(self.chunks)} chunks from "
          f"{len(self.documents)} documents: a sentence pair needs a document with >= 2 "
          f"non-empty lines, and {self.objective} >= {min_documents} documents; use a "
          "larger split or dataset.")
    self.whole_words = bool(data_cfg.get("whole_word_masking", False))

  def allocate(self, rows):
    """Zeroed batch arrays for `rows` examples."""
    return {k: np.zeros((rows,) + shape, dtype)
            for k, (shape, dtype) in batch_spec(self.cfg).items()}

  def write(self, out, row, chunk_index, rng):
    """Builds the example of chunk `chunk_index` with `rng` into row `row` of `out`."""
    cfg, tok = self.cfg, self.tok
    doc, first, end, target = (int(x) for x in self.chunks[chunk_index])
    a, b, label = masking.create_pair(self.documents, doc, (first, end, target), rng,
                                      nsp_random_prob=cfg.nsp_random_prob,
                                      objective=self.objective)
    a, b = masking.truncate_seq_pair(a, b, cfg.max_seq_len - 3, rng)
    ids, types, attention, special = masking.pack_pair(
        a, b, max_seq_len=cfg.max_seq_len, cls_id=tok.cls_id, sep_id=tok.sep_id,
        pad_id=tok.pad_id)
    ids, positions, labels, weights = masking.mask_tokens(
        ids, special, rng, mask_prob=cfg.mask_prob,
        mask_token_prob=cfg.mask_token_prob, random_token_prob=cfg.random_token_prob,
        max_predictions=cfg.max_predictions_per_seq, mask_id=tok.mask_id,
        replacement_ids=tok.replacement_ids,
        continuation=tok.is_continuation[ids] if self.whole_words else None)
    out["input_ids"][row] = ids
    out["token_type_ids"][row] = types
    out["attention_mask"][row] = attention
    out["mlm_positions"][row] = positions
    out["mlm_ids"][row] = labels
    out["mlm_weights"][row] = weights
    if "nsp_labels" in out:
      out["nsp_labels"][row] = label
    out["example_weights"][row] = 1.0


def sentence_objective(data_cfg):
  """config.data.sentence_objective; "nsp" for configs saved before the key existed."""
  return data_cfg.get("sentence_objective", "nsp")


def packing(data_cfg):
  """config.data.packing; False for configs saved before the key existed."""
  return bool(data_cfg.get("packing", False))


def max_pairs_per_row(data_cfg):
  """config.data.max_pairs_per_row (S): pair slots of a packed row."""
  return data_cfg.get("max_pairs_per_row", 8)


def batch_spec(data_cfg):
  """{name: (shape without the batch axis, dtype)} of a pre-training batch.

  input_ids, token_type_ids, attention_mask: [L]; mlm_positions, mlm_ids (original
  token ids), mlm_weights (1 at real masked positions): [P]; nsp_labels, the
  sentence objective's label (nsp: 0 = IsNext, 1 = NotNext; sop: 0 = in order,
  1 = swapped; absent for objective none), and example_weights (0 for padding rows
  of the last eval batch): [].

  With config.data.packing a row holds k <= S sentence pairs, each [CLS] A [SEP] B
  [SEP], one after another, then padding (S = config.data.max_pairs_per_row):
    attention_mask [L]: 1 at every real token of any pair.
    segment_ids int32 [L]: 1..k for the k pairs, 0 at padding.
    position_ids int32 [L]: 0 at each pair's [CLS], counting up within the pair; 0
      at padding.
    mlm_positions, mlm_ids, mlm_weights [P]: as above, positions in row
      coordinates; P (config.data.max_predictions_per_seq) covers all pairs.
    cls_positions int32 [S]: each pair's [CLS] position (0 for unused slots).
    nsp_labels int32 [S]: each pair's label (any value in unused slots).
    nsp_weights float32 [S]: 1 for a real pair, 0 for unused slots.
    example_weights []: as above (0 for a padding row: none of its pairs count).
  Objective none has no cls_positions, nsp_labels or nsp_weights.
  """
  length, preds = (data_cfg.max_seq_len,), (data_cfg.max_predictions_per_seq,)
  spec = {
      "input_ids": (length, np.int32), "token_type_ids": (length, np.int32),
      "attention_mask": (length, np.int32),
      "mlm_positions": (preds, np.int32), "mlm_ids": (preds, np.int32),
      "mlm_weights": (preds, np.float32),
      "nsp_labels": ((), np.int32), "example_weights": ((), np.float32),
  }
  if packing(data_cfg):
    slots = (max_pairs_per_row(data_cfg),)
    spec.update(segment_ids=(length, np.int32), position_ids=(length, np.int32),
                cls_positions=(slots, np.int32), nsp_labels=(slots, np.int32),
                nsp_weights=(slots, np.float32))
  if sentence_objective(data_cfg) == "none":
    for key in ("nsp_labels", "cls_positions", "nsp_weights"):
      spec.pop(key, None)
  return spec


def local_rows(batch_size, process_index, process_count):
  """This process's slice [lo, hi) of the global batch."""
  if batch_size % process_count:
    raise ValueError(f"batch_size={batch_size} is not divisible by "
                     f"process_count={process_count}: use a multiple of it.")
  per_process = batch_size // process_count
  return process_index * per_process, (process_index + 1) * per_process


class PretrainData:
  """Training batches: random access by step, endless (epochs reshuffle chunks).

  Global example g = step * batch_size + row takes chunk permutation(epoch)[g % n]
  with epoch = g // n, and draws its split point, NSP coin, truncation and masks
  from default_rng([seed, 0, step, row]).
  """

  def __init__(self, data_cfg, tokenizer, texts, *, batch_size, seed,
               process_index=0, process_count=1):
    """Pre-tokenises `texts` and cuts them into chunks.

    Args:
      data_cfg: config.data (max_seq_len, short_seq_prob, nsp_random_prob,
        mask_prob, mask_token_prob, random_token_prob, max_predictions_per_seq).
      tokenizer: a WordPiece.
      texts: the training documents.
      batch_size: the GLOBAL batch size.
      seed: the data seed.
      process_index, process_count: which rows of each global batch this
        process produces (jax.process_index(), jax.process_count()).
    """
    self._rows = local_rows(batch_size, process_index, process_count)
    self._examples = _Examples(data_cfg, tokenizer, texts, seed=seed, what="training")
    self.batch_size = batch_size
    self.seed = seed
    self.num_chunks = len(self._examples.chunks)
    self._orders = {}

  def _order(self, epoch):
    """The chunk permutation of an epoch (cached: consecutive steps share one)."""
    order = self._orders.get(epoch)
    if order is None:
      order = np.random.default_rng([self.seed, _EPOCH_ORDER, epoch]).permutation(
          self.num_chunks)
      if len(self._orders) >= 2:  # A batch spans at most two epochs.
        self._orders.clear()
      self._orders[epoch] = order
    return order

  def batch(self, step):
    """This process's rows of global batch `step`.

    Args:
      step: the training step (>= 0).

    Returns:
      A dict of numpy arrays as batch_spec describes, with the batch dimension =
      batch_size/process_count.
    """
    lo, hi = self._rows
    out = self._examples.allocate(hi - lo)
    for i, row in enumerate(range(lo, hi)):
      g = step * self.batch_size + row
      chunk = self._order(g // self.num_chunks)[g % self.num_chunks]
      rng = np.random.default_rng([self.seed, _TRAIN_EXAMPLE, step, row])
      self._examples.write(out, i, chunk, rng)
    return out

  def iterate(self, start_step):
    """batch(start_step), batch(start_step + 1), ..., built ahead in the background.

    Uses grain's prefetch: one worker thread (the batch code is numpy-light Python,
    so more threads would only fight over the GIL and the trainer's cores) keeping
    a few batches ready.

    Args:
      start_step: the first step to produce.

    Returns:
      An endless iterator of batch dicts.
    """
    steps = grain.MapDataset.range(start_step, sys.maxsize).map(self.batch)
    return iter(steps.to_iter_dataset(
        grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)))


def eval_batches(data_cfg, tokenizer, texts, *, batch_size, seed, process_index=0,
                 process_count=1):
  """A fixed evaluation set: one example per chunk of `texts`, same on every call.

  Random B segments come from `texts` only, so no training text leaks in. The last
  batch is filled up with copies of the first example (real tokens, so no row is
  fully masked out) whose example_weights and mlm_weights are 0.

  Args:
    data_cfg: config.data.
    tokenizer: a WordPiece.
    texts: the validation documents.
    batch_size: the GLOBAL eval batch size.
    seed: the data seed.
    process_index, process_count: as for PretrainData.

  Returns:
    A list of batch dicts (keys as PretrainData.batch), this process's rows of each
    global batch; every process gets the same number of batches.
  """
  lo, hi = local_rows(batch_size, process_index, process_count)
  examples = _Examples(data_cfg, tokenizer, texts, seed=seed, what="validation")
  num = len(examples.chunks)
  batches = []
  for start in range(0, num, batch_size):
    out = examples.allocate(hi - lo)
    for i, g in enumerate(range(start + lo, start + hi)):
      real = g < num
      index = g if real else 0
      examples.write(out, i, index, np.random.default_rng([seed, _EVAL_EXAMPLE, index]))
      if not real:
        out["example_weights"][i] = 0.0
        out["mlm_weights"][i] = 0.0
    batches.append(out)
  return batches
