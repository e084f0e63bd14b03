"""The preparation stage (data/prepare.py): shards keyed by corpus, vocab and settings;
reuse, invalidation, resume, workers; exact resume and epoch coverage when training
reads them; one-line errors for broken shards."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from experiments import base
from prelm_jax import errors
from prelm_jax.data import prepare
from prelm_jax.data import pretrain
from prelm_jax.data import tokenizer as tokenizer_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_corpus(folder, count=60, tag=""):
  """`count` files, each one document of a few sentences (documents="file")."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(count):
    sentences = [f"Book {tag}{i} has sentence {j} about topic {i * 7 % 13} and more {j}."
                 for j in range(4 + i % 5)]
    (folder / f"doc{i:03d}.txt").write_text("\n\n".join(sentences) + "\n")
  return str(folder / "*.txt")


def data_config(tmp_path, paths, **overrides):
  data = base.get_config().data
  data.update(dataset="text_files", paths=paths, documents="file",
              tfds_data_dir=str(tmp_path / "tfds"), vocab_size=300, max_seq_len=32,
              max_predictions_per_seq=5, prepare_unit_docs=10, prepare_unit_bytes=1500)
  data.update(overrides)
  return data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """A prepared text_files corpus: (data_cfg, tokenizer, directory)."""
  tmp = tmp_path_factory.mktemp("prepared")
  data = data_config(tmp, write_corpus(tmp / "texts"))
  tokenizer = prepare.trained_vocabulary(data, quiet=True)
  return data, tokenizer, prepare.prepare(data, tokenizer, quiet=True)


def shard_files(directory):
  return {p.name: p.read_bytes() for p in sorted(pathlib.Path(directory).iterdir())
          if p.suffix == ".array_record"}


def test_manifest_counts_every_split(corpus):
  _, _, directory = corpus
  manifest = prepare.read_manifest(directory)
  train, validation = (manifest["splits"][s] for s in ("train", "validation"))
  assert train["documents"] + validation["documents"] == 60
  assert train["chunks"] == len(prepare.PreparedSplit(directory, "train"))
  assert sum(chunks for _, _, chunks in train["shards"]) == train["chunks"]
  assert len(train["shards"]) > 1  # units of 10 documents


def test_second_prepare_reuses_and_changes_rebuild(corpus, tmp_path, capsys):
  data, tokenizer, directory = corpus
  before = {p: os.stat(p).st_mtime_ns for p in pathlib.Path(directory).iterdir()}
  assert prepare.prepare(data, tokenizer) == directory
  assert "Preparing" not in capsys.readouterr().err
  assert before == {p: os.stat(p).st_mtime_ns for p in pathlib.Path(directory).iterdir()}
  # Another vocabulary, another sequence length: each its own directory.
  other_vocab = tokenizer_lib.WordPiece(tokenizer.tokens[:-1], tokenizer.lowercase)
  root = pathlib.Path(directory).parent
  assert prepare.cache_dir(str(root), prepare.cache_key(data, "x", tokenizer)) != \
      prepare.cache_dir(str(root), prepare.cache_key(data, "x", other_vocab))
  longer = data.copy_and_resolve_references()
  longer.max_seq_len = 64
  assert prepare.prepare(longer, tokenizer, quiet=True) != directory


def test_a_changed_file_is_prepared_anew(tmp_path):
  paths = write_corpus(tmp_path / "texts", count=20)
  data = data_config(tmp_path, paths)
  tokenizer = prepare.trained_vocabulary(data, quiet=True)
  first = prepare.prepare(data, tokenizer, quiet=True)
  (tmp_path / "texts" / "doc005.txt").write_text("Changed.\n\nAnother sentence here.\n")
  assert prepare.prepare(data, tokenizer, quiet=True) != first


def test_interrupted_preparation_finishes_only_the_missing_units(corpus, tmp_path):
  data, tokenizer, directory = corpus
  copy = data.copy_and_resolve_references()
  copy.prepared_dir = str(tmp_path / "again")
  again = prepare.prepare(copy, tokenizer, quiet=True)
  expected = shard_files(again)
  # Interrupted: no manifest, one unit lost, one half-written temp file.
  os.remove(os.path.join(again, prepare.MANIFEST))
  for suffix in (".array_record", ".json"):
    os.remove(os.path.join(again, "train-00002" + suffix))
  pathlib.Path(again, "train-00003.array_record.tmp").write_bytes(b"partial")
  kept = os.stat(os.path.join(again, "train-00001.array_record")).st_mtime_ns
  with pytest.raises(errors.DataError, match="delete .* to prepare it again"):
    prepare.PreparedSplit(again, "train")
  assert prepare.prepare(copy, tokenizer, quiet=True) == again
  assert shard_files(again) == expected
  assert os.stat(os.path.join(again, "train-00001.array_record")).st_mtime_ns == kept


def test_worker_processes_write_the_same_shards(corpus, tmp_path):
  data, tokenizer, directory = corpus
  copy = data.copy_and_resolve_references()
  copy.prepared_dir = str(tmp_path / "parallel")
  assert shard_files(prepare.prepare(copy, tokenizer, workers=2, quiet=True)) == \
      shard_files(directory)


def test_every_chunk_once_per_epoch_across_processes(corpus):
  data, tokenizer, directory = corpus
  split = prepare.PreparedSplit(directory, "train", tokenizer)
  n, batch = len(split), 8
  parts = [pretrain.PretrainData(data, tokenizer, split, batch_size=batch, seed=1,
                                 process_index=p, process_count=2) for p in (0, 1)]
  seen = np.concatenate([np.concatenate([part.chunk_indices(step) for part in parts])
                         for step in range(2 * n // batch + 1)])
  for epoch in range(2):
    np.testing.assert_array_equal(np.sort(seen[epoch * n:(epoch + 1) * n]), np.arange(n))
  assert not np.array_equal(seen[:n], seen[n:2 * n])  # each epoch its own order


def test_resume_and_process_split_are_byte_equal(corpus):
  data, tokenizer, directory = corpus
  split = prepare.PreparedSplit(directory, "train", tokenizer)
  one = pretrain.PretrainData(data, tokenizer, split, batch_size=8, seed=1)
  straight = one.iterate(0)
  batches = [next(straight) for _ in range(6)]
  one.threads = 3  # config.data.input_threads: more builders, the same batches in order
  resumed = one.iterate(3)
  for step in range(3, 6):
    got = next(resumed)
    for key in batches[step]:
      np.testing.assert_array_equal(got[key], batches[step][key])
  halves = [pretrain.PretrainData(data, tokenizer, split, batch_size=8, seed=1,
                                  process_index=p, process_count=2) for p in (0, 1)]
  for step in (0, 5):
    parts = [h.batch(step) for h in halves]
    for key in batches[step]:
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]),
                                    batches[step][key])


def test_broken_shards_and_another_vocabulary_are_one_line_errors(corpus, tmp_path):
  data, tokenizer, directory = corpus
  copy = data.copy_and_resolve_references()
  copy.prepared_dir = str(tmp_path / "broken")
  broken = prepare.prepare(copy, tokenizer, quiet=True)
  other = tokenizer_lib.WordPiece(tokenizer.tokens[:-1], tokenizer.lowercase)
  with pytest.raises(errors.DataError, match="another vocabulary"):
    prepare.PreparedSplit(broken, "train", other)
  shard = os.path.join(broken, "train-00000.array_record")
  open(shard, "wb").close()
  with pytest.raises(errors.DataError, match="train-00000.array_record: missing or empty"):
    prepare.PreparedSplit(broken, "train", tokenizer)
  with open(os.path.join(broken, prepare.MANIFEST), "w") as f:
    f.write("{not json")
  with pytest.raises(errors.DataError, match="manifest.json: cannot be read"):
    prepare.PreparedSplit(broken, "train", tokenizer)
  # The good corpus is untouched by any of this.
  assert len(prepare.PreparedSplit(directory, "train", tokenizer))


class FakeEncyclopedia(tfds.core.GeneratorBasedBuilder):
  """A stand-in for a catalogue dataset (wikipedia's features: title, text; one train
  split, paragraphs separated by blank lines): nothing can be downloaded here."""

  VERSION = tfds.core.Version("1.0.0")
  code_path = epath.Path(__file__)  # as pydocs: tfds's own lookup fails on Python >= 3.9
  # Where the catalogue's builders live: prelm then treats it as one (never prepares it).
  __module__ = "tensorflow_datasets.text.fake_encyclopedia"

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"title": tfds.features.Text(), "text": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i in range(200):
      paragraphs = [" ".join(f"Article {i} says thing {j} about subject {k}." for k in range(3))
                    for j in range(3)]
      yield i, {"title": f"Article {i}", "text": "\n\n".join(paragraphs)}


def test_catalogue_dataset_by_name_with_its_text_field(tmp_path):
  data_dir = str(tmp_path / "tfds")
  data = data_config(tmp_path, "", dataset="fake_encyclopedia", tfds_data_dir=data_dir,
                     prepare_unit_docs=50)
  with pytest.raises(errors.DataError, match="is not prepared in .*tfds build"):
    prepare.trained_vocabulary(data, quiet=True)
  tfds.builder("fake_encyclopedia", data_dir=data_dir,
               file_format="array_record").download_and_prepare()
  tokenizer = prepare.trained_vocabulary(data, quiet=True)
  directory = prepare.prepare(data, tokenizer, quiet=True)
  splits = prepare.read_manifest(directory)["splits"]
  # No validation split: ~2% held out by text hash, never both.
  assert splits["train"]["documents"] + splits["validation"]["documents"] == 200
  assert 0 < splits["validation"]["documents"] < 20
  chunk = prepare.PreparedSplit(directory, "train", tokenizer)[0]
  assert len(chunk.sentences) >= 2  # paragraphs were cut into sentences
  assert tokenizer.decode(chunk.sentences[0]).startswith("article")
  wrong = data.copy_and_resolve_references()
  wrong.text_field = "body"
  with pytest.raises(errors.DataError, match="no feature 'body'.*text_field"):
    prepare.trained_vocabulary(wrong, quiet=True)


def test_text_files_are_streamed_with_duplicates_dropped_as_the_builder_does(tmp_path):
  from prelm_jax.data import corpus  # pylint: disable=g-import-not-at-top
  paths = write_corpus(tmp_path / "texts", count=30)
  copy = (tmp_path / "texts" / "doc007.txt").read_text()
  (tmp_path / "texts" / "zz-copy-of-7.txt").write_text(copy)
  data = data_config(tmp_path, paths)
  tokenizer = prepare.trained_vocabulary(data, quiet=True)
  splits = prepare.read_manifest(prepare.prepare(data, tokenizer, quiet=True))["splits"]
  assert splits["train"]["documents"] + splits["validation"]["documents"] == 30
  # The same split for each document as the TFDS text_files builder gives it.
  kwargs = corpus.builder_kwargs(data)
  expected = len(corpus.load_documents("text_files", "validation", data.tfds_data_dir,
                                       **kwargs))
  assert splits["validation"]["documents"] == expected


def test_hosts_prepare_their_shares_then_one_writes_the_manifest(corpus, tmp_path):
  data, tokenizer, directory = corpus
  copy = data.copy_and_resolve_references()
  copy.prepared_dir = str(tmp_path / "hosts")
  shares = [prepare.prepare(copy, tokenizer, process_index=i, process_count=2, quiet=True)
            for i in (0, 1)]
  assert shares[0] == shares[1]
  assert not os.path.exists(os.path.join(shares[0], prepare.MANIFEST))  # not yet
  before = shard_files(shares[0])
  assert prepare.prepare(copy, tokenizer, quiet=True) == shares[0]  # finds all units done
  assert shard_files(shares[0]) == before == shard_files(directory)
  assert prepare.read_manifest(shares[0]) == prepare.read_manifest(directory)


def test_prelm_prepare_command(tmp_path):
  paths = write_corpus(tmp_path / "texts", count=20)
  base_args = [sys.executable, "-m", "prelm_jax.main", "prepare", "--config",
               str(REPO / "experiments" / "base.py")]
  args = base_args + ["--config.data.dataset=text_files", f"--config.data.paths={paths}",
                      "--config.data.documents=file", "--config.data.vocab_size=300",
                      f"--config.data.tfds_data_dir={tmp_path / 'tfds'}", "--workers=2"]
  done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert re.search(r"^train: [\d,]+ chunks of [\d,]+ documents", done.stdout, re.M), done.stdout
  directory = done.stdout.strip().splitlines()[-1].removeprefix("prepared: ")
  assert os.path.exists(os.path.join(directory, prepare.MANIFEST))
  if not (REPO.parent / "shared" / "data" / "sst2").exists():
    return  # the fine-tuning experiment below reads ../shared/data/sst2
  finetune = subprocess.run(base_args[:-1] + [str(REPO / "experiments" / "sst2.py")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
  assert finetune.returncode == 2
  assert "prepares a pre-training corpus; this experiment's task is 'classify'" in \
      finetune.stderr


def test_a_corpus_smaller_than_one_batch_is_refused_before_the_workdir(
    tmp_path, pydocs_data_dir, tiny_config):
  from prelm_jax import train  # pylint: disable=g-import-not-at-top
  config = tiny_config(pydocs_data_dir, batch_size=100_000)
  with pytest.raises(errors.DataError, match="fewer than one batch of 100000"):
    train.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
