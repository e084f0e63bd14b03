"""The pydocs corpus: collection, split, and the TFDS builder without TensorFlow."""
import collections
import hashlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from prelm_jax.data import corpus
from prelm_jax.data import pydocs
from prelm_jax.data import splits

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def documents():
  return pydocs.collect_documents()


def digest(documents):
  return hashlib.sha256(json.dumps(documents).encode()).hexdigest()


def test_collect_documents_is_deterministic_across_processes(documents):
  assert pydocs.collect_documents() == documents
  # Another hash seed (set/dict order) and a parent process without pytest's patches
  # of the standard library must give the same corpus.
  code = ("import hashlib, json; from prelm_jax.data import pydocs; print(hashlib."
          "sha256(json.dumps(pydocs.collect_documents()).encode()).hexdigest())")
  env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                       capture_output=True, text=True).stdout.split()[-1]
  assert out == digest(documents)


def test_documents_are_distinct_and_substantial(documents):
  sources = [s for s, _ in documents]
  keys = [splits.normalise(t) for _, t in documents]
  assert len(set(sources)) == len(sources)
  assert len(set(keys)) == len(keys)  # deduplicated by normalised text
  assert min(map(len, keys)) >= pydocs.MIN_CHARS
  assert sum(len(t) for _, t in documents) > 1_000_000  # ~1.7 MB on Python 3.11
  kinds = collections.Counter(s.split(":")[0] for s in sources)
  assert kinds["topic"] > 50 and kinds["doc"] > 3000
  by_source = dict(documents)
  assert "for" in by_source["topic:for"] and "json" in by_source["doc:json.dumps"].lower()
  # Multi-line documents keep their lines (NSP needs sentences).
  assert sum("\n" in t for _, t in documents) > len(documents) / 2


def test_split_is_stable_disjoint_and_about_two_percent(documents):
  by_split = {"train": set(), "validation": set()}
  for _, text in documents:
    split = splits.split_of(text)
    assert split == splits.split_of("  " + text.upper().replace(" ", "\n"))
    by_split[split].add(splits.normalise(text))
  assert not by_split["train"] & by_split["validation"]
  fraction = len(by_split["validation"]) / len(documents)
  assert 0.01 < fraction < 0.035


def test_builder_builds_and_loads_without_tensorflow(pydocs_data_dir, pydocs_texts,
                                                     documents):
  for split, texts in pydocs_texts.items():
    expected = {splits.normalise(t) for _, t in documents if splits.split_of(t) == split}
    assert {splits.normalise(t) for t in texts} == expected
    assert corpus.load_documents("pydocs", split, pydocs_data_dir) == texts  # same order
  assert len(pydocs_texts["validation"]) > 50
  files = [p.name for p in pathlib.Path(pydocs_data_dir).rglob("*.array_record*")]
  assert any("train" in f for f in files) and any("validation" in f for f in files)
  assert "tensorflow" not in sys.modules
  assert importlib.util.find_spec("tensorflow") is None  # not even installed


def test_load_documents_errors_name_the_fix(pydocs_data_dir):
  with pytest.raises(ValueError, match="Unknown dataset 'no_such_corpus'"):
    corpus.load_documents("no_such_corpus", "train", pydocs_data_dir)
  with pytest.raises(ValueError, match="no split 'test'.*'validation'"):
    corpus.load_documents("pydocs", "test", pydocs_data_dir)
