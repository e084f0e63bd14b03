"""Packed rows from the data side (data/packing.py, pretrain.PackedPretrainData): every
chunk once per epoch, well-formed pairs that never share a segment, exact resume, and
fewer padded tokens."""
import numpy as np
import pytest

from experiments import base
from prelm_jax.data import packing
from prelm_jax.data import pretrain


@pytest.fixture(scope="module")
def data_cfg():
  data = base.get_config().data
  data.update(max_seq_len=128, packing=True, max_pairs_per_row=6, short_seq_prob=0.5)
  return data


@pytest.fixture(scope="module")
def texts(pydocs_texts):
  return pydocs_texts["train"][:600]


def test_plan_rows_is_next_fit_within_the_limits():
  lengths = np.asarray([60, 60, 10, 128, 5, 5, 5, 5, 5, 100])
  starts = packing.plan_rows(lengths, 128, max_pairs=4)
  np.testing.assert_array_equal(starts, [0, 2, 3, 4, 8, 10])
  for a, b in zip(starts[:-1], starts[1:]):
    assert lengths[a:b].sum() <= 128 and b - a <= 4


def test_every_chunk_once_per_epoch_and_rows_well_formed(data_cfg, wordpiece, texts):
  data = pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=8, seed=2,
                                     process_index=1, process_count=2)
  other = pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=8, seed=2,
                                      process_index=0, process_count=2)
  n = data.num_chunks
  seen, step = [], 0
  while sum(len(s) for s in seen) < 2 * n:
    seen += [other.chunk_indices(step), data.chunk_indices(step)]
    step += 1
  seen = np.concatenate(seen)
  np.testing.assert_array_equal(np.sort(seen[:n]), np.arange(n))  # epoch 0: all, once
  np.testing.assert_array_equal(np.sort(seen[n:2 * n]), np.arange(n))
  tok = wordpiece
  for s in range(3):
    batch = data.batch(s)
    for row in range(4):
      segments = batch["segment_ids"][row]
      pairs = int(segments.max())
      assert 1 <= pairs <= data_cfg.max_pairs_per_row
      np.testing.assert_array_equal(batch["attention_mask"][row], segments > 0)
      np.testing.assert_array_equal(batch["nsp_weights"][row], np.arange(6) < pairs)
      for k in range(pairs):
        where = np.flatnonzero(segments == k + 1)
        assert where[0] == batch["cls_positions"][row, k]
        assert (np.diff(where) == 1).all()  # contiguous
        np.testing.assert_array_equal(batch["position_ids"][row, where],
                                      np.arange(len(where)))
        ids = batch["input_ids"][row, where]
        assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        assert (ids == tok.sep_id).sum() == 2  # random replacements are never [SEP]
      real = batch["mlm_weights"][row] > 0
      assert (segments[batch["mlm_positions"][row, real]] > 0).all()


def test_resume_and_process_halves_are_byte_equal(data_cfg, wordpiece, texts):
  one = pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=8, seed=5)
  straight = [one.batch(s) for s in range(40)]  # past an epoch boundary
  assert straight[-1]["input_ids"].any()
  fresh = pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=8, seed=5)
  fresh.threads = 3  # concurrent builders plan the epochs once, under a lock
  resumed = fresh.iterate(37)  # a new process: plans the earlier epochs itself
  for s in range(37, 40):
    got = next(resumed)
    for key in got:
      np.testing.assert_array_equal(got[key], straight[s][key])
  halves = [pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=8, seed=5,
                                        process_index=p, process_count=2) for p in (0, 1)]
  parts = [h.batch(39) for h in halves]
  for key in parts[0]:
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]),
                                  straight[39][key])


def test_packing_cuts_padding(data_cfg, wordpiece, texts):
  unpacked_cfg = data_cfg.copy_and_resolve_references()
  unpacked_cfg.packing = False
  unpacked = pretrain.PretrainData(unpacked_cfg, wordpiece, texts, batch_size=16, seed=0)
  packed = pretrain.PackedPretrainData(data_cfg, wordpiece, texts, batch_size=16, seed=0)
  fill = {name: np.mean([d.batch(s)["attention_mask"].mean() for s in range(5)])
          for name, d in (("unpacked", unpacked), ("packed", packed))}
  assert fill["packed"] > fill["unpacked"] + 0.15, fill
  # Eval: every validation chunk in exactly one row, padding rows weightless.
  batches = pretrain.eval_batches(data_cfg, wordpiece, texts[:60], batch_size=8, seed=1)
  pairs = sum(int(b["nsp_weights"].sum()) for b in batches)
  assert pairs == len(pretrain.as_chunk_store(wordpiece, texts[:60], data_cfg))
