"""BERT masking and NSP pair construction (prelm_jax.data.masking), pure numpy."""
import numpy as np
import pytest

from prelm_jax.data import masking

MASK_ID, LOW, HIGH = 4, 5, 1000
MASK_ARGS = dict(mask_prob=0.15, mask_token_prob=0.8, random_token_prob=0.1,
                 mask_id=MASK_ID, replacement_ids=np.arange(LOW, HIGH, dtype=np.int32))


def random_sequence(rng, length=128):
  """[CLS] ... [SEP] ... [SEP] then padding, with ordinary tokens in [LOW, HIGH)."""
  used = int(rng.integers(10, length + 1))
  ids = np.zeros((length,), np.int32)
  ids[:used] = rng.integers(LOW, HIGH, size=used)
  ids[0], ids[used - 1] = 2, 3
  ids[int(rng.integers(2, used - 1))] = 3
  special = (ids < LOW)  # CLS, SEPs and padding
  return ids, special


def masked_examples(num=1500, max_predictions=128, seed=0):
  rng = np.random.default_rng(seed)
  for _ in range(num):
    ids, special = random_sequence(rng)
    yield ids, special, masking.mask_tokens(ids, special, rng,
                                            max_predictions=max_predictions, **MASK_ARGS)


def test_mask_tokens_statistics_follow_bert():
  selected = candidates = 0
  outcome = {"mask": 0, "random": 0, "kept": 0}
  for ids, special, (out, positions, labels, weights) in masked_examples():
    num = int(weights.sum())
    n_candidates = int((~special).sum())
    assert num == max(1, round(n_candidates * 0.15))
    selected += num
    candidates += n_candidates
    chosen = positions[:num]
    assert len(set(chosen.tolist())) == num
    assert not special[chosen].any(), "a special or padding position was selected"
    np.testing.assert_array_equal(labels[:num], ids[chosen])  # ORIGINAL tokens
    np.testing.assert_array_equal(weights[num:], 0)
    np.testing.assert_array_equal(labels[num:], 0)
    # Positions that were not selected are untouched.
    untouched = np.ones(len(ids), bool)
    untouched[chosen] = False
    np.testing.assert_array_equal(out[untouched], ids[untouched])
    new = out[chosen]
    outcome["mask"] += int((new == MASK_ID).sum())
    is_random = (new != MASK_ID) & (new != ids[chosen])
    outcome["random"] += int(is_random.sum())
    outcome["kept"] += int((new == ids[chosen]).sum())
    assert ((new[is_random] >= LOW) & (new[is_random] < HIGH)).all()
  assert abs(selected / candidates - 0.15) < 0.005
  # A random draw equals the original with p ~ 1/995: negligible next to the tolerance.
  assert abs(outcome["mask"] / selected - 0.8) < 0.02
  assert abs(outcome["random"] / selected - 0.1) < 0.015
  assert abs(outcome["kept"] / selected - 0.1) < 0.015


def random_replacements(replacement_ids, draws=300):
  """The tokens drawn when every selected position gets a random replacement."""
  rng = np.random.default_rng(1)
  ids = np.full((64,), 7, np.int32)
  special = np.zeros((64,), bool)
  drawn = []
  for _ in range(draws):
    out, positions, _, weights = masking.mask_tokens(
        ids, special, rng, max_predictions=64,
        **{**MASK_ARGS, "mask_token_prob": 0.0, "random_token_prob": 1.0,
           "replacement_ids": replacement_ids})
    drawn.extend(out[positions[weights > 0]].tolist())
  return drawn


def test_random_replacements_are_never_special_and_cover_the_range():
  assert set(random_replacements(np.arange(5, 12))) == set(range(5, 12))
  # A released vocab: the eligible ids have gaps ([unused*] and specials left out).
  eligible = [1, 2, 7, 8, 9, 30]
  assert set(random_replacements(np.asarray(eligible, np.int32))) == set(eligible)


def test_indexing_a_contiguous_range_draws_as_integers_low_high():
  # mask_tokens draws replacement_ids[integers(0, K)]; it drew integers(low, high)
  # before. For a trained vocab (replacement ids 5..V-1) both give the same tokens
  # from the same generator state, so pre-training examples are unchanged.
  for seed, (low, high), size in [(0, (5, 12), 50), (1, (5, 2000), 7),
                                  (2, (5, 30522), 1000), (3, (0, 1), 5)]:
    ids = np.arange(low, high, dtype=np.int32)
    before = np.random.default_rng(seed).integers(low, high, size=size)
    after = ids[np.random.default_rng(seed).integers(0, len(ids), size=size)]
    np.testing.assert_array_equal(after, before)
  ids = np.full((128,), 9, np.int32)
  special = np.zeros((128,), bool)
  args = {**MASK_ARGS, "mask_token_prob": 0.0, "random_token_prob": 1.0}
  out, positions, _, weights = masking.mask_tokens(
      ids, special, np.random.default_rng(5), max_predictions=128, **args)
  rng = np.random.default_rng(5)  # the draws mask_tokens makes, in its order
  chosen = np.sort(rng.choice(np.arange(128), size=19, replace=False))
  rng.random(19)
  np.testing.assert_array_equal(positions[weights > 0], chosen)
  np.testing.assert_array_equal(out[chosen], rng.integers(LOW, HIGH, size=19))


def test_max_predictions_caps_and_pads():
  for ids, special, (_, positions, labels, weights) in masked_examples(100, 5):
    assert weights.shape == positions.shape == labels.shape == (5,)
    assert weights.dtype == np.float32 and positions.dtype == np.int32
    num = min(5, max(1, round(int((~special).sum()) * 0.15)))
    np.testing.assert_array_equal(weights, [1.0] * num + [0.0] * (5 - num))
    np.testing.assert_array_equal(positions[num:], 0)
    assert (np.diff(positions[:num]) > 0).all()  # sorted, as BERT's output


def test_all_special_sequence_masks_nothing():
  rng = np.random.default_rng(0)
  ids = np.array([2, 3, 3, 0, 0], np.int32)
  out, positions, labels, weights = masking.mask_tokens(
      ids, np.ones(5, bool), rng, max_predictions=3, **MASK_ARGS)
  np.testing.assert_array_equal(out, ids)
  assert weights.sum() == 0 and positions.sum() == 0 and labels.sum() == 0


# NSP. Token ids encode where they come from: doc * 10_000 + sentence * 100 + j.
def make_documents(rng, num_docs=40):
  docs = []
  for d in range(num_docs):
    num_sentences = 1 if d % 5 == 0 else int(rng.integers(2, 12))  # some 1-sentence docs
    docs.append([d * 10_000 + s * 100 + np.arange(int(rng.integers(1, 40)), dtype=np.int32)
                 for s in range(num_sentences)])
  return docs


def origin(tokens):
  """(doc, sentence) of every token."""
  return tokens // 10_000, (tokens % 10_000) // 100


def create_pair(docs, d, chunk, rng, **kwargs):
  """masking.create_pair on docs[d]'s chunk, B drawn from any other whole document."""
  first, end, target = chunk

  def random_sentences(rng):
    other = int(rng.integers(0, len(docs) - 1))
    return docs[other + (other >= d)]
  return masking.create_pair(docs[d][first:end], target, rng,
                             random_sentences=random_sentences, **kwargs)


def all_chunks(docs, rng, max_num_tokens=61, short_seq_prob=0.1):
  return [(d, c) for d, doc in enumerate(docs)
          for c in masking.chunk_document([len(s) for s in doc], rng,
                                          max_num_tokens=max_num_tokens,
                                          short_seq_prob=short_seq_prob)]


def test_chunks_tile_documents_with_at_least_two_sentences():
  rng = np.random.default_rng(0)
  assert masking.chunk_document([50], rng, max_num_tokens=61, short_seq_prob=0.0) == []
  for _ in range(200):
    lengths = rng.integers(1, 60, size=int(rng.integers(2, 30))).tolist()
    chunks = masking.chunk_document(lengths, rng, max_num_tokens=61, short_seq_prob=0.3)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(lengths)
    for (_, end, _), (start, _, _) in zip(chunks, chunks[1:]):
      assert end == start  # contiguous, in order
    for start, end, target in chunks:
      assert end - start >= 2
      assert 2 <= target <= 61
      # Closed as soon as it was full: without its last sentence it was short.
      if end != len(lengths):
        assert sum(lengths[start:end]) >= target
        assert end - start == 2 or sum(lengths[start:end - 1]) < target


def test_short_seq_prob_shortens_targets():
  rng = np.random.default_rng(0)
  targets = [masking.chunk_document([5, 5], rng, max_num_tokens=61,
                                    short_seq_prob=0.25)[0][2] for _ in range(2000)]
  short = np.mean([t < 61 for t in targets])
  assert abs(short - 0.25) < 0.03


def test_nsp_pairs_are_honest_and_balanced():
  rng = np.random.default_rng(0)
  docs = make_documents(rng)
  chunks = all_chunks(docs, rng)
  labels, random_sources = [], set()
  for i in range(4000):
    d, (first, end, target) = chunks[i % len(chunks)]
    a, b, label = create_pair(docs, d, (first, end, target), rng,
                                      nsp_random_prob=0.5)
    labels.append(label)
    doc_a, sent_a = origin(a)
    doc_b, sent_b = origin(b)
    assert (doc_a == d).all() and sent_a[0] == first
    assert len(a) and len(b)
    if label == masking.IS_NEXT:
      # B continues A to the end of the chunk, in the same document.
      assert (doc_b == d).all()
      np.testing.assert_array_equal(np.concatenate([a, b]),
                                    np.concatenate(docs[d][first:end]))
    else:
      assert label == masking.NOT_NEXT
      assert len(set(doc_b.tolist())) == 1 and doc_b[0] != d
      # Consecutive whole sentences of that other document.
      sentences = np.unique(sent_b)
      np.testing.assert_array_equal(sentences, np.arange(sentences[0], sentences[-1] + 1))
      np.testing.assert_array_equal(
          b, np.concatenate(docs[doc_b[0]][sentences[0]:sentences[-1] + 1]))
      random_sources.add(int(doc_b[0]))
  assert abs(np.mean(labels) - 0.5) < 0.03
  assert any(len(docs[s]) == 1 for s in random_sources)  # 1-sentence docs serve as B


def bert_truncate_lengths(len_a, len_b, max_num_tokens):
  """google-research/bert truncate_seq_pair's resulting lengths (reference loop)."""
  while len_a + len_b > max_num_tokens:
    if len_a > len_b:
      len_a -= 1
    else:
      len_b -= 1
  return len_a, len_b


def test_truncate_seq_pair_matches_bert():
  rng = np.random.default_rng(0)
  fronts = backs = 0
  for _ in range(2000):
    a = np.arange(int(rng.integers(1, 150)))
    b = 1000 + np.arange(int(rng.integers(1, 150)))
    max_num_tokens = int(rng.integers(2, 125))
    ta, tb = masking.truncate_seq_pair(a, b, max_num_tokens, rng)
    assert len(ta) + len(tb) <= max_num_tokens
    assert (len(ta), len(tb)) == bert_truncate_lengths(len(a), len(b), max_num_tokens)
    for kept, full in ((ta, a), (tb, b)):
      start = int(kept[0] - full[0])
      np.testing.assert_array_equal(kept, full[start:start + len(kept)])  # one slice
      fronts += start > 0
      backs += kept[-1] != full[-1]
  assert fronts > 300 and backs > 300  # both ends are trimmed


def test_pack_pair_layout():
  a = np.array([11, 12, 13], np.int32)
  b = np.array([21, 22], np.int32)
  ids, types, attention, special = masking.pack_pair(
      a, b, max_seq_len=10, cls_id=2, sep_id=3, pad_id=0)
  np.testing.assert_array_equal(ids, [2, 11, 12, 13, 3, 21, 22, 3, 0, 0])
  np.testing.assert_array_equal(types, [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(attention, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(special, [1, 0, 0, 0, 1, 0, 0, 1, 1, 1])
  assert ids.dtype == types.dtype == attention.dtype == np.int32
  with pytest.raises(ValueError):
    masking.pack_pair(a, b, max_seq_len=7, cls_id=2, sep_id=3, pad_id=0)


def test_sop_pairs_are_balanced_and_really_swapped():
  rng = np.random.default_rng(0)
  docs = make_documents(rng)
  chunks = all_chunks(docs, rng)
  labels = []
  for i in range(4000):
    d, chunk = chunks[i % len(chunks)]
    first, end, _ = chunk
    state = rng.bit_generator.state
    a, b, label = create_pair(docs, d, chunk, rng, nsp_random_prob=0.5,
                                      objective="sop")
    labels.append(label)
    # The same draws without the objective's coin: the chunk cut in order.
    rng_again = np.random.default_rng()
    rng_again.bit_generator.state = state
    first_half, second_half, _ = create_pair(docs, d, chunk, rng_again,
                                                     nsp_random_prob=0.5, objective="none")
    assert len(first_half) and len(second_half)
    assert (origin(a)[0] == d).all() and (origin(b)[0] == d).all()  # never another doc
    if label == masking.IS_NEXT:
      np.testing.assert_array_equal(a, first_half)
      np.testing.assert_array_equal(b, second_half)
    else:
      assert label == masking.SWAPPED
      # A holds the tokens that followed B in the document.
      np.testing.assert_array_equal(a, second_half)
      np.testing.assert_array_equal(b, first_half)
      assert origin(a)[1][0] > origin(b)[1][-1]
    np.testing.assert_array_equal(np.concatenate([first_half, second_half]),
                                  np.concatenate(docs[d][first:end]))
  assert abs(np.mean(labels) - 0.5) < 0.03


def test_objective_none_always_pairs_the_continuation():
  rng = np.random.default_rng(1)
  docs = make_documents(rng)
  for d, chunk in all_chunks(docs, rng)[:300]:
    a, b, label = create_pair(docs, d, chunk, rng, nsp_random_prob=0.5,
                                      objective="none")
    assert label == masking.IS_NEXT
    np.testing.assert_array_equal(np.concatenate([a, b]),
                                  np.concatenate(docs[d][chunk[0]:chunk[1]]))
  with pytest.raises(ValueError, match="Unknown sentence objective"):
    create_pair(docs, d, chunk, rng, nsp_random_prob=0.5, objective="rtd")


def words_of(continuation, special):
  """Word index per position (-1 at special positions), words as WWM sees them."""
  starts = masking.word_starts(continuation, special)
  word = np.cumsum(starts) - 1
  return np.where(special, -1, word)


def test_whole_word_masking_never_splits_a_word_and_keeps_the_rate():
  rng = np.random.default_rng(0)
  covered, candidates, multi_piece = 0, 0, 0
  for _ in range(1500):
    ids, special = random_sequence(rng)
    # ~40% of ordinary tokens continue the word before them.
    continuation = ~special & (rng.random(len(ids)) < 0.4)
    continuation[1] = True  # a "##" piece right after [CLS] starts a word
    out, positions, labels, weights = masking.mask_tokens(
        ids, special, rng, max_predictions=128, continuation=continuation, **MASK_ARGS)
    n = int(weights.sum())
    chosen = positions[:n]
    assert (np.diff(chosen) > 0).all() and not special[chosen].any()
    np.testing.assert_array_equal(labels[:n], ids[chosen])
    word = words_of(continuation, special)
    chosen_words = np.unique(word[chosen])
    # Every piece of every chosen word is chosen: the whole word, never a part.
    np.testing.assert_array_equal(np.sort(np.flatnonzero(np.isin(word, chosen_words))),
                                  chosen)
    num_candidates = int((~special).sum())
    assert n <= max(1, round(num_candidates * 0.15))
    # Unchosen positions are untouched.
    unchosen = np.setdiff1d(np.arange(len(ids)), chosen)
    np.testing.assert_array_equal(out[unchosen], ids[unchosen])
    covered += n
    candidates += num_candidates
    multi_piece += np.sum(np.bincount(word[chosen]) > 1)
  # Words are skipped only when they would overflow the count: close to 15%.
  assert 0.13 < covered / candidates <= 0.15, covered / candidates
  assert multi_piece > 1000  # multi-piece words really were masked together


def test_whole_word_masking_decides_80_10_10_per_token():
  rng = np.random.default_rng(3)
  kinds = np.zeros(3)
  for _ in range(1500):
    ids, special = random_sequence(rng)
    continuation = ~special & (rng.random(len(ids)) < 0.5)
    out, positions, _, weights = masking.mask_tokens(
        ids, special, rng, max_predictions=128, continuation=continuation, **MASK_ARGS)
    chosen = positions[:int(weights.sum())]
    masked = out[chosen] == MASK_ID
    kept = out[chosen] == ids[chosen]
    kinds += [masked.sum(), (~masked & ~kept).sum(), kept.sum()]
  fractions = kinds / kinds.sum()
  # Random replacements equal the original 1/995 of the time: counted as kept.
  np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.015)


def test_whole_word_masking_with_no_continuations_selects_like_tokens():
  """All single-piece words: the same number of positions as token masking."""
  rng = np.random.default_rng(4)
  for _ in range(200):
    ids, special = random_sequence(rng)
    _, _, _, weights = masking.mask_tokens(
        ids, special, rng, max_predictions=20, continuation=np.zeros(len(ids), bool),
        **MASK_ARGS)
    assert weights.sum() == min(20, max(1, round((~special).sum() * 0.15)))
