"""Baseline for bert_tiny_pydocs: the same run with a bidirectional LSTM encoder.

Hidden 128, 2 layers, in place of self-attention; compare final_metrics.json.

  prelm train --config experiments/lstm_tiny_pydocs.py --workdir runs/lstm_tiny_pydocs
"""
from experiments import bert_tiny_pydocs


def get_config(arg=None):
  config = bert_tiny_pydocs.get_config(arg)
  config.model.encoder = "lstm"
  return config
