"""Encoding for fine-tuning: [CLS] A [SEP] B [SEP] with token types, BERT's pair
truncation, labels on each word's first WordPiece, and predictions mapped back to words
(on a hand-written vocab, so every piece is known, and on the shared data sets)."""

import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities

from prelm_jax import finetune_metrics
from prelm_jax.data import conll
from prelm_jax.data import finetune_encode
from prelm_jax.data import finetune_labels
from prelm_jax.data import finetune_tables
from prelm_jax.data import tokenizer
from prelm_jax.data.conll import TaggedSentence
from prelm_jax.data.finetune_tables import Example

VOCAB = list(tokenizer.SPECIAL_TOKENS) + [
    "the", "cat", "##s", "un", "##believ", "##able", "play", "##ing", ".",  # 5..13
    "is", "big", "a", "dog", "ran"]                                         # 14..18
PAD, UNK, CLS, SEP = 0, 1, 2, 3
THE, CAT, S, UN, BELIEV, ABLE, PLAY, ING, DOT, IS, BIG, A, DOG, RAN = range(5, 19)


@pytest.fixture(scope="module")
def wordpiece():
  return tokenizer.WordPiece(VOCAB, lowercase=True)


def test_single_sentence(wordpiece):
  arrays, truncated = finetune_encode.encode_examples(
      [Example(("The cats",), "1", 2), Example(("a dog ran .",), "0", 3)], wordpiece, 8,
      label_to_id={"0": 0, "1": 1})
  np.testing.assert_array_equal(arrays["input_ids"], [
      [CLS, THE, CAT, S, SEP, PAD, PAD, PAD],
      [CLS, A, DOG, RAN, DOT, SEP, PAD, PAD]])
  np.testing.assert_array_equal(arrays["token_type_ids"], np.zeros((2, 8)))
  np.testing.assert_array_equal(arrays["attention_mask"], [
      [1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(arrays["labels"], [1, 0])
  assert truncated == 0
  assert {a.dtype for a in arrays.values()} == {np.dtype(np.int32)}


def test_pair_token_types_and_truncation(wordpiece):
  examples = [Example(("the cat is big", "a dog ran ."), 0.5, 2),       # 4 + 4 pieces
              Example(("the cat is big . the cats", "a dog"), 4.0, 3),  # 8 + 2 pieces
              Example(("the", "a"), 1.0, 4)]
  arrays, truncated = finetune_encode.encode_examples(examples, wordpiece, 8)
  np.testing.assert_array_equal(arrays["input_ids"], [
      # 4 + 4 into 8 - 3 = 5: B (tie), A, B lose their last pieces.
      [CLS, THE, CAT, IS, SEP, A, DOG, SEP],
      # 8 + 2: only the longer A is trimmed; B keeps both pieces.
      [CLS, THE, CAT, IS, SEP, A, DOG, SEP],
      [CLS, THE, SEP, A, SEP, PAD, PAD, PAD]])
  np.testing.assert_array_equal(arrays["token_type_ids"], [
      [0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]])
  np.testing.assert_array_equal(arrays["attention_mask"][2], [1, 1, 1, 1, 1, 0, 0, 0])
  assert arrays["labels"].dtype == np.float32
  np.testing.assert_array_equal(arrays["labels"], [0.5, 4.0, 1.0])
  assert truncated == 2


def test_truncate_seq_pair_trims_the_longer_from_the_end():
  assert finetune_encode.truncate_seq_pair(range(10), [7, 8], 8) == (
      [0, 1, 2, 3, 4, 5], [7, 8])
  assert finetune_encode.truncate_seq_pair([1, 2, 3, 4], [5, 6, 7, 8], 5) == (
      [1, 2, 3], [5, 6])
  assert finetune_encode.truncate_seq_pair([1], [2], 5) == ([1], [2])


def test_unlabelled_and_label_errors(wordpiece):
  arrays, _ = finetune_encode.encode_examples([Example(("cat",), None, 2)], wordpiece, 4)
  assert "labels" not in arrays
  with pytest.raises(ValueError, match="check_known_labels"):
    finetune_encode.encode_examples([Example(("cat",), "2", 2)], wordpiece, 4,
                                    label_to_id={"0": 0, "1": 1})
  with pytest.raises(ValueError, match="all 1 or all 2"):
    finetune_encode.encode_examples([Example(("a",), "0", 2), Example(("a", "b"), "0", 3)],
                                    wordpiece, 8, label_to_id={"0": 0})


TAGS = {"O": 0, "B-X": 1, "I-X": 2}


def test_tagging_labels_go_on_first_pieces_and_map_back(wordpiece):
  sentences = [TaggedSentence(["The", "cats", "unbelievable", "playing", "."],
                              ["O", "B-X", "I-X", "B-X", "O"], 1),
               TaggedSentence(["zebra", "\u200b"], ["B-X", "O"], 7)]
  arrays, truncated = finetune_encode.encode_tagged(sentences, wordpiece, 12,
                                                    tag_to_id=TAGS)
  np.testing.assert_array_equal(arrays["input_ids"], [
      [CLS, THE, CAT, S, UN, BELIEV, ABLE, PLAY, ING, DOT, SEP, PAD],
      # An unknown word is one [UNK]; a word with no pieces (U+200B) becomes [UNK] too.
      [CLS, UNK, UNK, SEP, PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD]])
  np.testing.assert_array_equal(arrays["word_index"], [
      [-1, 0, 1, -1, 2, -1, -1, 3, -1, 4, -1, -1],
      [-1, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1]])
  np.testing.assert_array_equal(arrays["label_weights"], [
      [0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0],
      [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(arrays["labels"], [
      [0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 0, 0],
      [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(arrays["attention_mask"].sum(1), [11, 4])
  np.testing.assert_array_equal(arrays["token_type_ids"], np.zeros((2, 12)))
  assert truncated == 0
  # A prediction at each position; only first pieces count, in word order.
  pred = np.arange(24).reshape(2, 12)
  assert finetune_encode.predictions_to_words(pred, arrays["word_index"], [5, 2],
                                              fill_id=0) == [[1, 2, 4, 7, 9], [13, 14]]


def test_tagging_truncation_cuts_words_and_fills_them(wordpiece):
  sentence = TaggedSentence(["The", "cats", "unbelievable", "playing", "."],
                            ["O", "B-X", "I-X", "B-X", "O"], 1)
  # Room for 5 pieces: "unbelievable" keeps its first two pieces (and its label);
  # "playing" and "." are cut.
  arrays, truncated = finetune_encode.encode_tagged([sentence], wordpiece, 7,
                                                    tag_to_id=TAGS)
  np.testing.assert_array_equal(arrays["input_ids"], [[CLS, THE, CAT, S, UN, BELIEV, SEP]])
  np.testing.assert_array_equal(arrays["word_index"], [[-1, 0, 1, -1, 2, -1, -1]])
  assert truncated == 2
  pred = np.array([[0, 0, 1, 0, 2, 0, 0]])
  assert finetune_encode.predictions_to_words(pred, arrays["word_index"], [5],
                                              fill_id=TAGS["O"]) == [[0, 1, 2, 0, 0]]
  # Unlabelled sentences give no labels.
  arrays, _ = finetune_encode.encode_tagged([sentence], wordpiece, 7)
  assert "labels" not in arrays and "label_weights" not in arrays
  with pytest.raises(ValueError, match="do not match"):
    finetune_encode.predictions_to_words(pred, arrays["word_index"], [5, 1], fill_id=0)


# The shared data sets, with a WordPiece trained on their training split.


def test_rte_dev_pairs(shared_file):
  train = finetune_tables.read_table(shared_file("rte", "train.tsv"),
                                     text_columns=["sentence1", "sentence2"],
                                     label_column="label")
  dev = finetune_tables.read_table(shared_file("rte", "dev.tsv"),
                                   text_columns=["sentence1", "sentence2"],
                                   label_column="label")
  wordpiece = tokenizer.train_wordpiece([t for e in train for t in e.texts], 2000)
  vocabulary = finetune_labels.label_vocabulary(train, path="rte/train.tsv")
  arrays, truncated = finetune_encode.encode_examples(
      dev, wordpiece, 64, label_to_id={label: i for i, label in enumerate(vocabulary)})
  ids, types, mask = arrays["input_ids"], arrays["token_type_ids"], arrays["attention_mask"]
  assert ids.shape == (277, 64) and 0 < truncated < 277
  assert (ids[:, 0] == wordpiece.cls_id).all()
  assert ((ids == wordpiece.sep_id).sum(1) == 2).all()
  length = mask.sum(1)
  assert (ids[np.arange(277), length - 1] == wordpiece.sep_id).all()
  # Token type 1 from just after the first [SEP] to the last, and nowhere else.
  first_sep = (ids == wordpiece.sep_id).argmax(1)
  position = np.arange(64)
  expected = (position > first_sep[:, None]) & (position < length[:, None])
  np.testing.assert_array_equal(types, expected)
  np.testing.assert_array_equal(np.bincount(arrays["labels"]), [146, 131])


def test_conll2003_dev_round_trip(shared_file):
  """Gold tags through encode -> first-piece labels -> words give back every entity;
  with truncation, exactly the entities inside the kept words."""
  train_path = shared_file("conll2003", "eng.train")
  dev_path = shared_file("conll2003", "eng.testa")
  train = conll.iob1_sentences_to_iob2(conll.read_conll(train_path), path=train_path)
  dev = conll.iob1_sentences_to_iob2(conll.read_conll(dev_path), path=dev_path)
  vocabulary = finetune_labels.label_vocabulary(train, path=train_path)
  finetune_labels.check_known_labels(dev, vocabulary, path=dev_path)
  tag_to_id = {t: i for i, t in enumerate(vocabulary)}
  wordpiece = tokenizer.train_wordpiece(
      [" ".join(s.words) for s in train[:4000]], 4000, lowercase=False)
  gold = [s.tags for s in dev]
  num_words = [len(s.words) for s in dev]
  for max_seq_len in (256, 24):
    arrays, truncated = finetune_encode.encode_tagged(dev, wordpiece, max_seq_len,
                                                      tag_to_id=tag_to_id)
    assert arrays["label_weights"].sum() == sum(num_words) - truncated
    # A perfect model: its prediction at each first piece is the gold label.
    words = finetune_encode.predictions_to_words(
        arrays["labels"], arrays["word_index"], num_words, fill_id=tag_to_id["O"])
    pred = [[vocabulary[i] for i in sentence] for sentence in words]
    scores = finetune_metrics.entity_metrics(gold, pred)
    if max_seq_len == 256:
      assert truncated == 0
      assert scores == {"entity_precision": 1.0, "entity_recall": 1.0, "entity_f1": 1.0}
      continue
    # Cut words are filled with "O": an entity past the cut is missed, and one that
    # the cut splits is predicted too short (wrong).
    kept = (arrays["word_index"] >= 0).sum(1)
    inside = split = 0
    for tags, k in zip(gold, kept):
      for _, start, end in get_entities(tags):  # end is inclusive
        inside += end < k
        split += start < k <= end
    assert truncated > 0 and split > 0
    assert scores["entity_recall"] == pytest.approx(inside / 5_942)
    assert scores["entity_precision"] == pytest.approx(inside / (inside + split))
