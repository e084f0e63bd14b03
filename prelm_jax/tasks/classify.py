"""Sequence classification: one sentence (SST-2) or a pair (RTE, MRPC:
[CLS] A [SEP] B [SEP] with token types 0 and 1), or regression (STS-B: a score).

Input: a TSV/CSV/JSONL file with the columns config.data.text_columns (one or two)
and config.data.label_column, or a prepared TFDS dataset `tfds:NAME:SPLIT` with those
features (e.g. tfds:glue/sst2:train; data/finetune_tfds.py).
Model: the encoder's pooled [CLS] -> dropout -> dense. Loss: cross-entropy (MSE for
regression). Dev metrics: accuracy, f1, mcc (pearson, spearman, mse for regression),
from every prediction with scikit-learn / scipy.
"""
import jax.numpy as jnp
import numpy as np
import optax

from prelm_jax import errors
from prelm_jax import finetune_metrics
from prelm_jax import losses
from prelm_jax.data import finetune_encode
from prelm_jax.data import finetune_labels
from prelm_jax.data import finetune_sources
from prelm_jax.data import finetune_tables
from prelm_jax.data import finetune_tfds
from prelm_jax.model import finetuning
from prelm_jax.model.config import EncoderConfig
from prelm_jax.tasks import finetune


class ClassifyTask(finetune.FinetuneTask):
  """config.task = "classify"; config.data.regression = True for a score."""

  name = "classify"

  def __init__(self, config):
    super().__init__(config)
    self.regression = bool(config.data.regression)
    finetune_tables.check_text_columns("pair" if config.data.sentence_pair else "single",
                                       config.data.text_columns)
    self.labels = list(config.data.labels)
    self.best_metric = ("pearson", "max") if self.regression else ("accuracy", "max")
    self.reported_metrics = (("pearson", "spearman", "mse") if self.regression
                             else ("accuracy", "f1", "mcc"))
    self.progress_metrics = ("loss",) if self.regression else ("loss", "accuracy")

  # --- data -------------------------------------------------------------------------------
  def read(self, path):
    data = self.config.data
    if finetune_sources.is_tfds(path):
      return finetune_tfds.read_examples(
          path, text_columns=tuple(data.text_columns), label_column=data.label_column,
          data_dir=data.tfds_data_dir, regression=self.regression)
    return finetune_tables.read_table(
        path, text_columns=tuple(data.text_columns), label_column=data.label_column,
        delimiter=data.delimiter or None, regression=self.regression)

  def read_unlabelled(self, path):
    data = self.config.data
    return finetune_tables.read_table(path, text_columns=tuple(data.text_columns),
                                      label_column=None, delimiter=data.delimiter or None)

  def records_from_texts(self, texts):
    """Examples of raw texts: strings, or (a, b) pairs for a pair run."""
    pair = bool(self.config.data.sentence_pair)
    examples = []
    for i, text in enumerate(texts):
      parts = (text,) if isinstance(text, str) else tuple(text)
      if len(parts) != (2 if pair else 1) or not all(isinstance(p, str) for p in parts):
        wanted = "(a, b) pairs of strings" if pair else "strings"
        raise errors.DataError(
            f"text {i} is {text!r}: this run classifies {wanted} ("
            f"config.data.sentence_pair={pair}); pass a list of {wanted}")
      examples.append(finetune_tables.Example(parts, None, i + 1))
    return examples

  def encode_unlabelled(self, records, tokenizer):
    return finetune_encode.encode_examples(records, tokenizer,
                                           self.config.data.max_seq_len)[0]

  def label_list(self, train, evals):
    if self.regression:
      return []
    data = self.config.data
    configured = self.labels or None
    if configured is None and finetune_sources.is_tfds(data.train_path):
      # A ClassLabel's own order: the dataset's ids (GLUE's positive class for F1).
      configured = finetune_tfds.class_names(
          data.train_path, label_column=data.label_column, data_dir=data.tfds_data_dir)
    labels = finetune_labels.label_vocabulary(train, path=data.train_path,
                                              configured=configured)
    for path, records in evals.items():
      finetune_labels.check_known_labels(records, labels, path=path)
    return labels

  def texts_of(self, records):
    return [" ".join(r.texts) for r in records]

  def encode(self, records, tokenizer):
    label_to_id = None if self.regression else {l: i for i, l in enumerate(self.labels)}
    return finetune_encode.encode_examples(records, tokenizer, self.config.data.max_seq_len,
                                           label_to_id=label_to_id)

  def batch_spec(self):
    length = (self.config.data.max_seq_len,)
    return {"input_ids": (length, np.int32), "token_type_ids": (length, np.int32),
            "attention_mask": (length, np.int32),
            "labels": ((), np.float32 if self.regression else np.int32),
            "example_weights": ((), np.float32)}

  # --- model and loss -----------------------------------------------------------------------
  def build_model(self, vocab_size):
    outputs = 1 if self.regression else max(len(self.labels), 2)
    return finetuning.BertForSequenceClassification(
        EncoderConfig.from_config(self.config.model, vocab_size), outputs)

  def denominators(self, batch):
    return jnp.sum(batch["example_weights"].astype(jnp.float32))

  def _sums(self, logits, batch):
    weights = batch["example_weights"].astype(jnp.float32)
    if self.regression:
      error = (logits[:, 0] - batch["labels"].astype(jnp.float32)) ** 2
      return {"loss_sum": jnp.sum(error * weights), "correct_sum": jnp.zeros(()),
              "weight_sum": jnp.sum(weights)}
    labels = jnp.where(weights > 0, batch["labels"], 0)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {"loss_sum": jnp.sum(xent * weights),
            "correct_sum": jnp.sum((jnp.argmax(logits, -1) == labels) * weights),
            "weight_sum": jnp.sum(weights)}

  def _predictions(self, logits):
    return logits[:, 0] if self.regression else jnp.argmax(logits, -1)

  def summarize(self, sums):
    loss = losses.ratio(sums["loss_sum"], sums["weight_sum"])
    if self.regression:
      return {"loss": loss, "mse": loss}
    return {"loss": loss, "accuracy": losses.ratio(sums["correct_sum"], sums["weight_sum"])}

  # --- evaluation ----------------------------------------------------------------------------
  def host_metrics(self, predictions, dev):
    records, arrays = dev
    if self.regression:
      return finetune_metrics.regression_metrics(arrays["labels"], predictions)
    return finetune_metrics.classification_metrics(arrays["labels"], predictions,
                                                   num_labels=len(self.labels))

  def decode_predictions(self, predictions, examples):
    """A label (classification) or a score (regression) per record."""
    records, _ = examples
    return [float(p) if self.regression else self.labels[int(p)]
            for p in predictions[:len(records)]]

  def write_predictions(self, path, predictions, dev):
    records, _ = dev
    with open(path, "w", encoding="utf-8") as f:
      f.write("line\t" + "\t".join(self.config.data.text_columns) + "\tlabel\tpredicted\n")
      for record, pred in zip(records, self.decode_predictions(predictions, dev)):
        shown = f"{pred:.4f}" if self.regression else pred
        texts = "\t".join(t.replace("\t", " ") for t in record.texts)
        gold = "" if record.label is None else record.label
        f.write(f"{record.line}\t{texts}\t{gold}\t{shown}\n")
