"""BERT-medium, Google's size: 8 layers, hidden 512, 8 heads; 41.7M params.

The BERT family (experiments/_bert_family.py): vocabulary 30522, 512 positions,
sequence length 128, batch 256, peak LR 1e-4, 900k steps. Point it at your text:

  prelm train --config bert_medium --workdir runs/bert_medium \
      --config.data.dataset=text_files --config.data.paths='~/corpus/**/*.txt'
"""
from experiments import _bert_family


def get_config(arg=None):
  del arg
  return _bert_family.get_config("medium")
