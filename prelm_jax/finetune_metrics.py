"""Fine-tuning metrics on the host, from a whole split's labels and predictions.

The formulas are the libraries': scikit-learn (accuracy, F1, Matthews correlation),
scipy.stats (Pearson, Spearman) and seqeval (entity-level precision, recall, F1). The
functions only check shapes and give plain floats under the names the outputs use:
accuracy, f1, mcc, mse, pearson, spearman, entity_precision, entity_recall,
entity_f1, token_accuracy.
"""
import warnings

import numpy as np
import scipy.stats
import seqeval.metrics
import seqeval.scheme
import sklearn.metrics


def classification_metrics(labels, preds, *, num_labels=2):
  """Accuracy, F1 and Matthews correlation of class predictions.

  Args:
    labels: gold class ids [N].
    preds: predicted class ids [N].
    num_labels: the number of classes. With 2, "f1" is the F1 of class 1, as GLUE
      reports it for MRPC and QQP; with more, "macro_f1" (the unweighted mean of the
      classes' F1) replaces it.

  Returns:
    {"accuracy", "f1" or "macro_f1", "mcc"} as floats. F1 of a class never predicted
    nor present is 0, and MCC is 0 when all predictions (or labels) are one class.
  """
  labels, preds = _same_length(labels, preds)
  classes = list(range(num_labels))
  out = {"accuracy": float(sklearn.metrics.accuracy_score(labels, preds))}
  if num_labels == 2:
    out["f1"] = float(sklearn.metrics.f1_score(labels, preds, labels=classes, pos_label=1,
                                               average="binary", zero_division=0))
  else:
    out["macro_f1"] = float(sklearn.metrics.f1_score(labels, preds, labels=classes,
                                                     average="macro", zero_division=0))
  with warnings.catch_warnings():
    # One class in both labels and predictions (a collapsed model): sklearn warns
    # about the confusion matrix's shape and returns 0, which is MCC's value there.
    warnings.filterwarnings("ignore", message="A single label was found",
                            category=UserWarning)
    out["mcc"] = float(sklearn.metrics.matthews_corrcoef(labels, preds))
  return out


def regression_metrics(targets, preds):
  """Mean squared error and Pearson and Spearman correlations (STS-B).

  Args:
    targets: gold scores [N].
    preds: predicted scores [N].

  Returns:
    {"mse", "pearson", "spearman"} as floats. A correlation is NaN when the targets or
    the predictions are all equal (it is undefined), e.g. a model that has not yet
    learned to tell pairs apart.
  """
  targets, preds = _same_length(targets, preds)
  targets, preds = targets.astype(np.float64), preds.astype(np.float64)
  with warnings.catch_warnings():
    # scipy warns on constant input and returns NaN; the docstring says so instead of
    # a warning at every evaluation of an early checkpoint.
    warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
    if len(targets) > 1:
      pearson = scipy.stats.pearsonr(targets, preds).statistic
      spearman = scipy.stats.spearmanr(targets, preds).statistic
    else:  # one pair has no correlation
      pearson = spearman = np.nan
  return {"mse": float(sklearn.metrics.mean_squared_error(targets, preds)),
          "pearson": float(pearson), "spearman": float(spearman)}


def entity_metrics(gold_tag_seqs, pred_tag_seqs, *, strict=False):
  """Entity-level precision, recall and F1 over BIO tag sequences (NER).

  An entity counts as correct only when its type and both boundaries match a gold
  entity. By default, entities are read as CoNLL's conlleval script reads them (seqeval's
  default mode): an I-X after O or after another type also starts an entity, so a
  prediction that begins with I- is not thrown away.

  Args:
    gold_tag_seqs: per-sentence gold tags, IOB2 ("B-PER", "I-PER", "O"); convert
      IOB1 data with conll.iob1_to_iob2 first.
    pred_tag_seqs: per-sentence predicted tags, same lengths.
    strict: read entities with seqeval's strict IOB2 scheme instead: only B-X starts
      an entity, and I-X tags that do not continue one are ignored.

  Returns:
    {"entity_precision", "entity_recall", "entity_f1"} as floats (0 where there is no
    predicted or no gold entity).
  """
  gold, pred = _same_sentence_lengths(gold_tag_seqs, pred_tag_seqs)
  mode = {"mode": "strict", "scheme": seqeval.scheme.IOB2} if strict else {}
  return {
      "entity_precision": float(seqeval.metrics.precision_score(
          gold, pred, zero_division=0, **mode)),
      "entity_recall": float(seqeval.metrics.recall_score(
          gold, pred, zero_division=0, **mode)),
      "entity_f1": float(seqeval.metrics.f1_score(gold, pred, zero_division=0, **mode)),
  }


def token_accuracy(gold_tag_seqs, pred_tag_seqs):
  """The fraction of words whose predicted tag is the gold one (POS).

  Args:
    gold_tag_seqs: per-sentence gold tags (strings or ids).
    pred_tag_seqs: per-sentence predicted tags, same lengths.

  Returns:
    The accuracy over all words of all sentences, a float.
  """
  gold, pred = _same_sentence_lengths(gold_tag_seqs, pred_tag_seqs)
  flat_gold = [t for sentence in gold for t in sentence]
  flat_pred = [t for sentence in pred for t in sentence]
  if not flat_gold:
    raise ValueError("no words to score")
  return float(sklearn.metrics.accuracy_score(flat_gold, flat_pred))


def _same_length(gold, pred):
  gold, pred = np.asarray(gold), np.asarray(pred)
  if gold.ndim != 1 or gold.shape != pred.shape or not len(gold):
    raise ValueError(f"gold {gold.shape} and predictions {pred.shape} must be equal, "
                     "non-empty 1-D lists")
  return gold, pred


def _same_sentence_lengths(gold_seqs, pred_seqs):
  gold, pred = [list(s) for s in gold_seqs], [list(s) for s in pred_seqs]
  if len(gold) != len(pred):
    raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
  for i, (g, p) in enumerate(zip(gold, pred)):
    if len(g) != len(p):
      raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
  return gold, pred
