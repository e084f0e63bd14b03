"""Fine-tuning metrics against values computed by hand on small cases (the arithmetic is
written out), and entity counting on CoNLL-2003 dev."""
import math

import pytest

from prelm_jax import finetune_metrics
from prelm_jax.data import conll


def test_binary_classification():
  labels = [1, 1, 1, 1, 0, 0]
  preds = [1, 1, 1, 0, 1, 0]
  # TP = 3, FN = 1, FP = 1, TN = 1.
  scores = finetune_metrics.classification_metrics(labels, preds)
  assert scores == pytest.approx({
      "accuracy": 4 / 6,
      "f1": 2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4),  # class 1: P = R = 3/4 (class 0's F1 is 1/2)
      "mcc": (3 * 1 - 1 * 1) / math.sqrt((3 + 1) * (3 + 1) * (1 + 1) * (1 + 1)),  # 2/8
  })


def test_binary_classification_degenerate():
  # Never predicting class 1: F1 is 0 (no warning), MCC 0.
  assert finetune_metrics.classification_metrics([0, 1, 0], [0, 0, 0]) == pytest.approx(
      {"accuracy": 2 / 3, "f1": 0.0, "mcc": 0.0})
  assert finetune_metrics.classification_metrics([0, 0], [0, 0]) == {
      "accuracy": 1.0, "f1": 0.0, "mcc": 0.0}


def test_multiclass_classification():
  labels = [0, 1, 2, 2]
  preds = [0, 2, 2, 1]
  # Per-class F1: class 0: 1; class 1: 0 (no hit); class 2: P = 1/2, R = 1/2 -> 1/2.
  # MCC (Gorodkin): c = 2 correct of s = 4; t = p = [1, 1, 2] per class;
  # (c*s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)) = (8 - 6) / sqrt(10 * 10).
  scores = finetune_metrics.classification_metrics(labels, preds, num_labels=3)
  assert scores == pytest.approx({"accuracy": 2 / 4, "macro_f1": (1 + 0 + 1 / 2) / 3,
                                  "mcc": 2 / 10})


def test_regression():
  targets = [1.0, 2.0, 3.0, 4.0]
  preds = [1.0, 2.0, 3.0, 10.0]
  # Deviations from the means (2.5 and 4): t = [-1.5, -.5, .5, 1.5], p = [-3, -2, -1, 6].
  # sum(t*p) = 4.5 + 1 - .5 + 9 = 14; sum(t^2) = 5; sum(p^2) = 50.
  # The ranks agree exactly, so Spearman is 1.
  scores = finetune_metrics.regression_metrics(targets, preds)
  assert scores == pytest.approx({"mse": 36 / 4, "pearson": 14 / math.sqrt(5 * 50),
                                  "spearman": 1.0})


def test_regression_constant_predictions_give_nan_correlations():
  scores = finetune_metrics.regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
  assert scores["mse"] == pytest.approx(2 / 3)
  assert math.isnan(scores["pearson"]) and math.isnan(scores["spearman"])


def test_entity_metrics():
  gold = [["B-PER", "I-PER", "O", "B-LOC"],
          ["B-ORG", "O", "B-MISC", "I-MISC"]]
  pred = [["B-PER", "I-PER", "B-LOC", "B-ORG"],  # PER right; LOC at 2 false; ORG wrong type
          ["B-ORG", "O", "B-MISC", "O"]]         # ORG right; MISC too short
  # Gold entities 4, predicted 5, correct 2 (PER, ORG).
  precision, recall = 2 / 5, 2 / 4
  assert finetune_metrics.entity_metrics(gold, pred) == pytest.approx({
      "entity_precision": precision, "entity_recall": recall,
      "entity_f1": 2 * precision * recall / (precision + recall)})  # 4/9


def test_entity_metrics_reads_i_starts_as_conlleval_does():
  gold = [["O", "B-PER", "I-PER", "O", "B-LOC"]]
  pred = [["O", "I-PER", "I-PER", "O", "B-LOC"]]
  # conlleval: the I-PER after O starts an entity, the same span as gold: 2 of 2 right.
  assert finetune_metrics.entity_metrics(gold, pred) == {
      "entity_precision": 1.0, "entity_recall": 1.0, "entity_f1": 1.0}
  # Strict IOB2: the predicted I-PER I-PER is no entity: 1 of 1 predicted right, 1 of 2
  # gold found.
  assert finetune_metrics.entity_metrics(gold, pred, strict=True) == pytest.approx({
      "entity_precision": 1.0, "entity_recall": 1 / 2, "entity_f1": 2 / 3})


def test_entity_metrics_without_entities_is_zero():
  assert finetune_metrics.entity_metrics([["O"]], [["O"]]) == {
      "entity_precision": 0.0, "entity_recall": 0.0, "entity_f1": 0.0}


def test_token_accuracy():
  gold = [["DET", "NOUN", "VERB"], ["PRON", "VERB"]]
  pred = [["DET", "VERB", "VERB"], ["PRON", "VERB"]]
  assert finetune_metrics.token_accuracy(gold, pred) == pytest.approx(4 / 5)


def test_shape_mismatches_are_errors():
  with pytest.raises(ValueError, match="equal, non-empty"):
    finetune_metrics.classification_metrics([0, 1], [0])
  with pytest.raises(ValueError, match="equal, non-empty"):
    finetune_metrics.regression_metrics([], [])
  with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
    finetune_metrics.token_accuracy([["O"], ["O", "O"]], [["O"], ["O"]])
  with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
    finetune_metrics.entity_metrics([["O"], ["O"]], [["O"]])


def test_conll2003_dev_entities_as_conll_counts_them(shared_file):
  path = shared_file("conll2003", "eng.testa")
  gold = [s.tags for s in conll.iob1_sentences_to_iob2(conll.read_conll(str(path)),
                                                         path=str(path))]
  # Dropping one single-token entity from the predictions: recall 5,941 / 5,942 shows
  # there are 5,942 gold entities (PROVENANCE.md), precision stays 1.
  pred = [list(tags) for tags in gold]
  row = next(i for i, tags in enumerate(pred)
             if tags[0].startswith("B-") and (len(tags) == 1 or tags[1] == "O"))
  pred[row][0] = "O"
  scores = finetune_metrics.entity_metrics(gold, pred)
  assert scores["entity_precision"] == 1.0
  assert scores["entity_recall"] == pytest.approx(5_941 / 5_942)
  # The IOB1 original read by conlleval's rules finds the same entities.
  iob1 = [s.tags for s in conll.read_conll(str(path))]
  assert finetune_metrics.entity_metrics(iob1, gold)["entity_f1"] == 1.0
