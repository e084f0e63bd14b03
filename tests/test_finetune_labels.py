"""Label vocabularies (sorted like GLUE, or as configured) and unknown labels as one line
naming file and line."""
import pytest

from prelm_jax import errors
from prelm_jax.data import finetune_labels
from prelm_jax.data.conll import TaggedSentence
from prelm_jax.data.finetune_tables import Example


def examples(*labels):
  return [Example(("text",), label, line) for line, label in enumerate(labels, 2)]


def test_vocabulary_is_sorted_as_glue_numbers_it():
  rte = examples("not_entailment", "entailment", "not_entailment")
  assert finetune_labels.label_vocabulary(rte, path="train.tsv") == [
      "entailment", "not_entailment"]
  # Integer labels sort as numbers, so "10" is not id 2.
  assert finetune_labels.label_vocabulary(examples("10", "2", "0", "1"), path="t") == [
      "0", "1", "2", "10"]
  tagged = [TaggedSentence(["a", "b"], ["B-PER", "O"], 1),
            TaggedSentence(["c"], ["B-LOC"], 4)]
  assert finetune_labels.label_vocabulary(tagged, path="t") == ["B-LOC", "B-PER", "O"]


def test_configured_vocabulary_keeps_its_order_and_must_cover_train(one_line_error):
  train = examples("pos", "neg", "pos")
  assert finetune_labels.label_vocabulary(train, path="train.tsv",
                                          configured=["pos", "neg", "neutral"]) == [
                                              "pos", "neg", "neutral"]
  one_line_error(errors.DataError,
                 lambda: finetune_labels.label_vocabulary(train, path="train.tsv",
                                                          configured=["pos"]),
                 "label 'neg' in train.tsv (line 3) is not among the configured labels "
                 "['pos']; fix the file, or list every label")
  for bad in ([], "pos", ["pos", "pos"]):
    one_line_error(errors.ConfigError,
                   lambda: finetune_labels.label_vocabulary(train, path="t", configured=bad),
                   "labels=")


def test_dev_label_not_seen_in_train(one_line_error):
  vocabulary = finetune_labels.label_vocabulary(examples("0", "1"), path="train.tsv")
  finetune_labels.check_known_labels(examples("1", "0", "1"), vocabulary, path="dev.tsv")
  one_line_error(errors.DataError,
                 lambda: finetune_labels.check_known_labels(
                     examples("1", "0", "1", "2"), vocabulary, path="dev.tsv"),
                 "label '2' in dev.tsv (line 5) is not among the training labels ['0', '1']")
  tagged = [TaggedSentence(["EU", "rejects"], ["B-ORG", "B-MISCC"], 12)]
  one_line_error(errors.DataError,
                 lambda: finetune_labels.check_known_labels(tagged, ["B-ORG", "O"],
                                                            path="eng.testa"),
                 "label 'B-MISCC' in eng.testa (sentence at line 12) is not among")


def test_long_vocabularies_are_cut_in_the_message(one_line_error):
  vocabulary = [f"c{i}" for i in range(30)]
  message = one_line_error(errors.DataError,
                           lambda: finetune_labels.check_known_labels(
                               examples("x"), vocabulary, path="dev.tsv"),
                           "'c19', ... (30 in all)]")
  assert "c20" not in message


def test_scores_and_unlabelled_rows_have_no_vocabulary():
  with pytest.raises(ValueError, match="not a class label"):
    finetune_labels.label_vocabulary(examples(4.5), path="t")
  with pytest.raises(ValueError, match="not a class label"):
    finetune_labels.label_vocabulary(examples(None), path="t")
