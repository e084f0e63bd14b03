"""Mixtures (data/mixture.py, pretrain.MixtureData): proportions match the weights,
examples are random access (exact resume, processes split rows), bad specs are one line."""
import json

import numpy as np
import pytest

from experiments import base
from prelm_jax import errors
from prelm_jax.data import chunks
from prelm_jax.data import mixture
from prelm_jax.data import pretrain


@pytest.mark.parametrize("weights", [(0.7, 0.2, 0.1), (1, 3), (0.001, 0.999), (5,)])
def test_realised_proportions_match_the_weights(weights):
  schedule = mixture.Schedule(weights)
  target = np.asarray(weights) / sum(weights)
  for examples in (1000, 64 * 300, 12_345):
    assert np.abs(schedule.proportions(examples) - target).max() < 0.01
  # Short stretches are mixed too, not one source after another.
  sources, _ = schedule.locate(np.arange(100))
  big = int(np.argmax(weights))
  assert abs(np.mean(sources == big) - target[big]) < 0.02


def test_each_source_counts_its_own_examples_without_gaps():
  schedule = mixture.Schedule((2, 1))
  sources, ks = schedule.locate(np.arange(5000))
  for s in (0, 1):
    np.testing.assert_array_equal(ks[sources == s], np.arange((sources == s).sum()))


@pytest.mark.parametrize("spec, match", [
    ("pydocs:0,text_files:1", "weight > 0"),
    ("pydocs:-1", "weight > 0"),
    ("pydocs", "DATASET:WEIGHT"),
    ("pydocs:abc", "DATASET:WEIGHT"),
    ("pydocs:1,pydocs:2", "names a dataset twice"),
])
def test_bad_mixtures_are_one_line_errors(spec, match):
  data = base.get_config().data
  data.mixture = spec
  with pytest.raises(errors.ConfigError, match=match):
    mixture.sources(data)


@pytest.fixture(scope="module")
def stores(wordpiece, pydocs_texts):
  data = base.get_config().data
  texts = pydocs_texts["train"]
  return data, [chunks.InMemoryChunks(wordpiece, texts[:300], data),
                chunks.InMemoryChunks(wordpiece, texts[300:500], data)]


def test_mixture_batches_follow_the_weights_and_resume_exactly(stores, wordpiece):
  data, (a, b) = stores
  make = lambda **kw: pretrain.MixtureData(data, wordpiece, [a, b], [3, 1],
                                           batch_size=8, seed=4, **kw)
  mixed = make()
  picks = [mixed.sources_and_chunks(step) for step in range(250)]  # 2,000 examples
  sources = np.asarray([s for step in picks for s, _ in step])
  assert abs(np.mean(sources == 0) - 0.75) < 0.01
  # Each source walks its own epochs: every chunk of b once before any twice.
  from_b = [c for step in picks for s, c in step if s == 1][:len(b)]
  assert sorted(from_b) == list(range(len(b)))
  straight = [mixed.batch(s) for s in range(6)]
  resumed = make().iterate(4)
  for step in (4, 5):
    got = next(resumed)
    for key in got:
      np.testing.assert_array_equal(got[key], straight[step][key])
  halves = [make(process_index=p, process_count=2).batch(5) for p in (0, 1)]
  for key in halves[0]:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]),
                                  straight[5][key])


def test_concatenated_validation_keeps_documents_apart(stores):
  _, (a, b) = stores
  both = chunks.ConcatenatedChunks([a, b])
  assert len(both) == len(a) + len(b)
  assert both.num_documents == a.num_documents + b.num_documents
  assert both[len(a)].sentences[0].tolist() == b[0].sentences[0].tolist()
  assert both[len(a)].document != both[0].document or b[0].document != a[0].document
  np.testing.assert_array_equal(both.token_counts(),
                                np.concatenate([a.token_counts(), b.token_counts()]))


def test_train_on_a_mixture_reports_its_proportions(tmp_path, pydocs_data_dir,
                                                    prelm_train_argv, run_prelm):
  texts = tmp_path / "texts"
  texts.mkdir()
  for i in range(40):
    (texts / f"t{i}.txt").write_text(
        "\n\n".join(f"Story {i} line {j} tells of the river and the hill." for j in range(6)))
  workdir = tmp_path / "run"
  argv = prelm_train_argv(pydocs_data_dir, workdir, **{
      "data.mixture": "pydocs:0.75,text_files:0.25", "data.paths": str(texts / "*.txt"),
      "data.documents": "file", "train.num_steps": 4})
  result = run_prelm(argv)
  assert result.returncode == 0, result.stderr
  report = json.loads((workdir / "mixture.json").read_text())
  assert [s["dataset"] for s in report["sources"]] == ["pydocs", "text_files"]
  for source in report["sources"]:
    assert abs(source["realised"] - source["weight"]) < 0.01
  assert "Mixture over the run's examples: pydocs 75" in result.stderr


def test_a_mixture_source_that_does_not_exist_is_named(tmp_path):
  from prelm_jax.data import prepare  # pylint: disable=g-import-not-at-top
  data = base.get_config().data
  data.update(mixture="pydocs:1,no_such_corpus:1", tfds_data_dir=str(tmp_path))
  with pytest.raises(errors.DataError, match="Unknown dataset 'no_such_corpus'"):
    prepare.trained_vocabulary(data, quiet=True)
