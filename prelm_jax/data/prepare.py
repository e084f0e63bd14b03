"""The preparation stage: a corpus -> tokenised documents in ArrayRecord shards, once.

  prelm prepare --config bert_tiny_books [--workers 4]     (or the first `prelm train`)

A prepared corpus lives in <root>/<dataset>-<key>/ where the key hashes everything that
shapes its records: the source's content (data/corpus_source.py fingerprint), the
vocabulary, max_seq_len, short_seq_prob and the unit sizes. Every later run with those
settings reads it as it is; change one and a new directory is prepared beside it (old
ones stay for the runs that use them; delete them when none does). <root> is
config.data.prepared_dir, by default <tfds_data_dir>/prelm_prepared; trained
vocabularies are cached in <root>/vocabularies/.

Each split is cut into units (config.data.prepare_unit_docs documents of a TFDS
dataset; about config.data.prepare_unit_bytes of text files); a unit becomes one shard
`<split>-<unit>.array_record` of its documents with a sentence (records.py), the table
of their chunks `<split>-<unit>.chunks.npy` (chunks.cut_chunks) and its counts
`<split>-<unit>.json`, each written under a temporary name and renamed, the .json last,
so an interrupted preparation resumes with the units it has not finished. Units run in
parallel (config.data.prepare_workers processes; on many hosts `prelm prepare
--process_id I --num_processes N` prepares units I, I + N, ...). Memory is bounded by
one unit per worker, whatever the corpus size (benchmarks/corpus_memory.py).
manifest.json is written last: its presence means the directory is complete.
"""
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time

import numpy as np
from array_record.python import array_record_data_source
from array_record.python import array_record_module
from tqdm import tqdm

from prelm_jax import errors
from prelm_jax.data import chunks as chunks_lib
from prelm_jax.data import corpus_source
from prelm_jax.data import mixture
from prelm_jax.data import records
from prelm_jax.data import tokenizer as tokenizer_lib

FORMAT_VERSION = 4
MANIFEST = "manifest.json"
KEY_FILE = "key.json"
VOCAB_FILE = "vocab.txt"
# Beside each shard of documents: its chunks, int32 [n, 5] rows of (document index in
# the shard, first sentence, end sentence, target length, tokens) (chunks.cut_chunks).
CHUNKS_SUFFIX = ".chunks.npy"   # the vocabulary the records were tokenised with


def default_root(data_cfg):
  if data_cfg.get("prepared_dir"):
    return os.path.expanduser(data_cfg.prepared_dir)
  data_dir = data_cfg.tfds_data_dir or os.path.join("~", "tensorflow_datasets")
  return os.path.join(os.path.expanduser(data_dir), "prelm_prepared")


def vocab_digest(tokenizer):
  text = "\n".join(tokenizer.tokens) + f"\nlowercase={tokenizer.lowercase}"
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(data_cfg, source_fingerprint, tokenizer):
  """Everything that shapes the records: equal keys, equal shards."""
  return {"format": FORMAT_VERSION, "dataset": data_cfg.dataset,
          "source": source_fingerprint, "vocab": vocab_digest(tokenizer),
          "max_seq_len": int(data_cfg.max_seq_len),
          "short_seq_prob": float(data_cfg.short_seq_prob),
          "unit_docs": int(data_cfg.get("prepare_unit_docs", 2000)),
          "unit_bytes": int(data_cfg.get("prepare_unit_bytes", 16_000_000))}


def cache_dir(root, key):
  slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key["dataset"])
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(root, f"{slug}-{digest}")


def _shard_name(split, unit):
  return f"{split}-{unit:05d}"


def _write_atomic(path, write):
  tmp = path + ".tmp"
  write(tmp)
  os.replace(tmp, path)


def _write_json(path, value):
  def write(tmp):
    with open(tmp, "w") as f:
      json.dump(value, f, indent=1, sort_keys=True)
  _write_atomic(path, write)


# One unit, in whatever process runs it. Module-level and fed plain values so that a
# spawned worker can run it; each worker keeps its tokenizer and open TFDS sources.
_WORKER = {}


def prepare_unit(source, directory, lowercase, chunk_cfg, unit):
  """Tokenises and chunks one unit's documents into one shard; returns its counts."""
  if _WORKER.get("key") != (source, directory):
    _WORKER.clear()
    _WORKER.update(key=(source, directory), cache={}, tokenizer=tokenizer_lib.load_wordpiece(
        os.path.join(directory, VOCAB_FILE), lowercase))
  texts = source.unit_texts(unit, _WORKER["cache"])
  documents, ids, table = chunks_lib.cut_chunks(
      chunks_lib.tokenize(_WORKER["tokenizer"], texts), _Cfg(chunk_cfg),
      first_id=unit.first_id)
  name = os.path.join(directory, _shard_name(unit.split, unit.index))

  def write(tmp):
    writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
    for document, sentences in zip(ids, documents):
      writer.write(records.encode(records.Chunk(document, sentences, 0)))
    writer.close()
  _write_atomic(name + ".array_record", write)

  def write_table(tmp):
    with open(tmp, "wb") as f:
      np.save(f, table.astype(np.int32))
  _write_atomic(name + CHUNKS_SUFFIX, write_table)
  counts = {"chunks": len(table), "documents": len(documents),
            "tokens": int(table[:, 4].sum()),
            "sentences": int(sum(len(d) for d in documents))}
  _write_json(name + ".json", counts)
  return counts


class _Cfg(dict):
  """The two config.data values chunking reads, as attributes (picklable)."""
  __getattr__ = dict.__getitem__


def prepare(data_cfg, tokenizer, *, workers=None, process_index=0, process_count=1,
            quiet=False):
  """Prepares (or finds) the corpus of config.data for this vocabulary.

  Args:
    data_cfg: config.data.
    tokenizer: the run's WordPiece.
    workers: processes for this host's units (default config.data.prepare_workers;
      1 runs them in this process).
    process_index, process_count: on many hosts, this process prepares units
      process_index, process_index + process_count, ...; the caller waits for all
      hosts (a barrier) before reading the manifest.
    quiet: no progress bar.

  Returns:
    The prepared directory (complete when this host's units are done and, with one
    process, the manifest written).
  """
  source = corpus_source.from_config(data_cfg)
  key = cache_key(data_cfg, source.fingerprint(), tokenizer)
  directory = cache_dir(default_root(data_cfg), key)
  if os.path.exists(os.path.join(directory, MANIFEST)):
    return directory
  os.makedirs(directory, exist_ok=True)
  _write_json(os.path.join(directory, KEY_FILE), key)
  if not os.path.exists(os.path.join(directory, VOCAB_FILE)):
    tokenizer.save(os.path.join(directory, VOCAB_FILE))
  units = source.units(key["unit_docs"], key["unit_bytes"])
  mine = [u for i, u in enumerate(units) if i % process_count == process_index]
  todo = [u for u in mine if not os.path.exists(
      os.path.join(directory, _shard_name(u.split, u.index) + ".json"))]
  chunk_cfg = _Cfg(max_seq_len=key["max_seq_len"], short_seq_prob=key["short_seq_prob"])
  common = (source, directory, tokenizer.lowercase, chunk_cfg)
  workers = workers or int(data_cfg.get("prepare_workers", 1)) or 1
  if todo:
    start = time.monotonic()
    if not quiet:
      print(f"Preparing {data_cfg.dataset} for this vocabulary and max_seq_len "
            f"{key['max_seq_len']}: {len(todo)} of {len(units)} units to do, "
            f"{min(workers, len(todo))} worker(s), into {directory}", file=sys.stderr)
    bar = tqdm(total=len(todo), desc="prepare", unit="unit",
               disable=quiet or not sys.stderr.isatty(),  # no \r redraws in logs
               file=sys.stderr)
    if workers == 1 or len(todo) == 1:
      for unit in todo:
        prepare_unit(*common, unit)
        bar.update(1)
    else:
      context = multiprocessing.get_context("spawn")  # never fork a process with jax
      with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)),
                                                  mp_context=context) as pool:
        for future in concurrent.futures.as_completed(
            [pool.submit(prepare_unit, *common, unit) for unit in todo]):
          future.result()
          bar.update(1)
    bar.close()
    if not quiet:
      print(f"Prepared in {time.monotonic() - start:.0f} s", file=sys.stderr)
  if process_index == 0 and process_count == 1:
    write_manifest(directory, units, lambda split: (
        f"Split {split!r} of {source.where()} has no usable text: point "
        "config.data at a corpus with text in both splits (a TFDS dataset prepared "
        "empty: delete its directory to rebuild it)"))
  return directory


def trained_vocabulary(data_cfg, quiet=False):
  """A WordPiece trained on a sample of the corpus (of each mixture source by its
  weight), cached under the prepared root.

  The cache file is keyed by the sources' fingerprints and weights, vocab_size,
  lowercase and the sample size, so a second run on the same corpus loads it at once.
  """
  parts = [(corpus_source.from_config(cfg), cfg.dataset, weight)
           for cfg, weight in mixture.sources(data_cfg)]
  total = sum(weight for _, _, weight in parts)
  max_bytes = int(data_cfg.get("vocab_sample_bytes", 0))
  key = json.dumps([FORMAT_VERSION, [[name, s.fingerprint(), w] for s, name, w in parts],
                    int(data_cfg.vocab_size), bool(data_cfg.lowercase), max_bytes])
  path = os.path.join(default_root(data_cfg), "vocabularies",
                      hashlib.sha256(key.encode()).hexdigest()[:16] + ".txt")
  if os.path.exists(path):
    return tokenizer_lib.load_wordpiece(path, data_cfg.lowercase,
                                        fix=f"delete {path} to train it again")
  if not quiet:
    print(f"Training a {data_cfg.vocab_size}-token WordPiece vocabulary on "
          f"{data_cfg.get('mixture') or data_cfg.dataset} (cached in {path})",
          file=sys.stderr)

  def sample():
    for source, _, weight in parts:
      yield from source.sample_texts(int(max_bytes * weight / total))
  wordpiece = tokenizer_lib.train_wordpiece(sample, data_cfg.vocab_size, data_cfg.lowercase)
  if wordpiece.vocab_size <= data_cfg.vocab_size:  # too small: load_or_train says so
    wordpiece.save(path)
  return wordpiece


def write_manifest(directory, units, empty_split_error):
  """manifest.json from the units' counts; refuses when a unit is missing, or a split
  has no sentence at all (empty_split_error(split): the message)."""
  manifest = {"splits": {}}
  for split in corpus_source.SPLITS:
    shards, totals = [], {}
    for unit in (u for u in units if u.split == split):
      name = _shard_name(split, unit.index)
      counts_path = os.path.join(directory, name + ".json")
      if not os.path.exists(counts_path):
        raise errors.DataError(f"{directory}: unit {name} was not prepared; run `prelm "
                               "prepare` (or the training run) again to finish it")
      with open(counts_path) as f:
        counts = json.load(f)
      if counts["documents"]:
        shards.append([name + ".array_record", counts["documents"], counts["chunks"]])
      for k, v in counts.items():
        totals[k] = totals.get(k, 0) + v
    if not totals.get("sentences"):
      raise errors.DataError(empty_split_error(split))
    manifest["splits"][split] = dict(totals, shards=shards)
  _write_json(os.path.join(directory, MANIFEST), manifest)


def read_manifest(directory):
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise errors.DataError(
        f"{path}: cannot be read ({e}); delete {directory} to prepare it again") from None


class PreparedSplit(chunks_lib.ChunkStore):
  """One split of a prepared corpus: its documents read by index from the ArrayRecord
  shards, its chunk tables memory-mapped (nothing grows with the corpus but the
  per-shard offsets)."""

  def __init__(self, directory, split, tokenizer=None):
    self.directory, self.split = directory, split
    if tokenizer is not None:
      with open(os.path.join(directory, KEY_FILE)) as f:
        if json.load(f)["vocab"] != vocab_digest(tokenizer):
          raise errors.DataError(
              f"{directory} was prepared with another vocabulary than this run's; "
              "prepare the corpus for this vocabulary (`prelm prepare`), or delete it")
    info = read_manifest(directory)["splits"][split]
    self.num_tokens = info["tokens"]
    paths = [os.path.join(directory, name) for name, _, _ in info["shards"]]
    for path in paths:
      if not os.path.exists(path) or not os.path.getsize(path):
        raise errors.DataError(
            f"{path}: missing or empty; delete {directory} to prepare it again")
    self._tables = []
    for path, (_, _, num_chunks) in zip(paths, info["shards"]):
      table = self._load_table(path.removesuffix(".array_record") + CHUNKS_SUFFIX)
      if len(table) != num_chunks:
        raise errors.DataError(f"{path}: its chunk table has {len(table)} rows, the "
                               f"manifest says {num_chunks}; delete {directory} to "
                               "prepare it again")
      self._tables.append(table)
    self._chunk_ends = np.cumsum([len(t) for t in self._tables], dtype=np.int64)
    self._doc_starts = np.concatenate(
        [[0], np.cumsum([n for _, n, _ in info["shards"]])]).astype(np.int64)
    self._source = array_record_data_source.ArrayRecordDataSource(paths) if paths else []
    self.num_documents = len(self._source)
    if self.num_documents != info["documents"]:
      raise errors.DataError(
          f"{directory}: the {split} shards hold {self.num_documents} documents, the "
          f"manifest says {info['documents']}; delete {directory} to prepare it again")

  def _load_table(self, path):
    try:
      table = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
      raise errors.DataError(f"{path}: cannot be read ({e}); delete {self.directory} "
                             "to prepare it again") from None
    if table.ndim != 2 or table.shape[1] != chunks_lib.TABLE_COLUMNS:
      raise errors.DataError(f"{path}: not a chunk table (shape {table.shape}); delete "
                             f"{self.directory} to prepare it again")
    return table

  def __len__(self):
    return int(self._chunk_ends[-1]) if len(self._chunk_ends) else 0

  def row(self, index):
    unit = int(np.searchsorted(self._chunk_ends, index, side="right"))
    start = int(self._chunk_ends[unit - 1]) if unit else 0
    row = np.array(self._tables[unit][int(index) - start], np.int64)
    row[0] += self._doc_starts[unit]
    return row

  def document(self, d):
    try:
      chunk = records.decode(self._source[int(d)])
    except (RuntimeError, ValueError, IndexError) as e:
      raise errors.DataError(
          f"{self.directory}: document {d} of the {self.split} shards cannot be read "
          f"({e}); delete {self.directory} to prepare it again") from None
    return chunk.document, chunk.sentences

  def token_counts(self):
    if not self._tables:
      return np.zeros(0, np.int64)
    return np.concatenate([t[:, 4] for t in self._tables]).astype(np.int64)
