"""Where a pre-training corpus's documents come from, cut into units for preparation.

Two kinds, one interface (fingerprint, units, unit_texts, sample_texts):
  TfdsSource       a TFDS dataset read by index: pydocs (prepared on first use), a
                   user's own builder, or one of the catalogue (`wikipedia/20230601.en`,
                   `c4/en`, `bookcorpus`, ...) prepared already in config.data.
                   tfds_data_dir. Text other than ours (one sentence per line) is cut
                   into sentences here (paragraphs, then nupunkt). Without a validation
                   split, ~2% of train is held out by text hash (data/splits.py).
  TextFilesSource  config.data.paths, streamed file by file: documents, de-duplication
                   and the train/validation split as the text_files builder makes them
                   (data/text_files.py), without building a TFDS copy of the corpus
                   first, whose writer holds up to 1 GB in memory.

A unit is a picklable description of some documents of one split (an index range, or
a group of files with the documents to keep), so preparation workers rebuild what they
read themselves, and memory holds one unit at a time.
"""
import dataclasses
import hashlib
import json
import math
import pathlib
import sys

from prelm_jax import errors
from prelm_jax.data import corpus
from prelm_jax.data import plain_text
from prelm_jax.data import splits
from prelm_jax.data import text_files
from prelm_jax.data import text_sources

OUR_BUILDERS = ("pydocs",)
SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class Unit:
  split: str
  index: int      # its number within the split (the shard's name)
  first_id: int   # the id of its first document within the split
  payload: tuple  # what the source needs to read it


def from_config(data_cfg):
  if data_cfg.dataset == text_files.NAME:
    return TextFilesSource(tuple(str(f) for f in text_sources.find_files(data_cfg.paths)),
                           data_cfg.paths, data_cfg.documents, data_cfg.bad_utf8)
  return TfdsSource(data_cfg.dataset, data_cfg.tfds_data_dir or "",
                    data_cfg.get("text_field", "text") or "text")


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  dataset: str
  data_dir: str
  text_field: str

  def builder(self):
    return corpus.prepared_builder(self.dataset, self.data_dir or None)

  @property
  def sentence_per_line(self):
    """Ours hold one sentence per line; any other text is cut into sentences here."""
    return self.dataset.split("/")[0] in OUR_BUILDERS

  def where(self):
    return f"dataset {self.dataset!r} in {self.builder().data_dir}"

  def _plan(self, builder):
    """{split: (the TFDS split read, hold-out rule or None)}."""
    names = set(builder.info.splits)
    if "train" not in names:
      raise errors.DataError(
          f"Dataset {self.dataset!r} has no train split (it has {sorted(names)}); "
          "pre-training reads its train split: pick another dataset.")
    if "validation" in names:
      return {"train": ("train", None), "validation": ("validation", None)}
    return {"train": ("train", "train"), "validation": ("train", "validation")}

  def fingerprint(self):
    """Names the source's content: builder, config, version and split sizes."""
    builder = self.builder()
    sizes = {name: [s.num_examples, s.num_bytes] for name, s in builder.info.splits.items()}
    text = json.dumps([builder.name, getattr(builder.builder_config, "name", ""),
                       str(builder.version), sizes, self.text_field], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

  def units(self, unit_docs, unit_bytes):
    del unit_bytes
    builder = self.builder()
    sizes = {name: s.num_examples for name, s in builder.info.splits.items()}
    out = []
    for split, (tfds_split, held_out) in self._plan(builder).items():
      n = sizes[tfds_split]
      for index, lo in enumerate(range(0, n, unit_docs)):
        out.append(Unit(split, index, lo, (tfds_split, held_out, lo, min(n, lo + unit_docs))))
    return out

  def unit_texts(self, unit, cache):
    """The unit's documents as one-sentence-per-line texts ("" for one held out)."""
    tfds_split, held_out, lo, hi = unit.payload
    if "sources" not in cache:
      cache["sources"] = self.builder().as_data_source()
    return self._texts(cache["sources"][tfds_split], lo, hi, held_out)

  def _texts(self, data_source, lo, hi, held_out):
    rows = data_source.__getitems__(range(lo, hi)) if hi > lo else []
    out = []
    for row in rows:
      if self.text_field not in row:
        raise errors.DataError(
            f"Dataset {self.dataset!r} has no feature {self.text_field!r} (it has "
            f"{sorted(row)}): set --config.data.text_field to its text feature.")
      text = row[self.text_field]
      text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
      if held_out and splits.split_of(text) != held_out:
        text = ""
      if not self.sentence_per_line and text:
        text = "\n".join(s for p in plain_text.paragraphs(text)
                         for s in plain_text.sentences(p))
      out.append(text)
    return out

  def sample_texts(self, max_bytes):
    """The train split's first documents (TFDS's order is already a shuffle) up to
    max_bytes of text (0: all), a block at a time."""
    builder = self.builder()
    tfds_split, held_out = self._plan(builder)["train"]
    data_source = builder.as_data_source()[tfds_split]
    total = 0
    for lo in range(0, len(data_source), 1000):
      for text in self._texts(data_source, lo, min(len(data_source), lo + 1000), held_out):
        if text:
          yield text
          total += len(text)
          if max_bytes and total >= max_bytes:
            return


@dataclasses.dataclass(frozen=True)
class TextFilesSource:
  files: tuple     # sorted absolute paths
  paths: str       # the glob as given (for messages)
  documents: str   # config.data.documents
  bad_utf8: str    # config.data.bad_utf8

  def where(self):
    return f"config.data.paths={self.paths!r}"

  def fingerprint(self):
    return text_files.fingerprint(self.files, self.documents, self.bad_utf8)

  def _documents(self, path):
    text, _ = text_sources.read_text(pathlib.Path(path), self.bad_utf8)
    return plain_text.documents(plain_text.strip_gutenberg(text), self.documents)

  def units(self, unit_docs, unit_bytes):
    """One pass over the files (one in memory at a time): each document's split, and
    repeats of an earlier document dropped; then files grouped into units of about
    unit_bytes."""
    del unit_docs
    seen, kept, replaced = set(), [], 0
    for path in self.files:
      keep = {"train": [], "validation": []}
      text, bad = text_sources.read_text(pathlib.Path(path), self.bad_utf8)
      replaced += bad
      for i, doc in enumerate(plain_text.documents(plain_text.strip_gutenberg(text),
                                                   self.documents)):
        digest = splits.digest(doc)
        if digest not in seen:
          seen.add(digest)
          keep[splits.split_of(doc)].append(i)
      kept.append(keep)
    if replaced:
      print(f"text_files: {replaced} bad UTF-8 byte sequences read as U+FFFD "
            "(config.data.bad_utf8=replace)", file=sys.stderr)
    total = {split: sum(len(k[split]) for k in kept) for split in SPLITS}
    if sum(total.values()) < 2:
      raise errors.DataError(
          f"{self.where()}: its {len(self.files)} files give {sum(total.values())} distinct "
          "documents (empty files, or nothing between Gutenberg's START and END "
          "markers?), and training needs >= 2 (one is held out for validation): point "
          "it at more text" + ("" if self.documents == "blank_lines" else
                               ", or pass --config.data.documents=blank_lines"))
    for empty, full in (("validation", "train"), ("train", "validation")):
      if not any(k[empty] for k in kept):  # a tiny corpus: move its last document over
        last = max(f for f, k in enumerate(kept) if k[full])
        kept[last][empty].append(kept[last][full].pop())
    groups, size = [[]], 0
    for f, path in enumerate(self.files):
      if groups[-1] and size >= unit_bytes:
        groups.append([])
        size = 0
      groups[-1].append(f)
      size += pathlib.Path(path).stat().st_size
    out = []
    for split in SPLITS:
      first = 0
      for index, group in enumerate(groups):
        picks = tuple((self.files[f], tuple(kept[f][split])) for f in group if kept[f][split])
        out.append(Unit(split, index, first, picks))
        first += sum(len(docs) for _, docs in picks)
    return out

  def unit_texts(self, unit, cache):
    del cache
    texts = []
    for path, indices in unit.payload:
      documents = self._documents(path)
      texts += [documents[i] for i in indices]
    return texts

  def sample_texts(self, max_bytes):
    """Every k-th file's documents (k from the files' sizes), so that about max_bytes
    of text (0: all) spread over the whole corpus train the vocabulary."""
    total = sum(pathlib.Path(p).stat().st_size for p in self.files)
    step = max(1, math.ceil(total / max_bytes)) if max_bytes else 1
    for path in self.files[::step]:
      for doc in self._documents(path):
        if splits.split_of(doc) == "train":
          yield doc
