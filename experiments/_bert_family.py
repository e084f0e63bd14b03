"""Shared by the BERT family experiments, bert_tiny .. bert_large (not an experiment: the
leading _ hides it): Google's published sizes at their vocabulary, pre-trained with the
BERT paper's phase-1 recipe.

Sizes (model/variants.py) and parameter counts, counted as BertForPreTraining is
(embeddings, encoder, pooler, MLM transform and bias, NSP; the MLM output matrix is the
tied word embeddings), at 30522 WordPiece tokens, 512 positions and 2 segment types:

  tiny 2/128 4.4M   mini 4/256 11.3M   small 4/512 29.1M   medium 8/512 41.7M
  base 12/768 110.1M   large 24/1024 336.2M (the paper rounds it to 340M)

tests/test_family.py checks these against the models themselves. The embedding table
gets vocab_pad_multiple's 6 padding rows on top (0.02% of BERT-tiny).
"""
from experiments import base
from prelm_jax.model import variants


def get_config(size):
  """BERT-`size` (a key of variants.VARIANTS) with phase 1 of Devlin et al.'s recipe."""
  config = base.get_config()
  config.model.update(variants.get(size))
  # The released checkpoints' shapes: prelm import-hf / export-hf map them one to one.
  config.model.max_position_embeddings = 512
  config.model.type_vocab_size = 2
  # bert-base-uncased's vocabulary size; prelm trains a WordPiece of this size on the corpus.
  config.data.vocab_size = 30522
  # Phase 1: sequence length 128, batch 256, peak LR 1e-4 after 10k warm-up steps, for
  # the paper's 90% of 1M steps.
  config.data.max_seq_len = 128
  config.train.num_steps = 900_000
  config.train.batch_size = 256
  config.train.eval_batch_size = 256
  config.train.log_every = 100
  config.train.eval_every = 10_000
  config.train.checkpoint_every = 5_000
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 10_000
  return config
