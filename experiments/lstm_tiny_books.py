"""Baseline for bert_tiny_books: the same pre-training with a bidirectional LSTM encoder.

Hidden 128, 2 layers, in place of self-attention.

  prelm train --config lstm_tiny_books --workdir runs/lstm_tiny_books
"""
from experiments import bert_tiny_books


def get_config(arg=None):
  config = bert_tiny_books.get_config(arg)
  config.model.encoder = "lstm"
  return config
