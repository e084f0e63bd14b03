"""The pre-training input pipeline: exact, random-access, process-sliced batches."""
import time

import numpy as np
import pytest

from experiments import base
from prelm_jax import errors
from prelm_jax.data import pretrain

KEYS = {"input_ids": np.int32, "token_type_ids": np.int32, "attention_mask": np.int32,
        "mlm_positions": np.int32, "mlm_ids": np.int32, "mlm_weights": np.float32,
        "nsp_labels": np.int32, "example_weights": np.float32}


@pytest.fixture(scope="module")
def data_cfg():
  return base.get_config().data  # max_seq_len 128, max_predictions_per_seq 20


@pytest.fixture(scope="module")
def texts(pydocs_texts):
  return pydocs_texts["train"][:1500]  # a slice keeps set-up fast


@pytest.fixture(scope="module")
def data(data_cfg, wordpiece, texts):
  return pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=3)


def assert_batches_equal(x, y):
  assert x.keys() == y.keys()
  for k in x:
    np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_shapes_dtypes_and_layout(data, wordpiece):
  b = data.batch(0)
  assert set(b) == set(KEYS)
  for k, dtype in KEYS.items():
    assert b[k].dtype == dtype, k
  assert b["input_ids"].shape == b["token_type_ids"].shape == (16, 128)
  assert b["mlm_positions"].shape == b["mlm_weights"].shape == (16, 20)
  assert b["nsp_labels"].shape == b["example_weights"].shape == (16,)
  np.testing.assert_array_equal(b["example_weights"], 1.0)
  for i in range(16):
    ids, mask = b["input_ids"][i], b["attention_mask"][i]
    used = int(mask.sum())
    np.testing.assert_array_equal(mask, np.arange(128) < used)
    np.testing.assert_array_equal(ids[used:], wordpiece.pad_id)
    assert ids[0] == wordpiece.cls_id and ids[used - 1] == wordpiece.sep_id
    assert (ids[:used] == wordpiece.sep_id).sum() >= 2
    num = int(b["mlm_weights"][i].sum())
    positions = b["mlm_positions"][i][:num]
    assert num >= 1 and mask[positions].all()
    originals = b["mlm_ids"][i][:num]
    assert (originals >= 5).all()  # never a special token
    assert (ids[positions] != originals).any() or num < 3
  assert 0 < b["nsp_labels"].sum() < 16


def test_batch_is_deterministic_and_steps_differ(data, data_cfg, wordpiece, texts):
  twin = pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=3)
  assert_batches_equal(data.batch(7), twin.batch(7))
  assert_batches_equal(data.batch(7), data.batch(7))
  assert not np.array_equal(data.batch(7)["input_ids"], data.batch(8)["input_ids"])
  other_seed = pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=4)
  assert not np.array_equal(data.batch(7)["input_ids"], other_seed.batch(7)["input_ids"])


def test_iterate_resumes_exactly(data):
  it = data.iterate(5)
  for step in range(5, 9):
    assert_batches_equal(next(it), data.batch(step))


def test_processes_split_the_global_batch(data, data_cfg, wordpiece, texts):
  for count in (2, 4):
    parts = [pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=3,
                                   process_index=p, process_count=count).batch(11)
             for p in range(count)]
    assert parts[0]["input_ids"].shape == (16 // count, 128)
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    assert_batches_equal(joined, data.batch(11))
  with pytest.raises(ValueError, match="not divisible"):
    pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=3,
                          process_index=0, process_count=3)


def test_epochs_visit_every_chunk_once(data):
  n = data.num_chunks
  for epoch in (0, 1):
    assert sorted(data._order(epoch)) == list(range(n))  # pylint: disable=protected-access
  assert not np.array_equal(data._order(0), data._order(1))  # pylint: disable=protected-access
  # A step past the first epoch still works (the walk wraps into epoch 1).
  step = n // 16 + 1
  assert data.batch(step)["input_ids"].shape == (16, 128)


def test_nsp_labels_are_balanced(data):
  labels = np.concatenate([data.batch(s)["nsp_labels"] for s in range(40)])
  assert abs(labels.mean() - 0.5) < 0.07


def test_eval_batches_are_fixed_and_padding_is_weightless(data_cfg, wordpiece,
                                                          pydocs_texts):
  val = pydocs_texts["validation"]
  first = pretrain.eval_batches(data_cfg, wordpiece, val, batch_size=32, seed=0)
  assert_batches_equal(first[-1], pretrain.eval_batches(
      data_cfg, wordpiece, val, batch_size=32, seed=0)[-1])
  real = int(sum(b["example_weights"].sum() for b in first))
  assert (len(first) - 1) * 32 < real < len(first) * 32  # one example per chunk
  last = first[-1]
  padding = last["example_weights"] == 0
  assert padding.any()
  np.testing.assert_array_equal(last["mlm_weights"][padding], 0)
  assert (last["mlm_weights"][~padding].sum(1) >= 1).all()
  assert (last["attention_mask"][padding].sum(1) > 0).all()  # no all-masked rows
  for b in first[:-1]:
    np.testing.assert_array_equal(b["example_weights"], 1.0)
  halves = [pretrain.eval_batches(data_cfg, wordpiece, val, batch_size=32, seed=0,
                                  process_index=p, process_count=2) for p in (0, 1)]
  assert len(halves[0]) == len(halves[1]) == len(first)
  for b, h0, h1 in zip(first, *halves):
    assert_batches_equal(b, {k: np.concatenate([h0[k], h1[k]]) for k in b})


def test_clear_errors(data_cfg, wordpiece, texts):
  one_liners = ["a single line of text", "another single line"]
  with pytest.raises(ValueError, match="2 non-empty lines"):
    pretrain.PretrainData(data_cfg, wordpiece, one_liners, batch_size=4, seed=0)
  with pytest.raises(errors.DataError, match="fewer than one batch of 100000"):
    pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=100_000, seed=0)
  tiny = base.get_config().data
  tiny.max_seq_len = 4
  with pytest.raises(ValueError, match="max_seq_len=4 is too small"):
    pretrain.PretrainData(tiny, wordpiece, texts, batch_size=4, seed=0)


def test_a_batch_of_64_at_length_128_is_fast(data_cfg, wordpiece, pydocs_texts):
  data = pretrain.PretrainData(data_cfg, wordpiece, pydocs_texts["train"],
                               batch_size=64, seed=0)
  data.batch(0)
  start = time.perf_counter()
  for step in range(1, 11):
    data.batch(step)
  per_batch = (time.perf_counter() - start) / 10
  # ~5 ms on 2 cores; the trainer needs well under 50 ms. 4x slack for noisy CI.
  assert per_batch < 0.2


def with_data(data_cfg, **changes):
  cfg = data_cfg.copy_and_resolve_references()
  cfg.update(changes)
  return cfg


def test_whole_word_masking_masks_whole_words_at_the_rate(data_cfg, wordpiece, texts):
  cfg = with_data(data_cfg, whole_word_masking=True)
  data = pretrain.PretrainData(cfg, wordpiece, texts, batch_size=16, seed=3)
  covered = candidates = multi_piece = 0
  for step in range(10):
    b = data.batch(step)
    for i in range(16):
      ids = b["input_ids"][i].copy()
      num = int(b["mlm_weights"][i].sum())
      positions = b["mlm_positions"][i][:num]
      ids[positions] = b["mlm_ids"][i][:num]  # the uncorrupted sequence
      continuation = wordpiece.is_continuation[ids]
      chosen = np.zeros(len(ids), bool)
      chosen[positions] = True
      # A "##" piece is chosen exactly when the piece before it is: no split word.
      inside = np.flatnonzero(continuation[1:]) + 1
      inside = inside[ids[inside - 1] != wordpiece.sep_id]
      np.testing.assert_array_equal(chosen[inside], chosen[inside - 1])
      multi_piece += int(chosen[inside].sum())
      covered += num
      candidates += int(b["attention_mask"][i].sum()) - 3
  assert multi_piece > 0
  assert 0.12 < covered / candidates <= 0.155, covered / candidates


def test_sop_and_none_batches(data_cfg, wordpiece, texts):
  plain = pretrain.PretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=3)
  sop = pretrain.PretrainData(with_data(data_cfg, sentence_objective="sop"), wordpiece,
                              texts, batch_size=16, seed=3)
  labels = np.concatenate([sop.batch(s)["nsp_labels"] for s in range(20)])
  assert abs(labels.mean() - 0.5) < 0.08
  none = pretrain.PretrainData(with_data(data_cfg, sentence_objective="none"),
                               wordpiece, texts, batch_size=16, seed=3)
  b = none.batch(0)
  assert set(b) == set(KEYS) - {"nsp_labels"}
  assert set(plain.batch(0)) == set(KEYS)
  # MLM only needs a single document (NSP's random B needs a second one).
  one_doc = pretrain.PretrainData(with_data(data_cfg, sentence_objective="none"),
                                  wordpiece, ["first line\nsecond line\nthird line"],
                                  batch_size=1, seed=0)
  assert one_doc.batch(0)["input_ids"].shape == (1, 128)
