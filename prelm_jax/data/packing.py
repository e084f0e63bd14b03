"""Packing (config.data.packing): several sentence pairs in one row, fewer padded tokens.

Which chunks share a row is planned per epoch: the epoch's chunk order is cut greedily
(next fit) into rows whose pairs' planned lengths fit max_seq_len, at most
max_pairs_per_row pairs each. A pair's planned length is its chunk's, min(tokens,
max_seq_len - 3) + 3; a pair that comes out longer (NSP's random B) is truncated to it,
one that comes out shorter leaves room to the next. Every chunk is in exactly one row
of each epoch, and a row is a pure function of (seed, epoch, row), as unpacked
examples are of (seed, step, row).
"""
import numpy as np

from prelm_jax.data import masking


def planned_lengths(token_counts, max_seq_len):
  return np.minimum(np.asarray(token_counts, np.int64), max_seq_len - 3) + 3


def plan_rows(lengths, max_seq_len, max_pairs):
  """Row boundaries over `lengths` in order: starts [rows + 1] (next fit)."""
  starts, used, count = [0], 0, 0
  for i, length in enumerate(lengths.tolist()):
    if count and (used + length > max_seq_len or count == max_pairs):
      starts.append(i)
      used, count = 0, 0
    used += length
    count += 1
  starts.append(len(lengths))
  return np.asarray(starts, np.int64)


def predictions_per_row(data_cfg):
  """P of a packed row: the pairs' own counts round up by < 1 each, so max_pairs_per_row
  more slots than an unpacked row keeps every pair at its mask_prob share."""
  return data_cfg.max_predictions_per_seq + data_cfg.max_pairs_per_row


def write_row(examples, out, row, chunk_indices, rngs):
  """Packs the pairs of chunks `chunk_indices` (each drawn with its rng) into row `row`.

  Args:
    examples: pretrain._Examples (config, tokenizer, chunk store, objective).
    out: the batch arrays (batch_spec with packing).
    row: the row to fill.
    chunk_indices: the row's chunks, in order (plan_rows).
    rngs: one numpy Generator per chunk.
  """
  cfg, tok = examples.cfg, examples.tok
  offset, predicted = 0, 0
  room = out["mlm_positions"].shape[1]
  for k, (index, rng) in enumerate(zip(chunk_indices, rngs)):
    chunk = examples.chunks[int(index)]
    length = int(planned_lengths([chunk.num_tokens], cfg.max_seq_len)[0])
    a, b, label = examples.pair(chunk, int(index), rng)
    a, b = masking.truncate_seq_pair(a, b, length - 3, rng)
    ids, types, attention, special = masking.pack_pair(
        a, b, max_seq_len=length, cls_id=tok.cls_id, sep_id=tok.sep_id,
        pad_id=tok.pad_id)
    used = int(attention.sum())
    ids, positions, labels, weights = examples.mask(
        ids[:used], special[:used], rng, max_predictions=min(
            cfg.max_predictions_per_seq, room - predicted))
    end = offset + used
    out["input_ids"][row, offset:end] = ids
    out["token_type_ids"][row, offset:end] = types[:used]
    out["attention_mask"][row, offset:end] = 1
    out["segment_ids"][row, offset:end] = k + 1
    out["position_ids"][row, offset:end] = np.arange(used)
    count = int(weights.sum())
    out["mlm_positions"][row, predicted:predicted + count] = positions[:count] + offset
    out["mlm_ids"][row, predicted:predicted + count] = labels[:count]
    out["mlm_weights"][row, predicted:predicted + count] = 1.0
    if "cls_positions" in out:
      out["cls_positions"][row, k] = offset
      out["nsp_labels"][row, k] = label
      out["nsp_weights"][row, k] = 1.0
    offset, predicted = end, predicted + count
  out["example_weights"][row] = 1.0
