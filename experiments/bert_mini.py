"""BERT-mini, Google's size: 4 layers, hidden 256, 4 heads; 11.3M params.

The BERT family (experiments/_bert_family.py): vocabulary 30522, 512 positions,
sequence length 128, batch 256, peak LR 1e-4, 900k steps. Point it at your text:

  prelm train --config bert_mini --workdir runs/bert_mini \
      --config.data.dataset=text_files --config.data.paths='~/corpus/**/*.txt'
"""
from experiments import _bert_family


def get_config(arg=None):
  del arg
  return _bert_family.get_config("mini")
