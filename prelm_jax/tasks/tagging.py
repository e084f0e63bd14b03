"""Token tagging: a label per word, BIO entities (NER) or plain tags (POS).

Input: CoNLL column files (config.data.format = "conll": -DOCSTART- lines skipped, the
tag in config.data.tag_column, default the last) or CoNLL-U ("conllu": the field named
by tag_column, e.g. upos; multi-word token and empty-node lines skipped). IOB1 files
(original CoNLL-2003) are converted to IOB2 with config.data.tag_scheme = "iob1".
Or a prepared TFDS dataset `tfds:NAME:SPLIT` with a `tokens` feature (tfds:conll2003:
train; data/finetune_tfds.py): tag_column names the feature of tags ("" = ner), and
its IOB2 tags pass the iob1 conversion unchanged.
Each word is split into WordPieces; its label sits on the first piece and the other
pieces are ignored by the loss and the metrics; predictions map back to words.
Dev metrics: entity precision/recall/F1 as the CoNLL evaluation counts them (seqeval)
for BIO tags, token accuracy for plain tags.
"""
import jax.numpy as jnp
import numpy as np
import optax

from prelm_jax import errors
from prelm_jax import finetune_metrics
from prelm_jax import losses
from prelm_jax.data import conll
from prelm_jax.data import finetune_encode
from prelm_jax.data import finetune_labels
from prelm_jax.data import finetune_sources
from prelm_jax.data import finetune_tfds
from prelm_jax.model import finetuning
from prelm_jax.model.config import EncoderConfig
from prelm_jax.tasks import finetune

SCHEMES = ("iob1", "iob2", "tags")


class TagTask(finetune.FinetuneTask):
  """config.task = "tag"."""

  name = "tag"

  def __init__(self, config):
    super().__init__(config)
    data = config.data
    if data.tag_scheme not in SCHEMES:
      raise errors.ConfigError(f"config.data.tag_scheme={data.tag_scheme!r} is not allowed: "
                               f"it must be one of {', '.join(SCHEMES)}")
    if data.format not in ("conll", "conllu"):
      raise errors.ConfigError(f"config.data.format={data.format!r} is not allowed for "
                               "task 'tag': it must be conll or conllu")
    self.bio = data.tag_scheme != "tags"
    self.labels = list(data.labels)
    self.best_metric = ("entity_f1", "max") if self.bio else ("token_accuracy", "max")
    self.reported_metrics = (("entity_f1", "entity_precision", "entity_recall")
                             if self.bio else ("token_accuracy",))
    self.progress_metrics = ("loss", "token_accuracy")

  # --- data -------------------------------------------------------------------------------
  def read(self, path):
    data = self.config.data
    if finetune_sources.is_tfds(path):
      sentences = finetune_tfds.read_tagged(path, tag_column=data.tag_column,
                                            data_dir=data.tfds_data_dir)
    elif data.format == "conllu":
      return conll.read_conllu(path, column=data.tag_column or "upos")
    else:
      sentences = conll.read_conll(path, column=int(data.tag_column or -1))
    if data.tag_scheme == "iob1":
      sentences = conll.iob1_sentences_to_iob2(sentences, path=path)
    return sentences

  def read_unlabelled(self, path):
    """The same format; a tag column, if any, is read but not used."""
    data = self.config.data
    if data.format == "conllu":
      return conll.read_conllu(path, column=data.tag_column or "upos")
    return conll.read_conll(path, column=int(data.tag_column or -1))

  def records_from_texts(self, texts):
    """Sentences of raw texts, split into words on whitespace (or given as word lists)."""
    return [conll.TaggedSentence(text.split() if isinstance(text, str) else list(text),
                                 [], i + 1) for i, text in enumerate(texts)]

  def encode_unlabelled(self, records, tokenizer):
    return finetune_encode.encode_tagged(records, tokenizer,
                                         self.config.data.max_seq_len)[0]

  def label_list(self, train, evals):
    labels = finetune_labels.label_vocabulary(train, path=self.config.data.train_path,
                                              configured=self.labels or None)
    for path, records in evals.items():
      finetune_labels.check_known_labels(records, labels, path=path)
    return labels

  def texts_of(self, records):
    return [" ".join(s.words) for s in records]

  def encode(self, records, tokenizer):
    return finetune_encode.encode_tagged(
        records, tokenizer, self.config.data.max_seq_len,
        tag_to_id={t: i for i, t in enumerate(self.labels)})

  def batch_spec(self):
    length = (self.config.data.max_seq_len,)
    return {"input_ids": (length, np.int32), "token_type_ids": (length, np.int32),
            "attention_mask": (length, np.int32), "labels": (length, np.int32),
            "label_weights": (length, np.float32), "example_weights": ((), np.float32)}

  # --- model and loss -----------------------------------------------------------------------
  def build_model(self, vocab_size):
    return finetuning.BertForTokenClassification(
        EncoderConfig.from_config(self.config.model, vocab_size), max(len(self.labels), 2))

  def denominators(self, batch):
    return jnp.sum(batch["label_weights"].astype(jnp.float32))

  @staticmethod
  def _sums(logits, batch):
    weights = batch["label_weights"].astype(jnp.float32)
    labels = jnp.where(weights > 0, batch["labels"], 0)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {"loss_sum": jnp.sum(xent * weights),
            "correct_sum": jnp.sum((jnp.argmax(logits, -1) == labels) * weights),
            "weight_sum": jnp.sum(weights)}

  @staticmethod
  def _predictions(logits):
    return jnp.argmax(logits, -1).astype(jnp.int32)

  def summarize(self, sums):
    return {"loss": losses.ratio(sums["loss_sum"], sums["weight_sum"]),
            "token_accuracy": losses.ratio(sums["correct_sum"], sums["weight_sum"])}

  # --- evaluation ----------------------------------------------------------------------------
  def _word_predictions(self, predictions, dev):
    sentences, arrays = dev
    # Words cut by max_seq_len get "O" (a missed entity) or the most frequent tag.
    fill = self.labels.index("O") if "O" in self.labels else 0
    ids = finetune_encode.predictions_to_words(
        np.asarray(predictions)[:len(sentences)],  # the last batch's padding rows go
        arrays["word_index"], [len(s.words) for s in sentences], fill_id=fill)
    return [[self.labels[i] for i in row] for row in ids]

  def host_metrics(self, predictions, dev):
    sentences, _ = dev
    gold = [s.tags for s in sentences]
    pred = self._word_predictions(predictions, dev)
    metrics = {"token_accuracy": finetune_metrics.token_accuracy(gold, pred)}
    if self.bio:
      metrics.update(finetune_metrics.entity_metrics(gold, pred))
    return metrics

  def decode_predictions(self, predictions, examples):
    """(word, predicted tag) pairs per sentence."""
    sentences, _ = examples
    return [list(zip(s.words, tags))
            for s, tags in zip(sentences, self._word_predictions(predictions, examples))]

  def write_predictions(self, path, predictions, dev):
    sentences, _ = dev
    with open(path, "w", encoding="utf-8") as f:
      f.write("word\tlabel\tpredicted\n")
      for sentence, pairs in zip(sentences, self.decode_predictions(predictions, dev)):
        for (word, pred), gold in zip(pairs, sentence.tags):
          f.write(f"{word}\t{gold}\t{pred}\n")
        f.write("\n")
