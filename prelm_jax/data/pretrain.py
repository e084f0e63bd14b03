"""Pre-training input pipeline: chunks -> sentence pairs -> masked batches (host numpy).

The chunks come from a chunks.ChunkStore: a prepared corpus's shards (data/prepare.py)
or, for tests and small sets, texts chunked in memory.

Every example is a pure function of (seed, step, global row), so `batch(step)` is
random-access: resuming at step s replays exactly what an uninterrupted run would
have seen, and the processes of a multi-host run each build only their own rows.
"""
import sys
import threading

import grain
import numpy as np

from prelm_jax import errors
from prelm_jax.data import chunks as chunks_lib
from prelm_jax.data import masking
from prelm_jax.data import mixture as mixture_lib
from prelm_jax.data import packing as packing_lib

# Tags that keep the random streams apart (SeedSequence pads short keys with zeros,
# so streams differ by tag, not by key length); 2 is data/chunks.py's.
_TRAIN_EXAMPLE, _EVAL_EXAMPLE, _EPOCH_ORDER, _TRAIN_PACKED = 0, 1, 3, 4
_MIN_SEQ_LEN = 5  # [CLS] a [SEP] b [SEP]: one token each for A and B


def as_chunk_store(tokenizer, source, data_cfg):
  """A chunks.ChunkStore as is; a list of texts is chunked here (tests, small sets)."""
  if isinstance(source, chunks_lib.ChunkStore):
    return source
  return chunks_lib.InMemoryChunks(tokenizer, list(source), data_cfg)


class _Examples:
  """Turns (chunk index, rng) into one masked example, written into batch arrays."""

  def __init__(self, data_cfg, tokenizer, source, *, what):
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
    self.chunks = as_chunk_store(tokenizer, source, data_cfg)
    self.objective = sentence_objective(data_cfg)
    # Only NSP draws B from another document.
    min_documents = 2 if self.objective == "nsp" else 1
    if not len(self.chunks) or self.chunks.num_documents < min_documents:
      raise errors.DataError(
          f"The {what} texts give {len(self.chunks)} chunks from "
          f"{self.chunks.num_documents} documents: a sentence pair needs a document with "
          f">= 2 non-empty lines, and {self.objective} >= {min_documents} documents; use "
          "a larger split or dataset.")
    self.whole_words = bool(data_cfg.get("whole_word_masking", False))

  def allocate(self, rows):
    """Zeroed batch arrays for `rows` examples."""
    return {k: np.zeros((rows,) + shape, dtype)
            for k, (shape, dtype) in batch_spec(self.cfg).items()}

  def pair(self, chunk, chunk_index, rng):
    """(A, B, label) of a chunk, before truncation (masking.create_pair)."""
    return masking.create_pair(
        chunk.sentences, chunk.target_length, rng,
        random_sentences=lambda r: self.chunks.other_document(chunk_index, r),
        nsp_random_prob=self.cfg.nsp_random_prob, objective=self.objective)

  def mask(self, ids, special, rng, max_predictions):
    """masking.mask_tokens with the config's rates and this vocabulary."""
    cfg, tok = self.cfg, self.tok
    return masking.mask_tokens(
        ids, special, rng, mask_prob=cfg.mask_prob,
        mask_token_prob=cfg.mask_token_prob, random_token_prob=cfg.random_token_prob,
        max_predictions=max_predictions, mask_id=tok.mask_id,
        replacement_ids=tok.replacement_ids,
        continuation=tok.is_continuation[ids] if self.whole_words else None)

  def write(self, out, row, chunk_index, rng):
    """Builds the example of chunk `chunk_index` with `rng` into row `row` of `out`."""
    cfg, tok = self.cfg, self.tok
    a, b, label = self.pair(self.chunks[chunk_index], chunk_index, rng)
    a, b = masking.truncate_seq_pair(a, b, cfg.max_seq_len - 3, rng)
    ids, types, attention, special = masking.pack_pair(
        a, b, max_seq_len=cfg.max_seq_len, cls_id=tok.cls_id, sep_id=tok.sep_id,
        pad_id=tok.pad_id)
    ids, positions, labels, weights = self.mask(ids, special, rng,
                                                cfg.max_predictions_per_seq)
    out["input_ids"][row] = ids
    out["token_type_ids"][row] = types
    out["attention_mask"][row] = attention
    out["mlm_positions"][row] = positions
    out["mlm_ids"][row] = labels
    out["mlm_weights"][row] = weights
    if "nsp_labels" in out:
      out["nsp_labels"][row] = label
    out["example_weights"][row] = 1.0


def check_enough_chunks(num_chunks, batch_size):
  """A training split must fill one batch (the task checks it before the workdir)."""
  if num_chunks < batch_size:
    raise errors.DataError(
        f"The training split has {num_chunks} chunks (sentence pairs), fewer than "
        f"one batch of {batch_size}: use a larger corpus, or a smaller "
        "--config.train.batch_size")


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
      coordinates; P = max_predictions_per_seq + S (data/packing.py) covers all
      pairs, each predicting up to max_predictions_per_seq.
    cls_positions int32 [S]: each pair's [CLS] position (0 for unused slots).
    nsp_labels int32 [S]: each pair's label (any value in unused slots).
    nsp_weights float32 [S]: 1 for a real pair, 0 for unused slots.
    example_weights []: as above (0 for a padding row: none of its pairs count).
  Objective none has no cls_positions, nsp_labels or nsp_weights.
  """
  length, preds = (data_cfg.max_seq_len,), (data_cfg.max_predictions_per_seq,)
  if packing(data_cfg):
    preds = (packing_lib.predictions_per_row(data_cfg),)
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

  def __init__(self, data_cfg, tokenizer, source, *, batch_size, seed,
               process_index=0, process_count=1):
    """Reads training examples from `source`.

    Args:
      data_cfg: config.data (max_seq_len, short_seq_prob, nsp_random_prob,
        mask_prob, mask_token_prob, random_token_prob, max_predictions_per_seq).
      tokenizer: a WordPiece.
      source: the training chunks (a chunks.ChunkStore, e.g. a prepared split), or
        the training documents' texts (chunked in memory).
      batch_size: the GLOBAL batch size.
      seed: the data seed.
      process_index, process_count: which rows of each global batch this
        process produces (jax.process_index(), jax.process_count()).
    """
    self._rows = local_rows(batch_size, process_index, process_count)
    self.threads = int(data_cfg.get("input_threads", 1))
    self._examples = _Examples(data_cfg, tokenizer, source, what="training")
    self.batch_size = batch_size
    self.seed = seed
    self.num_chunks = len(self._examples.chunks)
    check_enough_chunks(self.num_chunks, batch_size)
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

  def chunk_indices(self, step):
    """The chunk of each of this process's rows of global batch `step`."""
    lo, hi = self._rows
    g = step * self.batch_size + np.arange(lo, hi)
    return np.asarray([self._order(int(i) // self.num_chunks)[int(i) % self.num_chunks]
                       for i in g], np.int64)

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
    for i, (row, chunk) in enumerate(zip(range(lo, hi), self.chunk_indices(step))):
      rng = np.random.default_rng([self.seed, _TRAIN_EXAMPLE, step, row])
      self._examples.write(out, i, chunk, rng)
    return out

  def iterate(self, start_step):
    """batch(start_step), batch(start_step + 1), ..., built ahead in the background."""
    return prefetched(self.batch, start_step, self.threads)


def prefetched(batch, start_step, threads=1):
  """An endless iterator of batch(start_step), batch(start_step + 1), ...

  grain's prefetch: `threads` background threads (config.data.input_threads) keep
  a few batches ready, in order. The batch code is numpy-light Python, so threads
  beyond one mostly overlap the shard reads (benchmarks/input_pipeline.py measures it).
  """
  steps = grain.MapDataset.range(start_step, sys.maxsize).map(batch)
  return iter(steps.to_iter_dataset(grain.ReadOptions(
      num_threads=threads, prefetch_buffer_size=max(4, 2 * threads))))


class MixtureData:
  """Training batches drawn from several chunk stores by weight (data/mixture.py).

  Global example g = step * batch_size + row comes from source s, its k-th example
  (mixture.Schedule); that is chunk permutation_s(epoch)[k % n_s] with epoch = k // n_s,
  built with default_rng([seed, 0, step, row]) as unmixed examples are.
  """

  def __init__(self, data_cfg, tokenizer, stores, weights, *, batch_size, seed,
               process_index=0, process_count=1, names=None):
    self._rows = local_rows(batch_size, process_index, process_count)
    self.threads = int(data_cfg.get("input_threads", 1))
    self._examples = [_Examples(data_cfg, tokenizer, store, what=f"training ({name})")
                      for store, name in zip(stores, names or range(len(stores)))]
    self.schedule = mixture_lib.Schedule(weights)
    self.batch_size, self.seed = batch_size, seed
    self._orders = {}

  def _order(self, source, epoch):
    key = (source, epoch)
    if key not in self._orders:
      if len(self._orders) >= 2 * len(self._examples):
        self._orders.clear()
      n = len(self._examples[source].chunks)
      self._orders[key] = np.random.default_rng(
          [self.seed, _EPOCH_ORDER, epoch, source + 1]).permutation(n)
    return self._orders[key]

  def sources_and_chunks(self, step):
    """(source, chunk) of each of this process's rows of global batch `step`."""
    lo, hi = self._rows
    sources, ks = self.schedule.locate(step * self.batch_size + np.arange(lo, hi))
    out = []
    for source, k in zip(sources.tolist(), ks.tolist()):
      n = len(self._examples[source].chunks)
      out.append((source, int(self._order(source, k // n)[k % n])))
    return out

  def batch(self, step):
    lo, hi = self._rows
    out = self._examples[0].allocate(hi - lo)
    for i, (row, (source, chunk)) in enumerate(zip(range(lo, hi),
                                                   self.sources_and_chunks(step))):
      rng = np.random.default_rng([self.seed, _TRAIN_EXAMPLE, step, row])
      self._examples[source].write(out, i, chunk, rng)
    return out

  def iterate(self, start_step):
    return prefetched(self.batch, start_step, self.threads)


def eval_batches(data_cfg, tokenizer, source, *, batch_size, seed, process_index=0,
                 process_count=1):
  """A fixed evaluation set: one example per chunk of `source`, same on every call.

  Random B segments come from `source` only, so no training text leaks in. The last
  batch is filled up with copies of the first example (real tokens, so no row is
  fully masked out) whose example_weights and mlm_weights are 0.

  Args:
    data_cfg: config.data.
    tokenizer: a WordPiece.
    source: the validation chunks or texts (as PretrainData's).
    batch_size: the GLOBAL eval batch size.
    seed: the data seed.
    process_index, process_count: as for PretrainData.

  Returns:
    A list of batch dicts (keys as PretrainData.batch), this process's rows of each
    global batch; every process gets the same number of batches.
  """
  lo, hi = local_rows(batch_size, process_index, process_count)
  examples = _Examples(data_cfg, tokenizer, source, what="validation")
  num = len(examples.chunks)
  rng_of = lambda index: np.random.default_rng([seed, _EVAL_EXAMPLE, index])
  if packing(data_cfg):  # rows of consecutive chunks, each chunk in one row
    starts = packing_lib.plan_rows(packing_lib.planned_lengths(
        examples.chunks.token_counts(), data_cfg.max_seq_len), data_cfg.max_seq_len,
                                   max_pairs_per_row(data_cfg))
    rows = [range(a, b) for a, b in zip(starts[:-1], starts[1:])]
    write = lambda out, i, chunks: packing_lib.write_row(
        examples, out, i, chunks, [rng_of(c) for c in chunks])
  else:
    rows = [range(index, index + 1) for index in range(num)]
    write = lambda out, i, chunks: examples.write(out, i, chunks[0], rng_of(chunks[0]))
  batches = []
  for start in range(0, len(rows), batch_size):
    out = examples.allocate(hi - lo)
    for i, g in enumerate(range(start + lo, start + hi)):
      real = g < len(rows)
      write(out, i, rows[g if real else 0])
      if not real:  # padding: real tokens, so no row is fully masked, but no weight
        for key in out:
          if key.endswith("weights"):
            out[key][i] = 0.0
    batches.append(out)
  return batches


class PackedPretrainData(PretrainData):
  """Packed training rows (data/packing.py), random access by step.

  Global row g is row g - first_row(e) of epoch e's plan over that epoch's chunk
  permutation (the unpacked one); its pair at epoch position i draws from
  default_rng([seed, 4, epoch, i]).
  """

  def __init__(self, data_cfg, tokenizer, source, **kwargs):
    super().__init__(data_cfg, tokenizer, source, **kwargs)
    self._cfg = data_cfg
    self._lengths = packing_lib.planned_lengths(self._examples.chunks.token_counts(),
                                                data_cfg.max_seq_len)
    self._first_rows = [0]   # first global row of each epoch planned so far
    self._plans = {}
    self._lock = threading.Lock()  # config.data.input_threads build rows concurrently

  def _plan(self, epoch):
    """(chunk order, row starts) of an epoch (cached: a batch spans at most two)."""
    plan = self._plans.get(epoch)
    if plan is None:
      order = self._order(epoch)
      plan = order, packing_lib.plan_rows(self._lengths[order], self._cfg.max_seq_len,
                                          max_pairs_per_row(self._cfg))
      if len(self._plans) >= 2:
        self._plans.clear()
      self._plans[epoch] = plan
    return plan

  def _locate(self, g):
    """(epoch, row within it) of global row g; plans the epochs before it once."""
    while self._first_rows[-1] <= g:
      epoch = len(self._first_rows) - 1
      self._first_rows.append(self._first_rows[-1] + len(self._plan(epoch)[1]) - 1)
    epoch = int(np.searchsorted(self._first_rows, g, side="right")) - 1
    return epoch, g - self._first_rows[epoch]

  def rows(self, step):
    """[(epoch, first epoch position, chunk indices)] of this process's rows."""
    lo, hi = self._rows
    out = []
    with self._lock:
      for g in range(step * self.batch_size + lo, step * self.batch_size + hi):
        epoch, r = self._locate(g)
        order, starts = self._plan(epoch)
        out.append((epoch, int(starts[r]), order[starts[r]:starts[r + 1]]))
    return out

  def chunk_indices(self, step):
    return np.concatenate([chunks for _, _, chunks in self.rows(step)])

  def batch(self, step):
    lo, hi = self._rows
    out = self._examples.allocate(hi - lo)
    for i, (epoch, first, chunks) in enumerate(self.rows(step)):
      rngs = [np.random.default_rng([self.seed, _TRAIN_PACKED, epoch, first + j])
              for j in range(len(chunks))]
      packing_lib.write_row(self._examples, out, i, chunks, rngs)
    return out


def training_data(data_cfg, tokenizer, source, **kwargs):
  """PackedPretrainData with config.data.packing, else PretrainData."""
  cls = PackedPretrainData if packing(data_cfg) else PretrainData
  return cls(data_cfg, tokenizer, source, **kwargs)
