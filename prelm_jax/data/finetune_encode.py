"""Fine-tuning records -> fixed-length numpy arrays, with the project's WordPiece.

Sequences follow google-research/bert run_classifier.py: `[CLS] A [SEP]` or
`[CLS] A [SEP] B [SEP]`, token type 0 for [CLS], A and the first [SEP], 1 for B and
its [SEP], and a pair too long for max_seq_len trimmed as `_truncate_seq_pair` does.
Tagging puts each word's label on its first WordPiece; the other pieces, [CLS], [SEP]
and padding get label weight 0, and `word_index` maps positions back to words.
Padding is id 0 ([PAD]) with attention_mask 0.
"""
import numpy as np


def truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Trims a pair to at most max_length tokens together, as BERT's _truncate_seq_pair.

  One token at a time is removed from the end of the longer list (B when they are
  equally long), so a short segment keeps all of its tokens.

  Args:
    tokens_a, tokens_b: token-id lists.
    max_length: the most tokens A and B may have together.

  Returns:
    (a, b): new, trimmed lists.
  """
  a, b = list(tokens_a), list(tokens_b)
  while len(a) + len(b) > max_length:
    if len(a) > len(b):
      a.pop()
    else:
      b.pop()
  return a, b


def encode_examples(examples, wordpiece, max_seq_len, *, label_to_id=None):
  """Encodes single sentences or sentence pairs for classification or regression.

  Args:
    examples: finetune_tables.Example list; all with one text, or all with two.
    wordpiece: a tokenizer.WordPiece.
    max_seq_len: L, the length of every row, special tokens included.
    label_to_id: {label: id} for class labels; None for regression (float labels) or
      unlabelled examples.

  Returns:
    (arrays, num_truncated): arrays holds int32 [N, L] "input_ids", "token_type_ids"
    and "attention_mask", and "labels" [N] (int32 ids via label_to_id, or float32
    scores) when the examples are labelled; num_truncated counts examples cut to fit.
  """
  num_texts = {len(e.texts) for e in examples}
  if len(num_texts) != 1 or not num_texts <= {1, 2}:
    raise ValueError(f"examples have {sorted(num_texts)} texts each; expected all 1 or "
                     "all 2")
  pair = num_texts == {2}
  specials = 3 if pair else 2
  if max_seq_len < specials + (2 if pair else 1):
    raise ValueError(f"max_seq_len={max_seq_len} leaves no room for the text")
  segments_a = wordpiece.encode_lines([e.texts[0] for e in examples])
  segments_b = (wordpiece.encode_lines([e.texts[1] for e in examples]) if pair
                else [[] for _ in examples])
  n = len(examples)
  arrays = {key: np.zeros((n, max_seq_len), np.int32)
            for key in ("input_ids", "token_type_ids", "attention_mask")}
  num_truncated = 0
  for row, (a, b) in enumerate(zip(segments_a, segments_b)):
    kept_a, kept_b = truncate_seq_pair(a, b, max_seq_len - specials)
    num_truncated += (len(kept_a), len(kept_b)) != (len(a), len(b))
    ids = [wordpiece.cls_id] + kept_a + [wordpiece.sep_id]
    if pair:
      ids += kept_b + [wordpiece.sep_id]
    arrays["input_ids"][row, :len(ids)] = ids
    arrays["token_type_ids"][row, len(kept_a) + 2:len(ids)] = 1
    arrays["attention_mask"][row, :len(ids)] = 1
  labels = _labels(examples, label_to_id)
  if labels is not None:
    arrays["labels"] = labels
  return arrays, num_truncated


def _labels(examples, label_to_id):
  """[N] int32 class ids or float32 scores; None for unlabelled examples."""
  values = [e.label for e in examples]
  if all(v is None for v in values):
    return None
  if label_to_id is not None:
    unknown = next((v for v in values if v not in label_to_id), None)
    if unknown is not None:
      raise ValueError(f"label {unknown!r} has no id; check the file with "
                       "finetune_labels.check_known_labels first")
    return np.array([label_to_id[v] for v in values], np.int32)
  if not all(isinstance(v, float) for v in values):
    raise ValueError("class labels need label_to_id (float labels are regression scores)")
  return np.array(values, np.float32)


def encode_tagged(sentences, wordpiece, max_seq_len, *, tag_to_id=None):
  """Encodes word-tagged sentences, one label per word on the word's first piece.

  Each word is tokenised on its own; a word that gives no pieces (e.g. a control
  character) becomes [UNK], so every word has a first piece. Pieces past
  max_seq_len - 2 are cut: a word whose first piece is cut is a truncated word (see
  predictions_to_words); a word that loses only later pieces keeps its label, since
  the label is on the first piece.

  Args:
    sentences: conll.TaggedSentence list (or anything with `.words` and `.tags`).
    wordpiece: a tokenizer.WordPiece.
    max_seq_len: L, the length of every row, [CLS] and [SEP] included.
    tag_to_id: {tag: id}; None for unlabelled sentences (tags are then not read).

  Returns:
    (arrays, num_truncated_words): arrays holds int32 [N, L] "input_ids",
    "token_type_ids" (all 0), "attention_mask" and "word_index" (the word a first
    piece belongs to, -1 for [CLS], [SEP], padding and non-first pieces), and with
    tag_to_id also "labels" int32 [N, L] (0 where unweighted) and "label_weights"
    float32 [N, L] (1 on first pieces). num_truncated_words counts the words cut, over
    all sentences.
  """
  if max_seq_len < 3:
    raise ValueError(f"max_seq_len={max_seq_len} leaves no room for a word")
  words = [w for s in sentences for w in s.words]
  pieces = wordpiece.encode_lines(words)
  n = len(sentences)
  arrays = {key: np.zeros((n, max_seq_len), np.int32)
            for key in ("input_ids", "token_type_ids", "attention_mask")}
  arrays["word_index"] = np.full((n, max_seq_len), -1, np.int32)
  if tag_to_id is not None:
    arrays["labels"] = np.zeros((n, max_seq_len), np.int32)
    arrays["label_weights"] = np.zeros((n, max_seq_len), np.float32)
  room = max_seq_len - 2
  num_truncated_words = 0
  offset = 0  # position of the sentence's first word in `words`
  for row, sentence in enumerate(sentences):
    ids = [wordpiece.cls_id]
    for w in range(len(sentence.words)):
      word_pieces = pieces[offset + w] or [wordpiece.unk_id]
      if len(ids) - 1 >= room:
        num_truncated_words += len(sentence.words) - w
        break
      first = len(ids)
      arrays["word_index"][row, first] = w
      if tag_to_id is not None:
        arrays["labels"][row, first] = _tag_id(tag_to_id, sentence, w)
        arrays["label_weights"][row, first] = 1.0
      ids += word_pieces[:room - (len(ids) - 1)]
    offset += len(sentence.words)
    ids.append(wordpiece.sep_id)
    arrays["input_ids"][row, :len(ids)] = ids
    arrays["attention_mask"][row, :len(ids)] = 1
  return arrays, num_truncated_words


def _tag_id(tag_to_id, sentence, w):
  tag = sentence.tags[w]
  if tag not in tag_to_id:
    raise ValueError(f"sentence at line {sentence.line}: tag {tag!r} has no id; check "
                     "the file with finetune_labels.check_known_labels first")
  return tag_to_id[tag]


def predictions_to_words(pred_ids, word_index, num_words, *, fill_id):
  """Maps per-position predictions back to one prediction per word.

  Args:
    pred_ids: [N, L] predicted label ids (argmax of the tagging logits).
    word_index: [N, L] from encode_tagged.
    num_words: the number of words of each of the N sentences (len(s.words)).
    fill_id: the id given to words cut by truncation, which the model never saw. There
      is no default because no id is right for every tag set: pass the id of "O" for
      BIO tags (a cut entity then counts as missed, lowering recall, not precision),
      or the most frequent training tag for POS. Either way, metrics on these word
      lists count every word of the file, truncated ones included.

  Returns:
    A list of N lists of ints, one predicted id per word.
  """
  pred_ids = np.asarray(pred_ids)
  word_index = np.asarray(word_index)
  if pred_ids.shape != word_index.shape or pred_ids.shape[0] != len(num_words):
    raise ValueError(f"pred_ids {pred_ids.shape}, word_index {word_index.shape} and "
                     f"{len(num_words)} sentences do not match")
  words = []
  for row, count in enumerate(num_words):
    out = np.full(int(count), fill_id, np.int64)
    first_pieces = word_index[row] >= 0
    out[word_index[row][first_pieces]] = pred_ids[row][first_pieces]
    words.append(out.tolist())
  return words
