"""BERT's example construction, pure numpy: sentence pairs and 80/10/10 masking.

Follows google-research/bert create_pretraining_data.py, with two changes:
  * masking is dynamic (drawn each time an example is produced, as in RoBERTa) rather
    than fixed once per duplicate of the corpus;
  * every chunk has >= 2 sentences, so an IsNext pair always has a true continuation
    and the NSP labels are an honest coin flip (BERT forces NotNext for 1-sentence
    chunks).

A document is a sequence of sentences; a sentence is a 1-D array of token ids.
"""
import numpy as np

IS_NEXT = 0       # BERT's convention: label 0 = B follows A in the same document
NOT_NEXT = 1      # label 1 = B is from a random other document (NSP)
SWAPPED = 1       # label 1 = A and B are the two halves in swapped order (SOP)
SOP_SWAP_PROB = 0.5  # ALBERT's coin

# config.data.sentence_objective: what the pair's label asks (none: no label, MLM only).
SENTENCE_OBJECTIVES = ("nsp", "sop", "none")


def chunk_document(sentence_lengths, rng, *, max_num_tokens, short_seq_prob):
  """Cuts one document into chunks of consecutive sentences, as BERT does.

  A chunk is closed once it has >= 2 sentences and >= target tokens; a last lone
  sentence joins the previous chunk. The target is max_num_tokens, or with
  probability short_seq_prob a random length in [2, max_num_tokens] (drawn once per
  document, like BERT), so the model also sees short sequences.

  Args:
    sentence_lengths: token counts of the document's sentences, in order.
    rng: a numpy Generator.
    max_num_tokens: max_seq_len - 3 (room for [CLS] and two [SEP]).
    short_seq_prob: probability of a shorter target.

  Returns:
    A list of (first_sentence, end_sentence, target_length); empty if the document
    has fewer than 2 sentences.
  """
  n = len(sentence_lengths)
  if n < 2:
    return []
  target = max_num_tokens
  if rng.random() < short_seq_prob:
    target = int(rng.integers(2, max_num_tokens + 1))
  chunks = []
  start, length = 0, 0
  for i, sentence_length in enumerate(sentence_lengths):
    length += sentence_length
    if i + 1 - start >= 2 and length >= target:
      chunks.append((start, i + 1, target))
      start, length = i + 1, 0
  if start < n:
    if n - start >= 2 or not chunks:
      chunks.append((start, n, target))
    else:  # A lone trailing sentence cannot form a pair: extend the previous chunk.
      chunks[-1] = (chunks[-1][0], n, target)
  return chunks


def _concat(sentences):
  if not sentences:
    return np.zeros((0,), np.int32)
  return np.concatenate(sentences).astype(np.int32, copy=False)


def create_pair(sentences, target, rng, *, random_sentences, nsp_random_prob,
                objective="nsp"):
  """Draws segments A and B from one chunk (before truncation).

  Args:
    sentences: the chunk's sentences (>= 2 token arrays), in document order.
    target: the chunk's target length (chunk_document); B's share of it decides how
      much a random B takes.
    rng: a numpy Generator.
    random_sentences: rng -> the sentences of a chunk of ANOTHER document (nsp only;
      it may draw from rng).
    nsp_random_prob: probability that B is taken from another document (nsp only).
    objective: "nsp" (B is the continuation or a random other text), "sop" (ALBERT's
      sentence order: the chunk's two halves in order or swapped, SOP_SWAP_PROB) or
      "none" (always the continuation; the label is unused).

  Returns:
    (tokens_a, tokens_b, label): nsp: IS_NEXT or NOT_NEXT; sop: IS_NEXT or SWAPPED;
    none: IS_NEXT. The draws before the objective's coin are the same for all three,
    so one rng gives the same split point whichever objective is asked.
  """
  if len(sentences) < 2:
    raise ValueError(f"A chunk needs >= 2 sentences, got {len(sentences)}.")
  a_end = int(rng.integers(1, len(sentences)))  # A gets 1..n-1 sentences
  tokens_a = _concat(sentences[:a_end])
  if objective == "none":
    return tokens_a, _concat(sentences[a_end:]), IS_NEXT
  if objective == "sop":
    tokens_b = _concat(sentences[a_end:])
    if rng.random() < SOP_SWAP_PROB:
      return tokens_b, tokens_a, SWAPPED
    return tokens_a, tokens_b, IS_NEXT
  if objective != "nsp":
    raise ValueError(f"Unknown sentence objective {objective!r}; known: "
                     f"{', '.join(SENTENCE_OBJECTIVES)}.")
  if rng.random() >= nsp_random_prob:
    return tokens_a, _concat(sentences[a_end:]), IS_NEXT
  other = random_sentences(rng)
  # Like BERT: from a random sentence on, take sentences until B reaches its share
  # of the target (at least one sentence).
  target_b = target - len(tokens_a)
  start = int(rng.integers(0, len(other)))
  end_b, length = start, 0
  while end_b < len(other):
    length += len(other[end_b])
    end_b += 1
    if length >= target_b:
      break
  return tokens_a, _concat(other[start:end_b]), NOT_NEXT


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """Trims the pair to <= max_num_tokens in total, as BERT's truncate_seq_pair.

  BERT removes one token at a time from the currently longer segment (B on ties),
  from the front or the back with probability 1/2 each. The counts that loop
  produces are computed in closed form here, and the front/back split of each
  segment's removals is Binomial(count, 1/2): the same distribution, without a
  Python loop over tokens.

  Args:
    tokens_a, tokens_b: 1-D token arrays, each non-empty.
    max_num_tokens: the budget for A and B together (>= 2).
    rng: a numpy Generator.

  Returns:
    (tokens_a, tokens_b) as slices of the inputs.
  """
  len_a, len_b = len(tokens_a), len(tokens_b)
  excess = len_a + len_b - max_num_tokens
  if excess <= 0:
    return tokens_a, tokens_b
  cut_a = min(excess, max(len_a - len_b, 0))
  cut_b = min(excess, max(len_b - len_a, 0))
  rest = excess - cut_a - cut_b  # trimmed alternately from equal lengths, B first
  cut_a += rest // 2
  cut_b += rest - rest // 2
  front_a, front_b = rng.binomial([cut_a, cut_b], 0.5)
  return (tokens_a[front_a:len_a - (cut_a - front_a)],
          tokens_b[front_b:len_b - (cut_b - front_b)])


def pack_pair(tokens_a, tokens_b, *, max_seq_len, cls_id, sep_id, pad_id):
  """Lays out `[CLS] A [SEP] B [SEP]` padded to max_seq_len.

  Args:
    tokens_a, tokens_b: 1-D token arrays with len(A) + len(B) <= max_seq_len - 3.
    max_seq_len: the output length.
    cls_id, sep_id, pad_id: special token ids.

  Returns:
    (input_ids, token_type_ids, attention_mask, special_mask): int32 [L] arrays
    except special_mask (bool [L]: [CLS], [SEP] and padding, never masked).
  """
  len_a, len_b = len(tokens_a), len(tokens_b)
  used = len_a + len_b + 3
  if used > max_seq_len:
    raise ValueError(f"A+B has {len_a + len_b} tokens; max is {max_seq_len - 3}.")
  input_ids = np.full((max_seq_len,), pad_id, np.int32)
  input_ids[0] = cls_id
  input_ids[1:1 + len_a] = tokens_a
  input_ids[1 + len_a] = sep_id
  input_ids[2 + len_a:2 + len_a + len_b] = tokens_b
  input_ids[used - 1] = sep_id
  token_type_ids = np.zeros((max_seq_len,), np.int32)
  token_type_ids[2 + len_a:used] = 1  # B and its closing [SEP]
  attention_mask = np.zeros((max_seq_len,), np.int32)
  attention_mask[:used] = 1
  special_mask = np.ones((max_seq_len,), bool)
  special_mask[1:1 + len_a] = False
  special_mask[2 + len_a:2 + len_a + len_b] = False
  return input_ids, token_type_ids, attention_mask, special_mask


def word_starts(continuation, special_mask):
  """Where each word begins: a piece that is not "##"-continued, or one that follows
  a special position (a truncated front must not join the word before its [SEP]).

  Args:
    continuation: bool [L], True at "##" pieces.
    special_mask: bool [L], as mask_tokens.

  Returns:
    bool [L].
  """
  after_special = np.concatenate([[True], np.asarray(special_mask, bool)[:-1]])
  return ~np.asarray(continuation, bool) | after_special


def _select_tokens(candidates, num, rng):
  return np.sort(rng.choice(candidates, size=num, replace=False))


def _select_words(candidates, starts, num, rng):
  """google-research/bert's do_whole_word_mask: candidates grouped into words, the
  words shuffled, each taken while the masked tokens stay <= num (a word that would
  overflow is skipped, a later shorter one may still fit)."""
  word_of = np.cumsum(starts[candidates]) - 1
  bounds = np.flatnonzero(np.diff(np.concatenate([[-1], word_of, [word_of[-1] + 1]])))
  chosen, total = [], 0
  for w in rng.permutation(len(bounds) - 1):
    if total >= num:
      break
    size = bounds[w + 1] - bounds[w]
    if total + size > num:
      continue
    chosen.append(candidates[bounds[w]:bounds[w + 1]])
    total += size
  if not chosen:
    return np.zeros((0,), candidates.dtype)
  return np.sort(np.concatenate(chosen))


def mask_tokens(token_ids, special_mask, rng, *, mask_prob, mask_token_prob,
                random_token_prob, max_predictions, mask_id, replacement_ids,
                continuation=None):
  """BERT's masked-LM corruption of one sequence.

  Selects min(max_predictions, max(1, round(n * mask_prob))) of the n candidate
  positions (those with special_mask False); of those, mask_token_prob become
  [MASK], random_token_prob a token drawn uniformly from replacement_ids, and the
  rest keep their token (decided per position, also for whole words, as BERT does).

  Args:
    token_ids: int [L] token ids.
    special_mask: bool [L], True where a position may not be selected ([CLS],
      [SEP], padding).
    rng: a numpy Generator.
    mask_prob, mask_token_prob, random_token_prob: the rates above.
    max_predictions: P, the padded length of the prediction arrays.
    mask_id: the [MASK] id.
    replacement_ids: int [K], K >= 1, the ids a random replacement is drawn from
      (WordPiece.replacement_ids: never a special or [unused] token).
    continuation: None, or bool [L] True at "##" pieces: whole-word masking, where
      the selection takes whole words (a piece and its "##" pieces) until at most
      that many positions are covered, so a word is never split.

  Returns:
    (input_ids int32 [L], positions int32 [P], labels int32 [P], weights float32 [P]):
    the corrupted ids, the selected positions in increasing order, the original
    tokens there, and 1.0 per real prediction; all padded with 0.
  """
  token_ids = np.asarray(token_ids, np.int32)
  candidates = np.flatnonzero(~np.asarray(special_mask, bool))
  num = 0
  if len(candidates):
    # Python's round(), as BERT's int(round(...)).
    num = min(max_predictions, max(1, int(round(len(candidates) * mask_prob))))
  if continuation is None or not len(candidates):
    chosen = _select_tokens(candidates, num, rng)
  else:
    chosen = _select_words(candidates, word_starts(continuation, special_mask), num, rng)
  num = len(chosen)
  labels = token_ids[chosen]
  action = rng.random(num)
  replace_mask = action < mask_token_prob
  replace_random = ~replace_mask & (action < mask_token_prob + random_token_prob)
  input_ids = token_ids.copy()
  input_ids[chosen[replace_mask]] = mask_id
  # An index into replacement_ids, not an id: for the contiguous 5..V-1 of a trained
  # vocab, integers(0, K) draws the same numbers as integers(5, V) minus 5, so the
  # examples are those of the former integers(low, high) draw (tests/test_masking.py).
  replacement_ids = np.asarray(replacement_ids)
  input_ids[chosen[replace_random]] = replacement_ids[rng.integers(
      0, len(replacement_ids), size=int(replace_random.sum()))]
  positions = np.zeros((max_predictions,), np.int32)
  positions[:num] = chosen
  padded_labels = np.zeros((max_predictions,), np.int32)
  padded_labels[:num] = labels
  weights = np.zeros((max_predictions,), np.float32)
  weights[:num] = 1.0
  return input_ids, positions, padded_labels, weights
