"""`text_files`: a TFDS corpus made of the user's own `.txt` / `.txt.gz` files.

  prelm train ... --config.data.dataset=text_files --config.data.paths='DIR/*.txt'

Each file is decoded (UTF-8, BOM and CRLF handled), stripped of a Project Gutenberg
header and licence when it has them, and split into documents of one sentence per
line (data/plain_text.py). Documents are de-duplicated and split into
train/validation by their text's hash, as pydocs' are (data/splits.py). Like pydocs
it writes ArrayRecord and needs no TensorFlow and no download.

The prepared data is keyed by a fingerprint of the files (absolute paths, sizes,
mtimes) and the settings: its BuilderConfig is named after it, so a changed folder is
prepared anew into its own directory and an unchanged one is read as it is. Old
directories are left in place (another run may read them); delete
`<data_dir>/text_files/` when no run is using it.
"""
import collections
import contextlib
import hashlib
import logging as std_logging
import os
import pathlib

from absl import logging
from etils import epath
import nupunkt
import tensorflow_datasets as tfds

from prelm_jax import errors
from prelm_jax.data import plain_text
from prelm_jax.data import splits
from prelm_jax.data import text_sources

NAME = "text_files"


class _DropCustomConfigNotice(std_logging.Filter):
  """Drops TFDS's "Using custom data configuration" warning, logged for every config
  not listed in BUILDER_CONFIGS: here every config is such a one, by design."""

  def filter(self, record):
    return not str(record.msg).startswith("Using custom data configuration")


@contextlib.contextmanager
def _no_custom_config_notice():
  notice_filter = _DropCustomConfigNotice()
  logging.get_absl_logger().addFilter(notice_filter)
  try:
    yield
  finally:
    logging.get_absl_logger().removeFilter(notice_filter)


def builder_kwargs(paths, documents="blank_lines", bad_utf8="error"):
  """The keyword arguments of `tfds.builder("text_files", ...)` for these settings.

  The glob is expanded here, before TFDS (which would prefix this error with its own
  words), so that a glob matching nothing is one line that names it.

  Args:
    paths: config.data.paths: comma-separated globs (text_sources.find_files).
    documents: config.data.documents: "blank_lines" or "file".
    bad_utf8: config.data.bad_utf8: "error" or "replace".

  Returns:
    {"paths", "files", "documents", "bad_utf8"}, files as sorted absolute paths.

  Raises:
    errors.DataError: the globs match no file.
  """
  files = text_sources.find_files(paths)
  if not files:
    raise errors.DataError(
        f"config.data.paths={paths!r} matches no file (from {os.getcwd()}): point it "
        "at your text files, e.g. --config.data.paths='~/books/*.txt'")
  return {"paths": paths, "files": tuple(str(f) for f in files),
          "documents": documents, "bad_utf8": bad_utf8}


def fingerprint(files, documents, bad_utf8):
  """A name for the prepared data of these files as they are now, and these settings.

  Covers each file's absolute path, size and mtime, the settings, and the sentence
  segmenter's version (the code's own version is TextFiles.VERSION, in the path).
  """
  digest = hashlib.sha256()
  for path in files:
    stat = os.stat(path)
    digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
  digest.update(f"{documents}\0{bad_utf8}\0nupunkt {nupunkt.__version__}".encode())
  return f"{documents}-{bad_utf8}-{digest.hexdigest()[:16]}"


def collect_documents(files, documents="blank_lines", bad_utf8="error"):
  """All distinct documents of the files, in file order.

  Args:
    files: paths, in the order their documents should be numbered.
    documents: "blank_lines" or "file" (plain_text.documents).
    bad_utf8: "error" or "replace" (text_sources.read_text).

  Returns:
    (pairs, stats): pairs is a list of (source, text) with source "<path>:<index>"
    (index of the document in its file, before de-duplication) and text one sentence
    per line; stats counts "files", "documents", "sentences",
    "duplicates_dropped", "bad_utf8_replaced" and "files_with_bad_utf8".

  Raises:
    errors.DataError: a file that is not UTF-8 (with bad_utf8="error") or not gzip.
  """
  stats = collections.Counter(files=len(files))
  seen, pairs = set(), []
  for path in files:
    text, replaced = text_sources.read_text(pathlib.Path(path), bad_utf8)
    if replaced:
      stats["bad_utf8_replaced"] += replaced
      stats["files_with_bad_utf8"] += 1
    for index, doc in enumerate(
        plain_text.documents(plain_text.strip_gutenberg(text), documents)):
      key = splits.digest(doc)  # rather than the text: memory stays flat
      if key in seen:
        stats["duplicates_dropped"] += 1
        continue
      seen.add(key)
      pairs.append((f"{path}:{index:06d}", doc))
      stats["sentences"] += doc.count("\n") + 1
  stats["documents"] = len(pairs)
  return pairs, dict(stats)


def split_documents(pairs):
  """(source, text) pairs -> {"train": [...], "validation": [...]} by text hash.

  As pydocs: ~2% by splits.split_of. A corpus too small to put any document in one
  split (TFDS cannot write an empty split, and pre-training needs both) gives it
  instead the document with the smallest (validation) or largest (train) digest, so
  the result is still a function of the texts alone.

  Raises:
    ValueError: fewer than 2 documents.
  """
  if len(pairs) < 2:
    raise ValueError(f"{len(pairs)} documents cannot fill two splits")
  by_split = {"train": [], "validation": []}
  for pair in pairs:
    by_split[splits.split_of(pair[1])].append(pair)
  for empty, full, pick in (("validation", "train", min), ("train", "validation", max)):
    if not by_split[empty]:
      moved = pick(by_split[full], key=lambda pair: splits.digest(pair[1]))
      by_split[full].remove(moved)
      by_split[empty].append(moved)
  return by_split


class TextFiles(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder over a glob of text files (train/validation by hash)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Sentences by nupunkt; Gutenberg frame stripped; dedup."}

  # As in pydocs: tfds's own code_path lookup fails on Python >= 3.9
  # (tensorflow/datasets#11212); it is only used to look for checksums.tsv.
  code_path = epath.Path(__file__)

  def __init__(self, *, paths=None, files=None, documents="blank_lines",
               bad_utf8="error", **kwargs):
    """Args: as builder_kwargs() returns them, plus tfds' own (data_dir, ...)."""
    if not files:
      raise errors.DataError(
          "The text_files dataset needs its files: build it with "
          "tfds.builder('text_files', **text_files.builder_kwargs(paths)) (prelm does "
          "so from --config.data.paths)")
    if documents not in plain_text.DOCUMENT_MODES:
      raise errors.DataError(f"documents={documents!r} is not one of "
                             f"{plain_text.DOCUMENT_MODES}")
    if bad_utf8 not in text_sources.BAD_UTF8_POLICIES:
      raise errors.DataError(f"bad_utf8={bad_utf8!r} is not one of "
                             f"{text_sources.BAD_UTF8_POLICIES}")
    self._paths = paths or ", ".join(files)
    self._files = tuple(files)
    self._documents = documents
    self._bad_utf8 = bad_utf8
    kwargs["config"] = tfds.core.BuilderConfig(
        name=fingerprint(self._files, documents, bad_utf8),
        description=f"{len(self._files)} files matching {self._paths}")
    # ArrayRecord is the format that reads back without TensorFlow (as_data_source).
    kwargs.setdefault("file_format", "array_record")
    with _no_custom_config_notice():
      super().__init__(**kwargs)

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "source": tfds.features.Text(),
        }),
        # Filled in by _split_generators; saved with the prepared data.
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    documents, stats = collect_documents(self._files, self._documents, self._bad_utf8)
    if len(documents) < 2:
      raise errors.DataError(
          f"config.data.paths={self._paths!r}: its {len(self._files)} files give "
          f"{len(documents)} distinct documents (empty files, or nothing between "
          "Gutenberg's START and END markers?), and training needs >= 2 (one is held "
          "out for validation): point it at more text"
          + ("" if self._documents == "blank_lines" else
             ", or pass --config.data.documents=blank_lines"))
    if stats.get("bad_utf8_replaced"):
      logging.warning(
          "text_files: %d bad UTF-8 byte sequences in %d files read as U+FFFD "
          "(config.data.bad_utf8=replace)", stats["bad_utf8_replaced"],
          stats["files_with_bad_utf8"])
    self.info.metadata.update(stats)
    return {split: self._generate_examples(pairs)
            for split, pairs in split_documents(documents).items()}

  def _generate_examples(self, documents):
    for source, text in documents:
      yield source, {"text": text, "source": source}
