"""The text_files corpus: a user's text files -> sentence-per-line documents -> TFDS."""
import gzip
import logging
import os
import pathlib

import pytest

from experiments import base
from prelm_jax import errors
from prelm_jax import registry
from prelm_jax import validation
from prelm_jax.data import corpus
from prelm_jax.data import plain_text
from prelm_jax.data import splits
from prelm_jax.data import text_files
from prelm_jax.data import text_sources

REPO = pathlib.Path(__file__).resolve().parent.parent
GUTENBERG = REPO.parent / "shared" / "data" / "gutenberg"

WRAPPED = """Mr. Smith went to Washington on the
early train. He wanted fruit, e.g. apples
and pears, for the journey. "Where are you
going?" she asked. He did not answer..."""
WRAPPED_SENTENCES = ["Mr. Smith went to Washington on the early train.",
                     "He wanted fruit, e.g. apples and pears, for the journey.",
                     '"Where are you going?" she asked.', "He did not answer..."]

GUTENBERG_FILE = """The Project Gutenberg EBook of A Test, by Nobody

This eBook is for the use of anyone anywhere at no cost.

*** START OF THIS PROJECT GUTENBERG EBOOK A TEST ***




Produced by A Volunteer and the Online
Distributed Proofreading Team

CHAPTER I.

It was a dark night. The rain fell.

End of the Project Gutenberg EBook of A Test, by Nobody

*** END OF THIS PROJECT GUTENBERG EBOOK A TEST ***

***** This file should be named 1-0.txt *****
Updated editions will replace the previous one. THE FULL PROJECT GUTENBERG LICENSE
PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK.
"""


def write(folder, name, content):
  """Writes str (as UTF-8) or bytes; gzip-compressed when the name ends in .gz."""
  path = pathlib.Path(folder) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  data = content.encode("utf-8") if isinstance(content, str) else content
  if name.endswith(".gz"):
    data = gzip.compress(data)
  path.write_bytes(data)
  return path


def many_files(folder, count, prefix="doc"):
  """`count` small files of distinct text, each a document in "file" mode."""
  for i in range(count):
    write(folder, f"{prefix}{i:03d}.txt",
          f"Document {prefix} {i} begins here.\nIt has a second sentence, number {i}.\n\n"
          f"A new paragraph follows. It ends document {i}.\n")
  return str(pathlib.Path(folder) / f"{prefix}*.txt")


def test_gutenberg_frame_and_licence_are_stripped():
  body = plain_text.strip_gutenberg(GUTENBERG_FILE)
  assert plain_text.paragraphs(body) == ["CHAPTER I.", "It was a dark night. The rain fell."]
  [doc] = plain_text.documents(body, "file")
  assert doc.split("\n") == ["CHAPTER I.", "It was a dark night.", "The rain fell."]
  # Without the markers the text is all book: nothing is cut.
  plain = "End of the line. He stopped.\n\n*** Not a marker ***\n"
  assert plain_text.strip_gutenberg(plain) == plain
  # Older files write the marker without a space.
  assert plain_text.strip_gutenberg(
      "licence\n***START OF THE PROJECT GUTENBERG EBOOK X***\nBook.\n"
      "***END OF THE PROJECT GUTENBERG EBOOK X***\nlicence\n").strip() == "Book."


def test_crlf_and_byte_order_mark(tmp_path):
  path = write(tmp_path, "a.txt", "\ufeffFirst line.\r\nSecond line.\r\n\r\nNew. Para.\r")
  text, replaced = text_sources.read_text(path)
  assert (text, replaced) == ("First line.\nSecond line.\n\nNew. Para.\n", 0)
  [doc] = plain_text.documents(text, "file")
  assert doc == "First line.\nSecond line.\nNew.\nPara."


def test_wrapped_paragraph_becomes_one_line_per_sentence():
  [doc] = plain_text.documents(WRAPPED, "file")
  assert doc.split("\n") == WRAPPED_SENTENCES


def test_gzip_files_read_like_plain_ones(tmp_path):
  plain = text_sources.read_text(write(tmp_path, "a.txt", WRAPPED))
  zipped = text_sources.read_text(write(tmp_path, "a.txt.gz", WRAPPED))
  assert plain == zipped == (WRAPPED, 0)
  (tmp_path / "broken.txt.gz").write_bytes(b"plain text named .gz")
  with pytest.raises(errors.DataError, match=r"broken.txt.gz: cannot be decompressed"):
    text_sources.read_text(tmp_path / "broken.txt.gz")


def test_bad_utf8_names_the_file_and_byte_or_is_replaced_and_counted(tmp_path):
  path = write(tmp_path, "latin1.txt", "caf\u00e9 one.\nna\u00efve two.\n".encode("latin-1")
               + "Real \ufffd kept.\n".encode("utf-8"))
  with pytest.raises(errors.DataError) as e:
    text_sources.read_text(path)
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith(f"{path}: not UTF-8 at byte 3 (line 1")
  assert "--config.data.bad_utf8=replace" in message
  text, replaced = text_sources.read_text(path, "replace")
  assert replaced == 2  # the U+FFFD that the file spells out itself is not counted
  assert text == "caf\ufffd one.\nna\ufffdve two.\nReal \ufffd kept.\n"
  zipped = write(tmp_path, "latin1.txt.gz", "\n\u00e9".encode("latin-1"))
  with pytest.raises(errors.DataError, match="at byte 1 of the decompressed text"):
    text_sources.read_text(zipped)
  _, stats = text_files.collect_documents([path, zipped], "file", "replace")
  assert stats["bad_utf8_replaced"] == 3 and stats["files_with_bad_utf8"] == 2


def test_duplicates_are_dropped_by_normalised_text(tmp_path):
  write(tmp_path, "a.txt", WRAPPED)
  write(tmp_path, "b.txt", WRAPPED.upper().replace("\n", "\r\n\r\n"))  # same, re-wrapped
  write(tmp_path, "c.txt", "Something else. Entirely.")
  files = text_sources.find_files(str(tmp_path / "*.txt"))
  pairs, stats = text_files.collect_documents(files, "file")
  assert [pathlib.Path(s.rsplit(":", 1)[0]).name for s, _ in pairs] == ["a.txt", "c.txt"]
  assert stats["duplicates_dropped"] == 1 and stats["documents"] == 2


def test_blank_lines_groups_paragraphs_file_keeps_one_document(tmp_path, monkeypatch):
  monkeypatch.setattr(plain_text, "SENTENCES_PER_DOCUMENT", 4)
  paragraphs = [" ".join(f"Paragraph {p} says {word}." for word in ("one", "two", "three"))
                for p in range(5)]
  text = "\n\n".join(paragraphs)
  by_paragraphs = plain_text.documents(text, "blank_lines")
  # 3 + 3 sentences close a document (>= 4); the last paragraph (3 >= 4 // 2) stays alone.
  assert [d.count("\n") + 1 for d in by_paragraphs] == [6, 6, 3]
  assert by_paragraphs[0].split("\n")[:2] == ["Paragraph 0 says one.",
                                        "Paragraph 0 says two."]
  [whole] = plain_text.documents(text, "file")
  assert whole == "\n".join(by_paragraphs)
  # A short tail (1 < 4 // 2) joins the document before it instead.
  assert [d.count("\n") + 1 for d in plain_text.documents(text + "\n\nThe end.")] == [6, 6, 4]


def test_find_files_takes_comma_separated_globs_and_skips_folders(tmp_path, monkeypatch):
  write(tmp_path, "a.txt", "A.")
  write(tmp_path, "sub/b.txt.gz", "B.")
  write(tmp_path, "sub/c.raw", "C.")
  (tmp_path / "folder.txt").mkdir()
  monkeypatch.chdir(tmp_path)
  found = text_sources.find_files("*.txt, sub/**/*.gz,sub/c.raw,*.txt")
  assert found == sorted([tmp_path / "a.txt", tmp_path / "sub" / "b.txt.gz",
                          tmp_path / "sub" / "c.raw"])
  monkeypatch.setenv("HOME", str(tmp_path))
  assert text_sources.find_files("~/a.txt") == [tmp_path / "a.txt"]


def test_no_matching_file_is_one_line_error_naming_the_glob(tmp_path):
  glob = str(tmp_path / "nothing" / "*.txt")
  with pytest.raises(errors.DataError, match=r"^config.data.paths='[^\n]*nothing/\*.txt' "
                     "matches no file .*--config.data.paths="):
    text_files.builder_kwargs(glob)


def test_files_without_text_are_one_line_error(tmp_path):
  write(tmp_path, "empty.txt", "")
  write(tmp_path, "blank.txt", "\n\n  \n")
  write(tmp_path, "frame_only.txt", GUTENBERG_FILE.replace("CHAPTER I.", "").replace(
      "It was a dark night. The rain fell.", ""))
  glob = str(tmp_path / "*.txt")
  with pytest.raises(errors.DataError) as e:
    corpus.load_documents("text_files", "train", str(tmp_path / "tfds"),
                          **text_files.builder_kwargs(glob))
  assert str(e.value).startswith(f"config.data.paths={glob!r}: its 3 files give 0 ")
  assert "\n" not in str(e.value)


def test_bad_utf8_stops_the_build_in_one_line(tmp_path, caplog):
  many_files(tmp_path, 3)
  write(tmp_path, "doc_bad.txt", b"Fine.\n\xff\xfe")
  kwargs = text_files.builder_kwargs(str(tmp_path / "doc*.txt"), "file")
  with pytest.raises(errors.DataError, match=r"doc_bad.txt: not UTF-8 at byte 6 \(line 2"):
    corpus.load_documents("text_files", "train", str(tmp_path / "tfds"), **kwargs)
  kwargs = text_files.builder_kwargs(str(tmp_path / "doc*.txt"), "file", "replace")
  with caplog.at_level(logging.WARNING):
    assert corpus.load_documents("text_files", "train", str(tmp_path / "tfds"), **kwargs)
  assert "2 bad UTF-8 byte sequences in 1 files read as U+FFFD" in caplog.text
  # The count stays with the prepared data (metadata.json), for a later look.
  metadata = corpus.tfds.builder("text_files", data_dir=str(tmp_path / "tfds"),
                                 **kwargs).info.metadata
  assert metadata["bad_utf8_replaced"] == 2 and metadata["documents"] == 4


def test_split_is_by_hash_and_never_leaves_a_split_empty():
  pairs = [(f"s{i}", f"Document number {i}.\nIts second line.") for i in range(300)]
  by_split = text_files.split_documents(pairs)
  for split, members in by_split.items():
    assert all(splits.split_of(t) == split for _, t in members)
  assert 0 < len(by_split["validation"]) < 20
  two = pairs[:2]
  tiny = text_files.split_documents(two)
  assert len(tiny["train"]) == len(tiny["validation"]) == 1
  assert tiny == text_files.split_documents(two[::-1])  # the texts decide, not the order
  with pytest.raises(ValueError):
    text_files.split_documents(pairs[:1])


class _CountingCollect:
  """Wraps text_files.collect_documents to count builds."""

  def __init__(self):
    self.calls = 0
    self.collect = text_files.collect_documents

  def __call__(self, *args, **kwargs):
    self.calls += 1
    return self.collect(*args, **kwargs)


def _prepared_dir(data_dir, kwargs):
  return corpus.tfds.builder("text_files", data_dir=data_dir, **kwargs).data_dir


def test_prepared_data_is_reused_until_a_file_changes(tmp_path, monkeypatch):
  counter = _CountingCollect()
  monkeypatch.setattr(text_files, "collect_documents", counter)
  glob = many_files(tmp_path / "texts", 40)
  data_dir = str(tmp_path / "tfds")

  def load():
    kwargs = text_files.builder_kwargs(glob, "file")
    texts = {s: corpus.load_documents("text_files", s, data_dir, **kwargs)
             for s in ("train", "validation")}
    return texts, pathlib.Path(_prepared_dir(data_dir, kwargs))

  texts, prepared = load()
  assert counter.calls == 1
  assert len(texts["train"]) + len(texts["validation"]) == 40 and texts["validation"]
  assert texts["train"][0].split("\n") == ["Document doc 0 begins here.",
                                           "It has a second sentence, number 0.",
                                           "A new paragraph follows.", "It ends document 0."]
  info = prepared / "dataset_info.json"
  built_at = info.stat().st_mtime_ns

  again, same = load()  # unchanged files: read as they are
  assert (again, same, counter.calls) == (texts, prepared, 1)
  assert info.stat().st_mtime_ns == built_at

  changed = tmp_path / "texts" / "doc007.txt"
  stat = changed.stat()
  os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched only
  _, touched = load()
  # A new directory beside the first: <data_dir>/text_files/<fingerprint>/<version>.
  assert counter.calls == 2 and touched.parent.parent == prepared.parent.parent
  assert touched != prepared

  changed.write_text("Now it says something else. Quite different.\n")
  newer, edited = load()
  assert counter.calls == 3 and edited not in (prepared, touched)
  assert "Now it says something else." in "\n".join(newer["train"] + newer["validation"])
  # The other settings are part of the key too.
  assert _prepared_dir(data_dir, text_files.builder_kwargs(glob, "blank_lines")) != str(edited)
  assert prepared.is_dir()  # older builds are left for other runs that may use them


def test_config_checks_name_the_key():
  config = base.get_config()
  validation.check_data(config.data, config.model)  # pydocs: the new keys are inert
  cases = [
      (dict(dataset="text_files"), r"config.data.paths='' .*text_files needs your files"),
      (dict(dataset="text_files", paths="/no/such/dir/*.txt"),
       r"config.data.paths='/no/such/dir/\*.txt' .*matches no file"),
      (dict(paths="~/books/*.txt"),
       r"config.data.paths=.*'pydocs' reads no files; add --config.data.dataset=text_files"),
      (dict(documents="paragraphs"), r"config.data.documents='paragraphs' .*blank_lines, file"),
      (dict(bad_utf8="ignore"), r"config.data.bad_utf8='ignore' .*error, replace"),
  ]
  for overrides, expected in cases:
    bad = base.get_config()
    bad.data.update(overrides)
    with pytest.raises(errors.ConfigError, match=expected):
      validation.check_data(bad.data, bad.model)


def test_builder_kwargs_come_from_the_data_config(tmp_path):
  config = base.get_config()
  assert not corpus.builder_kwargs(config.data)  # pydocs takes none
  path = write(tmp_path, "a.txt", "A.")
  config.data.update(dataset="text_files", paths=str(tmp_path / "*.txt"), bad_utf8="replace")
  assert corpus.builder_kwargs(config.data) == {
      "paths": str(tmp_path / "*.txt"), "files": (str(path),),
      "documents": "blank_lines", "bad_utf8": "replace"}


@pytest.mark.skipif(not GUTENBERG.is_dir(), reason=f"needs the shared books in {GUTENBERG}")
def test_real_gutenberg_books(tmp_path):
  kwargs = text_files.builder_kwargs(str(GUTENBERG / "*.txt"))
  assert len(kwargs["files"]) == 29
  texts = {s: corpus.load_documents("text_files", s, str(tmp_path), **kwargs)
           for s in ("train", "validation")}
  documents = texts["train"] + texts["validation"]
  sentences = [line for doc in documents for line in doc.split("\n")]
  # Measured: 1713 documents (32 validation), 115,659 sentences, 13.1M characters.
  assert 1500 < len(documents) < 2000 and 15 < len(texts["validation"]) < 60
  assert 100_000 < len(sentences) < 130_000
  assert all(line.strip() == line and line for line in sentences)
  assert all(doc.count("\n") >= 10 for doc in documents)  # enough for NSP pairs
  whole = "\n".join(documents)
  for frame in ("*** START OF", "***START OF", "*** END OF", "End of the Project Gutenberg",
                "End of Project Gutenberg", "FULL PROJECT GUTENBERG LICENSE",
                "Produced by", "\r", "\ufeff"):
    assert frame not in whole, frame
  config = registry.load("bert_mini_books")  # its paths find the same books (+ WikiText-2)
  validation.check_data(config.data, config.model)
  files = corpus.builder_kwargs(config.data)["files"]
  assert set(kwargs["files"]) <= set(files) and len(files) == 29 + 2
  # A Christmas Carol, hard-wrapped at "There is no doubt / whatever about that.":
  assert "MARLEY was dead: to begin with." in sentences
  assert "There is no doubt whatever about that." in sentences
